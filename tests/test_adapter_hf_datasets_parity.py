"""mediadecode's HF Video/Audio features against datasets' own: every operation is run on a dataset
cast to ``datasets.Video()``/``datasets.Audio()`` (torchcodec decoding) and on the same dataset cast
to ``mediadecode.adapters.hf_datasets.Video()``/``Audio()``, and the results are compared: the
types datasets hands back, the stored Arrow values, and the decoded frames and samples.

datasets' own features decode with torchcodec, which needs FFmpeg's shared libraries: without
them this module skips (datasets then decodes nothing itself, so there is nothing to compare)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from conftest import MEDIA_DIR, MEDIA_MISSING_REASON

_HF_TMP = tempfile.mkdtemp(prefix="md-hf-parity-")
for _var, _sub in (("HF_HOME", "home"), ("HF_DATASETS_CACHE", "cache"), ("HF_MODULES_CACHE", "modules")):
    os.environ.setdefault(_var, os.path.join(_HF_TMP, _sub))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"

datasets = pytest.importorskip("datasets")
av = pytest.importorskip("av")

import mediadecode  # noqa: E402
from mediadecode import registry  # noqa: E402
from mediadecode.errors import UnsupportedRequestError  # noqa: E402

TORCHCODEC_REASON = registry.unavailable_reason("torchcodec")
pytestmark = pytest.mark.skipif(
    TORCHCODEC_REASON is not None,
    reason=f"datasets' own Video/Audio decode with torchcodec, which cannot load here: {TORCHCODEC_REASON}",
)

from mediadecode.adapters import hf_datasets as hf  # noqa: E402
from mediadecode.adapters.hf_datasets import Audio, HFAudioDecoder, HFVideoDecoder, Video  # noqa: E402

VIDEOS = ["h265_video.mp4", "video_90.mov"]
AUDIOS = ["sine_mono_s16.wav", "nasa_13013.mp4.audio_44100.mp3"]
STEREO_MP3 = "nasa_13013.mp4.audio_44100.mp3"


@pytest.fixture(autouse=True)
def _offline_tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def media():
    if not MEDIA_DIR.is_dir():
        pytest.skip(MEDIA_MISSING_REASON)
    return MEDIA_DIR


def tc():
    from torchcodec import decoders

    return decoders


# -- helpers: the same dataset under both features, and decoder comparisons --------------------


def video_pair(media, names=VIDEOS, **ours):
    base = datasets.Dataset.from_dict({"video": [str(media / n) for n in names], "label": list(range(len(names)))})
    return (
        base.cast_column("video", Video(**{"backend": "ffmpeg", **ours})),
        base.cast_column("video", datasets.Video()),
    )


def audio_pair(media, names=AUDIOS, *, backend="ffmpeg", **options):
    base = datasets.Dataset.from_dict({"audio": [str(media / n) for n in names], "label": list(range(len(names)))})
    return (
        base.cast_column("audio", Audio(backend=backend, **options)),
        base.cast_column("audio", datasets.Audio(**options)),
    )


def same_video(ours, theirs, *, tol=1):
    """Our decoder shows the frames datasets' own (torchcodec, FFmpeg) shows: same count, same
    first and last frame (to ``tol`` per channel value: another FFmpeg build, or decord)."""
    assert isinstance(ours, HFVideoDecoder) and isinstance(ours, mediadecode.VideoDecoder)
    assert isinstance(theirs, tc().VideoDecoder) and not isinstance(theirs, HFVideoDecoder)
    assert len(ours) == len(theirs)
    idx = [0, len(theirs) - 1]
    a, b = ours.get_frames_at(idx), theirs.get_frames_at(idx)
    assert a.data.shape == b.data.shape
    assert (a.data.int() - b.data.int()).abs().max() <= tol
    np.testing.assert_allclose(a.pts_seconds.numpy(), b.pts_seconds.numpy(), atol=1e-6)
    assert ours.metadata.path == theirs.metadata.path


def same_audio(ours, theirs, *, atol=1e-4):
    """Same samples (to float rounding between FFmpeg builds), rate and dict access."""
    assert isinstance(ours, HFAudioDecoder) and isinstance(ours, mediadecode.AudioDecoder)
    assert isinstance(theirs, tc().AudioDecoder) and not isinstance(theirs, HFAudioDecoder)
    a, b = ours.get_all_samples(), theirs.get_all_samples()
    assert a.sample_rate == b.sample_rate and ours["sampling_rate"] == theirs["sampling_rate"]
    assert a.data.shape == b.data.shape
    np.testing.assert_allclose(a.data.numpy(), b.data.numpy(), atol=atol)
    np.testing.assert_allclose(ours["array"], theirs["array"], atol=atol)
    assert ours["path"] == theirs.metadata.path  # "path" is our addition to datasets' keys
    for decoder in (ours, theirs):
        with pytest.raises(TypeError):
            decoder["bytes"]


def stored(ds, column):
    """The column's Arrow values as datasets stores them."""
    return ds.data.column(column).to_pylist()


