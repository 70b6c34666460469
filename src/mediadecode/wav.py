"""PCM WAV read straight from the bytes with numpy: :class:`WavDecoder`, as torchcodec 0.17's.

No FFmpeg call: the RIFF header is parsed here, a range of samples is one seek and one read at
``data_offset + index * block_align``, and the integers are scaled to float32 as FFmpeg's
libswresample (and libsndfile) scale them: unsigned 8-bit ``(x - 128) / 128``, signed 16/24/32-bit
``x / 2**(bits - 1)``, 32-bit float as is, 64-bit float rounded to float32. Formats: PCM
(``WAVE_FORMAT_PCM``), IEEE float (``WAVE_FORMAT_IEEE_FLOAT``) and ``WAVE_FORMAT_EXTENSIBLE``
with either sub-format, any number of channels (in the file's order).

:class:`WavReader` is the same reader behind the backend protocol: the ffmpeg backend's
``AudioDecoder`` uses it for plain PCM WAV when no resampling or mixing is asked for.
"""

from __future__ import annotations

import io
import struct
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import InvalidMediaError
from .frames import AudioSamples
from .metadata import AudioStreamMetadata, ContainerMetadata
from .sample_grid import SampleGrid
from .sources import Source, as_source

__all__ = ["WavDecoder", "WavHeader", "WavReader", "read_wav_header"]

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE

# (format tag, bits per sample) -> (FFmpeg's codec name, FFmpeg's decoded sample format)
_FORMATS = {
    (WAVE_FORMAT_PCM, 8): ("pcm_u8", "u8"),
    (WAVE_FORMAT_PCM, 16): ("pcm_s16le", "s16"),
    (WAVE_FORMAT_PCM, 24): ("pcm_s24le", "s32"),
    (WAVE_FORMAT_PCM, 32): ("pcm_s32le", "s32"),
    (WAVE_FORMAT_IEEE_FLOAT, 32): ("pcm_f32le", "flt"),
    (WAVE_FORMAT_IEEE_FLOAT, 64): ("pcm_f64le", "dbl"),
}


@dataclass(frozen=True)
class WavHeader:
    """What the RIFF header says: the sample layout and where the samples are.

    ``format_tag`` is WAVE_FORMAT_PCM or WAVE_FORMAT_IEEE_FLOAT (an EXTENSIBLE file's sub-format);
    ``data_offset`` is the byte offset of the first sample; ``num_frames`` the number of samples
    per channel the data chunk holds (bounded by the file's size).
    """

    format_tag: int
    num_channels: int
    sample_rate: int
    bits_per_sample: int
    block_align: int
    data_offset: int
    num_frames: int

    @property
    def codec(self) -> str:
        return _FORMATS[(self.format_tag, self.bits_per_sample)][0]

    @property
    def sample_format(self) -> str:
        return _FORMATS[(self.format_tag, self.bits_per_sample)][1]

    def to_float(self, raw: bytes) -> np.ndarray:
        """``raw`` whole sample frames as float32 ``(num_channels, n)`` in [-1, 1]."""
        bits, channels = self.bits_per_sample, self.num_channels
        if self.format_tag == WAVE_FORMAT_IEEE_FLOAT:
            x = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
        elif bits == 8:
            x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) * np.float32(1 / 128)
        elif bits == 16:
            x = np.frombuffer(raw, dtype="<i2").astype(np.float32) * np.float32(1 / 32768)
        elif bits == 24:
            b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            ints = (b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)  # FFmpeg: s24 -> s32
            x = ints.astype(np.float32) * np.float32(2.0 ** -31)
        else:
            x = np.frombuffer(raw, dtype="<i4").astype(np.float32) * np.float32(2.0 ** -31)
        return x.reshape(-1, channels).T


