"""mediadecode.adapters.hf_datasets: Video/Audio features that decode through mediadecode, through
every dataset operation, against FFmpeg's own frames and samples (PyAV, decoded sequentially).

Nothing here touches the network: the datasets cache and HF home are temporary folders and the
Hub is offline."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import pytest
import torch

from conftest import MEDIA_DIR, MEDIA_MISSING_REASON, pyav_reference

# Before datasets reads its configuration (it does so on import).
_HF_TMP = tempfile.mkdtemp(prefix="md-hf-")
for _var, _sub in (("HF_HOME", "home"), ("HF_DATASETS_CACHE", "cache"), ("HF_MODULES_CACHE", "modules")):
    os.environ[_var] = os.path.join(_HF_TMP, _sub)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"

datasets = pytest.importorskip("datasets")
av = pytest.importorskip("av")

from mediadecode import AudioDecoder, MediaDecodeError, VideoDecoder  # noqa: E402
from mediadecode.adapters import hf_datasets as hf  # noqa: E402
from mediadecode.adapters import torchaudio as mta  # noqa: E402
from mediadecode.adapters.hf_datasets import Audio, HFAudioDecoder, HFVideoDecoder, Video, cast_to_mediadecode  # noqa: E402

VIDEOS = ["h265_video.mp4", "testsrc2_vp9.webm", "video_90.mov", "nasa_13013.mp4"]
AUDIOS = ["sine_mono_s16.wav", "nasa_13013.mp4.audio.mp3", "flipping_a_pancake.mkv"]


@pytest.fixture(autouse=True)
def _offline_tmp_cache(tmp_path, monkeypatch):
    """Every test: the datasets cache in a temporary folder, the Hub offline."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


@pytest.fixture(scope="module")
def media():
    if not MEDIA_DIR.is_dir():
        pytest.skip(MEDIA_MISSING_REASON)
    return MEDIA_DIR


@pytest.fixture(scope="module")
def refs(media):
    """FFmpeg's rgb24 frames of each video (PyAV, sequential), by file name."""
    return {name: pyav_reference(media / name) for name in VIDEOS}


def pyav_samples(path, rate=None, layout=None) -> np.ndarray:
    """FFmpeg's float32 samples ``(C, N)`` of the best audio stream, converted by libswresample."""
    with av.open(str(path)) as c:
        s = c.streams.best("audio")
        r = av.AudioResampler(format="flt", layout=layout, rate=rate)
        chunks = []
        for frame in c.decode(s):
            chunks += [o.to_ndarray() for o in r.resample(frame)]
        chunks += [o.to_ndarray() for o in r.resample(None)]
        ch = layout and {"mono": 1, "stereo": 2}[layout] or s.codec_context.layout.nb_channels
        return np.concatenate(chunks, axis=1).reshape(-1, ch).T


def video_ds(media, backend="ffmpeg", **kw):
    ds = datasets.Dataset.from_dict({"video": [str(media / n) for n in VIDEOS], "label": list(range(len(VIDEOS)))})
    return ds.cast_column("video", Video(backend=backend, **kw))


def check_video(decoder, name, refs, indices=(0, -1)):
    assert isinstance(decoder, VideoDecoder) and isinstance(decoder, HFVideoDecoder)
    ref = refs[name]
    assert len(decoder) == len(ref)
    frames = decoder.get_frames_at(list(indices)).data.permute(0, 2, 3, 1).numpy()
    for got, i in zip(frames, indices):
        assert np.array_equal(got, ref.frames[i]), (name, i)


def name_of(decoder) -> str:
    return os.path.basename(decoder.metadata.path)


# -- the feature type ----------------------------------------------------------------------------


def test_features_are_datasets_subclasses_that_keep_the_stored_type():
    assert issubclass(Video, datasets.Video) and issubclass(Audio, datasets.Audio)
    feats = datasets.Features({"video": Video(backend="ffmpeg"), "audio": Audio(sampling_rate=16000)})
    stored = feats.to_dict()
    assert stored["video"]["_type"] == "Video" and stored["audio"]["_type"] == "Audio"
    # what a user without mediadecode gets back: datasets' own classes
    plain = datasets.Features.from_dict(json.loads(json.dumps(stored)))
    assert type(plain["video"]) is datasets.Video and type(plain["audio"]) is datasets.Audio
    assert plain["audio"].sampling_rate == 16000
    assert Video()() == datasets.Video()() and Audio()() == datasets.Audio()()  # same Arrow storage


