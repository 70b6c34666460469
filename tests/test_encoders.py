"""mediadecode.encoders (torchcodec 0.17's encoder API) against FFmpeg and torchcodec.

References never come from mediadecode's own encoder: decoded pixels and samples come from the
``ffmpeg`` CLI (rawvideo / raw PCM to stdout) or PyAV's decoder; expected conversions (RGB to the
encoder's pixel format, float to 16-bit PCM) come from FFmpeg itself (PyAV's swscale and
libswresample); stream properties from ``ffprobe``; the peer from torchcodec's encoders.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import mediadecode as md
from mediadecode.encoders import AudioEncoder, Encoder, VideoEncoder
from mediadecode.errors import (
    EncodingError,
    InvalidEncoderInputError,
    MediaDecodeError,
    UnsupportedEncodingError,
)
from mediadecode.testing._media import _pattern

from conftest import count_open_fds

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
needs_cli = pytest.mark.skipif(FFMPEG is None or FFPROBE is None, reason="the ffmpeg/ffprobe CLIs are not installed")


def _torchcodec_reason() -> str | None:
    row = {r.name: r for r in md.list_backends()}.get("torchcodec")
    if row is None or not row.available:
        return f"torchcodec cannot be used here: {row.reason if row else 'not registered'}"
    try:
        import torchcodec.encoders  # noqa: F401
    except Exception as exc:  # FFmpeg's shared libraries missing
        return f"torchcodec cannot load: {exc}"
    return None


needs_torchcodec = pytest.mark.skipif(_torchcodec_reason() is not None, reason=str(_torchcodec_reason()))


# -- inputs and references ---------------------------------------------------------------------


def pattern_frames(n: int = 12, height: int = 48, width: int = 64) -> torch.Tensor:
    """(n, 3, H, W) uint8: the conformance kit's moving gradients (compressible, distinct)."""
    return torch.from_numpy(np.stack([_pattern(i, width, height) for i in range(n)])).permute(0, 3, 1, 2).contiguous()


def noise_frames(n: int = 6, height: int = 32, width: int = 48, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, height, width), dtype=torch.uint8, generator=g)


def sine(seconds: float = 1.0, rate: int = 16000, channels: int = 2) -> torch.Tensor:
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    rows = [0.5 * torch.sin(2 * math.pi * (220 * (c + 1)) * t) for c in range(channels)]
    return torch.stack(rows).to(torch.float32)


def ffmpeg_raw_video(path, pix_fmt: str, width: int, height: int) -> np.ndarray:
    """Every frame of ``path`` decoded by the ffmpeg CLI, as (N, H, W, C) planes-or-pixels bytes."""
    out = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
        check=True, capture_output=True,
    ).stdout
    frame_bytes = av.VideoFrame(width, height, pix_fmt).to_ndarray().nbytes if pix_fmt == "rgb24" else width * height * 3
    return np.frombuffer(out, np.uint8).reshape(-1, frame_bytes)


def ffmpeg_raw_audio(path, sample_fmt: str, channels: int) -> np.ndarray:
    """Samples of ``path`` decoded by the ffmpeg CLI, (channels, n), in ``sample_fmt``."""
    dtype = {"s16le": np.int16, "s32le": np.int32, "f32le": np.float32, "f64le": np.float64, "u8": np.uint8}[sample_fmt]
    out = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-f", sample_fmt, "-"], check=True, capture_output=True
    ).stdout
    return np.frombuffer(out, dtype).reshape(-1, channels).T


def ffprobe(path) -> dict:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_streams", "-show_format", "-count_frames", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def swscale(frames: torch.Tensor, pix_fmt: str) -> np.ndarray:
    """FFmpeg's own conversion of RGB frames to ``pix_fmt``, as the planes' bytes per frame."""
    out = []
    for f in frames.permute(0, 2, 3, 1).contiguous().numpy():
        converted = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format=pix_fmt)
        out.append(np.concatenate([np.frombuffer(bytes(p), np.uint8).reshape(p.height, p.line_size)[:, : p.width * (3 if pix_fmt == "rgb24" else 1)].ravel() for p in converted.planes]))
    return np.stack(out)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- lossless round trips ------------------------------------------------------------------------


