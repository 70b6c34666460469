"""mediadecode.adapters.torchaudio against libsndfile (soundfile) on WAV/FLAC, against FFmpeg
(PyAV, decoding sequentially) on compressed formats, and torchaudio's YESNO dataset read through
use_for_datasets() in a 2-worker DataLoader."""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest
import torch

from conftest import media_path, torchcodec_or_skip

sf = pytest.importorskip("soundfile", reason="soundfile (libsndfile) is the WAV/FLAC reference")
av = pytest.importorskip("av")

from mediadecode import InvalidMediaError, SourceNotFoundError, StreamNotFoundError  # noqa: E402
from mediadecode import UnknownBackendError, UnsupportedRequestError  # noqa: E402
from mediadecode.adapters import torchaudio as mta  # noqa: E402

WAVS = ["sine_mono_s16.wav", "sine_mono_u8.wav", "sine_mono_s32.wav", "sine_mono_f32.wav", "sine_16ch_s16.wav"]
# soundfile subtype -> (dtype torchaudio 2.1 returned with normalize=False, soundfile read dtype)
NATIVE = {"PCM_16": (torch.int16, "int16"), "PCM_32": (torch.int32, "int32"), "PCM_U8": (torch.uint8, "int16")}
COMPRESSED = ["nasa_13013.mp4.audio.mp3", "nasa_13013.mp4.audio_44100.mp3", "flipping_a_pancake.mkv"]


def pyav_float(path) -> tuple[np.ndarray, int]:
    """FFmpeg's own float32 decode of the best audio stream, from the start, sequentially:
    ``(num_channels, num_frames)`` and the sample rate."""
    with av.open(str(path)) as c:
        s = c.streams.best("audio")
        ch = s.codec_context.layout.nb_channels
        r = av.AudioResampler(format="flt")
        chunks = []
        for frame in c.decode(s):
            chunks += [o.to_ndarray().reshape(-1, ch) for o in r.resample(frame)]
        chunks += [o.to_ndarray().reshape(-1, ch) for o in r.resample(None)]
        return np.concatenate(chunks).T, s.codec_context.sample_rate