def wav_samples(data: bytes) -> tuple[np.ndarray, int, str]:
    """FFmpeg's (PyAV) reading of WAV bytes: the integer samples ``(C, N)``, rate, codec."""
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.audio[0]
        chunks = [f.to_ndarray().reshape(-1, s.codec_context.channels).T for f in c.decode(s)]
        return np.concatenate(chunks, axis=1), s.codec_context.sample_rate, s.codec_context.name


# -- the feature type ------------------------------------------------------------------------------


def test_dtype_and_storage_match_datasets():
    assert Audio().dtype == datasets.Audio().dtype == "dict"
    assert Video().dtype == datasets.Video().dtype
    assert Audio()() == datasets.Audio()() and Video()() == datasets.Video()()
    assert hf.RECOGNISED_BY_DATASETS and hf.NOT_RECOGNISED_REASON is None
    assert issubclass(HFVideoDecoder, tc().VideoDecoder) and issubclass(HFAudioDecoder, tc().AudioDecoder)


# -- formats ---------------------------------------------------------------------------------------


def _items(result, fmt, column, kind):
    """The media values of a formatted row / column / batch, as a list."""
    if kind == "column":
        return list(result)
    value = result[column]
    if fmt in ("pandas", "polars"):
        return list(value)
    return [value] if kind == "row" else list(value)


@pytest.mark.parametrize("fmt", ["numpy", "torch", "pandas", "polars", "arrow"])
@pytest.mark.parametrize("media_kind", ["video", "audio"])
def test_formats(media, fmt, media_kind):
    if fmt == "polars":
        pytest.importorskip("polars", reason="polars is not installed (datasets' tests pin polars[timezone]>=0.20.0)")
    ours, theirs = video_pair(media) if media_kind == "video" else audio_pair(media)
    ours, theirs = ours.with_format(fmt), theirs.with_format(fmt)
    if fmt == "arrow":  # no decoding: the same table
        assert ours[:2].equals(theirs[:2]) and ours[0].equals(theirs[0])
        assert ours[media_kind].equals(theirs[media_kind])
        return
    same = same_video if media_kind == "video" else same_audio
    for kind, get in (("row", lambda d: d[1]), ("batch", lambda d: d[:2]), ("column", lambda d: d[media_kind])):
        outcomes = []
        for ds in (ours, theirs):
            try:
                outcomes.append(get(ds))
            except Exception as exc:  # datasets' own formatter may fail: it must fail the same way
                outcomes.append(exc)
        a, b = outcomes
        if isinstance(b, Exception):
            # datasets 5.2's polars formatter calls DataFrame.map_rows with a dict, which polars
            # >= 1 rejects, for its own features as for ours: the same failure, nothing to compare
            assert type(a) is type(b) and str(a) == str(b), (kind, a, b)
            continue
        assert type(a) is type(b), kind
        if kind != "column":
            la, lb = a["label"], b["label"]
            assert type(la) is type(lb) and np.array_equal(np.asarray(la), np.asarray(lb))
        got, want = _items(a, fmt, media_kind, kind), _items(b, fmt, media_kind, kind)
        assert len(got) == len(want) > 0, kind
        for x, y in zip(got, want):
            # datasets passes its decoders through every format: never an array of every frame
            same(x, y)


# -- map -----------------------------------------------------------------------------------------


def test_map_video_with_and_without_the_decoder_column(media):
    ours, theirs = video_pair(media)
    runs = {
        "reads the column": lambda ds: ds.map(lambda e: {"n": len(e["video"])}),
        "returns the column": lambda ds: ds.map(lambda e: {"video": e["video"], "w": e["video"].metadata.width}),
        "batched": lambda ds: ds.map(lambda b: {"n": [len(v) for v in b["video"]]}, batched=True, batch_size=2),
        "does not read it": lambda ds: ds.map(lambda e: {"double": e["label"] * 2}),
        "input_columns": lambda ds: ds.map(lambda v: {"n": len(v)}, input_columns=["video"]),
        "removes it": lambda ds: ds.map(lambda e: {"n": len(e["video"])}, remove_columns=["video"]),
    }
    for what, run in runs.items():
        a, b = run(ours), run(theirs)
        assert a.column_names == b.column_names, what
        for col in a.column_names:
            assert stored(a, col) == stored(b, col), (what, col)
        if "video" in a.column_names:
            assert isinstance(a.features["video"], Video), what
            same_video(a[1]["video"], b[1]["video"])


