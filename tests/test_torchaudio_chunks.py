"""torchaudio adapter: ``load(frame_offset, num_frames)`` in consecutive chunks equals FFmpeg's
full decode (PyAV + libswresample to float32), on compressed formats that seek by timestamp."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from mediadecode.adapters.torchaudio import load

av = pytest.importorskip("av")
FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg CLI is needed to make the media")


@pytest.fixture(scope="module", params=[("a.flac", ["-c:a", "flac"]),
                                        ("a.mp3", ["-c:a", "libmp3lame"]),
                                        ("a.webm", ["-c:a", "libopus"])],
                ids=["flac", "mp3", "opus_webm"])
def long_file(request, tmp_path_factory):
    name, options = request.param
    path = tmp_path_factory.mktemp("ta_chunks") / name
    rate = 48000 if name.endswith("webm") else 16000
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"aevalsrc=0.5*sin(2*PI*(300+100*t)*t):s={rate}:d=20", *options, str(path)],
                   check=True)
    return path


def full_decode(path) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt")
        out = []
        for frame in container.decode(stream):
            out += [o.to_ndarray() for o in resampler.resample(frame)]
        out += [o.to_ndarray() for o in resampler.resample(None)]
        channels = stream.codec_context.channels
    return np.concatenate(out, axis=1).reshape(-1, channels).T


def test_chunked_loads_tile_the_full_decode(long_file):
    # As a LibriSpeech-style pipeline reads a long recording: fixed-size chunks by frame offset.
    ref = full_decode(long_file)
    _, rate = load(str(long_file), num_frames=1)
    chunk = 3 * rate + 7  # not a multiple of any codec frame
    parts = []
    offset = 0
    while True:
        data, sr = load(str(long_file), frame_offset=offset, num_frames=chunk)
        assert sr == rate
        if data.shape[1] == 0:
            break
        parts.append(data.numpy())
        offset += chunk
    assert np.array_equal(np.concatenate(parts, axis=1), ref)
    # and one chunk in the middle on its own (a seek)
    data, _ = load(str(long_file), frame_offset=9 * rate + 11, num_frames=rate)
    assert np.array_equal(data.numpy(), ref[:, 9 * rate + 11:10 * rate + 11])