@needs_cli
@pytest.mark.parametrize("codec, pixel_format, ext", [
    ("libx264rgb", None, "mkv"),   # crf=0: lossless RGB
    ("ffv1", "bgra", "mkv"),
    ("ffv1", "bgr0", "avi"),
])
def test_lossless_rgb_round_trip_is_bit_exact(tmp_path, codec, pixel_format, ext):
    frames = noise_frames()
    dest = tmp_path / f"out.{ext}"
    VideoEncoder(frames, frame_rate=25).to_file(dest, codec=codec, pixel_format=pixel_format,
                                                crf=0 if codec == "libx264rgb" else None)
    n, _, h, w = frames.shape
    expected = frames.permute(0, 2, 3, 1).reshape(n, -1).numpy()
    assert np.array_equal(ffmpeg_raw_video(dest, "rgb24", w, h), expected)
    with md.VideoDecoder(dest) as decoder:
        assert torch.equal(decoder[:], frames)


@needs_cli
@pytest.mark.parametrize("codec, pixel_format, extra", [
    ("libx264", "yuv444p", {}),
    ("ffv1", "yuv444p", {}),
    ("libx264", "yuv420p", {}),
])
def test_lossless_yuv_round_trip_matches_ffmpegs_conversion(tmp_path, codec, pixel_format, extra):
    """x264 crf=0 and FFV1 store exactly the planes FFmpeg's swscale makes from the RGB input."""
    frames = pattern_frames()
    dest = tmp_path / "out.mkv"
    VideoEncoder(frames, frame_rate=30).to_file(
        dest, codec=codec, pixel_format=pixel_format, crf=0 if codec == "libx264" else None, extra_options=extra
    )
    n, _, h, w = frames.shape
    decoded = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(dest), "-f", "rawvideo", "-pix_fmt", pixel_format, "-"],
        check=True, capture_output=True,
    ).stdout
    assert np.array_equal(np.frombuffer(decoded, np.uint8).reshape(n, -1), swscale(frames, pixel_format))
    # mediadecode decodes the file as PyAV does (its own rgb24 conversion of the decoded frames)
    with av.open(str(dest)) as container:
        reference = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    with md.VideoDecoder(dest) as decoder:
        assert torch.equal(decoder[:], torch.from_numpy(reference).permute(0, 3, 1, 2))


