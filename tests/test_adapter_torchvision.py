"""mediadecode.adapters.torchvision against torchvision 0.21 and torchvision 0.29's datasets.

The reference is torchvision 0.21 itself: ``tests/_torchvision_reference.py`` ran it (in its own
virtual environment) on the media of ``tests/_torchvision_media.py`` and of ``../shared/media``
and recorded shapes, pts, info dicts and MD5 checksums of every frame into
``tests/data/torchvision_reference.json``. Where torchvision 0.21 was wrong (see the adapter's
docstring) the test checks the right behaviour, against FFmpeg's own output through PyAV, and
asserts that the reference really had the bug.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

import _torchvision_media as tvm
import mediadecode
from conftest import media_path
from mediadecode.adapters import torchvision as tva

REF = json.loads((Path(__file__).parent / "data" / "torchvision_reference.json").read_text())
GENERATED = sorted(REF["generated"])
SHARED = sorted(REF["shared"])


def md5(t: torch.Tensor) -> str:
    return hashlib.md5(t.contiguous().numpy().tobytes()).hexdigest()[:16]


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tv_media")


def _path(kind: str, name: str, gen_dir) -> Path:
    if kind == "shared":
        return media_path(name)
    path = tvm.make(gen_dir, name)
    if tvm.sha256(path) != REF["generated"][name]["sha256"]:
        pytest.skip(f"{name} regenerated differently from the reference's copy (another PyAV build?)")
    return path


CASES = [("generated", n) for n in GENERATED] + [("shared", n) for n in SHARED]


def _pyav_video(path):
    """time base, pts (ticks, sorted) and end (ticks: max pts + duration) of the first video
    stream, from PyAV's packets."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        packets = [(p.pts, p.duration or 0) for p in c.demux(s) if p.pts is not None]
        return s.time_base, sorted(p for p, _ in packets), max(p + d for p, d in packets)