def read_wav_header(fileobj, name: str) -> WavHeader:
    """Parse the RIFF/WAVE header of ``fileobj`` (a seekable binary file at any position).

    Raises:
        InvalidMediaError: not a RIFF/WAVE file, no ``fmt `` or ``data`` chunk, or a sample
            format that is not integer PCM (8/16/24/32-bit) or IEEE float (32/64-bit); the message
            names the source and the reason.
    """
    fileobj.seek(0, io.SEEK_END)
    size = fileobj.tell()
    fileobj.seek(0)
    head = fileobj.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise InvalidMediaError(f"{name}: not a WAV file (no RIFF/WAVE header)")
    fmt = None
    pos = 12
    while pos + 8 <= size:
        fileobj.seek(pos)
        chunk_id, chunk_size = struct.unpack("<4sI", fileobj.read(8))
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt = fileobj.read(min(chunk_size, 40))
        elif chunk_id == b"data":
            if fmt is None:
                raise InvalidMediaError(f"{name}: WAV data chunk before its fmt chunk")
            header = _parse_fmt(fmt, name)
            # A streamed WAV may say 0 or 0xFFFFFFFF: the samples run to the end of the file.
            available = size - body
            data_size = available if chunk_size in (0, 0xFFFFFFFF) else min(chunk_size, available)
            return WavHeader(**header, data_offset=body, num_frames=data_size // header["block_align"])
        pos = body + chunk_size + (chunk_size & 1)
    raise InvalidMediaError(f"{name}: WAV file without {'a fmt' if fmt is None else 'a data'} chunk")


def _parse_fmt(fmt: bytes, name: str) -> dict[str, int]:
    if len(fmt) < 16:
        raise InvalidMediaError(f"{name}: WAV fmt chunk too short ({len(fmt)} bytes)")
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(fmt) < 40:
            raise InvalidMediaError(f"{name}: WAVE_FORMAT_EXTENSIBLE fmt chunk too short")
        tag = struct.unpack("<H", fmt[24:26])[0]  # the sub-format GUID's first two bytes
    if (tag, bits) not in _FORMATS:
        raise InvalidMediaError(
            f"{name}: WAV sample format not supported by WavDecoder (format tag {tag:#06x}, "
            f"{bits} bits); AudioDecoder reads it through FFmpeg"
        )
    if channels == 0 or rate == 0 or block_align != channels * bits // 8:
        raise InvalidMediaError(
            f"{name}: inconsistent WAV header ({channels} channels, {rate} Hz, block align "
            f"{block_align}, {bits} bits)"
        )
    return dict(format_tag=tag, num_channels=channels, sample_rate=rate, bits_per_sample=bits,
                block_align=block_align)


class WavReader:
    """A PCM WAV stream read with numpy; implements :class:`~mediadecode.protocol.AudioStreamReader`
    with exact ranges on the grid of origin 0 (:class:`~mediadecode.sample_grid.SampleGrid`)."""

    returns_exact_range = True

    def __init__(self, source: Source):
        self._source = source
        self._lock = threading.Lock()
        self._file = source.open_binary()
        try:
            self.header = h = read_wav_header(self._file, source.name)
        except BaseException:
            self.close()
            raise
        duration = h.num_frames / h.sample_rate
        self.metadata = AudioStreamMetadata(
            duration_seconds_from_header=duration,
            begin_stream_seconds_from_header=None,  # WAV has no start time (as torchcodec 0.17)
            bit_rate=float(h.sample_rate * h.block_align * 8),
            codec=h.codec,
            stream_index=0,
            media_type="audio",
            sample_rate=h.sample_rate,
            num_channels=h.num_channels,
            sample_format=h.sample_format,
            duration_seconds=duration,
            begin_stream_seconds=0.0,
        )
        self.container_metadata = ContainerMetadata(
            duration_seconds_from_header=duration,
            bit_rate_from_header=self.metadata.bit_rate,
            best_video_stream_index=None,
            best_audio_stream_index=0,
            streams=[self.metadata],
            format_name="wav",
        )
        self.sample_rate = h.sample_rate
        self.num_channels = h.num_channels
        self._grid = SampleGrid(0.0, h.sample_rate)

    @classmethod
    def open_if_plain_wav(cls, source: Source) -> "WavReader | None":
        """A reader when ``source`` is a local file or bytes holding PCM WAV, else None."""
        if source.kind not in ("path", "bytes"):
            return None
        try:
            return cls(source)
        except (InvalidMediaError, OSError, struct.error):
            return None

    def get_samples_played_in_range(self, start_seconds: float, stop_seconds: float | None):
        """``(float32 (C, n), pts)``: the samples of ``[start, stop)`` (sample ``k`` at ``k /
        sample_rate``), ``pts`` = ``max(start_seconds, 0)``."""
        h = self.header
        lo, hi = self._grid.span(start_seconds, stop_seconds)
        hi = h.num_frames if hi is None else min(hi, h.num_frames)
        pts = max(float(start_seconds), 0.0)
        if hi <= lo:
            return torch.empty((h.num_channels, 0), dtype=torch.float32), pts
        with self._lock:
            if self._file is None:
                raise ValueError(f"{self._source.name}: the reader is closed")
            self._file.seek(h.data_offset + lo * h.block_align)
            raw = self._file.read((hi - lo) * h.block_align)
        raw = raw[: len(raw) - len(raw) % h.block_align]  # a file truncated since it was opened
        return torch.from_numpy(np.ascontiguousarray(h.to_float(raw))), pts

    def close(self) -> None:
        """Close the file (a caller's file object is left open); idempotent."""
        f, self._file = getattr(self, "_file", None), None
        if f is not None and self._source.owns_file:
            f.close()

    def __del__(self) -> None:
        self.close()


class WavDecoder:
    """A fast decoder for PCM WAV files, as torchcodec 0.17's ``torchcodec.decoders.WavDecoder``.

    Reads the samples straight from the bytes with numpy (no FFmpeg), seeking by byte offset.
    Like torchcodec's, it neither resamples nor mixes channels: use :class:`AudioDecoder` for that.
    Samples are float32 in [-1, 1], scaled as FFmpeg scales them (see :mod:`mediadecode.wav`).

    Args:
        source: a path (``str`` or ``pathlib.Path``), ``bytes``, a 1-D ``torch.uint8`` tensor, a
            binary file object with ``read`` and ``seek``, or a URL (read through fsspec).
        storage_options, timeout: as for :class:`~mediadecode.VideoDecoder` (URLs).

    Attributes:
        metadata (AudioStreamMetadata): the stream's metadata (``begin_stream_seconds`` 0,
            ``begin_stream_seconds_from_header`` None, codec ``pcm_s16le`` and so on).
        stream_index (int): always 0.

    Raises:
        SourceNotFoundError: the path does not exist.
        InvalidMediaError: not a RIFF/WAVE file, or not integer PCM (8/16/24/32-bit) or IEEE float
            (32/64-bit) samples (torchcodec 0.17 raises ``RuntimeError``, which this also is).
    """

    def __init__(self, source: Any, *, storage_options: dict | None = None,
                 timeout: float | tuple[float, float] | None = None):
        self._source = as_source(source, storage_options=storage_options, timeout=timeout)
        self._reader = WavReader(self._source)
        self.metadata: AudioStreamMetadata = self._reader.metadata
        self.stream_index = 0

    def get_all_samples(self) -> AudioSamples:
        """All samples of the file (see :meth:`get_samples_played_in_range`)."""
        return self.get_samples_played_in_range()

    def get_samples_played_in_range(
        self, start_seconds: float = 0.0, stop_seconds: float | None = None
    ) -> AudioSamples:
        """Samples in ``[start_seconds, stop_seconds)`` (None: to the end).

        Sample ``k`` is played at ``k / sample_rate``; the range holds the samples whose index is
        in ``[round(start * rate), round(stop * rate))`` (round half up), so consecutive ranges
        tile the file. ``pts_seconds`` is ``max(start_seconds, 0)``. A range past the end, or
        narrower than a sample, gives no samples (torchcodec 0.17 raises ``RuntimeError``).

        Raises:
            ValueError: ``start_seconds > stop_seconds`` (as torchcodec 0.17), or NaN.
        """
        if start_seconds != start_seconds or (stop_seconds is not None and stop_seconds != stop_seconds):
            raise ValueError(f"Invalid range: [{start_seconds}, {stop_seconds})")
        if stop_seconds is not None and not start_seconds <= stop_seconds:
            raise ValueError(
                f"Invalid start seconds: {start_seconds}. It must be less than or equal to stop "
                f"seconds ({stop_seconds})."
            )
        if stop_seconds is not None and stop_seconds == float("inf"):
            stop_seconds = None
        data, pts = self._reader.get_samples_played_in_range(float(start_seconds), stop_seconds)
        rate = self._reader.sample_rate
        return AudioSamples(data=data, pts_seconds=pts, duration_seconds=data.shape[1] / rate,
                            sample_rate=rate)

    def close(self) -> None:
        """Close the file; idempotent."""
        self._reader.close()

    def __enter__(self) -> "WavDecoder":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        if not self._source.reopenable:
            raise TypeError(f"a WavDecoder reading {self._source.name} cannot be pickled")
        return {"source": self._source}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._source = state["source"]
        self._reader = WavReader(self._source)
        self.metadata = self._reader.metadata
        self.stream_index = 0

    def __repr__(self) -> str:
        m = self.metadata
        return f"WavDecoder({self._source.name}, {m.sample_rate} Hz, {m.num_channels} ch, {m.codec})"
