"""Hostile media (issue 17): each fault class found by the mutation campaign, reproduced on media
generated here, with the behaviour that fixes it.

- a decoder dropped without ``close()`` frees its file at once (no cycle for the collector);
- a lying header in approximate mode: a frame count beyond what the duration, rate and file size
  allow is corrected, and iteration and ranges stop at the real end of the stream;
- memory bombs: requests whose output would exceed the limit raise OutputTooLargeError before
  allocating;
- a file that is not media is refused once by FFmpeg's probe, without trying (or importing) the
  other FFmpeg-based backends.
"""

from __future__ import annotations

import gc
import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import mediadecode
from mediadecode import AudioDecoder, VideoDecoder
from mediadecode.errors import DecodingError, InvalidMediaError, MediaDecodeError

from conftest import count_open_fds, encode_video

av = pytest.importorskip("av")


# -- media -----------------------------------------------------------------------------------


def _noise_video(path: Path, *, num_frames: int, fmt: str | None = None) -> Path:
    """H.264 noise (large packets), GOP 10, 64x48 at 30 fps."""
    rng = np.random.default_rng(7)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream("libx264", rate=30, options={"g": "10", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def undecodable_mp4(tmp_path_factory) -> Path:
    """An MP4 whose index is intact but whose frame data after the first ~200 bytes of ``mdat``
    is overwritten: it opens, and decoding most frames fails."""
    path = _noise_video(tmp_path_factory.mktemp("hostile") / "noise.mp4", num_frames=60)
    data = bytearray(path.read_bytes())
    start = data.find(b"mdat") + 200
    stop = start + (len(data) - start) * 3 // 4
    data[start:stop] = b"\xff" * (stop - start)
    damaged = path.with_name("undecodable.mp4")
    damaged.write_bytes(bytes(data))
    return damaged


def _stts_patched(path: Path, sample_count: int) -> bytes:
    """The bytes of a one-entry-``stts`` MOV/MP4 whose entry claims ``sample_count`` samples:
    FFmpeg then reports that many frames in the header, with the real duration and rate."""
    data = bytearray(path.read_bytes())
    at = data.find(b"stts")
    (entries,) = struct.unpack_from(">I", data, at + 8)
    assert entries == 1, "the generated file has one stts entry"
    struct.pack_into(">I", data, at + 12, sample_count)
    return bytes(data)


@pytest.fixture(scope="module")
def lying_mov(tmp_path_factory) -> Path:
    """3 frames (0.1 s at 30 fps) of H.264 in MOV whose header claims 9,437,187 frames (the
    campaign's 15 KB file, remade)."""
    folder = tmp_path_factory.mktemp("lying")
    honest = encode_video(folder / "honest.mov", codec="libx264", width=64, height=48, pix_fmt="yuv420p",
                          num_frames=3, rate=Fraction(30), options={"g": "4", "preset": "ultrafast"})
    path = folder / "lying.mov"
    path.write_bytes(_stts_patched(honest.path, 9_437_187))
    return path


# -- a dropped decoder frees its file at once ------------------------------------------------


@pytest.fixture
def gc_disabled():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _drop_decoders(make, count: int = 20) -> int:
    """Open ``count`` decoders with ``make()``, dropping each without ``close()``; the growth of
    this process's open file descriptors."""
    before = count_open_fds()
    for _ in range(count):
        make()
    return count_open_fds() - before


@pytest.mark.skipif(count_open_fds() is None, reason="needs /proc/self/fd")
@pytest.mark.parametrize("kwargs", [{"num_threads": 1}, {"num_threads": 2}, {"seek_mode": "approximate"}])
def test_dropped_decoder_closes_its_file_without_the_collector(h264_mp4, gc_disabled, kwargs):
    def make():
        decoder = VideoDecoder(h264_mp4.path, **kwargs)
        decoder.get_frames_at([0, 20, 40])  # threads > 1: GOP-parallel cursors too

    assert _drop_decoders(make) == 0


@pytest.mark.skipif(count_open_fds() is None, reason="needs /proc/self/fd")
@pytest.mark.parametrize("kwargs", [{"num_threads": 1}, {"num_threads": 2}, {"seek_mode": "approximate"}])
def test_decoder_dropped_after_a_decoding_error_closes_its_file(undecodable_mp4, gc_disabled, kwargs):
    raised = []

    def make():
        decoder = VideoDecoder(undecodable_mp4, **kwargs)
        try:
            decoder.get_frames_at(list(range(len(decoder))))
        except DecodingError as exc:
            raised.append(type(exc))

    assert _drop_decoders(make) == 0
    assert raised, "the damaged file must fail to decode, or this test tests nothing"


@pytest.mark.skipif(count_open_fds() is None, reason="needs /proc/self/fd")
def test_dropped_audio_decoder_closes_its_file(tmp_path, gc_disabled):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4000), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    assert _drop_decoders(lambda: AudioDecoder(path).get_all_samples()) == 0
