"""AudioDecoder against independent references.

References: the WAV bytes parsed with a tiny RIFF reader (cross-checked with :mod:`wave`), PyAV's
own decode of the same stream, the MANIFEST of the media corpus, and signals generated here with
known content (sines of known frequency and amplitude, encoded with PyAV).
"""

from __future__ import annotations

import io
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

import mediadecode
from mediadecode import AudioDecoder, StreamNotFoundError

_TESTS = Path(__file__).resolve().parent
if str(_TESTS) not in sys.path:  # helpers live next to this file, whatever pytest's import mode
    sys.path.insert(0, str(_TESTS))

from _audio_wav import read_wav  # noqa: E402

av = pytest.importorskip("av")

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


def media(name: str) -> Path:
    path = MEDIA / name
    if not path.is_file():
        pytest.skip(f"media corpus not available: {path} is missing (see shared/media/MANIFEST.md)")
    return path


# --------------------------------------------------------------------------------------------
# references


def pyav_decode(path, stream_index: int | None = None) -> tuple[np.ndarray, float]:
    """Decode the whole stream with PyAV: ``(samples float32 (C, N), first pts in seconds)``.

    Planar float frames (what the MP3, AAC and Opus decoders output) are taken as they are with
    ``to_ndarray`` (up to 8 channels); anything else goes through ``AudioResampler(format="flt")``.
    """
    with av.open(str(path)) as container:
        stream = (
            container.streams.audio[0] if stream_index is None else container.streams[stream_index]
        )
        channels = stream.codec_context.channels
        chunks = []
        first_pts = None
        resampler = None
        for frame in container.decode(stream):
            if first_pts is None:
                first_pts = float(frame.pts * frame.time_base)
            if frame.format.name == "fltp" and channels <= 8:
                chunks.append(frame.to_ndarray())
            else:
                resampler = resampler or av.AudioResampler(format="flt")
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1, channels).T)
        if resampler is not None:
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1, channels).T)
    return np.concatenate(chunks, axis=1).astype(np.float32), first_pts