def test_map_audio_with_and_without_the_decoder_column(media):
    ours, theirs = audio_pair(media, sampling_rate=16000)
    runs = {
        "reads the column": lambda ds: ds.map(lambda e: {"sr": e["audio"]["sampling_rate"], "n": len(e["audio"]["array"])}),
        "returns the column": lambda ds: ds.map(lambda e: {"audio": e["audio"]}),
        "does not read it": lambda ds: ds.map(lambda e: {"double": e["label"] * 2}),
        "removes it": lambda ds: ds.map(lambda e: {"sr": e["audio"]["sampling_rate"]}, remove_columns=["audio"]),
    }
    for what, run in runs.items():
        a, b = run(ours), run(theirs)
        assert a.column_names == b.column_names, what
        for col in a.column_names:
            assert stored(a, col) == stored(b, col), (what, col)
        if "audio" in a.column_names:
            same_audio(a[1]["audio"], b[1]["audio"])


# -- encode_example of decoders built directly ------------------------------------------------------


@pytest.mark.parametrize(
    "options", [{}, {"sample_rate": 16000}, {"num_channels": 1}, {"sample_rate": 8000, "num_channels": 1}]
)
@pytest.mark.parametrize("source_kind", ["path", "file", "bytes"])
def test_audio_encode_example_of_built_decoders(media, options, source_kind):
    path = media / STEREO_MP3

    def source():
        return {"path": str(path), "file": open(path, "rb"), "bytes": path.read_bytes()}[source_kind]

    ours_src, theirs_src = source(), source()
    try:
        ours = Audio().encode_example(mediadecode.AudioDecoder(ours_src, **options))
        theirs = datasets.Audio().encode_example(tc().AudioDecoder(theirs_src, **options))
    finally:
        for s in (ours_src, theirs_src):
            if hasattr(s, "close"):
                s.close()
    # both store WAV bytes of what the decoder returns (16-bit PCM, the decoder's rate and channels)
    assert ours["path"] is theirs["path"] is None
    a, rate_a, codec_a = wav_samples(ours["bytes"])
    b, rate_b, codec_b = wav_samples(theirs["bytes"])
    assert (rate_a, codec_a, a.dtype) == (rate_b, codec_b, b.dtype) == (options.get("sample_rate", 44100), "pcm_s16le", np.int16)
    assert a.shape == b.shape and a.shape[0] == options.get("num_channels", 2)
    # one quantisation step: mp3 decoded by two FFmpeg builds before the conversion to s16
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    # ... so the value decodes back at the decoder's rate, through both features
    back_ours = Audio(backend="ffmpeg").decode_example(ours)
    back_theirs = datasets.Audio().decode_example(theirs)
    assert back_ours["sampling_rate"] == back_theirs["sampling_rate"] == rate_b
    same_audio(back_ours, back_theirs, atol=2 / 32768)


def test_video_encode_example_of_built_decoders(media):
    """datasets 5.2 cannot store a torchcodec VideoDecoder it did not make (NotImplementedError);
    ours stores what the decoder reads, which datasets' own feature then decodes to the same
    frames as the file."""
    path = media / VIDEOS[0]
    with pytest.raises(NotImplementedError):
        datasets.Video().encode_example(tc().VideoDecoder(str(path)))
    data = path.read_bytes()
    feature = Video()
    assert feature.encode_example(mediadecode.VideoDecoder(str(path), seek_mode="approximate")) == {"path": str(path), "bytes": None}
    assert feature.encode_example(mediadecode.VideoDecoder(data)) == {"path": None, "bytes": data}
    with open(path, "rb") as f:
        f.seek(100)
        decoder = mediadecode.VideoDecoder(f)
        value = feature.encode_example(decoder)
        assert value == {"path": path.name, "bytes": data}
        assert len(decoder) == len(tc().VideoDecoder(str(path)))  # the decoder still reads its file
    for v in (value, {"path": None, "bytes": data}):
        same_video(Video(backend="ffmpeg").decode_example(v), datasets.Video().decode_example(v))


# -- from_list / from_dict without features -------------------------------------------------------


