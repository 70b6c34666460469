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
from mediadecode import AudioDecoder, VideoDecoder, samplers
from mediadecode.errors import DecodingError, MediaDecodeError

from conftest import count_open_fds, encode_video

av = pytest.importorskip("av")


# -- media -----------------------------------------------------------------------------------


def _noise_video(path: Path, *, num_frames: int, fmt: str | None = None, rate: int = 30,
                 gop: int = 10, seed: int = 7, container_options: dict | None = None) -> Path:
    """H.264 noise (large packets), 64x48, GOP ``gop`` at ``rate`` fps."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as out:
        stream = out.add_stream("libx264", rate=rate, options={"g": str(gop), "preset": "ultrafast"})
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


@pytest.fixture(scope="module")
def one_bad_packet_mp4(tmp_path_factory) -> Path:
    """An MP4 whose 5th packet (a P-frame) is overwritten: that frame fails to decode while the
    demuxer goes on, so a request for it raises after the decode generator has moved on."""
    path = _noise_video(tmp_path_factory.mktemp("badpacket") / "noise.mp4", num_frames=30)
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    pos, size = sorted(packets)[4]
    data = bytearray(path.read_bytes())
    data[pos:pos + size] = b"\xff" * size
    damaged = path.with_name("one_bad_packet.mp4")
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


def _default_duration_patched(path: Path, nanoseconds: int) -> bytes:
    """The bytes of a one-track Matroska file whose track's DefaultDuration (EBML ID 0x23E383)
    says ``nanoseconds`` per frame: FFmpeg takes the header's average rate from it, while the
    blocks keep their real timestamps."""
    data = bytearray(path.read_bytes())
    at = data.find(b"\x23\xe3\x83")
    assert at > 0 and data.find(b"\x23\xe3\x83", at + 1) < 0, "one DefaultDuration element"
    size_byte = data[at + 3]
    assert size_byte & 0x80, "a one-byte EBML size field"
    length = size_byte & 0x7F
    assert nanoseconds < 1 << (8 * length)
    data[at + 4:at + 4 + length] = nanoseconds.to_bytes(length, "big")
    return bytes(data)


@pytest.fixture(scope="module")
def lying_rate_mkv(tmp_path_factory) -> Path:
    """10 MJPEG frames at 24 fps in Matroska whose DefaultDuration claims 30,000 fps (the
    campaign's 9 KB file, remade): the header has no frame count, so the count comes from its
    duration x rate."""
    folder = tmp_path_factory.mktemp("lying_rate")
    honest = encode_video(folder / "honest.mkv", codec="mjpeg", width=64, height=48, pix_fmt="yuvj420p",
                          num_frames=10, rate=Fraction(24), time_base=Fraction(1, 1000),
                          pts=[round(i * 1000 / 24) for i in range(10)])
    path = folder / "lying_rate.mkv"
    path.write_bytes(_default_duration_patched(honest.path, 33_333))
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
@pytest.mark.parametrize("damage", ["undecodable_mp4", "one_bad_packet_mp4"])
def test_decoder_dropped_after_a_decoding_error_closes_its_file(request, damage, gc_disabled, kwargs):
    if damage == "one_bad_packet_mp4" and kwargs.get("seek_mode") == "approximate":
        pytest.skip("approximate mode shows the frame before a lost one: no decoding error")
    path = request.getfixturevalue(damage)
    raised = []

    def make():
        decoder = VideoDecoder(path, **kwargs)
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


# -- a header that lies, in approximate mode -------------------------------------------------


def _pyav_frames(path: Path) -> list[np.ndarray]:
    """Every frame FFmpeg decodes, as rgb24, skipping packets the decoder rejects (as the
    ``ffmpeg`` CLI does)."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = list(container.demux(stream))
        for packet in packets:
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                continue
            frames += [f.to_ndarray(format="rgb24") for f in decoded]
    return frames


def _header_frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return container.streams.video[0].frames


@pytest.fixture(scope="module")
def truncated_faststart(tmp_path_factory) -> Path:
    """48 frames at 24 fps with the header in front (``movflags=faststart``), cut in half as a
    broken download is: the header counts 48 frames and a duration of 2 s, the data holds
    about half."""
    folder = tmp_path_factory.mktemp("truncated")
    path = _noise_video(folder / "faststart.mp4", num_frames=48, rate=24, gop=12, seed=3,
                        container_options={"movflags": "faststart"})
    data = path.read_bytes()
    cut = folder / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def test_lying_frame_count_is_bounded_by_duration_and_rate(lying_mov):
    claimed = _header_frame_count(lying_mov)
    real = _pyav_frames(lying_mov)
    assert claimed > 1000 * len(real)  # the damage took
    decoder = VideoDecoder(lying_mov, seek_mode="approximate")
    meta = decoder.metadata
    assert meta.num_frames_from_header == claimed  # what the header says is kept
    # duration x rate bounds what is believed: 0.1 s at 30 fps
    assert len(decoder) <= meta.duration_seconds * meta.average_fps * 1.1 + 2
    frames = list(decoder)
    assert len(frames) == len(real) == len(decoder)
    for ours, ref in zip(frames, real):
        assert np.array_equal(ours.permute(1, 2, 0).numpy(), ref)


def test_lying_frame_rate_is_checked_against_the_timestamps(lying_rate_mkv):
    with av.open(str(lying_rate_mkv)) as container:
        stream = container.streams.video[0]
        header_rate, timestamp_rate = float(stream.average_rate), float(stream.base_rate)
    real = _pyav_frames(lying_rate_mkv)
    assert header_rate > 1000 * timestamp_rate  # the damage took
    decoder = VideoDecoder(lying_rate_mkv, seek_mode="approximate")
    meta = decoder.metadata
    assert meta.average_fps_from_header == pytest.approx(header_rate)  # the header's word is kept
    assert meta.average_fps == pytest.approx(timestamp_rate)
    assert len(decoder) <= meta.duration_seconds * timestamp_rate * 1.1 + 2
    frames = list(decoder)  # each real frame once, not each ~900 times
    assert len(frames) == len(real)
    for ours, ref in zip(frames, real):
        assert np.array_equal(ours.permute(1, 2, 0).numpy(), ref)


def test_honest_rates_are_believed(h264_mp4):
    from mediadecode.metadata import plausible_header_fps

    # variable rate: the average is below the timestamps' grid rate (FFmpeg's r_frame_rate)
    assert plausible_header_fps(10000 / 481, 2000.0) == 10000 / 481
    assert plausible_header_fps(30.0, 20.0) == 30.0  # a slow start within the tolerance
    assert plausible_header_fps(30.0, None) == 30.0 and plausible_header_fps(None, 24.0) is None
    with av.open(str(h264_mp4.path)) as container:
        header_rate = float(container.streams.video[0].average_rate)
    assert VideoDecoder(h264_mp4.path, seek_mode="approximate").metadata.average_fps == pytest.approx(header_rate)


def test_iteration_and_ranges_stop_at_the_real_end(truncated_faststart):
    claimed = _header_frame_count(truncated_faststart)
    real = _pyav_frames(truncated_faststart)
    assert claimed == 48 and 0 < len(real) < claimed

    decoder = VideoDecoder(truncated_faststart, seek_mode="approximate")
    assert len(decoder) == claimed  # consistent with the header's duration: believed at first
    frames = list(decoder)
    assert len(frames) == len(real)  # not the last frame again and again up to 48
    assert len(decoder) == decoder.metadata.num_frames == len(real)  # learned
    for ours, ref in zip(frames, real):
        assert np.array_equal(ours.permute(1, 2, 0).numpy(), ref)
    with pytest.raises(IndexError):
        decoder[len(real)]

    fresh = VideoDecoder(truncated_faststart, seek_mode="approximate")
    batch = fresh.get_frames_in_range(0, claimed)  # clipped at the real end, like a slice
    assert batch.data.shape[0] == len(real)
    assert np.array_equal(fresh[-1].permute(1, 2, 0).numpy(), real[-1])

    fresh = VideoDecoder(truncated_faststart, seek_mode="approximate")
    assert np.array_equal(fresh[-1].permute(1, 2, 0).numpy(), real[-1])  # from the real end
    assert fresh[5:].shape[0] == len(real) - 5

    fresh = VideoDecoder(truncated_faststart, seek_mode="approximate")
    with pytest.raises(IndexError, match="out of bounds"):
        fresh.get_frames_at([0, claimed - 1])


# -- memory bombs ----------------------------------------------------------------------------


def test_frame_request_above_the_limit_is_refused_before_decoding(undecodable_mp4):
    # The damaged file fails to decode: an OutputTooLargeError (not a DecodingError) shows the
    # check ran before any decoding.
    decoder = VideoDecoder(undecodable_mp4, max_output_bytes=64 * 48 * 3 * 10)
    n = len(decoder)
    with pytest.raises(mediadecode.OutputTooLargeError) as excinfo:
        decoder.get_frames_at(list(range(n)))
    err = excinfo.value
    assert isinstance(err, MemoryError) and isinstance(err, MediaDecodeError)
    assert err.requested_bytes == n * 64 * 48 * 3 and err.limit_bytes == 64 * 48 * 3 * 10
    message = str(err)
    assert "undecodable.mp4" in message and "MEDIADECODE_MAX_OUTPUT_BYTES" in message
    assert "max_output_bytes" in message
    with pytest.raises(mediadecode.OutputTooLargeError):
        decoder.get_frames_played_in_range(0.0, 1.9, fps=30)
    with pytest.raises(mediadecode.OutputTooLargeError):
        decoder[:]


def test_limit_from_the_environment(h264_mp4, monkeypatch):
    frame = h264_mp4.width * h264_mp4.height * 3
    monkeypatch.setenv("MEDIADECODE_MAX_OUTPUT_BYTES", str(4 * frame))
    decoder = VideoDecoder(h264_mp4.path)
    assert decoder.get_frames_at([0, 1, 2, 3]).data.shape[0] == 4  # at the limit: allowed
    with pytest.raises(mediadecode.OutputTooLargeError):
        decoder.get_frames_at([0, 1, 2, 3, 4])
    monkeypatch.setenv("MEDIADECODE_MAX_OUTPUT_BYTES", "none")
    assert decoder.get_frames_at([0, 1, 2, 3, 4]).data.shape[0] == 5
    # the argument wins over the environment
    monkeypatch.setenv("MEDIADECODE_MAX_OUTPUT_BYTES", "1K")
    assert VideoDecoder(h264_mp4.path, max_output_bytes=0)[0:5].shape[0] == 5


def test_audio_request_above_the_limit_is_refused(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 2 * 8000), np.int16), format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    limit = 8000 * 2 * 4 // 2  # half a second of stereo float32
    decoder = AudioDecoder(path, max_output_bytes=limit)
    with pytest.raises(mediadecode.OutputTooLargeError, match="channel float32 audio"):
        decoder.get_all_samples()
    assert decoder.get_samples_played_in_range(0.0, 0.25).data.shape == (2, 2000)