def pyav_resample(path, **resampler_args) -> np.ndarray:
    """The whole stream through ``av.AudioResampler(format="flt", **resampler_args)``,
    as ``(channels, samples)``."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        layout = resampler_args.get("layout")
        channels = {"mono": 1, "stereo": 2}[layout] if layout else stream.codec_context.channels
        resampler = av.AudioResampler(format="flt", **resampler_args)
        chunks = []
        for frame in container.decode(stream):
            chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray() for out in resampler.resample(None))
    return np.concatenate(chunks, axis=1).reshape(-1, channels).T


def peak_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


def amplitude_at(x: np.ndarray, rate: int, freq: float) -> float:
    """Amplitude of the sinusoid of frequency ``freq`` in ``x`` (least squares fit)."""
    t = np.arange(len(x)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x.astype(np.float64), rcond=None)
    return float(np.hypot(*coef))


# --------------------------------------------------------------------------------------------
# generated fixtures (session scope): a stereo signal of known content, several encodings

GEN_RATE = 44100
GEN_SECONDS = 2.0
LEFT_HZ, LEFT_AMP = 440.0, 0.5
RIGHT_HZ, RIGHT_AMP = 1000.0, 0.25


def _stereo_pcm() -> np.ndarray:
    """``(N, 2)`` int16: left 440 Hz at 0.5, right 1000 Hz at 0.25."""
    t = np.arange(int(GEN_RATE * GEN_SECONDS)) / GEN_RATE
    left = LEFT_AMP * np.sin(2 * np.pi * LEFT_HZ * t)
    right = RIGHT_AMP * np.sin(2 * np.pi * RIGHT_HZ * t)
    return np.round(np.stack([left, right], axis=1) * 32767).astype("<i2")


def _write_wav(path: Path, pcm: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def _encode(path: Path, pcm: np.ndarray, fmt: str, codec: str, rate: int, sample_fmt: str) -> Path:
    """Encode int16 stereo ``pcm`` at GEN_RATE with PyAV, converting with AudioResampler."""
    source = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="stereo")
    source.sample_rate = GEN_RATE
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout="stereo")
        resampler = av.AudioResampler(format=sample_fmt, layout="stereo", rate=rate)
        fifo = av.AudioFifo()
        for frame in resampler.resample(source) + resampler.resample(None):
            fifo.write(frame)
        frame_size = stream.codec_context.frame_size or 1024
        while fifo.samples:
            frame = fifo.read(min(frame_size, fifo.samples))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("audio_fixtures")
    pcm = _stereo_pcm()
    t = np.arange(int(GEN_RATE * GEN_SECONDS)) / GEN_RATE
    mono = np.round(LEFT_AMP * np.sin(2 * np.pi * LEFT_HZ * t) * 32767).astype("<i2")[:, None]
    return {
        "pcm": pcm,
        "mono_wav": _write_wav(root / "sine440_mono.wav", mono, GEN_RATE),
        "wav": _write_wav(root / "stereo.wav", pcm, GEN_RATE),
        "flac": _encode(root / "stereo.flac", pcm, "flac", "flac", GEN_RATE, "s16"),
        "m4a": _encode(root / "stereo.m4a", pcm, "mp4", "aac", GEN_RATE, "fltp"),
        "ogg": _encode(root / "stereo.ogg", pcm, "ogg", "libopus", 48000, "flt"),
        "webm": _encode(root / "stereo.webm", pcm, "webm", "libopus", 48000, "flt"),
    }


# --------------------------------------------------------------------------------------------
# PCM WAVs of the corpus: exact values

WAVS = ["sine_mono_u8.wav", "sine_mono_s16.wav", "sine_mono_s32.wav", "sine_mono_f32.wav",
        "sine_16ch_s16.wav"]


@pytest.mark.parametrize("name", ["sine_mono_u8.wav", "sine_mono_s16.wav"])
def test_wav_reader_agrees_with_wave_module(name):
    # The RIFF reader used as reference below is itself checked against the stdlib.
    path = media(name)
    ours = read_wav(path)
    with wave.open(str(path), "rb") as w:
        assert (ours.num_channels, ours.sample_rate, ours.bits_per_sample // 8) == (
            w.getnchannels(), w.getframerate(), w.getsampwidth())
        raw = w.readframes(w.getnframes())
    assert ours.samples.tobytes() == raw


@pytest.mark.parametrize("name", WAVS)
def test_wav_samples_equal_scaled_pcm(name):
    path = media(name)
    ref = read_wav(path)
    with AudioDecoder(path) as decoder:
        meta = decoder.metadata
        assert meta.sample_rate == ref.sample_rate
        assert meta.num_channels == ref.num_channels
        assert meta.sample_format == ref.ffmpeg_sample_format
        assert meta.duration_seconds == pytest.approx(ref.num_frames / ref.sample_rate, abs=1e-3)
        samples = decoder.get_all_samples()
    assert samples.data.dtype == torch.float32
    assert tuple(samples.data.shape) == (ref.num_channels, ref.num_frames)
    assert samples.sample_rate == ref.sample_rate
    assert samples.pts_seconds == 0.0
    assert samples.duration_seconds == ref.num_frames / ref.sample_rate
    expected = ref.as_float()
    assert np.abs(samples.data.numpy().astype(np.float64) - expected).max() <= 1e-7
    # Not trivially silent, and the scaling is the documented one (full scale stays in [-1, 1]).
    assert np.abs(expected).max() > 0.1
    assert float(samples.data.abs().max()) <= 1.0


def test_16_channel_wav_keeps_channel_order(tmp_path):
    # The corpus's 16-channel file has 16 identical channels; this one has a different signal in
    # each channel, so a permutation or a mix would be caught.
    rate, n = 16000, 4000
    t = np.arange(n) / rate
    chans = [(c + 1) / 20 * np.sin(2 * np.pi * (100 * (c + 1)) * t) for c in range(16)]
    pcm = np.round(np.stack(chans, axis=1) * 32767).astype("<i2")
    path = _write_wav(tmp_path / "sixteen.wav", pcm, rate)
    decoder = AudioDecoder(path)
    assert decoder.metadata.num_channels == 16
    data = decoder.get_all_samples().data.numpy()
    assert data.shape == (16, n)
    expected = pcm.T.astype(np.float64) / 32768.0
    for c in range(16):
        assert np.array_equal(data[c].astype(np.float64), expected[c]), f"channel {c}"
    # And a range of it, after a seek.
    part = decoder.get_samples_played_in_range(0.1, 0.2).data.numpy()
    assert np.array_equal(part.astype(np.float64), expected[:, 1600:3200])


@pytest.mark.parametrize("kind", ["bytes", "file", "tensor"])
def test_wav_from_memory_sources_matches_path(kind):
    path = media("sine_mono_s16.wav")
    raw = path.read_bytes()
    source = {"bytes": raw, "file": io.BytesIO(raw),
              "tensor": torch.frombuffer(bytearray(raw), dtype=torch.uint8)}[kind]
    got = AudioDecoder(source).get_all_samples().data.numpy()
    assert np.abs(got - read_wav(path).as_float()).max() <= 1e-7


# --------------------------------------------------------------------------------------------
# Compressed streams of the corpus: equal to PyAV's own decode

# (file, stream_index, sample_rate, num_channels) with rates and channels from MANIFEST.md
COMPRESSED = [
    ("nasa_13013.mp4.audio.mp3", None, 8000, 2),
    ("nasa_13013.mp4.audio_44100.mp3", None, 44100, 2),
    ("nasa_13013.mp4", 4, 16000, 2),
    ("nasa_13013.mp4", 1, 8000, 2),
    ("flipping_a_pancake.mkv", 1, 48000, 1),
]


@pytest.mark.parametrize("name,stream_index,rate,channels", COMPRESSED)
def test_compressed_decode_matches_pyav(name, stream_index, rate, channels):
    path = media(name)
    ref, ref_pts = pyav_decode(path, stream_index)
    decoder = AudioDecoder(path, stream_index=stream_index)
    assert decoder.metadata.sample_rate == rate
    assert decoder.metadata.num_channels == channels
    if stream_index is not None:
        assert decoder.stream_index == stream_index
    samples = decoder.get_all_samples()
    assert samples.data.dtype == torch.float32
    assert tuple(samples.data.shape) == ref.shape
    assert np.abs(samples.data.numpy() - ref).max() <= 1e-6
    assert samples.pts_seconds == pytest.approx(ref_pts, abs=1e-9)
    assert samples.sample_rate == rate
    assert samples.duration_seconds == pytest.approx(ref.shape[1] / rate, abs=1e-12)


def test_default_audio_stream_is_ffmpegs_best():
    path = media("nasa_13013.mp4")
    with av.open(str(path)) as container:
        best = container.streams.best("audio").index
    assert best in (1, 4)  # the two AAC streams of the MANIFEST
    decoder = AudioDecoder(path)
    assert decoder.stream_index == best
    ref, _ = pyav_decode(path, best)
    data = decoder.get_all_samples().data.numpy()
    assert data.shape == ref.shape and np.abs(data - ref).max() <= 1e-6


def test_two_audio_streams_of_a_video_file_are_decoded_separately():
    path = media("nasa_13013.mp4")
    low = AudioDecoder(path, stream_index=1)
    high = AudioDecoder(path, stream_index=4)
    assert (low.stream_index, high.stream_index) == (1, 4)
    assert (low.metadata.sample_rate, high.metadata.sample_rate) == (8000, 16000)
    a, b = low.get_all_samples(), high.get_all_samples()
    assert (a.sample_rate, b.sample_rate) == (8000, 16000)
    # Same content at two rates: durations agree to within one AAC frame of the lower rate.
    assert abs(a.duration_seconds - b.duration_seconds) <= 1024 / 8000


@pytest.mark.parametrize("stream_index", [0, 2, 3, 5])
def test_audio_decoder_on_a_non_audio_stream_raises(stream_index):
    # MANIFEST: 0 and 3 are video, 2 and 5 subtitles.
    with pytest.raises(StreamNotFoundError) as excinfo:
        AudioDecoder(media("nasa_13013.mp4"), stream_index=stream_index)
    assert str(stream_index) in str(excinfo.value)


def test_audio_decoder_on_a_file_without_audio_raises():
    with pytest.raises(StreamNotFoundError, match="audio"):
        AudioDecoder(media("av1_video.mkv"))


# --------------------------------------------------------------------------------------------
# Ranges in seconds

def _expected_slice(ref: np.ndarray, t0: float, rate: int, start: float, stop: float | None):
    n = ref.shape[1]
    lo = max(0, round((start - t0) * rate))
    hi = n if stop is None else min(n, round((stop - t0) * rate))
    return ref[:, lo:max(lo, hi)], max(start, t0)


# (file, stream_index): WAV, MP3 and AAC; each range must be sample-exact.
EXACT_RANGE_MEDIA = [
    ("sine_mono_s16.wav", None),
    ("sine_16ch_s16.wav", None),
    ("nasa_13013.mp4.audio.mp3", None),
    ("nasa_13013.mp4.audio_44100.mp3", None),
    ("nasa_13013.mp4", 4),
    ("nasa_13013.mp4", 1),
]


@pytest.mark.parametrize("name,stream_index", EXACT_RANGE_MEDIA)
def test_ranges_are_exact_slices_of_the_full_decode(name, stream_index):
    path = media(name)
    ref, t0 = pyav_decode(path, stream_index)
    decoder = AudioDecoder(path, stream_index=stream_index)
    rate = decoder.metadata.sample_rate
    end = t0 + ref.shape[1] / rate
    ranges = [
        (0.5, 0.75),
        (round(end * 0.3, 3), round(end * 0.7, 3)),   # mid-stream, after a seek
        (0.0, 0.25),                                  # from the very start (before t0 for MP3)
        (round(end * 0.9, 3), None),                  # to the end
        (round(end - 0.1, 3), end + 5.0),             # stop past the end: clipped
        (0.25, 0.25),                                 # empty
        (0.1, 0.6),                                   # again, after later ranges
    ]
    for start, stop in ranges:
        got = decoder.get_samples_played_in_range(start, stop)
        expected, expected_pts = _expected_slice(ref, t0, rate, start, stop)
        where = f"{name} [{start}, {stop})"
        assert got.data.dtype == torch.float32
        assert tuple(got.data.shape) == expected.shape, where
        if expected.size:
            assert np.array_equal(got.data.numpy(), expected), where
        assert got.pts_seconds == pytest.approx(expected_pts, abs=1e-9), where
        assert got.duration_seconds == pytest.approx(expected.shape[1] / rate, abs=1e-12), where
        assert got.sample_rate == rate


def test_opus_in_mkv_ranges_match_within_half_a_millisecond():
    # The MKV time base is 1 ms and Opus frames are 20 ms (960 samples at 48 kHz): frame
    # timestamps after a seek are rounded to the millisecond, so a range may be shifted by up to
    # half a tick (24 samples) against a decode from the start; and Opus after a seek is not
    # bit-exact (the decoder state converges), hence a small tolerance on the values.
    path = media("flipping_a_pancake.mkv")
    ref, t0 = pyav_decode(path, 1)
    rate = 48000
    decoder = AudioDecoder(path)
    assert decoder.stream_index == 1
    for start, stop in [(1.0, 2.0), (2.5, 3.0), (5.0, 7.5), (9.0, 10.0), (0.0, 0.5)]:
        got = decoder.get_samples_played_in_range(start, stop).data.numpy()
        expected, _ = _expected_slice(ref, t0, rate, start, stop)
        assert abs(got.shape[1] - expected.shape[1]) <= 24
        lo = round((start - t0) * rate)
        best = None
        for shift in range(-24, 25):
            if lo + shift < 0:
                continue
            candidate = ref[:, lo + shift : lo + shift + got.shape[1]]
            if candidate.shape != got.shape:
                continue
            err = np.abs(candidate - got)
            key = (float(err.max()), float(np.sqrt((err ** 2).mean())), shift)
            best = key if best is None or key < best else best
        assert best is not None
        max_err, rms_err, shift = best
        where = f"[{start}, {stop}): shift {shift}, max {max_err}, rms {rms_err}"
        assert max_err <= 0.02, where
        assert rms_err <= 1e-3, where
        # The segment is real audio, not near-silence where any shift would match.
        assert np.sqrt((got ** 2).mean()) > 20 * rms_err, where


@pytest.mark.parametrize("name", ["sine_mono_s16.wav", "nasa_13013.mp4.audio.mp3",
                                  "nasa_13013.mp4", "flipping_a_pancake.mkv"])
def test_ranges_past_the_end_have_no_samples(name):
    path = media(name)
    decoder = AudioDecoder(path)
    ref, t0 = pyav_decode(path, decoder.stream_index)
    channels = decoder.metadata.num_channels
    end = t0 + ref.shape[1] / decoder.metadata.sample_rate
    for start, stop in [(end + 1.0, end + 2.0), (end + 1.0, None), (end + 0.5, end + 0.5)]:
        got = decoder.get_samples_played_in_range(start, stop)
        assert tuple(got.data.shape) == (channels, 0)
        assert got.duration_seconds == 0.0


def test_start_after_stop_raises_value_error():
    decoder = AudioDecoder(media("sine_mono_s16.wav"))
    with pytest.raises(ValueError):
        decoder.get_samples_played_in_range(2.0, 1.0)
    with pytest.raises(ValueError):
        decoder.get_samples_played_in_range(float("nan"), 1.0)
    with pytest.raises(ValueError):
        decoder.get_samples_played_in_range(0.0, float("nan"))
    # The decoder still works afterwards.
    assert decoder.get_samples_played_in_range(1.0, 2.0).data.shape == (1, 16000)


def test_infinite_stop_means_to_the_end():
    path = media("sine_mono_s16.wav")
    decoder = AudioDecoder(path)
    got = decoder.get_samples_played_in_range(3.0, float("inf"))
    expected = read_wav(path).as_float()[:, 3 * 16000:]
    assert got.data.shape == expected.shape
    assert np.abs(got.data.numpy() - expected).max() <= 1e-7


# --------------------------------------------------------------------------------------------
# Generated media: every encoding decodes as PyAV decodes it, to the known content


@pytest.mark.parametrize("kind,rate", [("wav", 44100), ("flac", 44100), ("m4a", 44100),
                                       ("ogg", 48000), ("webm", 48000)])
def test_generated_encodings_match_pyav_and_the_signal(generated, kind, rate):
    path = generated[kind]
    ref, _ = pyav_decode(path)
    decoder = AudioDecoder(path)
    assert decoder.metadata.sample_rate == rate
    assert decoder.metadata.num_channels == 2
    samples = decoder.get_all_samples()
    data = samples.data.numpy()
    assert data.shape == ref.shape
    assert np.abs(data - ref).max() <= 1e-6
    # Duration: the 2 s written, plus at most one codec frame of padding.
    assert GEN_SECONDS <= samples.duration_seconds + 1e-9 <= GEN_SECONDS + 2048 / rate
    # Content: left 440 Hz at 0.5, right 1000 Hz at 0.25 (lossy codecs: 5%).
    core = data[:, rate // 4 : rate * 7 // 4]
    assert peak_frequency(core[0], rate) == pytest.approx(LEFT_HZ, abs=1.0)
    assert peak_frequency(core[1], rate) == pytest.approx(RIGHT_HZ, abs=1.0)
    assert amplitude_at(core[0], rate, LEFT_HZ) == pytest.approx(LEFT_AMP, rel=0.05)
    assert amplitude_at(core[1], rate, RIGHT_HZ) == pytest.approx(RIGHT_AMP, rel=0.05)


@pytest.mark.parametrize("kind", ["wav", "flac"])
def test_lossless_generated_audio_is_bit_exact(generated, kind):
    expected = generated["pcm"].T.astype(np.float64) / 32768.0
    data = AudioDecoder(generated[kind]).get_all_samples().data.numpy()
    assert data.shape == expected.shape
    assert np.array_equal(data.astype(np.float64), expected)


@pytest.mark.parametrize("kind", ["m4a", "ogg", "webm"])
def test_decoding_from_the_start_again_matches_a_fresh_decode(generated, kind):
    # After a mid-stream range, asking again from the start must give the same samples as a
    # decode from a freshly opened file: the AAC priming packet (marked for discard by the MP4
    # edit list) and the Opus pre-skip are handled only when the stream is read from its start.
    path = generated[kind]
    ref, _ = pyav_decode(path)
    decoder = AudioDecoder(path)
    decoder.get_samples_played_in_range(1.0, 1.5)
    again = decoder.get_all_samples().data.numpy()
    assert again.shape == ref.shape
    assert np.abs(again - ref).max() <= 1e-6
    head = decoder.get_samples_played_in_range(0.0, 0.1).data.numpy()
    assert np.abs(head - ref[:, : head.shape[1]]).max() <= 1e-6


# --------------------------------------------------------------------------------------------
# Resampling and channel mixing


def test_resample_to_16k_keeps_duration_and_frequency(generated):
    path = generated["mono_wav"]
    decoder = AudioDecoder(path, sample_rate=16000)
    assert decoder.metadata.sample_rate == GEN_RATE  # the stream's own rate
    samples = decoder.get_all_samples()
    assert samples.sample_rate == 16000
    n = samples.data.shape[1]
    assert samples.data.shape[0] == 1
    assert abs(n - GEN_SECONDS * 16000) <= 16  # within 1 ms
    assert samples.duration_seconds == pytest.approx(n / 16000)
    x = samples.data.numpy()[0]
    assert peak_frequency(x, 16000) == pytest.approx(LEFT_HZ, abs=0.5)
    # Interior samples follow the analytic sine at the new rate (delay compensated).
    t = np.arange(n) / 16000
    analytic = LEFT_AMP * np.sin(2 * np.pi * LEFT_HZ * t)
    assert np.abs(x[200:-200] - analytic[200:-200]).max() < 1e-3
    # And it is what libswresample gives through PyAV.
    ref = pyav_resample(path, rate=16000)
    assert ref.shape == samples.data.shape
    assert np.abs(samples.data.numpy() - ref).max() <= 1e-6


def test_resampled_range_has_the_right_length_and_phase(generated):
    decoder = AudioDecoder(generated["mono_wav"], sample_rate=16000)
    got = decoder.get_samples_played_in_range(0.5, 1.0)
    assert got.sample_rate == 16000
    assert got.data.shape == (1, 8000)
    assert got.pts_seconds == pytest.approx(0.5)
    t = 0.5 + np.arange(8000) / 16000
    analytic = LEFT_AMP * np.sin(2 * np.pi * LEFT_HZ * t)
    # The range may start up to half an output sample off: bound the phase error of that.
    tolerance = LEFT_AMP * 2 * np.pi * LEFT_HZ * (0.5 / 16000) + 1e-3
    assert np.abs(got.data.numpy()[0] - analytic).max() <= tolerance


def test_upsample_corpus_sine_keeps_its_frequency():
    path = media("sine_mono_s16.wav")
    ref = read_wav(path)
    source_peak = peak_frequency(ref.as_float()[0], ref.sample_rate)
    samples = AudioDecoder(path, sample_rate=48000).get_all_samples()
    assert abs(samples.data.shape[1] - 3 * ref.num_frames) <= 48
    assert peak_frequency(samples.data.numpy()[0], 48000) == pytest.approx(source_peak, abs=0.5)


def test_stereo_to_mono_is_ffmpegs_downmix(generated):
    path = generated["wav"]
    decoder = AudioDecoder(path, num_channels=1)
    assert decoder.metadata.num_channels == 2  # the stream's own
    mono = decoder.get_all_samples()
    assert mono.data.shape == (1, int(GEN_RATE * GEN_SECONDS))
    ref = pyav_resample(path, layout="mono")
    assert ref.shape == mono.data.shape
    assert np.abs(mono.data.numpy() - ref).max() <= 1e-6
    # Both channels are mixed in with the same weight: the 2:1 amplitude ratio survives.
    x = mono.data.numpy()[0]
    a_left = amplitude_at(x, GEN_RATE, LEFT_HZ)
    a_right = amplitude_at(x, GEN_RATE, RIGHT_HZ)
    assert a_left / a_right == pytest.approx(LEFT_AMP / RIGHT_AMP, rel=0.01)
    assert a_left > 0.2  # neither channel is dropped or attenuated to nothing


def test_mono_and_resample_together_match_libswresample(generated):
    path = generated["wav"]
    got = AudioDecoder(path, num_channels=1, sample_rate=16000).get_all_samples()
    ref = pyav_resample(path, layout="mono", rate=16000)
    assert got.data.shape == ref.shape
    assert np.abs(got.data.numpy() - ref).max() <= 1e-6


def test_upmix_mono_to_stereo_duplicates_content(generated):
    got = AudioDecoder(generated["mono_wav"], num_channels=2).get_all_samples().data.numpy()
    assert got.shape == (2, int(GEN_RATE * GEN_SECONDS))
    ref = pyav_resample(generated["mono_wav"], layout="stereo")
    assert np.abs(got - ref).max() <= 1e-6
    assert np.array_equal(got[0], got[1])


def test_audio_decoder_repr_and_backend():
    decoder = AudioDecoder(media("sine_mono_s16.wav"))
    assert decoder.backend in {b.name for b in mediadecode.list_backends() if b.available}
    assert "AudioDecoder" in repr(decoder)