def sf_native(path, start=0, frames=-1):
    """soundfile's integer read, as (dtype torchaudio returned, samples (C, N) in that dtype)."""
    sub = sf.info(str(path)).subtype
    dtype, read_as = NATIVE[sub]
    data, _ = sf.read(str(path), dtype=read_as, always_2d=True, start=start, frames=frames)
    if sub == "PCM_U8":  # libsndfile reads 8-bit unsigned as int16 (u8 - 128) << 8
        data = (data.astype(np.int32) // 256 + 128).astype(np.uint8)
    return dtype, data.T


class CountingFile(io.RawIOBase):
    """A seekable binary file that counts the bytes read through it."""

    def __init__(self, path):
        self._f = open(path, "rb")
        self.bytes_read = 0
        self.size = os.path.getsize(path)

    def readable(self):
        return True

    def seekable(self):
        return True

    def readinto(self, b):
        n = self._f.readinto(b)
        self.bytes_read += n or 0
        return n

    def seek(self, offset, whence=0):
        return self._f.seek(offset, whence)

    def tell(self):
        return self._f.tell()

    def close(self):
        self._f.close()
        super().close()


@pytest.fixture(scope="module")
def flac_file(tmp_path_factory):
    """A stereo 16-bit FLAC written by libsndfile from a two-tone signal."""
    path = tmp_path_factory.mktemp("flac") / "tones.flac"
    t = np.arange(44100 * 3) / 44100
    sig = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1000 * t)], axis=1)
    sf.write(str(path), sig, 44100, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    """A 5 min mono 16-bit WAV (about 9.6 MB) written by libsndfile."""
    path = tmp_path_factory.mktemp("long") / "long.wav"
    rng = np.random.default_rng(0)
    sf.write(str(path), rng.integers(-20000, 20000, 16000 * 300, dtype=np.int16), 16000, subtype="PCM_16")
    return path


# -- load: WAV and FLAC against soundfile --------------------------------------------------------


@pytest.mark.parametrize("name", WAVS)
def test_load_wav_matches_soundfile(name):
    path = media_path(name)
    ref, sr = sf.read(str(path), dtype="float32", always_2d=True)
    waveform, rate = mta.load(path)
    assert rate == sr and isinstance(rate, int)
    assert waveform.dtype == torch.float32
    assert np.array_equal(waveform.numpy(), ref.T)
    # channels_first=False: (frames, channels)
    t, _ = mta.load(str(path), channels_first=False)
    assert t.shape == (ref.shape[0], ref.shape[1]) and np.array_equal(t.numpy(), ref)


@pytest.mark.parametrize("name", WAVS)
def test_load_wav_range_matches_soundfile(name):
    path = media_path(name)
    ref, _ = sf.read(str(path), dtype="float32", always_2d=True, start=1234, frames=4321)
    waveform, _ = mta.load(path, frame_offset=1234, num_frames=4321)
    assert np.array_equal(waveform.numpy(), ref.T)
    tail, _ = sf.read(str(path), dtype="float32", always_2d=True, start=5000)
    waveform, _ = mta.load(path, frame_offset=5000)
    assert np.array_equal(waveform.numpy(), tail.T)


@pytest.mark.parametrize("name", [n for n in WAVS if "f32" not in n])
def test_load_normalize_false_native_integer(name):
    path = media_path(name)
    dtype, ref = sf_native(path)
    waveform, _ = mta.load(path, normalize=False)
    assert waveform.dtype == dtype
    assert np.array_equal(waveform.numpy(), ref)
    dtype, ref = sf_native(path, start=777, frames=2000)
    waveform, _ = mta.load(path, normalize=False, frame_offset=777, num_frames=2000, channels_first=False)
    assert waveform.dtype == dtype and np.array_equal(waveform.numpy(), ref.T)


def test_load_normalize_false_float_wav_and_compressed_stay_float32():
    w, _ = mta.load(media_path("sine_mono_f32.wav"), normalize=False)
    ref, _ = sf.read(str(media_path("sine_mono_f32.wav")), dtype="float32", always_2d=True)
    assert w.dtype == torch.float32 and np.array_equal(w.numpy(), ref.T)
    w, _ = mta.load(media_path("nasa_13013.mp4.audio.mp3"), normalize=False)
    assert w.dtype == torch.float32


def test_load_flac_matches_soundfile(flac_file):
    ref, sr = sf.read(str(flac_file), dtype="float32", always_2d=True)
    waveform, rate = mta.load(flac_file)
    assert rate == sr == 44100 and np.array_equal(waveform.numpy(), ref.T)
    part, _ = sf.read(str(flac_file), dtype="float32", always_2d=True, start=50000, frames=10000)
    waveform, _ = mta.load(flac_file, frame_offset=50000, num_frames=10000)
    assert np.array_equal(waveform.numpy(), part.T)
    # FLAC is not WAV: normalize=False has no effect (float32), as torchaudio documented
    waveform, _ = mta.load(flac_file, normalize=False)
    assert waveform.dtype == torch.float32


@pytest.mark.parametrize("backend", ["ffmpeg", "torchcodec", "decord"])
def test_load_with_each_audio_backend(backend, flac_file):
    if backend not in mta.list_audio_backends():
        pytest.skip(f"backend {backend} is not available here")
    path = media_path("sine_mono_s16.wav")
    ref, _ = sf.read(str(path), dtype="float32", always_2d=True)
    waveform, sr = mta.load(path, backend=backend)
    assert sr == 16000 and np.array_equal(waveform.numpy(), ref.T)
    waveform, _ = mta.load(path, frame_offset=3000, num_frames=500, backend=backend)
    assert np.array_equal(waveform.numpy(), ref.T[:, 3000:3500])


# -- load: compressed formats against PyAV -------------------------------------------------------


@pytest.mark.parametrize("name", COMPRESSED)
def test_load_compressed_matches_pyav(name):
    path = media_path(name)
    ref, sr = pyav_float(path)
    waveform, rate = mta.load(path)
    assert rate == sr and waveform.shape == ref.shape
    assert np.array_equal(waveform.numpy(), ref)
    off, n = 3 * sr + 17, sr // 2
    waveform, _ = mta.load(path, frame_offset=off, num_frames=n)
    assert waveform.shape == (ref.shape[0], n)
    assert np.array_equal(waveform.numpy(), ref[:, off:off + n])


def test_load_opus_track_of_mkv_range_is_sample_exact():
    # Matroska timestamps are milliseconds: counting must not drift by the rounding.
    path = media_path("flipping_a_pancake.mkv")
    ref, sr = pyav_float(path)
    for off in (1, 647, 648, 649, 48000 * 5 + 13):
        waveform, _ = mta.load(path, frame_offset=off, num_frames=1000)
        assert np.array_equal(waveform.numpy(), ref[:, off:off + 1000]), off


def test_load_range_past_the_end():
    path = media_path("sine_mono_s16.wav")
    w, _ = mta.load(path, frame_offset=63990, num_frames=100)
    assert w.shape == (1, 10)
    w, _ = mta.load(path, frame_offset=10**7)
    assert w.shape == (1, 0) and w.dtype == torch.float32
    w, _ = mta.load(path, frame_offset=10**7, normalize=False)
    assert w.shape == (1, 0) and w.dtype == torch.int16


# -- a range is read by seeking, not by decoding everything -------------------------------------


@pytest.mark.parametrize("normalize", [True, False])
def test_range_reads_only_a_small_part_of_a_long_wav(long_wav, normalize):
    f = CountingFile(long_wav)
    try:
        waveform, _ = mta.load(f, frame_offset=16000 * 290, num_frames=1600, normalize=normalize)
    finally:
        f.close()
    ref, _ = sf.read(str(long_wav), dtype="int16" if not normalize else "float32", start=16000 * 290, frames=1600)
    assert np.array_equal(waveform[0].numpy(), ref)
    # FFmpeg's format probing (~200 kB per open, two opens) plus the range: well under a
    # tenth of the 9.6 MB file
    assert f.bytes_read < f.size / 10, (f.bytes_read, f.size)


def _encode_long_audio(path, codec, rate=16000, seconds=300, bit_rate=32000):
    """Encode ``seconds`` of a mono chirp with FFmpeg's ``codec`` through PyAV."""
    try:
        av.codec.Codec(codec, "w")
    except Exception:
        pytest.skip(f"PyAV's FFmpeg has no {codec} encoder")
    t = np.arange(rate * seconds) / rate
    signal = (0.4 * np.sin(2 * np.pi * (200 + t) * t)).astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        stream.bit_rate = bit_rate
        fmt = stream.codec_context.codec.audio_formats[0].name
        resampler = av.AudioResampler(format=fmt, layout="mono", rate=rate)
        for start in range(0, len(signal), 1024 * 16):
            frame = av.AudioFrame.from_ndarray(signal[None, start:start + 1024 * 16], format="flt", layout="mono")
            frame.sample_rate = rate
            for converted in resampler.resample(frame):
                for packet in stream.encode(converted):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def long_m4a(tmp_path_factory):
    """5 min of mono 16 kHz AAC in MP4 (about 1.2 MB), encoded by FFmpeg's aac encoder."""
    return _encode_long_audio(tmp_path_factory.mktemp("longm4a") / "long.m4a", "aac")


@pytest.fixture(scope="module")
def long_mp3(tmp_path_factory):
    """5 min of mono 16 kHz MP3 (about 1.2 MB), encoded by libmp3lame."""
    return _encode_long_audio(tmp_path_factory.mktemp("longmp3") / "long.mp3", "libmp3lame")


def test_range_of_m4a_reads_only_part_of_the_file(long_m4a):
    ref, sr = pyav_float(long_m4a)
    off, n = 280 * sr + 5, sr // 2
    f = CountingFile(long_m4a)
    try:
        waveform, _ = mta.load(f, frame_offset=off, num_frames=n)
    finally:
        f.close()
    # AAC's overlapped transform after a seek (with pre-roll) converges to the full decode only
    # to float rounding: a few 1e-6 in the first samples.
    np.testing.assert_allclose(waveform.numpy(), ref[:, off:off + n], rtol=0, atol=1e-5)
    assert f.bytes_read < f.size / 4, (f.bytes_read, f.size)


def test_range_of_long_mp3_matches_full_decode(long_mp3):
    # FFmpeg's MP3 demuxer seeks accurately by reading the packets before the target (it
    # parses them, without decoding); the samples must be those of a full decode.
    ref, sr = pyav_float(long_mp3)
    for off in (5, 120 * sr + 1, 280 * sr + 5):
        waveform, _ = mta.load(long_mp3, frame_offset=off, num_frames=sr // 2)
        assert np.array_equal(waveform.numpy(), ref[:, off:off + sr // 2]), off


# -- sources, format hint, errors ----------------------------------------------------------------


def test_file_like_bytes_and_format_hint(flac_file):
    path = media_path("sine_mono_s16.wav")
    ref, _ = sf.read(str(path), dtype="float32", always_2d=True)
    with open(path, "rb") as f:
        w, sr = mta.load(f)
        assert not f.closed  # the caller's file stays the caller's
    assert sr == 16000 and np.array_equal(w.numpy(), ref.T)
    data = path.read_bytes()
    w, _ = mta.load(io.BytesIO(data), frame_offset=10, num_frames=20)
    assert np.array_equal(w.numpy(), ref.T[:, 10:30])
    w, _ = mta.load(data, format="wav", normalize=False, frame_offset=100, num_frames=50)
    assert w.dtype == torch.int16 and np.array_equal(w.numpy(), sf_native(path, 100, 50)[1])
    fref, _ = sf.read(str(flac_file), dtype="float32", always_2d=True)
    w, _ = mta.load(io.BytesIO(flac_file.read_bytes()), format="flac", frame_offset=40000, num_frames=300)
    assert np.array_equal(w.numpy(), fref.T[:, 40000:40300])
    mp3 = media_path("nasa_13013.mp4.audio.mp3")
    ref3, sr3 = pyav_float(mp3)
    w, _ = mta.load(io.BytesIO(mp3.read_bytes()), format="mp3", frame_offset=2 * sr3, num_frames=sr3)
    assert np.array_equal(w.numpy(), ref3[:, 2 * sr3:3 * sr3])


def test_errors(tmp_path):
    path = media_path("sine_mono_s16.wav")
    with pytest.raises(ValueError, match="frame_offset"):
        mta.load(path, frame_offset=-1)
    for bad in (0, -2):
        with pytest.raises(ValueError, match="num_frames"):
            mta.load(path, num_frames=bad)
    with pytest.raises(SourceNotFoundError):
        mta.load(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"\x00\x01garbage" * 50)
    with pytest.raises(InvalidMediaError, match="junk.wav"):
        mta.load(junk)
    with pytest.raises(InvalidMediaError, match="format 'not-a-demuxer'"):
        mta.load(path, format="not-a-demuxer")
    with pytest.raises(StreamNotFoundError):
        mta.load(media_path("h265_video.mp4"))
    with pytest.raises(UnsupportedRequestError, match="torchcodec"):
        mta.load(path, normalize=False, backend="torchcodec")
    with pytest.raises(UnknownBackendError):
        mta.load(path, backend="no-such-backend")


# -- info ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", WAVS)
def test_info_wav_matches_soundfile(name):
    path = media_path(name)
    ref = sf.info(str(path))
    meta = mta.info(path)
    assert (meta.sample_rate, meta.num_frames, meta.num_channels) == (ref.samplerate, ref.frames, ref.channels)
    expected = {"PCM_16": (16, "PCM_S"), "PCM_32": (32, "PCM_S"), "PCM_U8": (8, "PCM_U"), "FLOAT": (32, "PCM_F")}
    assert (meta.bits_per_sample, meta.encoding) == expected[ref.subtype]


def test_info_flac_and_compressed(flac_file):
    ref = sf.info(str(flac_file))
    meta = mta.info(flac_file)
    assert (meta.sample_rate, meta.num_frames, meta.num_channels) == (ref.samplerate, ref.frames, ref.channels)
    assert (meta.bits_per_sample, meta.encoding) == (16, "FLAC")
    for name, encoding in [("nasa_13013.mp4.audio.mp3", "MP3"), ("flipping_a_pancake.mkv", "OPUS")]:
        path = media_path(name)
        data, sr = pyav_float(path)
        meta = mta.info(path)
        assert (meta.sample_rate, meta.num_frames, meta.num_channels) == (sr, data.shape[1], data.shape[0])
        assert (meta.bits_per_sample, meta.encoding) == (0, encoding)
    with open(media_path("sine_mono_u8.wav"), "rb") as f:
        assert mta.info(f).encoding == "PCM_U"
    with pytest.raises(UnsupportedRequestError):
        mta.info(flac_file, backend="decord")


def test_list_audio_backends():
    import mediadecode as md

    names = mta.list_audio_backends()
    assert names[0] == "ffmpeg"
    expected = {b.name for b in md.list_backends() if b.available and "audio" in b.media_types}
    assert set(names) == expected
    assert all(n != "nvdec" for n in names)  # video-only


# -- use_for_datasets and torchaudio's YESNO -----------------------------------------------------

YESNO_FILES = {
    "0_0_0_0_1_1_1_1": "sine_mono_s16.wav",
    "0_1_0_0_1_0_1_1": "sine_mono_s32.wav",
    "1_0_1_1_0_0_0_1": "sine_mono_u8.wav",
    "1_1_1_0_0_1_0_0": "sine_mono_f32.wav",
}


@pytest.fixture
def yesno_root(tmp_path):
    """YESNO's folder layout (root/waves_yesno/<labels>.wav) made of real WAVs."""
    folder = tmp_path / "waves_yesno"
    folder.mkdir()
    for stem, name in YESNO_FILES.items():
        shutil.copyfile(media_path(name), folder / f"{stem}.wav")
    return tmp_path


class _Probe(torch.utils.data.Dataset):
    """YESNO items plus the module that served ``torchaudio.load`` in the process that read them."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, n):
        import torchaudio

        waveform, sr, labels = self.ds[n]
        return waveform, sr, labels, torchaudio.load.__module__, getattr(torchaudio.load, "mediadecode_backend", None)


def _read_all(ds, workers):
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, multiprocessing_context="fork" if workers else None)
    return list(loader)


def test_use_for_datasets_context_and_restore():
    torchaudio = pytest.importorskip("torchaudio")
    original = torchaudio.load
    with mta.use_for_datasets("ffmpeg") as patch:
        assert torchaudio.load is patch.load and patch.active
        w, sr = torchaudio.load(str(media_path("sine_mono_s16.wav")), normalize=False)
        assert w.dtype == torch.int16 and sr == 16000  # the old contract, not torchcodec's
    assert torchaudio.load is original and not patch.active
    patch = mta.use_for_datasets()
    try:
        assert torchaudio.load is patch.load
    finally:
        patch.restore()
    patch.restore()  # idempotent
    assert torchaudio.load is original
    with pytest.raises(UnknownBackendError):
        mta.use_for_datasets("no-such-backend")
    assert torchaudio.load is original


@pytest.mark.parametrize("backend", ["ffmpeg", "torchcodec"])
def test_yesno_dataset_through_mediadecode_in_dataloader_workers(yesno_root, backend):
    torchaudio = pytest.importorskip("torchaudio")
    if backend not in mta.list_audio_backends():
        pytest.skip(f"backend {backend} is not available here")
    torchcodec_or_skip()  # the reference is torchaudio's own load, which reads with torchcodec
    dataset = torchaudio.datasets.YESNO(str(yesno_root), download=False)
    assert len(dataset) == len(YESNO_FILES)
    outside = _read_all(_Probe(dataset), workers=0)  # torchaudio's own load (torchcodec)
    assert all(item[3] != "mediadecode.adapters.torchaudio" for item in outside)
    with mta.use_for_datasets(backend=backend):
        inside = _read_all(_Probe(dataset), workers=2)
    assert [item[3] for item in inside] == ["mediadecode.adapters.torchaudio"] * len(YESNO_FILES)
    assert [item[4] for item in inside] == [backend] * len(YESNO_FILES)
    for (w0, sr0, lab0, *_), (w1, sr1, lab1, *_), stem in zip(outside, inside, sorted(YESNO_FILES)):
        assert lab0 == lab1 == [int(c) for c in stem.split("_")]
        assert sr0 == sr1 == 16000
        assert w1.dtype == torch.float32 and torch.equal(w0, w1)
        ref, _ = sf.read(str(media_path(YESNO_FILES[stem])), dtype="float32", always_2d=True)
        assert np.array_equal(w1.numpy(), ref.T)
    assert torchaudio.load.__module__ != "mediadecode.adapters.torchaudio"


def test_worker_init_fn_installs_in_spawned_workers(yesno_root):
    torchaudio = pytest.importorskip("torchaudio")
    dataset = _Probe(torchaudio.datasets.YESNO(str(yesno_root), download=False))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=1, multiprocessing_context="spawn",
        worker_init_fn=mta.worker_init_fn("ffmpeg"),
    )
    items = list(loader)
    assert [i[3] for i in items] == ["mediadecode.adapters.torchaudio"] * len(YESNO_FILES)
    assert torchaudio.load.__module__ != "mediadecode.adapters.torchaudio"