@needs_cli
@pytest.mark.parametrize("ext, codec, sample_format, dtype, cli_fmt", [
    ("wav", "pcm_s16le", None, torch.int16, "s16le"),
    ("wav", "pcm_s32le", None, torch.int32, "s32le"),
    ("wav", "pcm_f32le", None, torch.float32, "f32le"),
    ("wav", "pcm_f64le", None, torch.float64, "f64le"),
    ("wav", "pcm_u8", None, torch.uint8, "u8"),
    ("flac", None, "s16", torch.int16, "s16le"),
    ("mka", "flac", "s16", torch.int16, "s16le"),
])
def test_lossless_audio_round_trip_is_bit_exact(tmp_path, ext, codec, sample_format, dtype, cli_fmt):
    g = torch.Generator().manual_seed(1)
    if dtype.is_floating_point:
        samples = (torch.rand(2, 4000, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)
    else:
        info = torch.iinfo(dtype)
        samples = torch.randint(info.min, info.max, (2, 4000), dtype=torch.int64, generator=g).to(dtype)
    dest = tmp_path / f"out.{ext}"
    encoder = Encoder()
    stream = encoder.add_audio(sample_rate=16000, num_channels=2, codec=codec, sample_format=sample_format)
    with encoder.open_file(dest):
        stream.add_samples(samples[:, :1500])
        stream.add_samples(samples[:, 1500:])
    assert np.array_equal(ffmpeg_raw_audio(dest, cli_fmt, 2), samples.numpy())


@needs_cli
def test_float_samples_to_wav_are_quantised_as_ffmpeg_does(tmp_path):
    samples = sine(0.5, 16000, 2)
    dest = tmp_path / "out.wav"
    AudioEncoder(samples, sample_rate=16000).to_file(dest)  # WAV's default: 16-bit PCM
    frame = av.AudioFrame.from_ndarray(samples.numpy(), format="fltp", layout="stereo")
    frame.sample_rate = 16000
    expected = av.AudioResampler(format="s16p", layout="stereo", rate=16000).resample(frame)[0].to_ndarray()
    assert np.array_equal(ffmpeg_raw_audio(dest, "s16le", 2), expected)
    with md.AudioDecoder(dest) as decoder:
        decoded = decoder.get_all_samples()
    assert decoded.sample_rate == 16000
    assert torch.equal(decoded.data, torch.from_numpy(expected.astype(np.float32) / 32768))


# -- lossy paths: quality floors, counts, pts, durations, ffprobe ------------------------------------


@needs_cli
@pytest.mark.parametrize("ext, codec, preset, floor", [
    ("mp4", None, None, 28.0),          # H.264 yuv420p, x264's default crf 23
    ("mp4", "libx264", "ultrafast", 28.0),
    ("mkv", "h264", "medium", 28.0),
    ("webm", None, None, 26.0),         # VP9
    ("avi", None, None, 18.0),          # MPEG-4 part 2 at FFmpeg's default 200 kb/s
])
def test_lossy_video_quality_counts_and_timestamps(tmp_path, ext, codec, preset, floor):
    frames = pattern_frames(n=15)
    dest = tmp_path / f"out.{ext}"
    VideoEncoder(frames, frame_rate=Fraction(30000, 1001)).to_file(dest, codec=codec, preset=preset)
    n, _, h, w = frames.shape
    decoded = ffmpeg_raw_video(dest, "rgb24", w, h)
    assert decoded.shape[0] == n
    # what the encoder had to work with: FFmpeg's conversion to yuv420p and back, lossless
    ideal = np.stack([
        av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p").to_ndarray(format="rgb24")
        for f in frames.permute(0, 2, 3, 1).contiguous().numpy()
    ]).reshape(n, -1)
    assert min(psnr(decoded[i], ideal[i]) for i in range(n)) > floor
    info = ffprobe(dest)
    (video,) = [s for s in info["streams"] if s["codec_type"] == "video"]
    assert (video["width"], video["height"]) == (w, h)
    assert int(video["nb_read_frames"]) == n
    assert Fraction(video["avg_frame_rate"]) == Fraction(30000, 1001)
    with md.VideoDecoder(dest) as decoder:
        batch = decoder.get_frames_at(list(range(n)))
        step = 1001 / 30000
        assert torch.allclose(batch.pts_seconds, torch.arange(n, dtype=torch.float64) * step, atol=1e-3)
        assert torch.allclose(batch.duration_seconds, torch.full((n,), step, dtype=torch.float64), atol=1e-3)


@needs_cli
def test_float_frames_are_converted_by_ffmpeg(tmp_path):
    frames = pattern_frames(n=4)
    dest = tmp_path / "out.mkv"
    VideoEncoder(frames.float() / 255, frame_rate=10).to_file(dest, codec="libx264", pixel_format="yuv444p", crf=0)
    n, _, h, w = frames.shape
    # FFmpeg converts rgbf32 to yuv444p itself; uint8 and float inputs agree to within rounding
    decoded = np.frombuffer(subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(dest), "-f", "rawvideo", "-pix_fmt", "yuv444p", "-"],
        check=True, capture_output=True).stdout, np.uint8).reshape(n, -1)
    assert np.abs(decoded.astype(int) - swscale(frames, "yuv444p").astype(int)).max() <= 1