def test_cast_column_decodes_to_mediadecode(media, refs):
    ds = video_ds(media)
    assert ds.features["video"] == Video(backend="ffmpeg")
    for n, name in enumerate(VIDEOS):
        decoder = ds[n]["video"]
        assert decoder.backend == "ffmpeg" and name_of(decoder) == name
        check_video(decoder, name, refs)
    # a column read at once, and the decoder options reach the decoder
    col = video_ds(media, dimension_order="NHWC", seek_mode="approximate")["video"]
    first = col[0]
    assert first[0].shape[-1] == 3


@pytest.mark.parametrize("backend", ["torchcodec", "decord"])
def test_other_backends(media, refs, backend):
    import mediadecode as md

    if not any(b.name == backend and b.available for b in md.list_backends()):
        pytest.skip(f"backend {backend} is not available here")
    ds = datasets.Dataset.from_dict({"video": [str(media / "nasa_13013.mp4")]}).cast_column("video", Video(backend=backend))
    decoder = ds[0]["video"]
    assert decoder.backend == backend
    frame = decoder[5].permute(1, 2, 0).numpy().astype(int)
    tol = 0 if backend == "torchcodec" else 3  # decord's colour conversion differs slightly
    assert np.abs(frame - refs["nasa_13013.mp4"].frames[5].astype(int)).max() <= max(tol, 1)


def test_bytes_values_and_decoder_values(media, refs):
    data = (media / "h265_video.mp4").read_bytes()
    ds = datasets.Dataset.from_dict({"video": [{"path": None, "bytes": data}, {"path": "h265_video.mp4", "bytes": data}]})
    ds = ds.cast_column("video", Video())
    for n in range(2):
        decoder = ds[n]["video"]
        assert decoder.source.kind == "bytes"
        check_video(decoder, "h265_video.mp4", refs)
    assert ds[1]["video"].metadata.path == "h265_video.mp4"
    # decoding is idempotent and a decoder encodes back to what it reads
    feature = Video()
    decoder = VideoDecoder(str(media / "h265_video.mp4"))
    assert feature.decode_example(decoder) is decoder
    assert feature.encode_example(decoder) == {"path": str(media / "h265_video.mp4"), "bytes": None}
    assert feature.encode_example(VideoDecoder(data)) == {"path": None, "bytes": data}


def test_remote_value_goes_to_mediadecode(media):
    # Port 9 on the loopback interface refuses connections: no network is used.
    ds = datasets.Dataset.from_dict({"video": [{"path": "http://127.0.0.1:9/clip.mp4", "bytes": None}]})
    ds = ds.cast_column("video", Video(backend="ffmpeg"))
    with pytest.raises((MediaDecodeError, ValueError), match="127.0.0.1:9/clip.mp4"):
        ds[0]["video"]


def test_decode_false_and_errors(media, tmp_path):
    ds = video_ds(media).cast_column("video", Video(decode=False))
    assert ds[0]["video"] == {"path": str(media / VIDEOS[0]), "bytes": None}
    with pytest.raises(RuntimeError, match="Decoding is disabled"):
        Video(decode=False).decode_example({"path": "x", "bytes": None})
    with pytest.raises(ValueError, match="both are None"):
        Video().decode_example({"path": None, "bytes": None})
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    ds = datasets.Dataset.from_dict({"video": [str(bad)]}).cast_column("video", Video(backend="ffmpeg"))
    with pytest.raises(MediaDecodeError, match="bad.mp4"):
        ds[0]["video"]


# -- dataset operations --------------------------------------------------------------------------