def test_from_list_and_from_dict_without_features(media):
    vo, vt = video_pair(media)
    ao, at = audio_pair(media, sampling_rate=16000)
    for ours, theirs, col in ((vo, vt, "video"), (ao, at, "audio")):
        a = datasets.Dataset.from_list([{col: ours[i][col]} for i in range(len(ours))])
        b = datasets.Dataset.from_list([{col: theirs[i][col]} for i in range(len(theirs))])
        assert a.features == b.features
        assert stored(a, col) == stored(b, col) == stored(ours, col)
        a = datasets.Dataset.from_dict({col: [ours[0][col]]})
        b = datasets.Dataset.from_dict({col: [theirs[0][col]]})
        assert a.features == b.features and stored(a, col) == stored(b, col)
    # a decoder built directly: datasets stores its samples as WAV, for ours as for torchcodec's
    path = str(media / STEREO_MP3)
    a = datasets.Dataset.from_list([{"audio": HFAudioDecoder(path, sample_rate=16000)}])
    b = datasets.Dataset.from_list([{"audio": tc().AudioDecoder(path, sample_rate=16000)}])
    assert a.features == b.features
    sa, ra, _ = wav_samples(stored(a, "audio")[0]["bytes"])
    sb, rb, _ = wav_samples(stored(b, "audio")[0]["bytes"])
    assert ra == rb == 16000 and sa.shape == sb.shape and np.abs(sa.astype(int) - sb.astype(int)).max() <= 1


# -- saved and loaded -----------------------------------------------------------------------------


def test_load_from_disk_with_and_without_use_for_datasets(media, tmp_path):
    vo, vt = video_pair(media)
    ao, at = audio_pair(media, sampling_rate=16000)
    saved = {}
    for name, ds in {"ours_v": vo, "theirs_v": vt, "ours_a": ao, "theirs_a": at}.items():
        ds.save_to_disk(str(tmp_path / name))
        saved[name] = str(tmp_path / name)

    # without use_for_datasets: datasets rebuilds its own features, for both
    plain = {k: datasets.load_from_disk(p) for k, p in saved.items()}
    assert type(plain["ours_v"].features["video"]) is datasets.Video
    assert type(plain["ours_a"].features["audio"]) is datasets.Audio
    assert plain["ours_a"].features["audio"].sampling_rate == 16000
    assert type(plain["ours_v"][0]["video"]) is tc().VideoDecoder
    assert stored(plain["ours_v"], "video") == stored(plain["theirs_v"], "video")

    with hf.use_for_datasets() as registration:
        assert registration.active
        loaded = {k: datasets.load_from_disk(p) for k, p in saved.items()}
        assert loaded["ours_v"].features["video"] == Video(backend="ffmpeg")
        assert loaded["ours_a"].features["audio"] == Audio(sampling_rate=16000, backend="ffmpeg")
        # saved with plain datasets: our features too, with mediadecode's backend selection
        assert loaded["theirs_v"].features["video"] == Video(backend=None)
        assert loaded["theirs_a"].features["audio"] == Audio(sampling_rate=16000)
        assert datasets.Features.from_dict({"v": {"_type": "Video"}})["v"] == Video()
    assert not registration.active
    assert type(datasets.load_from_disk(saved["ours_v"]).features["video"]) is datasets.Video
    registration.restore()  # idempotent

    for i in range(len(VIDEOS)):
        same_video(loaded["ours_v"][i]["video"], plain["theirs_v"][i]["video"])
        same_video(loaded["theirs_v"][i]["video"], plain["theirs_v"][i]["video"])
    for i in range(len(AUDIOS)):
        same_audio(loaded["ours_a"][i]["audio"], plain["theirs_a"][i]["audio"])
        same_audio(loaded["theirs_a"][i]["audio"], plain["theirs_a"][i]["audio"])

    # the plain-call spelling, and a restore that finds another class registered leaves it alone
    registration = hf.use_for_datasets()
    try:
        assert type(datasets.load_from_disk(saved["theirs_a"]).features["audio"]) is Audio
    finally:
        registration.restore()
    assert type(datasets.load_from_disk(saved["theirs_a"]).features["audio"]) is datasets.Audio


# -- every backend --------------------------------------------------------------------------------


def _require_backend(name):
    info = {b.name: b for b in mediadecode.list_backends()}.get(name)
    if info is None or not info.available:
        pytest.skip(f"backend {name} is not available here: {getattr(info, 'reason', 'not registered')}")