@needs_cli
@pytest.mark.parametrize("ext, codec_name, rate, floor_db", [
    ("mp3", "mp3", 44100, 15.0),
    ("m4a", "aac", 44100, 15.0),
    ("opus", "opus", 48000, 15.0),
    ("ogg", None, 44100, 60.0),      # FFmpeg's default for Ogg in this build (FLAC, or Vorbis)
    ("flac", "flac", 44100, 60.0),
])
def test_audio_formats_decode_back_with_their_length(tmp_path, ext, codec_name, rate, floor_db):
    samples = sine(1.0, rate, 2)
    dest = tmp_path / f"out.{ext}"
    AudioEncoder(samples, sample_rate=rate).to_file(dest)
    info = ffprobe(dest)
    (stream,) = info["streams"]
    if codec_name is not None:
        assert stream["codec_name"] == codec_name
    assert int(stream["sample_rate"]) == rate and int(stream["channels"]) == 2
    decoded = ffmpeg_raw_audio(dest, "f32le", 2)
    # encoder delay and padding are trimmed by FFmpeg's demuxers/decoders: the length is the input's
    # to within one codec frame
    assert abs(decoded.shape[1] - samples.shape[1]) <= 1152
    m = min(decoded.shape[1], samples.shape[1])
    ref, got = samples.numpy()[:, :m], decoded[:, :m]
    snr = 10 * math.log10(np.sum(ref**2) / max(np.sum((ref - got) ** 2), 1e-20))
    assert snr > floor_db


@needs_cli
def test_audio_resampling_and_mixing_by_swresample(tmp_path):
    samples = sine(1.0, 44100, 2)
    dest = tmp_path / "out.wav"
    AudioEncoder(samples, sample_rate=44100).to_file(dest, sample_rate=16000, num_channels=1)
    (stream,) = ffprobe(dest)["streams"]
    assert (int(stream["sample_rate"]), int(stream["channels"])) == (16000, 1)
    frame = av.AudioFrame.from_ndarray(samples.numpy(), format="fltp", layout="stereo")
    frame.sample_rate = 44100
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
    expected = np.concatenate([f.to_ndarray() for f in resampler.resample(frame) + resampler.resample(None)], axis=1)
    assert np.array_equal(ffmpeg_raw_audio(dest, "s16le", 1), expected)


@needs_cli
def test_multi_stream_encoder_writes_video_and_audio_incrementally(tmp_path):
    frames = noise_frames(n=10)
    samples = sine(10 / 25, 16000, 1)
    dest = tmp_path / "av.mkv"
    encoder = Encoder()
    video = encoder.add_video(height=32, width=48, frame_rate=25, codec="ffv1", pixel_format="bgr0")
    audio = encoder.add_audio(sample_rate=16000, num_channels=1, codec="flac")
    with encoder.open_file(dest) as opened:
        assert opened is encoder and encoder.backend == "ffmpeg"
        for i in range(0, 10, 3):
            video.add_frames(frames[i:i + 3])
        audio.add_samples(samples[0, :3000])
        audio.add_samples(samples[:, 3000:])
    streams = ffprobe(dest)["streams"]
    assert [s["codec_name"] for s in streams] == ["ffv1", "flac"]
    assert int(streams[0]["nb_read_frames"]) == 10
    with md.VideoDecoder(dest) as decoder:
        assert torch.equal(decoder[:], frames)
    with md.AudioDecoder(dest) as decoder:
        decoded = decoder.get_all_samples().data
    assert decoded.shape == samples.shape


def test_to_tensor_and_to_file_like_give_the_same_bytes_as_to_file(tmp_path):
    frames = noise_frames(n=3)
    enc = VideoEncoder(frames, frame_rate=12)
    enc.to_file(tmp_path / "a.mkv", codec="ffv1", pixel_format="bgr0")
    as_tensor = enc.to_tensor("matroska", codec="ffv1", pixel_format="bgr0")
    buf = io.BytesIO()
    enc.to_file_like(buf, "mkv", codec="ffv1", pixel_format="bgr0")
    assert as_tensor.dtype == torch.uint8 and as_tensor.ndim == 1
    # (Matroska writes a random segment UID, so the bytes differ; the frames do not)
    for source in (as_tensor, buf.getvalue(), tmp_path / "a.mkv"):
        with md.VideoDecoder(source) as decoder:
            assert torch.equal(decoder[:], frames)


# -- bad input: documented errors, before anything is written ---------------------------------------


