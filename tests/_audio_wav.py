"""A minimal RIFF/WAVE reader for the tests: an independent reference for decoded PCM.

Python's :mod:`wave` module (before 3.12) reads only integer PCM with format tag 1, so it cannot
read the float and WAVE_FORMAT_EXTENSIBLE files of the media corpus. This parser reads the ``fmt ``
and ``data`` chunks directly; the tests cross-check it against :mod:`wave` where both apply.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE


@dataclass
class Wav:
    """The decoded header and the raw samples, shape ``(num_frames, num_channels)``."""

    format_tag: int  # after resolving WAVE_FORMAT_EXTENSIBLE to its sub-format
    num_channels: int
    sample_rate: int
    bits_per_sample: int
    samples: np.ndarray

    @property
    def num_frames(self) -> int:
        return self.samples.shape[0]

    @property
    def ffmpeg_sample_format(self) -> str:
        """The name FFmpeg gives this sample format (packed, as WAV stores it)."""
        if self.format_tag == WAVE_FORMAT_IEEE_FLOAT:
            return {32: "flt", 64: "dbl"}[self.bits_per_sample]
        return {8: "u8", 16: "s16", 32: "s32"}[self.bits_per_sample]

    def as_float(self) -> np.ndarray:
        """``(num_channels, num_frames)`` float64, scaled as FFmpeg scales each format to float:
        u8 ``(x - 128) / 128``, s16 ``x / 32768``, s32 ``x / 2**31``, float as is."""
        x = self.samples
        if self.format_tag == WAVE_FORMAT_IEEE_FLOAT:
            out = x.astype(np.float64)
        elif self.bits_per_sample == 8:
            out = (x.astype(np.float64) - 128.0) / 128.0
        elif self.bits_per_sample == 16:
            out = x.astype(np.float64) / 32768.0
        elif self.bits_per_sample == 32:
            out = x.astype(np.float64) / 2.0**31
        else:  # pragma: no cover - not in the corpus
            raise ValueError(f"unsupported bits per sample: {self.bits_per_sample}")
        return out.T


def read_wav(path: str | Path) -> Wav:
    data = Path(path).read_bytes()
    riff, _size, wave_id = struct.unpack_from("<4sI4s", data, 0)
    if riff != b"RIFF" or wave_id != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    pos = 12
    fmt = None
    payload = None
    while pos + 8 <= len(data):
        chunk_id, chunk_size = struct.unpack_from("<4sI", data, pos)
        body = data[pos + 8 : pos + 8 + chunk_size]
        if chunk_id == b"fmt ":
            fmt = body
        elif chunk_id == b"data":
            payload = body
        pos += 8 + chunk_size + (chunk_size & 1)  # chunks are word-aligned
    if fmt is None or payload is None:
        raise ValueError(f"{path}: missing fmt or data chunk")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", fmt, 0)
    if tag == WAVE_FORMAT_EXTENSIBLE:
        # cbSize (2), valid bits (2), channel mask (4), then the sub-format GUID whose first two
        # bytes are the format tag.
        (tag,) = struct.unpack_from("<H", fmt, 24)
    if tag == WAVE_FORMAT_IEEE_FLOAT:
        dtype = {32: "<f4", 64: "<f8"}[bits]
    elif tag == WAVE_FORMAT_PCM:
        dtype = {8: "u1", 16: "<i2", 32: "<i4"}[bits]
    else:
        raise ValueError(f"{path}: unsupported WAV format tag {tag:#x}")
    assert block_align == channels * bits // 8
    usable = len(payload) - len(payload) % block_align
    samples = np.frombuffer(payload[:usable], dtype=dtype).reshape(-1, channels)
    return Wav(tag, channels, rate, bits, samples)