def test_check_output_bytes_is_public_for_encoders(monkeypatch):
    from mediadecode import limits

    monkeypatch.delenv(limits.ENV_VAR, raising=False)
    limits.check_output_bytes(10, what="x", limit=10)
    with pytest.raises(mediadecode.OutputTooLargeError, match="enc.mp4: encoding 11 bytes"):
        limits.check_output_bytes(11, what="encoding 11 bytes", source_name="enc.mp4", limit=10)
    assert limits.max_output_bytes() > 0  # a fraction of this machine's memory
    monkeypatch.setenv(limits.ENV_VAR, "2M")
    assert limits.max_output_bytes() == 2 * 1024 * 1024
    monkeypatch.setenv(limits.ENV_VAR, "lots")
    with pytest.raises(ValueError, match=limits.ENV_VAR):
        limits.max_output_bytes()
    with pytest.raises(ValueError):
        VideoDecoder(b"", max_output_bytes=-1)


# -- a file no backend can open --------------------------------------------------------------


def test_not_media_is_refused_once_without_importing_fallback_backends(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    code = (
        "import sys, mediadecode\n"
        f"try:\n    mediadecode.VideoDecoder({str(path)!r})\n"
        "except mediadecode.NoBackendError as exc:\n"
        "    assert all(exc.attempts[n].startswith('not tried') for n in ('torchcodec', 'decord')\n"
        "               if n in exc.attempts), exc.attempts\n"
        "except mediadecode.NotMediaError:\n"
        "    pass  # ffmpeg was the only backend to try\n"
        "print(sorted(m for m in ('torchcodec', 'decord') if m in sys.modules))\n"
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(mediadecode.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- time bombs and raw errors ---------------------------------------------------------------


def test_regular_clips_on_a_lying_time_base_are_refused_not_built(tmp_path, monkeypatch):
    # AVI's stream header says one frame per 10^6 s: 20 frames span 231 days, and a clip every
    # 0.25 s would be 80 million clips. Refused before the start times are built.
    monkeypatch.delenv("MEDIADECODE_MAX_OUTPUT_BYTES", raising=False)
    honest = encode_video(tmp_path / "honest.avi", codec="mpeg4", width=64, height=48, pix_fmt="yuv420p",
                          num_frames=20, rate=Fraction(24))
    data = bytearray(honest.path.read_bytes())
    at = data.find(b"strh") + 8
    assert data[at:at + 4] == b"vids"
    struct.pack_into("<II", data, at + 20, 1_000_000, 1)  # dwScale, dwRate
    path = tmp_path / "slow.avi"
    path.write_bytes(bytes(data))
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == Fraction(1, 1_000_000)  # took
    decoder = VideoDecoder(path)
    assert len(decoder) == 20
    with pytest.raises(mediadecode.OutputTooLargeError, match="frames of 64x48"):
        samplers.clips_at_regular_timestamps(
            decoder, seconds_between_clip_starts=0.25, num_frames_per_clip=2)
    clips = samplers.clips_at_regular_timestamps(
        decoder, seconds_between_clip_starts=1e6, num_frames_per_clip=1)
    assert clips.data.shape[:2] == (20, 1)  # a sane spacing still works


def test_played_at_on_a_stream_without_frames_is_an_index_error(tmp_path):
    # A video stream declared in the header whose packets are all gone (the campaign met it as
    # a damaged H.264 + AAC file): the bounds error, not an internal one.
    path = tmp_path / "no_video_packets.mkv"
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in audio.encode(frame):
            out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)
    with av.open(str(path)) as container:
        assert container.streams.video and not list(container.demux(container.streams.video[0]))[:-1]
    decoder = VideoDecoder(path)
    assert len(decoder) == 0
    with pytest.raises(IndexError, match="no frames"):
        decoder.get_frames_played_at([0.0])
    with pytest.raises(IndexError, match="no frames"):
        decoder.get_frame_played_at(0.0)


def test_an_ffmpeg_error_escaping_a_request_is_a_decoding_error(h264_mp4, monkeypatch):
    # Whatever stage FFmpeg fails in (here the RGB conversion), the caller sees mediadecode's
    # DecodingError naming the file, with PyAV's error as its cause.
    from av.video.reformatter import VideoReformatter

    def failing(self, *args, **kwargs):
        raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")

    decoder = VideoDecoder(h264_mp4.path, num_threads=1)
    monkeypatch.setattr(VideoReformatter, "reformat", failing)
    with pytest.raises(DecodingError, match="h264_bframes.mp4: decoding failed: Invalid data") as excinfo:
        decoder.get_frames_at([3])
    assert isinstance(excinfo.value.__cause__, av.error.InvalidDataError)
    approximate = VideoDecoder(h264_mp4.path, seek_mode="approximate")
    with pytest.raises(DecodingError):
        approximate.get_frames_played_in_range(0.0, 0.5)


def test_a_stream_without_a_decoder_is_invalid_media_on_every_path(tmp_path):
    # An MP4 audio track whose sample entry and esds name no codec FFmpeg knows: PyAV gives the
    # stream no codec context. Every path reports it as bad media, none fails on the None.
    from mediadecode.adapters import torchaudio as ta
    from mediadecode.adapters import torchvision as tv

    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    data = bytearray(path.read_bytes())
    at = data.find(b"mp4a")
    data[at:at + 4] = b"zzzz"
    tag = data.find(b"\x04", data.find(b"esds") + 12)  # DecoderConfigDescriptor
    oti = tag + 1
    while data[oti] & 0x80:  # the descriptor's length bytes
        oti += 1
    data[oti + 1] = 0xFE  # objectTypeIndication: no codec
    damaged = tmp_path / "no_decoder.m4a"
    damaged.write_bytes(bytes(data))
    with av.open(str(damaged)) as container:
        assert container.streams[0].type == "audio" and container.streams[0].codec_context is None

    meta = mediadecode.get_container_metadata(damaged)
    assert meta.streams[0].media_type == "audio" and meta.streams[0].codec is None
    for read in (lambda: AudioDecoder(damaged), lambda: ta.load(damaged), lambda: ta.info(damaged),
                 lambda: tv.read_video(damaged, pts_unit="sec"), lambda: tv.VideoReader(damaged, "audio")):
        with pytest.raises(MediaDecodeError):
            read()