def test_map_filter_select_shuffle_split_concatenate(media, refs):
    ds = video_ds(media)
    # map that does not read the media column
    m = ds.map(lambda e: {"double": e["label"] * 2})
    assert m.features["video"] == ds.features["video"] and m["double"] == [0, 2, 4, 6]
    check_video(m[1]["video"], VIDEOS[1], refs)
    # map that reads it: through input_columns, datasets writes the column back from storage
    m = ds.map(lambda v: {"num_frames": len(v)}, input_columns=["video"])
    assert m["num_frames"] == [len(refs[n]) for n in VIDEOS]
    check_video(m[2]["video"], VIDEOS[2], refs)
    # ... or return the stored form of the decoder
    feature = ds.features["video"]
    m = ds.map(lambda e: {"video": feature.encode_example(e["video"]), "w": e["video"].metadata.width})
    assert m["w"] == [refs[n].frames.shape[2] for n in VIDEOS]
    check_video(m[3]["video"], VIDEOS[3], refs)

    f = ds.filter(lambda e: e["label"] % 2 == 1)
    assert [name_of(f[i]["video"]) for i in range(len(f))] == [VIDEOS[1], VIDEOS[3]]
    check_video(f[0]["video"], VIDEOS[1], refs)
    s = ds.select([3, 0])
    assert isinstance(s.features["video"], Video)
    check_video(s[0]["video"], VIDEOS[3], refs)
    sh = ds.shuffle(seed=1)
    for row in sh:
        assert name_of(row["video"]) == VIDEOS[row["label"]]
    split = ds.train_test_split(test_size=2, seed=0)
    for part in split.values():
        assert part.features["video"] == Video(backend="ffmpeg")
        check_video(part[0]["video"], VIDEOS[part[0]["label"]], refs)
    both = datasets.concatenate_datasets([ds, ds.select([0])])
    assert both.features["video"] == Video(backend="ffmpeg") and len(both) == len(VIDEOS) + 1
    check_video(both[len(VIDEOS)]["video"], VIDEOS[0], refs)


def test_save_to_disk_load_from_disk(media, refs, tmp_path):
    ds = video_ds(media)
    ds.save_to_disk(str(tmp_path / "saved"))
    info = json.loads((tmp_path / "saved" / "dataset_info.json").read_text())
    assert info["features"]["video"]["_type"] == "Video"
    loaded = datasets.load_from_disk(str(tmp_path / "saved"))
    # datasets rebuilds its own feature class: readable without mediadecode ...
    assert type(loaded.features["video"]) is datasets.Video
    # save_to_disk embedded the files: the stored value is the bytes and the file name
    stored = loaded.cast_column("video", datasets.Video(decode=False))[0]["video"]
    assert stored == {"path": VIDEOS[0], "bytes": (media / VIDEOS[0]).read_bytes()}
    # ... and cast back to mediadecode in one call (or with cast_column)
    again = cast_to_mediadecode(loaded, backend="ffmpeg")
    assert again.features["video"] == Video(backend="ffmpeg")
    decoder = again[2]["video"]
    assert decoder.source.kind == "bytes" and name_of(decoder) == VIDEOS[2]
    check_video(decoder, VIDEOS[2], refs)
    dd = cast_to_mediadecode(datasets.DatasetDict({"train": loaded}), backend="ffmpeg")
    assert isinstance(dd["train"][0]["video"], HFVideoDecoder)


def test_iterable_dataset_threaded_decode(media, refs):
    ds = video_ds(media)
    it = ds.to_iterable_dataset(num_shards=2).decode(num_threads=3)
    assert isinstance(it.features["video"], Video) and it.features["video"].decode
    seen = []
    for row in it:
        name = VIDEOS[row["label"]]
        check_video(row["video"], name, refs)
        seen.append(name)
    assert sorted(seen) == sorted(VIDEOS)
    plain = [row["video"] for row in ds.to_iterable_dataset().decode(False)]
    assert plain[0] == {"path": str(media / VIDEOS[0]), "bytes": None}


def test_with_format_torch(media, refs):
    ds = video_ds(media)
    if hf.RECOGNISED_BY_DATASETS:
        # datasets' torch formatter passes its decoders through, and ours are among them
        row = ds.with_format("torch")[1]
        assert isinstance(row["label"], torch.Tensor) and int(row["label"]) == 1
        check_video(row["video"], VIDEOS[1], refs)
    else:  # it tensorizes any other object: documented, with the spelling below
        with pytest.raises((TypeError, ValueError)):
            ds.with_format("torch")[0]
    # formatting only the other columns works everywhere
    fmt = ds.with_format("torch", columns=["label"], output_all_columns=True)
    row = fmt[1]
    assert isinstance(row["label"], torch.Tensor) and int(row["label"]) == 1
    check_video(row["video"], VIDEOS[1], refs)
    batch = fmt[:2]
    assert torch.equal(batch["label"], torch.tensor([0, 1]))
    assert [name_of(d) for d in batch["video"]] == VIDEOS[:2]


# -- DataLoader workers --------------------------------------------------------------------------


def _first_frames(batch):
    """collate_fn run in the worker: decode frame 0 of each item there."""
    return [(row["label"], row["video"][0], row["video"]) for row in batch]