VIDEO_BAD_INPUTS = [
    ("int32 frames", lambda: VideoEncoder(noise_frames().int(), frame_rate=30), InvalidEncoderInputError),
    ("3-D frames", lambda: VideoEncoder(noise_frames()[0], frame_rate=30), InvalidEncoderInputError),
    ("NHWC frames", lambda: VideoEncoder(noise_frames().permute(0, 2, 3, 1), frame_rate=30), InvalidEncoderInputError),
    ("4 channels", lambda: VideoEncoder(torch.zeros(2, 4, 16, 16, dtype=torch.uint8), frame_rate=30), InvalidEncoderInputError),
    ("empty", lambda: VideoEncoder(torch.zeros(0, 3, 16, 16, dtype=torch.uint8), frame_rate=30), InvalidEncoderInputError),
    ("NaN", lambda: VideoEncoder(torch.full((1, 3, 16, 16), float("nan")), frame_rate=30), InvalidEncoderInputError),
    ("frame rate 0", lambda: VideoEncoder(noise_frames(), frame_rate=0), InvalidEncoderInputError),
    ("frame rate inf", lambda: VideoEncoder(noise_frames(), frame_rate=float("inf")), InvalidEncoderInputError),
    ("not a tensor", lambda: VideoEncoder(np.zeros((1, 3, 8, 8), np.uint8), frame_rate=30), InvalidEncoderInputError),
]


@pytest.mark.parametrize("label, make, error", VIDEO_BAD_INPUTS, ids=[c[0] for c in VIDEO_BAD_INPUTS])
def test_bad_frames_are_refused_at_construction(label, make, error):
    with pytest.raises(error) as excinfo:
        make()
    assert isinstance(excinfo.value, (ValueError, MediaDecodeError))


ENCODE_REFUSALS = [
    ("unknown codec", "out.mp4", dict(codec="nope"), UnsupportedEncodingError),
    ("unknown extension", "out.nope", {}, UnsupportedEncodingError),
    ("no extension", "out", {}, UnsupportedEncodingError),
    ("H.264 in WebM", "out.webm", dict(codec="libx264"), UnsupportedEncodingError),
    ("MPEG-4 in WebM", "out.webm", dict(codec="mpeg4"), UnsupportedEncodingError),
    ("audio codec for video", "out.mp4", dict(codec="aac"), UnsupportedEncodingError),
    ("pixel format the encoder lacks", "out.mp4", dict(pixel_format="rgb24"), UnsupportedEncodingError),
    ("unknown pixel format", "out.mp4", dict(pixel_format="nope"), UnsupportedEncodingError),
    ("unknown preset", "out.mp4", dict(preset="nope"), UnsupportedEncodingError),
    ("option out of range", "out.mp4", dict(extra_options={"qp": -5}), UnsupportedEncodingError),
]


@pytest.mark.parametrize("label, name, kwargs, error", ENCODE_REFUSALS, ids=[c[0] for c in ENCODE_REFUSALS])
def test_refused_video_encodes_write_nothing(tmp_path, label, name, kwargs, error):
    before = count_open_fds()
    with pytest.raises(error):
        VideoEncoder(noise_frames(), frame_rate=30).to_file(tmp_path / name, **kwargs)
    assert leftovers(tmp_path) == []
    buf = io.BytesIO()
    fmt = Path(name).suffix.lstrip(".") or "nope"
    with pytest.raises(error):
        VideoEncoder(noise_frames(), frame_rate=30).to_file_like(buf, fmt, **kwargs)
    assert buf.getvalue() == b""
    assert count_open_fds() == before


def test_odd_size_for_subsampled_chroma_is_refused(tmp_path):
    with pytest.raises(InvalidEncoderInputError, match="multiple of 2"):
        VideoEncoder(torch.zeros(2, 3, 15, 17, dtype=torch.uint8), frame_rate=30).to_file(tmp_path / "o.mp4")
    assert leftovers(tmp_path) == []
    # 4:4:4 holds any size
    VideoEncoder(torch.zeros(2, 3, 15, 17, dtype=torch.uint8), frame_rate=30).to_file(
        tmp_path / "o.mp4", pixel_format="yuv444p")