def _pyav_audio(path) -> tuple[np.ndarray, int, float]:
    """(channels, samples) float32 of the first audio stream, decoded from a fresh open by PyAV
    (FFmpeg's own output, converted to float by swresample), its rate and first frame's time."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=s.layout, rate=s.rate)
        chunks, first = [], None
        for frame in c.decode(s):
            if first is None:
                first = float(frame.pts * frame.time_base)
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
        return np.concatenate(chunks, axis=1), s.rate, first


# -- read_video ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,name", CASES)
def test_read_video_matches_torchvision_021(kind, name, gen_dir):
    path = _path(kind, name, gen_dir)
    rec = REF[kind][name]
    tb, _, end_ticks = _pyav_video(path)
    for case in rec["read_video"]:
        a = case["args"]
        v, aud, info = tva.read_video(str(path), a["start_pts"], a["end_pts"], a["pts_unit"], a["output_format"])
        assert v.dtype == torch.uint8 and aud.dtype == torch.float32
        expected = case.get("frames_md5_rotated", case["frames_md5"])
        start_ticks = a["start_pts"] if a["pts_unit"] == "pts" else math.floor(a["start_pts"] / tb)
        if start_ticks >= end_ticks:
            # torchvision 0.21 returned the last frame for a range past the end; we return none.
            assert len(case["frames_md5"]) == 1
            expected = []
        thwc = v if a["output_format"] == "THWC" else v.permute(0, 2, 3, 1)
        assert [md5(f) for f in thwc] == expected, (name, a)
        if expected:
            ref_shape = case["video_shape"]
            if "frames_md5_rotated" in case:  # rotated by +-90 degrees: H and W swap
                t, x, y, z = ref_shape
                ref_shape = [t, y, x, z] if a["output_format"] == "THWC" else [t, x, z, y]
            assert list(v.shape) == ref_shape
        else:
            assert tuple(v.shape) == ((0, 1, 1, 3) if a["output_format"] == "THWC" else (0, 3, 1, 1))
        assert {k: float(x) for k, x in info.items()} == case["info"]
        if "audio_fps" in info:
            assert isinstance(info["audio_fps"], int)


@pytest.mark.parametrize("kind,name", CASES)
def test_read_video_audio(kind, name, gen_dir):
    path = _path(kind, name, gen_dir)
    rec = REF[kind][name]
    full = rec["read_video"][0]
    v, aud, info = tva.read_video(str(path))
    if "audio_fps" not in full["info"]:
        assert tuple(aud.shape) == (1, 0) and full["audio_shape"] == [1, 0]
        return
    ref_audio, rate, first = _pyav_audio(path)
    # The whole stream: FFmpeg's own samples, exactly.
    assert aud.shape == ref_audio.shape
    assert torch.equal(aud, torch.from_numpy(ref_audio))
    if full["audio_dtype"] == "torch.int16":
        # torchvision 0.21 returned packed s16 raw: int16 (1, samples * channels). Same samples.
        assert full["audio_shape"] == [1, aud.numel()]
        assert md5(aud) == full["audio_md5_as_float"]
    elif md5(aud) != full["audio_md5"]:
        # AAC in MP4: torchvision 0.21 seeked to 0 first, which drops the encoder's priming packet,
        # so its first frame decoded without the preceding one (it is not what FFmpeg decodes
        # from the start). Past that, identical.
        assert list(aud.shape) == full["audio_shape"]
        assert md5(aud[:, 2048:]) == full["audio_md5_tail"]
    # Ranges: exactly the samples played in [start, end), from the same decode.
    vtb, vpts, _ = _pyav_video(path)
    for case in rec["read_video"][1:]:
        a = case["args"]
        if a["output_format"] != "THWC" or a["start_pts"] >= 1000:
            continue
        if a["pts_unit"] == "pts":  # ticks of the video stream, for the audio too (0.21 bug)
            s, e = float(a["start_pts"] * vtb), float(a["end_pts"] * vtb)
        else:
            s, e = float(a["start_pts"]), float(a["end_pts"] if a["end_pts"] is not None else math.inf)
        _, got, _ = tva.read_video(str(path), a["start_pts"], a["end_pts"], a["pts_unit"])
        begin = max(s, first)
        stop = min(e, first + ref_audio.shape[1] / rate)
        assert abs(got.shape[1] - round((stop - begin) * rate)) <= 1, (name, a)
        offset = round((begin - first) * rate)
        want = ref_audio[:, offset:offset + got.shape[1]]
        # Matroska stamps audio in milliseconds: the start is known to half a tick.
        slack = 0 if name.endswith(".mp4") else rate // 2000 + 1
        best = min(
            float(np.abs(ref_audio[:, offset + k:offset + k + got.shape[1]] - got.numpy()).max())
            for k in range(-slack, slack + 1) if offset + k >= 0
            and ref_audio[:, offset + k:offset + k + got.shape[1]].shape == got.shape
        ) if got.shape[1] else 0.0
        assert best < 2e-3, (name, a, best, want.shape)
        if a["pts_unit"] == "pts" and vtb != Fraction(1, rate) and name == "h264_aac.mp4":
            # the reference read the audio range in the wrong time base
            assert abs(case["audio_shape"][1] - got.shape[1]) > 100


def test_read_video_pts_unit_fix_uses_video_time_base(gen_dir):
    path = _path("generated", "h264_aac.mp4", gen_dir)
    tb, pts, _ = _pyav_video(path)  # 1/12288 video, 1/16000 audio
    _, aud, info = tva.read_video(str(path), pts[6], pts[18], "pts")
    assert aud.shape[1] == round(float((pts[18] - pts[6]) * tb) * info["audio_fps"])


def test_read_video_sources_and_backends(gen_dir):
    path = _path("generated", "h264_aac.mp4", gen_dir)
    want = REF["generated"]["h264_aac.mp4"]["read_video"][1]
    a = want["args"]
    for src in (str(path), path, path.read_bytes(), torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)):
        v, _, _ = tva.read_video(src, a["start_pts"], a["end_pts"], "sec")
        assert [md5(f) for f in v] == want["frames_md5"]
    if any(b.name == "decord" and b.available for b in mediadecode.list_backends()):
        v, _, _ = tva.read_video(str(path), a["start_pts"], a["end_pts"], "sec", backend="decord")
        assert len(v) == len(want["frames_md5"])
        ref, _, _ = tva.read_video(str(path), a["start_pts"], a["end_pts"], "sec", backend="ffmpeg")
        assert (v.int() - ref.int()).abs().max() <= 2


def test_read_video_errors(tmp_path, gen_dir):
    path = _path("generated", "mpeg4_only.mp4", gen_dir)
    with pytest.raises(ValueError, match="output_format"):
        tva.read_video(str(path), output_format="NCHW")
    with pytest.raises(ValueError, match="end_pts"):
        tva.read_video(str(path), 2, 1)
    with pytest.raises(ValueError, match="pts_unit"):
        tva.read_video(str(path), pts_unit="ms")
    with pytest.raises(mediadecode.SourceNotFoundError):
        tva.read_video(str(tmp_path / "missing.mp4"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(mediadecode.InvalidMediaError, match="bad.mp4"):
        tva.read_video(str(bad))
    with pytest.raises(mediadecode.InvalidMediaError):
        tva.read_video_timestamps(str(bad))


# -- read_video_timestamps ----------------------------------------------------------------------


@pytest.mark.parametrize("kind,name", CASES)
def test_read_video_timestamps(kind, name, gen_dir):
    path = _path(kind, name, gen_dir)
    ref = REF[kind][name]["timestamps"]
    pts, fps = tva.read_video_timestamps(str(path))
    assert pts == ref["pts"] and all(type(p) is int for p in pts)
    assert fps == ref["video_fps"]
    sec, fps2 = tva.read_video_timestamps(str(path), pts_unit="sec")
    assert sec == [Fraction(n, d) for n, d in ref["sec"]] and fps2 == fps


def test_read_video_timestamps_without_video():
    path = media_path("sine_mono_s16.wav")
    assert tva.read_video_timestamps(str(path)) == ([], None)
    v, a, info = tva.read_video(str(path), 0, 0.5, "sec")
    assert tuple(v.shape) == (0, 1, 1, 3) and "video_fps" not in info
    assert a.shape == (1, 8000) and info["audio_fps"] == 16000


# -- VideoReader --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,name", CASES)
def test_video_reader(kind, name, gen_dir):
    path = _path(kind, name, gen_dir)
    rec = REF[kind][name]["reader"]
    with tva.VideoReader(str(path)) as reader:
        frames = list(reader)
        assert [f["pts"] for f in frames] == rec["video"]["pts"]
        assert [md5(f["data"]) for f in frames] == rec["video"].get("md5_rotated", rec["video"]["md5"])
        assert frames[0]["data"].dtype == torch.uint8 and frames[0]["data"].shape[0] == 3
        ref_pts = rec["video"]["pts"]
        for s in rec["video"]["seeks"]:
            # torchvision's pyav backend always went to the keyframe before: keyframes_only=True
            got = next(reader.seek(s["time_s"], keyframes_only=True))
            assert got["pts"] == s["pts"]
            # the precise seek: the first frame at or after time_s
            later = [p for p in ref_pts if p >= s["time_s"] - 1e-12]
            if later:
                assert next(reader.seek(s["time_s"]))["pts"] == later[0]
            else:
                with pytest.raises(StopIteration):
                    next(reader.seek(s["time_s"]))
        meta = reader.get_metadata()
        if "metadata" in rec:
            assert meta == rec["metadata"]
        else:  # torchvision raised (subtitle streams, Matroska's missing durations); we answer
            assert meta["video"]["fps"][0] == REF[kind][name]["timestamps"]["video_fps"]
            assert all(d > 0 for d in meta["video"]["duration"])
        for stream, want in ((k, v) for k, v in rec.items() if k.startswith("video:")):
            assert reader.set_current_stream(stream) is True
            got = [next(reader) for _ in range(5)]
            assert [g["pts"] for g in got] == want["pts"]
            assert [md5(g["data"]) for g in got] == want["md5"]
    if "audio" not in rec:
        with pytest.raises(mediadecode.StreamNotFoundError):
            tva.VideoReader(str(path), "audio")
        return
    with tva.VideoReader(str(path), "audio") as reader:
        blocks = list(reader)
    cat = torch.cat([b["data"] for b in blocks])
    assert cat.dtype == torch.float32
    assert blocks[0]["pts"] == rec["audio"]["pts"][0]
    if rec["audio"]["dtype"] == "torch.int16":
        assert md5(cat) == rec["audio"]["cat_md5_as_float"]
    else:
        assert list(cat.shape) == rec["audio"]["cat_shape"]
        assert md5(cat) == rec["audio"]["cat_md5"]
    if len({tuple(s) for s in rec["audio"]["shapes"][:-1]}) == 1 and rec["audio"]["dtype"] != "torch.int16":
        assert [b["pts"] for b in blocks] == rec["audio"]["pts"]


def test_video_reader_arguments(gen_dir):
    path = _path("generated", "h264_aac.mp4", gen_dir)
    with pytest.raises(ValueError, match="empty"):
        tva.VideoReader("")
    with pytest.raises(ValueError, match="src must be"):
        tva.VideoReader(123)
    with pytest.raises(ValueError, match="stream type"):
        tva.VideoReader(str(path), "subtitle")
    with pytest.raises(mediadecode.StreamNotFoundError, match="video stream number 3"):
        tva.VideoReader(str(path), "video:3")
    reader = tva.VideoReader(path.read_bytes(), "audio")
    first = next(reader)
    assert first["data"].shape == (1024, 2) and first["pts"] == 0.0
    reader.seek(0.5)
    assert next(reader)["pts"] == 0.5
    reader.set_current_stream("video")
    assert next(reader)["pts"] == 0.0
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        next(reader)


# -- datasets -----------------------------------------------------------------------------------

CLIPS = {  # class -> real clips (small and quick to decode)
    "ClassA": ["test_non_zero_start.mp4", "unordered.mov"],
    "ClassB": ["nasa_13013_rotated.mp4", "bt601_limited_range.mp4"],
}


def _layout(root: Path, kind: str) -> tuple[Path, Path | None, dict[str, int]]:
    """A dataset folder of symlinks to real clips; returns (video root, annotations, label of
    each clip path)."""
    labels = {}
    ext = ".mp4" if kind == "kinetics" else ".avi"
    video_root = root / ("videos" if kind != "kinetics" else "kinetics")
    split_root = video_root / "train" if kind == "kinetics" else video_root
    annotations = root / "annotations"
    annotations.mkdir(parents=True)
    for label, (cls, names) in enumerate(sorted(CLIPS.items())):
        (split_root / cls).mkdir(parents=True)
        for k, name in enumerate(names):
            stem = f"v_{cls}_g01_c0{k}" if kind == "ucf101" else f"{cls}_{k}"
            link = split_root / cls / (stem + ext)
            link.symlink_to(media_path(name))
            labels[str(link)] = label
            if kind == "ucf101":
                with open(annotations / "trainlist01.txt", "a") as f:
                    f.write(f"{cls}/{link.name} {label + 1}\n")
            elif kind == "hmdb51":
                with open(annotations / f"{cls}_test_split1.txt", "a") as f:
                    f.write(f"{link.name} 1\n")
    return video_root, annotations, labels


def _make(kind: str, root: Path, annotations: Path, **kw):
    from torchvision import datasets

    common = dict(frames_per_clip=4, step_between_clips=8, num_workers=0, **kw)
    if kind == "ucf101":
        return datasets.UCF101(str(root), str(annotations), output_format="TCHW", **common)
    if kind == "hmdb51":
        return datasets.HMDB51(str(root), str(annotations), output_format="TCHW", **common)
    return datasets.Kinetics(str(root), split="train", num_classes="400", **common)


def _as_list(batch):
    return batch


def _backends():
    names = ["ffmpeg"]
    if any(b.name == "decord" and b.available for b in mediadecode.list_backends()):
        names.append("decord")
    return names


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("kind", ["ucf101", "hmdb51", "kinetics"])
def test_datasets_through_mediadecode(kind, backend, tmp_path, monkeypatch):
    pytest.importorskip("torchvision")
    from torch.utils.data import DataLoader

    root, annotations, labels = _layout(tmp_path, kind)
    # torchcodec made unimportable: torchvision 0.29 cannot read a frame without the patch.
    monkeypatch.setitem(sys.modules, "torchcodec", None)
    with pytest.raises(ImportError):
        _make(kind, root, annotations)
    opened = []
    real = tva.VideoDecoder

    def spy(*args, **kwargs):
        decoder = real(*args, **kwargs)
        opened.append(decoder.backend)
        return decoder

    monkeypatch.setattr(tva, "VideoDecoder", spy)
    with tva.use_for_datasets(backend=backend) as patch:
        assert patch.active
        ds = _make(kind, root, annotations)
        assert opened and set(opened) == {backend}  # the metadata pass went through mediadecode
        clips = ds.video_clips
        # the metadata pass: frame indices and rates as torchvision 0.29 + torchcodec give them
        for path, pts, fps in zip(clips.video_paths, clips.video_pts, clips.video_fps):
            d = real(path, backend=backend)
            assert torch.equal(pts, torch.arange(d.metadata.num_frames)) and fps == d.metadata.average_fps
        assert len(ds) == sum((n - 4) // 8 + 1 for n in (12, 4, 17, 60))
        loader = DataLoader(ds, batch_size=None, num_workers=2, collate_fn=_as_list)
        seen = 0
        for i, (video, audio, label) in enumerate(loader):
            video_idx, clip_idx = clips.get_clip_location(i)
            path = clips.video_paths[video_idx]
            indices = clips.clips[video_idx][clip_idx].tolist()
            want = real(path, backend=backend).get_frames_at(indices).data  # NCHW
            assert video.shape == (4, *want.shape[1:])
            assert torch.equal(video, want)
            assert label == labels[path]
            assert audio.dtype == torch.float32 and audio.ndim == 2
            seen += 1
        assert seen == len(ds)
    assert not patch.active


def test_use_for_datasets_is_reversible_and_nests(tmp_path):
    pytest.importorskip("torchvision")
    from torchvision.datasets import video_utils

    original = video_utils._get_torchcodec
    original_pass = video_utils.VideoClips._compute_frame_pts
    outer = tva.use_for_datasets()  # a plain call
    assert video_utils._get_torchcodec().decoders.VideoDecoder.__self__.backend is None
    with tva.use_for_datasets(backend="ffmpeg"):
        assert video_utils._get_torchcodec().backend == "ffmpeg"
        outer.restore()  # out of order: the inner patch stays in force
        assert video_utils._get_torchcodec().backend == "ffmpeg"
    assert video_utils._get_torchcodec is original
    assert video_utils.VideoClips._compute_frame_pts is original_pass
    outer.restore()  # twice: nothing
    with pytest.raises(mediadecode.UnknownBackendError):
        tva.use_for_datasets(backend="no-such-backend")
    assert video_utils._get_torchcodec is original


def test_nothing_happens_on_import():
    code = ("import sys, mediadecode.adapters.torchvision; "
            "print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_video_clips_precomputed_metadata_and_progress(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torchvision")
    from torchvision.datasets.video_utils import VideoClips

    paths = [str(media_path(n)) for n in ("test_non_zero_start.mp4", "unordered.mov")]
    with tva.use_for_datasets(progress=True):
        clips = VideoClips(paths, clip_length_in_frames=4, frames_between_clips=4)
    assert "mediadecode: indexing videos" in capsys.readouterr().err
    meta = clips.metadata
    assert [len(p) for p in meta["video_pts"]] == [12, 4]
    calls = []
    monkeypatch.setattr(tva._VideoMetadataDataset, "__getitem__", lambda self, i: calls.append(i))
    with tva.use_for_datasets(progress=False):
        again = VideoClips(paths, clip_length_in_frames=4, frames_between_clips=4, _precomputed_metadata=meta)
        assert calls == [] and again.num_clips() == clips.num_clips() == 4
        video, audio, info, idx = again.get_clip(3)
        assert video.shape == (4, 50, 50, 3) and idx == 1
    assert capsys.readouterr().err == ""
    # without tqdm there is no bar, and no error
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with tva.use_for_datasets(progress=True):
        assert VideoClips(paths[:1], clip_length_in_frames=4).num_clips() == 9
