"""Audio window samplers: each window against FFmpeg's full decode (PyAV + libswresample) of a
generated file, the draws against torch's generator, the policies, the errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mediadecode import AudioDecoder, WavDecoder
from mediadecode.sample_grid import SampleGrid
from mediadecode.samplers import windows_at_random_timestamps, windows_at_regular_timestamps

av = pytest.importorskip("av")

RATE = 44100
SECONDS = 4.0


@pytest.fixture(scope="module")
def flac(tmp_path_factory):
    """4 s of a stereo chirp and tone in FLAC, written with PyAV."""
    path = tmp_path_factory.mktemp("windows") / "a.flac"
    t = np.arange(int(RATE * SECONDS)) / RATE
    pcm = np.stack([0.5 * np.sin(2 * np.pi * (200 + 300 * t) * t), 0.3 * np.sin(2 * np.pi * 700 * t)])
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=RATE, layout="stereo")
        ints = np.round(pcm.T * 32767).astype("<i2").reshape(1, -1)
        for i in range(0, ints.shape[1], 4096 * 2):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(ints[:, i:i + 4096 * 2]),
                                               format="s16", layout="stereo")
            frame.sample_rate = RATE
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def full_decode(path, rate):
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="stereo", rate=rate)
        chunks, origin = [], None
        for frame in container.decode(audio=0):
            origin = float(frame.pts * frame.time_base) if origin is None else origin
            chunks += [o.to_ndarray() for o in resampler.resample(frame)]
        chunks += [o.to_ndarray() for o in resampler.resample(None)]
    return np.concatenate(chunks, axis=1).reshape(-1, 2).T, origin


@pytest.fixture(scope="module", params=[None, 16000])
def decoder(request, flac):
    return AudioDecoder(flac, sample_rate=request.param)


def _reference(decoder, flac):
    rate = decoder.get_samples_played_in_range(0.0, 0.0).sample_rate
    ref, origin = full_decode(flac, rate)
    return ref, SampleGrid(origin, rate)


def test_random_windows_are_the_full_decode_at_their_times(decoder, flac):
    ref, grid = _reference(decoder, flac)
    windows = windows_at_random_timestamps(decoder, num_windows=7, window_seconds=0.5, seed=3)
    n = round(0.5 * grid.rate)
    assert windows.data.shape == (7, 2, n) and windows.data.dtype == torch.float32
    assert windows.pts_seconds.dtype == torch.float64 and windows.sample_rate == grid.rate
    assert windows.duration_seconds == n / grid.rate
    for data, pts in zip(windows.data, windows.pts_seconds.tolist()):
        k = grid.index_of(pts)
        assert abs(pts - grid.seconds_of(k)) < 1e-9  # on the grid
        assert np.array_equal(data.numpy(), ref[:, k:k + n])


def test_draws_are_torchs_uniform_draws_in_the_range(decoder):
    windows = windows_at_random_timestamps(decoder, num_windows=50, window_seconds=0.25,
                                           sampling_range_start=1.0, sampling_range_end=2.0, seed=9)
    draws = torch.rand(50, dtype=torch.float64, generator=torch.Generator().manual_seed(9)) + 1.0
    rate = windows.sample_rate
    assert torch.allclose(windows.pts_seconds, draws, atol=0.5 / rate + 1e-9, rtol=0)
    assert bool(((windows.pts_seconds >= 1.0 - 1 / rate) & (windows.pts_seconds < 2.0 + 1 / rate)).all())


def test_seed_and_generator_reproduce_draws(decoder):
    a = windows_at_random_timestamps(decoder, num_windows=4, window_seconds=0.1, seed=5)
    b = windows_at_random_timestamps(decoder, num_windows=4, window_seconds=0.1,
                                     generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.pts_seconds, b.pts_seconds) and torch.equal(a.data, b.data)
    torch.manual_seed(5)
    c = windows_at_random_timestamps(decoder, num_windows=4, window_seconds=0.1)
    assert torch.equal(a.pts_seconds, c.pts_seconds)
    with pytest.raises(ValueError, match="seed or generator"):
        windows_at_random_timestamps(decoder, window_seconds=0.1, seed=1,
                                     generator=torch.Generator())


def test_regular_windows_are_evenly_spaced(decoder, flac):
    ref, grid = _reference(decoder, flac)
    windows = windows_at_regular_timestamps(decoder, num_windows=6, window_seconds=0.5)
    begin = decoder.metadata.begin_stream_seconds
    end = begin + decoder.metadata.duration_seconds - 0.5
    want = [begin + i * (end - begin) / 6 for i in range(6)]
    assert np.allclose(windows.pts_seconds.numpy(), want, atol=0.5 / grid.rate + 1e-9)
    n = windows.data.shape[2]
    for data, pts in zip(windows.data, windows.pts_seconds.tolist()):
        assert np.array_equal(data.numpy(), ref[:, grid.index_of(pts):grid.index_of(pts) + n])


@pytest.mark.parametrize("policy", ["repeat_last", "wrap"])
def test_policies_complete_windows_past_the_end(decoder, flac, policy):
    ref, grid = _reference(decoder, flac)
    end = decoder.metadata.begin_stream_seconds + decoder.metadata.duration_seconds
    windows = windows_at_regular_timestamps(decoder, num_windows=1, window_seconds=1.0,
                                            sampling_range_start=end - 0.25,
                                            sampling_range_end=end, policy=policy)
    data = windows.data[0].numpy()
    k = grid.index_of(float(windows.pts_seconds[0]))
    have = ref.shape[1] - k
    assert 0 < have < data.shape[1]
    assert np.array_equal(data[:, :have], ref[:, k:])
    if policy == "repeat_last":
        assert (data[:, have:] == ref[:, -1:]).all()
    else:
        assert np.array_equal(data[:, have:2 * have], ref[:, k:])


def test_error_policy_raises(decoder):
    end = decoder.metadata.begin_stream_seconds + decoder.metadata.duration_seconds
    with pytest.raises(ValueError, match="past the end"):
        windows_at_regular_timestamps(decoder, window_seconds=1.0, sampling_range_start=end - 0.25,
                                      sampling_range_end=end, policy="error")


def test_overlapping_windows_are_decoded_once(flac):
    decoder = AudioDecoder(flac)
    calls = []
    original = decoder.get_samples_played_in_range

    def counting(start=0.0, stop=None):
        calls.append((start, stop))
        return original(start, stop)

    decoder.get_samples_played_in_range = counting
    windows_at_regular_timestamps(decoder, num_windows=8, window_seconds=1.0,
                                  sampling_range_start=0.0, sampling_range_end=1.0)
    assert len([c for c in calls if c[1] is not None and c[1] > c[0]]) == 1


@pytest.mark.parametrize(
    "sampler,kwargs,match",
    [
        (windows_at_random_timestamps, dict(num_windows=0, window_seconds=1.0), "num_windows"),
        (windows_at_random_timestamps, dict(window_seconds=0.0), "window_seconds"),
        (windows_at_random_timestamps, dict(window_seconds=math.nan), "window_seconds"),
        (windows_at_random_timestamps, dict(window_seconds=1e-6), "shorter than one sample"),
        (windows_at_random_timestamps, dict(window_seconds=1.0, policy="bad"), "policy"),
        (windows_at_random_timestamps, dict(window_seconds=1.0, sampling_range_start=99.0), "sampling_range_start"),
        (windows_at_random_timestamps, dict(window_seconds=1.0, sampling_range_end=-1.0), "sampling_range_end"),
        (windows_at_random_timestamps, dict(window_seconds=1.0, sampling_range_start=2.0,
                                            sampling_range_end=1.0), "smaller than"),
        (windows_at_regular_timestamps, dict(window_seconds=10.0), "may not fit"),
        (windows_at_regular_timestamps, dict(num_windows=-1, window_seconds=1.0), "num_windows"),
    ],
)
def test_errors(flac, sampler, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sampler(AudioDecoder(flac), **kwargs)


def test_wav_decoder_windows_equal_the_file(tmp_path):
    sf = pytest.importorskip("soundfile")
    path = tmp_path / "a.wav"
    signal = np.random.default_rng(0).uniform(-0.9, 0.9, (3 * 8000, 2))
    sf.write(str(path), signal, 8000, subtype="PCM_16")
    want, _ = sf.read(str(path), dtype="float32")
    windows = windows_at_random_timestamps(WavDecoder(path), num_windows=5, window_seconds=0.5, seed=1)
    for data, pts in zip(windows.data, windows.pts_seconds.tolist()):
        k = round(pts * 8000)
        assert np.array_equal(data.numpy(), want[k:k + 4000].T)
