"""WavDecoder (and AudioDecoder's WAV fast path) against soundfile (libsndfile), FFmpeg and
torchcodec 0.17's WavDecoder, on WAV files of every PCM format written by soundfile."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch

from mediadecode import AudioDecoder, InvalidMediaError, WavDecoder

sf = pytest.importorskip("soundfile")
av = pytest.importorskip("av")

# soundfile subtype, channels, WAV container variant
FORMATS = [
    ("PCM_U8", 1, "WAV"),
    ("PCM_16", 2, "WAV"),
    ("PCM_24", 2, "WAV"),
    ("PCM_32", 1, "WAV"),
    ("FLOAT", 2, "WAV"),
    ("DOUBLE", 1, "WAV"),
    ("PCM_16", 6, "WAVEX"),   # WAVE_FORMAT_EXTENSIBLE
    ("PCM_24", 12, "WAVEX"),  # many channels
    ("FLOAT", 3, "WAVEX"),
]
RATE = 16000


def _signal(channels: int, frames: int = 2 * RATE + 123) -> np.ndarray:
    rng = np.random.default_rng(channels)
    t = np.arange(frames) / RATE
    tones = np.stack([0.6 * np.sin(2 * np.pi * (200 + 150 * c) * t) for c in range(channels)], axis=1)
    return np.clip(tones + 0.3 * rng.uniform(-1, 1, tones.shape), -1, 1)


@pytest.fixture(scope="module", params=FORMATS, ids=lambda f: f"{f[2]}-{f[0]}-{f[1]}ch")
def wav(request, tmp_path_factory):
    subtype, channels, container = request.param
    path = tmp_path_factory.mktemp("wav") / f"{subtype}_{channels}_{container}.wav"
    sf.write(str(path), _signal(channels), RATE, subtype=subtype, format=container)
    return path


def test_all_samples_equal_soundfile(wav):
    want, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    decoder = WavDecoder(wav)
    got = decoder.get_all_samples()
    assert got.sample_rate == rate and got.pts_seconds == 0.0
    assert got.data.dtype == torch.float32
    assert np.array_equal(got.data.numpy(), want.T)
    assert decoder.metadata.num_channels == want.shape[1]
    assert decoder.metadata.duration_seconds == pytest.approx(want.shape[0] / rate)


def test_ranges_seek_by_byte_offset_and_tile(wav):
    want, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    decoder = WavDecoder(wav)
    bounds = [0.0, 0.3, 0.30003, 1.0, 1.7, None]
    parts = [decoder.get_samples_played_in_range(a, b).data.numpy() for a, b in zip(bounds, bounds[1:])]
    assert np.array_equal(np.concatenate(parts, axis=1), want.T)
    got = decoder.get_samples_played_in_range(1.25, 1.5).data.numpy()
    assert np.array_equal(got, want[20000:24000].T)
    assert decoder.get_samples_played_in_range(10.0, 11.0).data.shape[1] == 0


def test_metadata_and_samples_equal_ffmpegs(wav):
    decoder = WavDecoder(wav)
    with av.open(str(wav)) as container:
        stream = container.streams.audio[0]
        cc = stream.codec_context
        assert decoder.metadata.codec == cc.name
        assert decoder.metadata.sample_format == cc.format.name
        assert decoder.metadata.sample_rate == cc.sample_rate
        channels = cc.channels
        resampler = av.AudioResampler(format="flt")
        chunks = []
        for frame in container.decode(stream):
            chunks += [o.to_ndarray() for o in resampler.resample(frame)]
    ref = np.concatenate(chunks, axis=1).reshape(-1, channels).T
    assert np.array_equal(decoder.get_all_samples().data.numpy(), ref)


def test_audio_decoder_takes_the_fast_path_only_without_conversion(wav):
    want, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    with AudioDecoder(wav) as decoder:
        assert type(decoder._r).__name__ == "WavReader"
        assert np.array_equal(decoder.get_samples_played_in_range(0.5, 1.5).data.numpy(),
                              want[8000:24000].T)
    with AudioDecoder(wav, sample_rate=8000) as decoder:
        assert type(decoder._r).__name__ == "FFmpegAudioReader"


def test_memory_sources_and_pickling(wav):
    data = wav.read_bytes()
    want = WavDecoder(wav).get_all_samples().data
    for source in (data, torch.frombuffer(bytearray(data), dtype=torch.uint8), io.BytesIO(data)):
        assert torch.equal(WavDecoder(source).get_all_samples().data, want)
    again = pickle.loads(pickle.dumps(WavDecoder(wav)))
    assert torch.equal(again.get_all_samples().data, want)


def test_same_as_torchcodec(wav):
    try:
        from torchcodec.decoders import WavDecoder as TCWavDecoder
        theirs = TCWavDecoder(str(wav))
    except Exception as exc:
        pytest.skip(f"torchcodec's WavDecoder unavailable here: {exc}")
    ours = WavDecoder(wav)
    for field in ("sample_rate", "num_channels", "codec", "sample_format", "begin_stream_seconds",
                  "begin_stream_seconds_from_header"):
        assert getattr(ours.metadata, field) == getattr(theirs.metadata, field), field
    assert ours.metadata.duration_seconds == pytest.approx(theirs.metadata.duration_seconds)
    assert ours.stream_index == theirs.stream_index == 0
    a, b = ours.get_samples_played_in_range(0.5, 1.25), theirs.get_samples_played_in_range(0.5, 1.25)
    assert a.pts_seconds == pytest.approx(b.pts_seconds)
    want, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    want = torch.from_numpy(np.ascontiguousarray(want[8000:20000].T))
    assert torch.equal(a.data, want)
    if wav.name == "FLOAT_3_WAVEX.wav":
        # torchcodec 0.17 reads WAVE_FORMAT_EXTENSIBLE float samples as integers (garbage,
        # unlike soundfile and FFmpeg): the one place we deliberately differ.
        assert not torch.allclose(b.data, want, atol=1e-3)
    else:
        assert torch.allclose(b.data, want, atol=1e-7, rtol=0)


def test_not_a_pcm_wav_raises_invalid_media(tmp_path):
    flac = tmp_path / "a.flac"
    sf.write(str(flac), _signal(1, 1000), RATE, format="FLAC")
    with pytest.raises(InvalidMediaError, match="not a WAV"):
        WavDecoder(flac)
    adpcm = tmp_path / "adpcm.wav"
    sf.write(str(adpcm), _signal(1, 1000), RATE, subtype="IMA_ADPCM", format="WAV")
    with pytest.raises(InvalidMediaError, match="format tag"):
        WavDecoder(adpcm)
    with AudioDecoder(adpcm) as decoder:  # FFmpeg still reads it
        assert decoder.get_all_samples().data.shape[0] == 1
    with pytest.raises(FileNotFoundError):
        WavDecoder(flac.with_name("missing.wav"))
