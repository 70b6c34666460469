"""The writing drop-ins: torchvision 0.21's ``write_video`` and torchaudio 2.1-2.8's ``save``.

References: torchvision 0.21's own ``write_video`` body (PyAV calls, reproduced in
:func:`torchvision_021_write_video` as it stood in torchvision/io/video.py, since torchvision
0.29 no longer has it), the ``ffmpeg`` CLI encoding the same raw samples, and ``ffprobe``.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess

import av
import numpy as np
import pytest
import torch

import mediadecode as md
from mediadecode.adapters import torchaudio as ta
from mediadecode.adapters import torchvision as tv
from mediadecode.errors import InvalidEncoderInputError, UnsupportedEncodingError
from mediadecode.testing._media import _pattern

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
needs_cli = pytest.mark.skipif(FFMPEG is None or FFPROBE is None, reason="the ffmpeg/ffprobe CLIs are not installed")


def thwc(n=10, h=48, w=64) -> torch.Tensor:
    return torch.from_numpy(np.stack([_pattern(i, w, h) for i in range(n)]))


def torchvision_021_write_video(filename, video_array, fps, video_codec="libx264", options=None):
    """torchvision 0.21's write_video (video part), PyAV calls as it made them."""
    video_array = torch.as_tensor(video_array, dtype=torch.uint8).numpy()
    if isinstance(fps, float):
        fps = int(np.round(fps))
    with av.open(filename, mode="w") as container:
        stream = container.add_stream(video_codec, rate=fps)
        stream.width = video_array.shape[2]
        stream.height = video_array.shape[1]
        stream.pix_fmt = "yuv420p" if video_codec != "libx264rgb" else "rgb24"
        stream.options = options or {}
        for img in video_array:
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def ffprobe_streams(path) -> list[dict]:
    out = subprocess.run([FFPROBE, "-v", "error", "-show_streams", "-count_frames", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["streams"]


def decoded_rgb(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


# -- write_video -------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec, options", [
    ("libx264", {"crf": "0"}),
    ("libx264", None),
    ("mpeg4", None),
    ("libx264rgb", {"crf": "0"}),
])
def test_write_video_decodes_like_torchvision_021s(tmp_path, codec, options):
    video = thwc()
    theirs, ours = tmp_path / "tv.mp4", tmp_path / "md.mp4"
    torchvision_021_write_video(str(theirs), video, 24.4, video_codec=codec, options=options)
    tv.write_video(str(ours), video, 24.4, video_codec=codec, options=options)
    a, b = decoded_rgb(theirs), decoded_rgb(ours)
    assert a.shape == b.shape == tuple(video.shape)
    if codec == "libx264rgb":
        assert np.array_equal(b, video.numpy())  # lossless RGB
    if options:  # crf=0: both hold exactly FFmpeg's yuv420p (rgb24) conversion of the input
        assert np.array_equal(a, b)
    else:  # same settings; x264's output can differ by rate-control decisions between runs
        mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
        assert mse == 0 or 10 * math.log10(255**2 / mse) > 35
    with av.open(str(ours)) as c:
        assert c.streams.video[0].average_rate == 24  # 24.4 rounded, as torchvision did


@needs_cli
def test_write_video_with_audio_has_both_streams(tmp_path):
    video = thwc(n=25)
    t = torch.arange(48000) / 48000
    audio = torch.stack([0.3 * torch.sin(2 * math.pi * 440 * t), 0.3 * torch.sin(2 * math.pi * 660 * t)])
    dest = tmp_path / "av.mp4"
    tv.write_video(str(dest), video, 25, audio_array=audio, audio_fps=48000, audio_codec="aac")
    streams = ffprobe_streams(dest)
    kinds = {s["codec_type"]: s for s in streams}
    assert kinds["video"]["codec_name"] == "h264" and int(kinds["video"]["nb_read_frames"]) == 25
    assert kinds["audio"]["codec_name"] == "aac"
    assert (int(kinds["audio"]["sample_rate"]), int(kinds["audio"]["channels"])) == (48000, 2)
    frames, samples, info = tv.read_video(str(dest), pts_unit="sec", output_format="THWC")
    assert frames.shape[0] == 25 and info["audio_fps"] == 48000
    assert abs(samples.shape[1] - 48000) <= 1024


def test_write_video_bad_input_writes_nothing(tmp_path):
    with pytest.raises(InvalidEncoderInputError):
        tv.write_video(str(tmp_path / "o.mp4"), torch.zeros(3, 3, 16, 16), 10)  # TCHW, not THWC
    with pytest.raises(UnsupportedEncodingError):
        tv.write_video(str(tmp_path / "o.webm"), thwc(n=2), 10)  # libx264 in WebM
    with pytest.raises(InvalidEncoderInputError):
        tv.write_video(str(tmp_path / "o.mp4"), thwc(n=2), 0)
    assert list(tmp_path.iterdir()) == []


# -- save --------------------------------------------------------------------------------------------


def noise(dtype, channels=2, n=3000, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point:
        return (torch.rand(channels, n, generator=g, dtype=torch.float64) * 1.8 - 0.9).to(dtype)
    info = torch.iinfo(dtype)
    return torch.randint(info.min, info.max, (channels, n), dtype=torch.int64, generator=g).to(dtype)


@needs_cli
@pytest.mark.parametrize("encoding, bits, codec_name", [
    (None, None, "pcm_s16le"),
    (None, 8, "pcm_u8"),
    (None, 24, "pcm_s24le"),
    ("PCM_S", 32, "pcm_s32le"),
    ("PCM_U", None, "pcm_u8"),
    ("PCM_F", None, "pcm_f32le"),
    ("PCM_F", 64, "pcm_f64le"),
    ("ULAW", None, "pcm_mulaw"),
    ("ALAW", 8, "pcm_alaw"),
])
def test_save_wav_encodings_match_the_ffmpeg_cli(tmp_path, encoding, bits, codec_name):
    """torchaudio's FFmpeg backend handed the samples to FFmpeg with this encoder; so does the CLI."""
    src = noise(torch.float32)
    ours = tmp_path / "md.wav"
    ta.save(str(ours), src, 16000, encoding=encoding, bits_per_sample=bits)
    raw = tmp_path / "in.f32"
    raw.write_bytes(src.t().contiguous().numpy().tobytes())
    cli = tmp_path / "cli.wav"
    subprocess.run([FFMPEG, "-v", "error", "-f", "f32le", "-ar", "16000", "-ac", "2", "-i", str(raw),
                    "-c:a", codec_name, str(cli)], check=True)
    (stream,) = ffprobe_streams(ours)
    assert stream["codec_name"] == codec_name
    decode = lambda p: subprocess.run([FFMPEG, "-v", "error", "-i", str(p), "-f", "f64le", "-"],  # noqa: E731
                                      check=True, capture_output=True).stdout
    assert decode(ours) == decode(cli)


@needs_cli
@pytest.mark.parametrize("dtype", [torch.int16, torch.int32, torch.uint8, torch.float64])
def test_save_keeps_integer_and_double_input_exact(tmp_path, dtype):
    src = noise(dtype)
    codec = {torch.int16: None, torch.int32: 32, torch.uint8: 8, torch.float64: 64}[dtype]
    encoding = "PCM_F" if dtype == torch.float64 else None
    dest = tmp_path / "o.wav"
    ta.save(str(dest), src.t(), 8000, channels_first=False, encoding=encoding, bits_per_sample=codec)
    fmt = {torch.int16: ("s16le", np.int16), torch.int32: ("s32le", np.int32), torch.uint8: ("u8", np.uint8),
           torch.float64: ("f64le", np.float64)}[dtype]
    out = subprocess.run([FFMPEG, "-v", "error", "-i", str(dest), "-f", fmt[0], "-"], check=True, capture_output=True).stdout
    assert np.array_equal(np.frombuffer(out, fmt[1]).reshape(-1, 2).T, src.numpy())


@needs_cli
@pytest.mark.parametrize("bits, sample_fmt", [(None, "s16"), (16, "s16"), (24, "s32")])
def test_save_flac_bits_per_sample(tmp_path, bits, sample_fmt):
    src = noise(torch.int16)
    dest = tmp_path / "o.flac"
    ta.save(str(dest), src, 22050, bits_per_sample=bits)
    (stream,) = ffprobe_streams(dest)
    assert stream["codec_name"] == "flac" and stream["sample_fmt"] == sample_fmt
    loaded, rate = ta.load(str(dest), normalize=True)
    assert rate == 22050
    assert torch.equal(loaded, src.float() / 32768)


@needs_cli
@pytest.mark.parametrize("name, fmt, codec_name, rate", [
    ("o.mp3", None, "mp3", 44100),
    ("o.ogg", None, "vorbis", 44100),
    ("o.dat", "vorbis", "vorbis", 44100),
    ("o.opus", None, "opus", 48000),
    ("o.bin", "wav", "pcm_s16le", 8000),
])
def test_save_lossy_and_overridden_formats(tmp_path, name, fmt, codec_name, rate):
    t = torch.arange(rate) / rate
    src = (0.4 * torch.sin(2 * math.pi * 330 * t)).repeat(2, 1)
    ta.save(str(tmp_path / name), src, rate, format=fmt)
    (stream,) = ffprobe_streams(tmp_path / name)
    assert stream["codec_name"] == codec_name and int(stream["sample_rate"]) == rate


def test_save_to_a_file_object_needs_format_and_honours_compression(tmp_path):
    src = noise(torch.float32, n=16000)
    with pytest.raises(RuntimeError, match="'format' is required"):
        ta.save(io.BytesIO(), src, 16000)
    small, large = io.BytesIO(), io.BytesIO()
    ta.save(small, src, 16000, format="mp3", compression=32)    # libsox meaning: kb/s
    ta.save(large, src, 16000, format="mp3", compression=128)
    assert len(small.getvalue()) < len(large.getvalue())
    with md.AudioDecoder(small.getvalue()) as decoder:
        assert decoder.metadata.sample_rate == 16000


def test_save_refuses_what_torchaudio_refused(tmp_path):
    src = noise(torch.float32)
    with pytest.raises(ValueError, match="8-bit encoding is not supported"):
        ta.save(str(tmp_path / "o.wav"), src, 8000, encoding="PCM_S", bits_per_sample=8)
    with pytest.raises(ValueError, match="FLAC only supports"):
        ta.save(str(tmp_path / "o.flac"), src, 8000, bits_per_sample=32)
    with pytest.raises(ValueError, match="Invalid bits_per_sample"):
        ta.save(str(tmp_path / "o.wav"), src, 8000, bits_per_sample=12)
    with pytest.raises(InvalidEncoderInputError):
        ta.save(str(tmp_path / "o.wav"), src[0], 8000)  # 1-D
    with pytest.raises(InvalidEncoderInputError):
        ta.save(str(tmp_path / "o.wav"), torch.full((1, 10), float("nan")), 8000)
    with pytest.raises(UnsupportedEncodingError):
        ta.save(str(tmp_path / "o.opus"), src, 44100)  # Opus has no 44.1 kHz
    assert list(tmp_path.iterdir()) == []


# -- command line ------------------------------------------------------------------------------------


def test_cli_encode_sample_round_trip(tmp_path, capsys):
    from mediadecode import cli

    dest = tmp_path / "s.mkv"
    assert cli.main(["encode-sample", str(dest), "--seconds", "0.5", "--fps", "10", "--size", "64x48",
                     "--codec", "libx264rgb", "--crf", "0"]) == 0
    out = capsys.readouterr().out
    assert "5 frames 64x48" in out and "(bit-exact)" in out
    with av.open(str(dest)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert container.streams.video[0].codec_context.name == "h264"
    assert cli.main(["encode-sample", str(tmp_path / "bad.webm"), "--codec", "libx264"]) == 1
    assert "cannot hold" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.mkv"]