AUDIO_REFUSALS = [
    ("int16 samples", lambda: AudioEncoder(torch.zeros(1, 10, dtype=torch.int16), sample_rate=8000), None, InvalidEncoderInputError),
    ("3-D samples", lambda: AudioEncoder(torch.zeros(1, 1, 10), sample_rate=8000), None, InvalidEncoderInputError),
    ("empty", lambda: AudioEncoder(torch.zeros(2, 0), sample_rate=8000), None, InvalidEncoderInputError),
    ("NaN", lambda: AudioEncoder(torch.tensor([[0.0, float("nan")]]), sample_rate=8000), None, InvalidEncoderInputError),
    ("inf", lambda: AudioEncoder(torch.tensor([[0.0, float("inf")]]), sample_rate=8000), None, InvalidEncoderInputError),
    ("9 channels", lambda: AudioEncoder(torch.zeros(9, 10), sample_rate=8000), None, InvalidEncoderInputError),
    ("sample rate 0", lambda: AudioEncoder(torch.zeros(1, 10), sample_rate=0), None, InvalidEncoderInputError),
    ("unknown format", lambda: AudioEncoder(sine(0.1), sample_rate=16000), ("out.nope", {}), UnsupportedEncodingError),
    ("rate MP3 lacks", lambda: AudioEncoder(sine(0.1, 12345), sample_rate=12345), ("out.mp3", {}), UnsupportedEncodingError),
    ("rate Opus lacks", lambda: AudioEncoder(sine(0.1, 44100), sample_rate=44100), ("out.opus", {}), UnsupportedEncodingError),
    ("negative bit rate", lambda: AudioEncoder(sine(0.1), sample_rate=16000), ("out.mp3", dict(bit_rate=-1)), InvalidEncoderInputError),
    ("0 output channels", lambda: AudioEncoder(sine(0.1), sample_rate=16000), ("out.wav", dict(num_channels=0)), InvalidEncoderInputError),
    ("audio in a video-only format", lambda: AudioEncoder(sine(0.1), sample_rate=16000), ("out.y4m", {}), UnsupportedEncodingError),
]


@pytest.mark.parametrize("label, make, call, error", AUDIO_REFUSALS, ids=[c[0] for c in AUDIO_REFUSALS])
def test_bad_audio_is_refused_before_writing(tmp_path, label, make, call, error):
    with pytest.raises(error):
        encoder = make()
        name, kwargs = call
        encoder.to_file(tmp_path / name, **kwargs)
    assert leftovers(tmp_path) == []


def test_a_failed_encode_leaves_the_old_destination_and_no_temporary_file(tmp_path):
    dest = tmp_path / "clip.mkv"
    dest.write_bytes(b"previous content")
    encoder = Encoder()
    stream = encoder.add_video(height=32, width=48, frame_rate=25, codec="ffv1")
    with pytest.raises(RuntimeError, match="boom"):
        with encoder.open_file(dest):
            stream.add_frames(noise_frames(n=3))
            raise RuntimeError("boom")
    assert dest.read_bytes() == b"previous content"
    assert leftovers(tmp_path) == ["clip.mkv"]
    with pytest.raises(MediaDecodeError, match="closed"):
        stream.add_frames(noise_frames(n=1))