def test_dataloader_with_two_workers(media, refs):
    ds = video_ds(media)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=_first_frames, multiprocessing_context="fork")
    got = [item for batch in loader for item in batch]
    assert [label for label, _, _ in got] == list(range(len(VIDEOS)))
    for label, frame, decoder in got:
        name = VIDEOS[label]
        assert np.array_equal(frame.permute(1, 2, 0).numpy(), refs[name].frames[0])
        # the decoder came back from the worker pickled as (source, options) and reopens here
        assert isinstance(decoder, HFVideoDecoder) and decoder.backend == "ffmpeg"
        assert name_of(decoder) == name
        check_video(decoder, name, refs, indices=(len(refs[name]) // 2,))
    # an IterableDataset sharded over the workers
    it = ds.to_iterable_dataset(num_shards=2)
    loader = torch.utils.data.DataLoader(it, batch_size=None, num_workers=2, collate_fn=lambda row: row)
    rows = list(loader)
    assert sorted(r["label"] for r in rows) == list(range(len(VIDEOS)))
    for r in rows:
        check_video(r["video"], VIDEOS[r["label"]], refs, indices=(1,))


# -- Audio ---------------------------------------------------------------------------------------


def test_audio_feature(media):
    ds = datasets.Dataset.from_dict({"audio": [str(media / n) for n in AUDIOS]}).cast_column("audio", Audio(backend="ffmpeg"))
    assert ds.features["audio"] == Audio(backend="ffmpeg")
    for n, name in enumerate(AUDIOS):
        decoder = ds[n]["audio"]
        assert isinstance(decoder, AudioDecoder) and isinstance(decoder, HFAudioDecoder)
        ref = pyav_samples(media / name)
        assert np.array_equal(decoder.get_all_samples().data.numpy(), ref)
        assert decoder["sampling_rate"] == decoder.metadata.sample_rate
        # datasets' dict access: channels averaged
        assert np.allclose(decoder["array"], ref.mean(axis=0))
    mono16k = ds.cast_column("audio", Audio(sampling_rate=16000, num_channels=1, backend="ffmpeg"))
    decoder = mono16k[1]["audio"]
    ref = pyav_samples(media / AUDIOS[1], rate=16000, layout="mono")
    got = decoder.get_all_samples()
    assert got.sample_rate == 16000 and decoder["sampling_rate"] == 16000
    assert got.data.shape[0] == 1 and abs(got.data.shape[1] - ref.shape[1]) <= 16
    n = min(got.data.shape[1], ref.shape[1])
    np.testing.assert_allclose(got.data.numpy()[:, :n], ref[:, :n], atol=1e-4)
    # bytes, encode back, save/load
    data = (media / AUDIOS[0]).read_bytes()
    b = datasets.Dataset.from_dict({"audio": [data]}).cast_column("audio", Audio())
    assert np.array_equal(b[0]["audio"].get_all_samples().data.numpy(), pyav_samples(media / AUDIOS[0]))
    assert Audio().encode_example(b[0]["audio"]) == {"path": None, "bytes": data}
    assert Audio().encode_example(str(media / AUDIOS[0])) == {"path": str(media / AUDIOS[0]), "bytes": None}


def _audio_items(batch):
    return [(os.path.basename(row["audio"]["path"]), row["audio"].get_all_samples().data, row["label"]) for row in batch]


# -- load_dataset("videofolder"/"audiofolder") ---------------------------------------------------


# videofolder does not list .webm among its extensions
FOLDER_VIDEOS = ["h265_video.mp4", "flipping_a_pancake.mkv", "video_90.mov", "nasa_13013.mp4"]


@pytest.fixture
def folders(media, tmp_path):
    """videofolder/audiofolder layouts (class sub-folders) of symlinks to the real files."""
    vroot, aroot = tmp_path / "videos", tmp_path / "audios"
    for n, name in enumerate(FOLDER_VIDEOS):
        d = vroot / "train" / ("even" if n % 2 == 0 else "odd")
        d.mkdir(parents=True, exist_ok=True)
        (d / name).symlink_to(media / name)
    for n, name in enumerate(AUDIOS):
        d = aroot / "train" / ("tone" if name.endswith(".wav") else "other")
        d.mkdir(parents=True, exist_ok=True)
        (d / name).symlink_to(media / name)
    return vroot, aroot


@pytest.mark.parametrize("backend", ["ffmpeg", "torchcodec"])
def test_videofolder_and_audiofolder_in_dataloader(folders, refs, media, tmp_path, backend):
    if backend not in mta.list_audio_backends():
        pytest.skip(f"backend {backend} is not available here")
    vroot, aroot = folders
    cache = str(tmp_path / "hf-cache")
    vds = datasets.load_dataset("videofolder", data_dir=str(vroot), split="train", cache_dir=cache)
    assert isinstance(vds.features["video"], datasets.Video) and len(vds) == len(FOLDER_VIDEOS)
    vds = vds.cast_column("video", Video(backend=backend))
    loader = torch.utils.data.DataLoader(
        vds, batch_size=2, num_workers=2, collate_fn=lambda b: [(name_of(r["video"]), r["video"].backend, r["video"][0], r["label"]) for r in b],
        multiprocessing_context="fork",
    )
    got = [item for batch in loader for item in batch]
    assert sorted(name for name, *_ in got) == sorted(FOLDER_VIDEOS)
    labels = vds.features["label"].names
    for name, used, frame, label in got:
        assert used == backend
        assert labels[label] == ("even" if FOLDER_VIDEOS.index(name) % 2 == 0 else "odd")
        ref = refs[name] if name in refs else pyav_reference(media / name)
        assert np.array_equal(frame.permute(1, 2, 0).numpy(), ref.frames[0])

    ads = datasets.load_dataset("audiofolder", data_dir=str(aroot), split="train", cache_dir=cache)
    ads = cast_to_mediadecode(ads, backend=backend)
    assert ads.features["audio"] == Audio(backend=backend)
    loader = torch.utils.data.DataLoader(ads, batch_size=2, num_workers=2, collate_fn=_audio_items, multiprocessing_context="fork")
    got = [item for batch in loader for item in batch]
    assert sorted(name for name, *_ in got) == sorted(AUDIOS)
    for name, samples, _ in got:
        ref = pyav_samples(media / name)
        if backend == "ffmpeg":
            assert np.array_equal(samples.numpy(), ref)
        else:  # another FFmpeg build behind torchcodec: same samples to float rounding
            assert samples.shape == ref.shape
            np.testing.assert_allclose(samples.numpy(), ref, atol=1e-4)


_WITHOUT_TORCHCODEC = """
import json, os, sys, tempfile
sys.modules["torchcodec"] = None  # what a machine without torchcodec has: no such module
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp()
os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
import datasets
from mediadecode.adapters import hf_datasets as hf
ds = datasets.Dataset.from_dict({"video": [sys.argv[1]], "label": [0]}).cast_column("video", hf.Video(backend="ffmpeg"))
out = {"recognised": hf.RECOGNISED_BY_DATASETS, "reason": hf.NOT_RECOGNISED_REASON}
attempts = {
    "numpy": lambda: ds.with_format("numpy")[0],
    "torch": lambda: ds.with_format("torch")[0],
    "map": lambda: ds.map(lambda e: {"n": len(e["video"])}),
    "from_list": lambda: datasets.Dataset.from_list([{"v": ds[0]["video"]}]),
}
for what, attempt in attempts.items():
    try:
        attempt()
        out[what] = "no error"
    except Exception as exc:
        out[what] = f"{type(exc).__name__}: {exc}"
out["input_columns"] = list(ds.map(lambda v: {"n": len(v)}, input_columns=["video"])["n"])
fmt = ds.with_format("numpy", columns=["label"], output_all_columns=True)[0]
out["columns"] = [type(fmt["label"]).__module__, type(fmt["video"]).__name__]
print(json.dumps(out))
"""


def test_without_torchcodec_datasets_gets_a_clear_error(media, refs):
    """Without torchcodec, datasets recognises no decoder: the operations that need it fail with
    our TypeError saying what to do (not a silent decode of every frame, not ArrowInvalid), and
    the documented spellings work."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    run = subprocess.run([sys.executable, "-c", _WITHOUT_TORCHCODEC, str(media / VIDEOS[0])],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["recognised"] is False and "torchcodec is not installed" in out["reason"]
    for what in ("numpy", "torch", "map", "from_list"):
        assert out[what].startswith("TypeError: HFVideoDecoder is not an array"), (what, out[what])
        assert "output_all_columns=True" in out[what] and "input_columns" in out[what]
    assert out["input_columns"] == [len(refs[VIDEOS[0]])]
    assert out["columns"] == ["numpy", "HFVideoDecoder"]
