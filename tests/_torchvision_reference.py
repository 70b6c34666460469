"""Record torchvision 0.21's ``read_video``, ``read_video_timestamps`` and ``VideoReader`` outputs.

The fixture this writes, ``tests/data/torchvision_reference.json``, is what
``tests/test_adapter_torchvision.py`` compares ``mediadecode.adapters.torchvision`` with. It holds
shapes, dtypes, pts lists, info dicts and MD5 checksums of every decoded frame and of the audio,
for the generated media of ``tests/_torchvision_media.py`` (whose SHA-256 it records, so the test
knows it regenerated the very same files) and for a few files of ``../shared/media``.

torchvision 0.21 needs torch 2.6, so it runs in its own virtual environment, outside the
repository. Regenerate the fixture from the repository root with::

    python3 -m venv /tmp/tv021 && /tmp/tv021/bin/pip install torch==2.6.0 torchvision==0.21.0 av==18.1.0
    /tmp/tv021/bin/python tests/_torchvision_reference.py

(``av`` must be the version pinned in ``constraints.txt``: the generated media are re-encoded by
the test with the project's PyAV and must come out byte-identical.)
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from fractions import Fraction
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _torchvision_media as tvm  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "media"
OUT = HERE / "data" / "torchvision_reference.json"

# Files of ../shared/media recorded, with the read_video ranges (seconds) to record.
SHARED_FILES = {
    "nasa_13013.mp4": [(0.0, 1.0), (2.3, 3.05)],
    "test_non_zero_start.mp4": [(0.0, None), (0.5, 1.0)],
    "flipping_a_pancake.mkv": [(0.0, 0.5), (3.21, 3.5)],
    "video_90.mov": [(0.0, 0.4)],
    "unordered.mov": [(0.0, None)],
}


def md5(t) -> str:
    import torch

    return hashlib.md5(t.contiguous().numpy().tobytes() if isinstance(t, torch.Tensor) else t.tobytes()).hexdigest()[:16]


def record_read_video(path: Path, start, end, unit: str, fmt: str = "THWC", rotation: int = 0) -> dict:
    import torch
    from torchvision.io import read_video

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v, a, info = read_video(str(path), start, end, pts_unit=unit, output_format=fmt)
    thwc = v if fmt == "THWC" else v.permute(0, 2, 3, 1)
    rec = {
        "args": {"start_pts": start, "end_pts": end, "pts_unit": unit, "output_format": fmt},
        "video_shape": list(v.shape),
        "video_dtype": str(v.dtype),
        "frames_md5": [md5(f) for f in thwc],
        "audio_shape": list(a.shape),
        "audio_dtype": str(a.dtype),
        "audio_md5": md5(a),
        "info": {k: float(x) for k, x in info.items()},
    }
    if rotation:  # the same frames as players show them (what mediadecode returns)
        k = round(rotation / 90) % 4
        rec["frames_md5_rotated"] = [md5(torch.rot90(f, k, dims=(0, 1))) for f in thwc]
    if a.shape[1] > 4096:  # the audio after its first 2048 samples (see the test for why)
        rec["audio_md5_tail"] = md5(a[:, 2048:])
    if a.dtype == torch.int16:  # packed s16 as (channels, samples) float32, as swresample does
        rec["audio_md5_as_float"] = md5(_s16_as_float(a, _channels(path)).T)
    return rec


def _channels(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return c.streams.audio[0].codec_context.channels


def _s16_as_float(a, channels: int):
    """Interleaved int16 ``(1, samples * channels)`` -> float32 ``(samples, channels)``, value / 32768."""
    import torch

    return a.reshape(-1, channels).to(torch.float32) / 32768


def record_timestamps(path: Path) -> dict:
    from torchvision.io import read_video_timestamps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pts, fps = read_video_timestamps(str(path))
        sec, fps2 = read_video_timestamps(str(path), pts_unit="sec")
    return {
        "pts": [int(p) for p in pts],
        "sec": [[Fraction(s).numerator, Fraction(s).denominator] for s in sec],
        "video_fps": fps,
    }


def record_reader(path: Path, times: list[float], extra_streams=(), rotation: int = 0) -> dict:
    import torch
    from torchvision.io import VideoReader

    rec: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = VideoReader(str(path), "video")
        frames = list(reader)
        rec["video"] = {
            "pts": [f["pts"] for f in frames],
            "md5": [md5(f["data"]) for f in frames],
            "shape": list(frames[0]["data"].shape),
            "dtype": str(frames[0]["data"].dtype),
        }
        if rotation:
            k = round(rotation / 90) % 4
            rec["video"]["md5_rotated"] = [md5(torch.rot90(f["data"], k, dims=(1, 2))) for f in frames]
        seeks = []
        for t in times:
            for kf in (False, True):
                nxt = next(VideoReader(str(path), "video").seek(t, keyframes_only=kf))
                seeks.append({"time_s": t, "keyframes_only": kf, "pts": nxt["pts"]})
        rec["video"]["seeks"] = seeks
        try:
            rec["metadata"] = VideoReader(str(path)).get_metadata()
        except Exception as exc:  # the old reader fails on subtitle streams and missing durations
            rec["metadata_error"] = f"{type(exc).__name__}: {exc}"
        for stream in extra_streams:
            r = VideoReader(str(path), stream)
            got = [next(r) for _ in range(5)]
            rec[stream] = {"pts": [f["pts"] for f in got], "md5": [md5(f["data"]) for f in got],
                           "shape": list(got[0]["data"].shape)}
        try:
            audio = list(VideoReader(str(path), "audio"))
        except Exception as exc:
            audio = []
            rec["audio_error"] = f"{type(exc).__name__}: {exc}"
        if audio:
            cat = torch.cat([f["data"] for f in audio])
            rec["audio"] = {
                "pts": [f["pts"] for f in audio],
                "shapes": [list(f["data"].shape) for f in audio],
                "dtype": str(audio[0]["data"].dtype),
                "cat_shape": list(cat.shape),
                "cat_md5": md5(cat),
            }
            if cat.dtype == torch.int16:
                rec["audio"]["cat_md5_as_float"] = md5(_s16_as_float(cat, _channels(path)))
    return rec


def rotation_of(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            return int(round(frame.rotation or 0))
    return 0


def record_file(path: Path, ranges, tb: Fraction, first_pts: int) -> dict:
    rot = rotation_of(path)
    cases = [record_read_video(path, 0, None, "pts", rotation=rot)]
    for start, end in ranges:
        cases.append(record_read_video(path, start, end, "sec", rotation=rot))
        cases.append(record_read_video(path, start, end, "sec", "TCHW", rotation=rot))
    # pts unit: ticks of the video stream, frames 3..9 of the stream
    cases.append(record_read_video(path, first_pts + int(3 / 24 / tb), first_pts + int(9 / 24 / tb), "pts",
                                   rotation=rot))
    cases.append(record_read_video(path, 1000.0, 1001.0, "sec"))  # past the end: empty
    cases.append(record_read_video(path, 1000.0, 1001.0, "sec", "TCHW"))
    return {"rotation": rot, "read_video": cases, "timestamps": record_timestamps(path)}


def video_info(path: Path) -> tuple[Fraction, int]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.time_base, min(p.pts for p in c.demux(s) if p.pts is not None)


def main() -> None:
    import av
    import torch
    import torchvision

    result: dict = {
        "regenerate": "/tmp/tv021/bin/python tests/_torchvision_reference.py",
        "versions": {"torchvision": torchvision.__version__, "torch": torch.__version__, "av": av.__version__},
        "generated": {},
        "shared": {},
    }
    gen = Path("/tmp/_torchvision_reference_media")
    gen.mkdir(exist_ok=True)
    for name in tvm.MEDIA:
        path = tvm.make(gen, name)
        tb, first = video_info(path)
        start = float(first * tb)
        rec = record_file(path, [(start + 0.5, start + 0.8), (start + 0.51, start + 0.7)], tb, first)
        rec["sha256"] = tvm.sha256(path)
        rec["reader"] = record_reader(path, [start + 0.0, start + 0.3, start + 0.55], rotation=rec["rotation"])
        result["generated"][name] = rec
        print(name, "done", flush=True)
    for name, ranges in SHARED_FILES.items():
        path = SHARED / name
        if not path.is_file():
            print("skipping absent", path)
            continue
        tb, first = video_info(path)
        rec = record_file(path, ranges, tb, first)
        rec["size"] = path.stat().st_size
        extra = ("video:1",) if name == "nasa_13013.mp4" else ()
        rec["reader"] = record_reader(path, [0.0, 0.5, 1.01], extra, rotation=rec["rotation"])
        result["shared"][name] = rec
        print(name, "done", flush=True)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=None, separators=(",", ":")) + "\n")
    print("wrote", OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