def test_frames_of_the_wrong_size_are_refused_and_the_encode_can_go_on(tmp_path):
    dest = tmp_path / "clip.mkv"
    encoder = Encoder()
    stream = encoder.add_video(height=32, width=48, frame_rate=25, codec="ffv1", pixel_format="bgr0")
    with encoder.open_file(dest):
        stream.add_frames(noise_frames(n=2))
        with pytest.raises(InvalidEncoderInputError, match="width=48"):
            stream.add_frames(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
        stream.add_frames(noise_frames(n=2, seed=3))
    with md.VideoDecoder(dest) as decoder:
        assert torch.equal(decoder[:], torch.cat([noise_frames(n=2), noise_frames(n=2, seed=3)]))


class FailingWriter(io.RawIOBase):
    """A file object whose writes fail after ``limit`` bytes (a full disk)."""

    def __init__(self, limit: int):
        self.limit, self.written = limit, 0

    def writable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        return offset

    def write(self, data):
        self.written += len(data)
        if self.written > self.limit:
            raise OSError(28, "No space left on device")
        return len(data)


def test_a_write_failure_raises_encoding_error_and_closes_the_encoder():
    before = count_open_fds()
    with pytest.raises((EncodingError, OSError)) as excinfo:
        VideoEncoder(noise_frames(n=30, height=64, width=64), frame_rate=30).to_file_like(
            FailingWriter(10_000), "matroska", codec="ffv1")
    assert isinstance(excinfo.value, EncodingError)
    assert count_open_fds() == before


def test_encoders_leak_no_file_descriptors(tmp_path):
    frames, samples = noise_frames(n=3), sine(0.2)
    VideoEncoder(frames, frame_rate=10).to_file(tmp_path / "warm.mp4")  # load FFmpeg's libraries
    before = count_open_fds()
    if before is None:
        pytest.skip("no /proc/self/fd here")
    for i in range(5):
        VideoEncoder(frames, frame_rate=10).to_file(tmp_path / f"v{i}.mp4")
        AudioEncoder(samples, sample_rate=16000).to_file(tmp_path / f"a{i}.flac")
        with pytest.raises(UnsupportedEncodingError):
            VideoEncoder(frames, frame_rate=10).to_file(tmp_path / f"x{i}.webm", codec="libx264")
        encoder = Encoder()
        stream = encoder.add_video(height=32, width=48, frame_rate=10)
        encoder.open_file(tmp_path / f"abandoned{i}.mp4")
        stream.add_frames(frames)
        del encoder, stream  # never closed: discarded
    assert count_open_fds() == before
    assert not [p for p in leftovers(tmp_path) if p.startswith((".", "x", "abandoned"))]


def test_encoder_state_errors(tmp_path):
    encoder = Encoder()
    with pytest.raises(MediaDecodeError, match="add_video"):
        encoder.open_file(tmp_path / "o.mp4")
    stream = encoder.add_video(height=32, width=48, frame_rate=10)
    with pytest.raises(MediaDecodeError, match="not open"):
        stream.add_frames(noise_frames(n=1))
    encoder.open_file(tmp_path / "o.mp4")
    with pytest.raises(MediaDecodeError, match="before open_file"):
        encoder.add_audio(sample_rate=8000, num_channels=1)
    stream.add_frames(noise_frames(n=1))
    encoder.close()
    encoder.close()  # idempotent
    assert (tmp_path / "o.mp4").is_file()


# -- selection --------------------------------------------------------------------------------------


def test_selection_follows_the_decoding_rules(tmp_path, monkeypatch):
    frames = noise_frames(n=2)
    encoder = Encoder()
    encoder.add_video(height=32, width=48, frame_rate=10)
    encoder.open_file(tmp_path / "a.mp4").close()
    assert encoder.backend == "ffmpeg"
    with pytest.raises(UnsupportedEncodingError, match="'decord'.*does not encode"):
        VideoEncoder(frames, frame_rate=10, backend="decord").to_file(tmp_path / "b.mp4")
    monkeypatch.setenv("MEDIADECODE_BACKEND", "decord")
    with pytest.raises(UnsupportedEncodingError, match="MEDIADECODE_BACKEND"):
        VideoEncoder(frames, frame_rate=10).to_file(tmp_path / "b.mp4")
    with md.use_backend("ffmpeg"):  # use_backend() wins over the environment
        VideoEncoder(frames, frame_rate=10).to_file(tmp_path / "b.mp4")
    with pytest.raises(md.UnknownBackendError):
        VideoEncoder(frames, frame_rate=10, backend="nope").to_file(tmp_path / "c.mp4")
    assert leftovers(tmp_path) == ["a.mp4", "b.mp4"]


def test_nvenc_is_listed_and_unavailable_with_its_reason_without_cuda(tmp_path):
    row = {r.name: r for r in md.list_backends()}["nvenc"]
    if torch.cuda.is_available() and "h264_nvenc" in av.codecs_available:
        pytest.skip("NVENC may be usable here")
    assert not row.available
    assert "NVENC" in row.reason or "CUDA" in row.reason
    with pytest.raises(md.BackendUnavailableError, match="nvenc"):
        VideoEncoder(noise_frames(n=1), frame_rate=10, backend="nvenc").to_file(tmp_path / "o.mp4")
    assert leftovers(tmp_path) == []


# -- the peer: torchcodec's encoders -----------------------------------------------------------------


@needs_torchcodec
@pytest.mark.parametrize("ext, kwargs", [
    ("mkv", dict(codec="libx264rgb", crf=0)),
    ("mkv", dict(codec="ffv1", pixel_format="bgr0")),
])
def test_lossless_output_decodes_like_torchcodecs(tmp_path, ext, kwargs):
    from torchcodec.encoders import VideoEncoder as TCVideoEncoder

    frames = noise_frames()
    TCVideoEncoder(frames, frame_rate=25).to_file(str(tmp_path / f"tc.{ext}"), **kwargs)
    VideoEncoder(frames, frame_rate=25).to_file(tmp_path / f"md.{ext}", **kwargs)
    with md.VideoDecoder(tmp_path / f"tc.{ext}") as a, md.VideoDecoder(tmp_path / f"md.{ext}") as b:
        assert torch.equal(a[:], b[:]) and torch.equal(b[:], frames)


@needs_torchcodec
@needs_cli
def test_defaults_match_torchcodecs(tmp_path):
    """Same container, codec, pixel format, frame count and rate as torchcodec 0.17 by default."""
    from torchcodec.encoders import AudioEncoder as TCAudioEncoder
    from torchcodec.encoders import VideoEncoder as TCVideoEncoder

    frames = pattern_frames(n=8)
    for ext in ("mp4", "mkv", "mov"):
        TCVideoEncoder(frames, frame_rate=24).to_file(str(tmp_path / f"tc.{ext}"))
        VideoEncoder(frames, frame_rate=24).to_file(tmp_path / f"md.{ext}")
        keys = ("codec_name", "pix_fmt", "width", "height", "nb_read_frames", "avg_frame_rate")
        tc = ffprobe(tmp_path / f"tc.{ext}")["streams"][0]
        ours = ffprobe(tmp_path / f"md.{ext}")["streams"][0]
        assert {k: ours[k] for k in keys} == {k: tc[k] for k in keys}
    samples = sine(0.5, 44100, 2)
    for ext in ("wav", "mp3", "flac"):
        TCAudioEncoder(samples, sample_rate=44100).to_file(str(tmp_path / f"tc.{ext}"))
        AudioEncoder(samples, sample_rate=44100).to_file(tmp_path / f"md.{ext}")
        keys = ("codec_name", "sample_rate", "channels", "sample_fmt")
        tc = ffprobe(tmp_path / f"tc.{ext}")["streams"][0]
        ours = ffprobe(tmp_path / f"md.{ext}")["streams"][0]
        assert {k: ours[k] for k in keys} == {k: tc[k] for k in keys}
    # lossless PCM: the very same samples
    assert np.array_equal(ffmpeg_raw_audio(tmp_path / "tc.wav", "s16le", 2), ffmpeg_raw_audio(tmp_path / "md.wav", "s16le", 2))


@needs_torchcodec
def test_the_torchcodec_backend_encodes_through_the_facade(tmp_path):
    frames = noise_frames(n=4)
    dest = tmp_path / "o.mkv"
    encoder = Encoder(backend="torchcodec")
    stream = encoder.add_video(height=32, width=48, frame_rate=25, codec="libx264rgb", crf=0)
    with encoder.open_file(dest):
        stream.add_frames(frames)
    assert encoder.backend == "torchcodec"
    with md.VideoDecoder(dest) as decoder:
        assert torch.equal(decoder[:], frames)
    # torchcodec refuses H.264 in WebM after writing part of a header: nothing reaches the caller
    buf = io.BytesIO()
    with pytest.raises(UnsupportedEncodingError):
        VideoEncoder(frames, frame_rate=25, backend="torchcodec").to_file_like(buf, "webm", codec="libx264")
    assert buf.getvalue() == b""
    with pytest.raises(UnsupportedEncodingError):
        VideoEncoder(frames, frame_rate=25, backend="torchcodec").to_file(tmp_path / "x.webm", codec="libx264")
    assert leftovers(tmp_path) == ["o.mkv"]