@pytest.mark.parametrize("backend", ["ffmpeg", "torchcodec", "decord", "nvdec"])
def test_every_backend_serves_both_features(media, backend):
    _require_backend(backend)
    device = "cuda" if backend == "nvdec" else "cpu"
    # video_90.mov: rotated; nasa_13013.mp4: H.264 with B-frames and six streams
    ours, theirs = video_pair(media, ["video_90.mov", "nasa_13013.mp4"], backend=backend, device=device)
    for i in range(2):
        a = ours[i]["video"]
        assert a.backend == backend
        if backend == "nvdec":  # NVDEC's colour conversion is not swscale's
            b = theirs[i]["video"]
            idx = [0, len(b) - 1]
            diff = (a.get_frames_at(idx).data.cpu().int() - b.get_frames_at(idx).data.int()).abs().float()
            assert len(a) == len(b) and diff.mean() <= 3.0
        else:
            same_video(a, theirs[i]["video"], tol=3 if backend == "decord" else 1)
    if backend == "nvdec":
        return  # no audio on nvdec
    atol = 1e-4
    ao, at = audio_pair(media, backend=backend)
    for i in range(len(AUDIOS)):
        assert ao[i]["audio"].backend == backend
        same_audio(ao[i]["audio"], at[i]["audio"], atol=atol)
    # resampled and mixed to mono
    ao, at = audio_pair(media, [STEREO_MP3], backend=backend, sampling_rate=16000, num_channels=1)
    a, b = ao[0]["audio"], at[0]["audio"]
    sa, sb = a.get_all_samples(), b.get_all_samples()
    assert sa.sample_rate == sb.sample_rate == 16000 and sa.data.shape[0] == sb.data.shape[0] == 1
    # resamplers (libswresample here, decord's own build) agree to a few samples at the end
    n = min(sa.data.shape[1], sb.data.shape[1])
    assert abs(sa.data.shape[1] - sb.data.shape[1]) <= 32
    np.testing.assert_allclose(sa.data.numpy()[:, :n], sb.data.numpy()[:, :n], atol=2e-3 if backend == "decord" else atol)


def test_decord_mixes_only_to_mono(media):
    """decord's AudioReader can mix to mono or keep the stream's channels, nothing else: a column
    asking for more channels says so, and automatic selection serves it with another backend."""
    _require_backend("decord")
    ours, theirs = audio_pair(media, ["sine_mono_s16.wav"], backend="decord", num_channels=2)
    with pytest.raises(UnsupportedRequestError, match="decord mixes only to mono"):
        ours[0]["audio"]
    auto, _ = audio_pair(media, ["sine_mono_s16.wav"], backend=None, num_channels=2)
    decoder = auto[0]["audio"]
    assert decoder.backend != "decord"
    same_audio(decoder, theirs[0]["audio"])


@pytest.fixture(scope="module")
def cut_mov(tmp_path_factory):
    """A .mov cut without re-encoding, whose edit list hides the GOP's first 5 packets (as in
    datasets' test_video_66x50.mov): 87 packets, 82 frames shown by FFmpeg."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg CLI is not installed")
    folder = tmp_path_factory.mktemp("mov")
    full, cut = folder / "full.mov", folder / "cut_66x50.mov"
    common = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    subprocess.run(common + ["-f", "lavfi", "-i", "testsrc2=size=66x50:rate=30", "-frames:v", "87",
                             "-c:v", "libx264", "-g", "30", "-pix_fmt", "yuv420p", str(full)], check=True)
    subprocess.run(common + ["-ss", "0.16", "-i", str(full), "-c", "copy", str(cut)], check=True)
    return cut


def test_decord_refuses_frames_hidden_by_an_edit_list(cut_mov):
    with av.open(str(cut_mov)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
    with av.open(str(cut_mov)) as c:
        shown = sum(1 for _ in c.decode(video=0))
    assert (len(packets), shown) == (87, 82)
    ds = datasets.Dataset.from_dict({"video": [str(cut_mov)]})
    theirs = ds.cast_column("video", datasets.Video())[0]["video"]
    assert len(theirs) == shown
    with pytest.raises(UnsupportedRequestError, match="decord would count 5 frames that the container's edit list hides"):
        ds.cast_column("video", Video(backend="decord"))[0]["video"]
    auto = ds.cast_column("video", Video())[0]["video"]  # automatic selection moves on
    assert auto.backend != "decord"
    same_video(auto, theirs)
    # the ffmpeg backend's count is FFmpeg's
    assert len(ds.cast_column("video", Video(backend="ffmpeg"))[0]["video"]) == shown
