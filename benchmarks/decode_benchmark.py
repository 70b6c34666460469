"""CPU decoding benchmark: mediadecode (each available backend) against torchcodec, decord and the
FFmpeg CLI floor, in one run, on the same files and workloads.

Reproduce (writes docs/performance.md and docs/performance.png)::

    .venv/bin/pip install -c constraints.txt -e ".[test,torchcodec,decord,bench]"
    .venv/bin/python benchmarks/decode_benchmark.py --write-doc docs/performance.md

``--quick`` runs one small file, one repetition and a short MP3 (a smoke test, used by the test
suite); ``--reps`` sets the number of timed repetitions (the median is reported, after one
untimed warm-up).

Media (generated once with the ffmpeg CLI into ``--media-dir``; 10 s, 30 fps, GOP 60, testsrc2
with temporal noise so that frames cost what camera footage costs): H.264 at 360p, 720p and
1080p; HEVC, VP9 and AV1 at 720p; plus the real clips ``nasa_13013.mp4`` and
``flipping_a_pancake.mkv`` from ``../shared/media`` when present; a 5-minute stereo MP3; a folder
of 8 short 360p H.264 clips for the DataLoader workload.

Workloads, each timed from opening the file (a new decoder per repetition, as a dataset item
does): every frame; 10 uniformly spaced frames; 10 random frames (fixed seed); 8 clips of 16
frames at random indices (torchcodec's sampler and ours draw the same clips from the same torch
seed; decord gets the same frame indices); decoding the whole MP3; DataLoader throughput (frames
per second, 2 worker processes, one 16-frame clip per item); peak RSS of a fresh process running
one workload. Each library runs in its own subprocess (decord and torchcodec's FFmpeg libraries
must not meet in one process). "1 thread" asks each library for one decoding thread
(``num_threads=1``, ``num_ffmpeg_threads=1``, ``ffmpeg -threads 1``); "default" uses each
library's own default.

mediadecode's frame-index cache is switched off in the timing runs (every open scans the file,
as torchcodec's exact mode does); the DataLoader workload keeps each library's defaults, cache
included, since that is what a training job gets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED_MEDIA = ROOT.parent / "shared" / "media"

VIDEO_WORKLOADS = ["all", "uniform10", "random10", "clips8x16"]
WORKLOAD_TITLES = {
    "all": "every frame",
    "uniform10": "10 uniform frames",
    "random10": "10 random frames",
    "clips8x16": "8 clips x 16 frames",
    "mp3": "5-min stereo MP3",
    "dataloader": "DataLoader, 2 workers (frames/s)",
}
LIBRARIES = ["mediadecode[ffmpeg]", "mediadecode[torchcodec]", "mediadecode[decord]", "torchcodec", "decord"]
REFERENCE = "torchcodec"


# -- media ---------------------------------------------------------------------------------------

GENERATED = {
    # name: (size, encoder arguments)
    "h264_360p.mp4": ("640x360", ["-c:v", "libx264", "-preset", "fast", "-crf", "23", "-g", "60",
                                  "-keyint_min", "60", "-sc_threshold", "0", "-bf", "2"]),
    "h264_720p.mp4": ("1280x720", ["-c:v", "libx264", "-preset", "fast", "-crf", "23", "-g", "60",
                                   "-keyint_min", "60", "-sc_threshold", "0", "-bf", "2"]),
    "h264_1080p.mp4": ("1920x1080", ["-c:v", "libx264", "-preset", "fast", "-crf", "23", "-g", "60",
                                     "-keyint_min", "60", "-sc_threshold", "0", "-bf", "2"]),
    "hevc_720p.mp4": ("1280x720", ["-c:v", "libx265", "-preset", "fast", "-crf", "26", "-tag:v", "hvc1",
                                   "-x265-params", "keyint=60:min-keyint=60:scenecut=0:log-level=error"]),
    "vp9_720p.webm": ("1280x720", ["-c:v", "libvpx-vp9", "-b:v", "2M", "-g", "60", "-deadline", "realtime",
                                   "-cpu-used", "8", "-row-mt", "1"]),
    "av1_720p.mkv": ("1280x720", ["-c:v", "libsvtav1", "-preset", "10", "-crf", "35", "-g", "60",
                                 "-svtav1-params", "lp=2"]),
}
REAL = ["nasa_13013.mp4", "flipping_a_pancake.mkv"]


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _source(size: str, seconds: float, seed: int) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}",
            "-vf", f"noise=alls=12:allf=t+u:all_seed={seed}", "-pix_fmt", "yuv420p"]


def prepare_media(media_dir: Path, quick: bool) -> dict:
    media_dir.mkdir(parents=True, exist_ok=True)
    names = ["h264_360p.mp4"] if quick else list(GENERATED)
    videos = []
    for name in names:
        path = media_dir / name
        if not path.exists():
            size, enc = GENERATED[name]
            print(f"encoding {name}", file=sys.stderr)
            tmp = path.with_name("tmp_" + name)
            _ffmpeg(*_source(size, 2 if quick else 10, 1), *enc, "-an", str(tmp))
            tmp.rename(path)
        videos.append(str(path))
    if not quick:
        videos += [str(SHARED_MEDIA / n) for n in REAL if (SHARED_MEDIA / n).exists()]
    mp3 = media_dir / ("stereo_20s.mp3" if quick else "stereo_5min.mp3")
    if not mp3.exists():
        seconds = 20 if quick else 300
        _ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
                "-f", "lavfi", "-i", f"anoisesrc=color=pink:sample_rate=44100:duration={seconds}:amplitude=0.2",
                "-filter_complex", "[0:a][1:a]join=inputs=2:channel_layout=stereo[a]", "-map", "[a]",
                "-c:a", "libmp3lame", "-b:a", "192k", str(mp3))
    clips = media_dir / ("clips_quick" if quick else "clips")
    clips.mkdir(exist_ok=True)
    for k in range(2 if quick else 8):
        path = clips / f"clip_{k}.mp4"
        if not path.exists():
            _ffmpeg(*_source("640x360", 2 if quick else 5, k + 2), *GENERATED["h264_360p.mp4"][1], "-an", str(path))
    return {"videos": videos, "mp3": str(mp3), "clips": sorted(str(p) for p in clips.glob("clip_*.mp4"))}


# -- one library, in its own process ---------------------------------------------------------------


def _indices(n: int) -> dict[str, list[int]]:
    import random

    rng = random.Random(0)
    return {
        "all": list(range(n)),
        "uniform10": [int(i * n / 10) for i in range(10)],
        "random10": rng.sample(range(n), min(10, n)),
    }


class _Lib:
    """How one library opens a video and runs each workload. ``threads``: 1 or None (default)."""

    def __init__(self, name: str, threads: int | None):
        self.name, self.threads = name, threads
        if name.startswith("mediadecode"):
            import mediadecode
            from mediadecode import index_cache, samplers

            self.md, self.samplers = mediadecode, samplers
            self.backend = name[len("mediadecode["):-1]
            self.index_cache = index_cache
        elif name == "torchcodec":
            import torchcodec.decoders
            import torchcodec.samplers

            self.tc = torchcodec
        elif name == "decord":
            import decord

            self.decord = decord
        else:
            raise ValueError(name)

    def no_cache(self) -> None:
        if self.name.startswith("mediadecode"):
            self.index_cache.configure(enabled=False)

    def open(self, path: str):
        if self.name.startswith("mediadecode"):
            kw = {} if self.threads is None else {"num_threads": self.threads}
            return self.md.VideoDecoder(path, backend=self.backend, **kw)
        if self.name == "torchcodec":
            kw = {} if self.threads is None else {"num_ffmpeg_threads": self.threads}
            return self.tc.decoders.VideoDecoder(path, **kw)
        return self.decord.VideoReader(path, ctx=self.decord.cpu(0), num_threads=self.threads or 0)

    def run(self, path: str, workload: str):
        import torch

        dec = self.open(path)
        n = len(dec)
        if workload == "clips8x16":
            torch.manual_seed(0)
            if self.name.startswith("mediadecode"):
                out = self.samplers.clips_at_random_indices(dec, num_clips=8, num_frames_per_clip=16).data
            elif self.name == "torchcodec":
                out = self.tc.samplers.clips_at_random_indices(dec, num_clips=8, num_frames_per_clip=16).data
            else:
                starts = torch.randint(0, n - 16 + 1, (8,)).tolist()
                flat = [s + k for s in starts for k in range(16)]
                out = torch.from_numpy(dec.get_batch(flat).asnumpy())
        else:
            idx = _indices(n)[workload]
            if self.name == "decord":
                out = torch.from_numpy(dec.get_batch(idx).asnumpy())
            else:
                out = dec.get_frames_at(idx).data
        if self.name.startswith("mediadecode"):
            dec.close()
        return tuple(out.shape)

    def run_audio(self, path: str):
        if self.name.startswith("mediadecode"):
            dec = self.md.AudioDecoder(path, backend=self.backend)
            out = dec.get_all_samples().data
            dec.close()
        elif self.name == "torchcodec":
            out = self.tc.decoders.AudioDecoder(path).get_all_samples().data
        else:
            raise ValueError("decord audio is not benchmarked")
        return tuple(out.shape)


class _ClipDataset:
    """One 16-frame clip at a random start per item; a new decoder per item (map-style)."""

    def __init__(self, lib_name: str, files: list[str], items: int):
        self.lib_name, self.files, self.items = lib_name, files, items
        self.lib = None

    def __len__(self):
        return self.items

    def __getitem__(self, i):
        import torch

        if self.lib is None:
            self.lib = _Lib(self.lib_name, None)
        path = self.files[i % len(self.files)]
        dec = self.lib.open(path)
        n = len(dec)
        start = (i * 7919) % (n - 16)
        idx = list(range(start, start + 16))
        if self.lib_name == "decord":
            out = torch.from_numpy(dec.get_batch(idx).asnumpy()).permute(0, 3, 1, 2)
        else:
            out = dec.get_frames_at(idx).data
        if self.lib_name.startswith("mediadecode"):
            dec.close()
        return out


def _dataloader_fps(lib_name: str, files: list[str], items: int) -> float:
    import torch

    loader = torch.utils.data.DataLoader(
        _ClipDataset(lib_name, files, items), batch_size=4, num_workers=2,
        multiprocessing_context="fork",
    )
    start = time.perf_counter()
    frames = sum(batch.shape[0] * batch.shape[1] for batch in loader)
    return frames / (time.perf_counter() - start)


def _peak_rss_mib() -> float:
    # VmHWM: this process's own peak. ru_maxrss would carry the parent's peak across fork+exec.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_main(args) -> None:
    """Run inside a subprocess: time every (file, workload) for one library; print JSON."""
    import torch

    torch.set_num_threads(1)
    lib = _Lib(args.worker, None if args.threads == "default" else 1)
    result: dict = {"times": {}, "errors": {}}
    if args.mode == "video":
        lib.no_cache()
        for path in args.files:
            for workload in VIDEO_WORKLOADS:
                key = f"{Path(path).name}|{workload}"
                try:
                    lib.run(path, workload)  # warm-up, untimed
                    times = []
                    for _ in range(args.reps):
                        t = time.perf_counter()
                        lib.run(path, workload)
                        times.append(time.perf_counter() - t)
                    result["times"][key] = times
                except Exception as exc:  # a library that cannot do it: reported, not fatal
                    result["errors"][key] = f"{type(exc).__name__}: {exc}"[:300]
    elif args.mode == "mp3":
        lib.no_cache()
        lib.run_audio(args.files[0])
        times = []
        for _ in range(args.reps):
            t = time.perf_counter()
            lib.run_audio(args.files[0])
            times.append(time.perf_counter() - t)
        result["times"]["mp3"] = times
    elif args.mode == "dataloader":
        items = len(args.files) * 6
        _dataloader_fps(args.worker, args.files, len(args.files))  # warm-up
        result["times"]["dataloader"] = [_dataloader_fps(args.worker, args.files, items) for _ in range(args.reps)]
    elif args.mode == "rss":
        lib.no_cache()
        path, workload = args.files[0], args.workload
        if workload == "mp3":
            lib.run_audio(path)
        else:
            lib.run(path, workload)
        result["rss_mib"] = _peak_rss_mib()
    print("RESULT " + json.dumps(result))


def _spawn(lib: str, mode: str, files: list[str], threads: str, reps: int, workload: str = "") -> dict:
    cmd = [sys.executable, __file__, "--worker", lib, "--mode", mode, "--threads", threads,
           "--reps", str(reps), "--workload", workload, "--files", *files]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"times": {}, "errors": {mode: f"exit {proc.returncode}: {proc.stderr[-400:]}"}}


# -- FFmpeg CLI floor ------------------------------------------------------------------------------


def ffmpeg_floor(path: str, threads: str, reps: int, rgb: bool) -> list[float]:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin"]
    if threads == "1":
        cmd += ["-threads", "1"]
    cmd += ["-i", path, "-map", "0:v:0"] if not path.endswith(".mp3") else ["-i", path]
    if path.endswith(".mp3"):
        cmd += ["-f", "f32le", "-y", "/dev/null"]
    elif rgb:
        cmd += ["-pix_fmt", "rgb24", "-f", "rawvideo", "-y", "/dev/null"]
    else:
        cmd += ["-f", "null", "-"]
    subprocess.run(cmd, check=True)  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        times.append(time.perf_counter() - t)
    return times


# -- driver ----------------------------------------------------------------------------------------


def available_libraries() -> list[str]:
    import importlib.util

    import mediadecode

    libs = []
    backends = {b.name: b for b in mediadecode.list_backends()}
    for lib in LIBRARIES:
        if lib.startswith("mediadecode"):
            b = backends.get(lib[len("mediadecode["):-1])
            if b is not None and b.available:
                libs.append(lib)
        elif importlib.util.find_spec(lib) is not None:
            libs.append(lib)
    return libs


def run_all(args) -> dict:
    media = prepare_media(Path(args.media_dir), args.quick)
    if args.only:
        media["videos"] = [v for v in media["videos"] if any(o in Path(v).name for o in args.only)]
    libs = available_libraries()
    if args.libraries:
        libs = [lib for lib in libs if lib in args.libraries]
    res: dict = {"libraries": libs, "threads": {}, "rss": {}, "errors": {}, "media": media}
    for threads in ("1", "default"):
        table: dict = {}
        for lib in libs:
            print(f"[{threads} thread(s)] {lib}: video", file=sys.stderr)
            out = _spawn(lib, "video", media["videos"], threads, args.reps)
            for key, times in out["times"].items():
                table.setdefault(key, {})[lib] = times
            res["errors"].update({f"{lib}|{threads}|{k}": v for k, v in out["errors"].items()})
            if "mp3" not in args.skip and lib != "decord" and lib != "mediadecode[decord]":
                out = _spawn(lib, "mp3", [media["mp3"]], threads, args.reps)
                for key, times in out["times"].items():
                    table.setdefault(key, {})[lib] = times
                res["errors"].update({f"{lib}|{threads}|{k}": v for k, v in out["errors"].items()})
        for path in media["videos"]:
            for rgb, label in ((True, "ffmpeg CLI (rgb24)"), (False, "ffmpeg CLI (decode only)")):
                table.setdefault(f"{Path(path).name}|all", {})[label] = ffmpeg_floor(path, threads, args.reps, rgb)
        if "mp3" not in args.skip:
            table.setdefault("mp3", {})["ffmpeg CLI (decode only)"] = ffmpeg_floor(media["mp3"], threads, args.reps, False)
        res["threads"][threads] = table
    dl: dict = {}
    for lib in libs if "dataloader" not in args.skip else []:
        print(f"dataloader: {lib}", file=sys.stderr)
        out = _spawn(lib, "dataloader", media["clips"], "default", max(1, min(args.reps, 3)))
        if "dataloader" in out["times"]:
            dl[lib] = out["times"]["dataloader"]
        res["errors"].update({f"{lib}|dataloader|{k}": v for k, v in out["errors"].items()})
    res["dataloader"] = dl
    big = [p for p in media["videos"] if "1080p" in p] or media["videos"][:1]
    small = [p for p in media["videos"] if "360p" in p] or media["videos"][:1]
    rss_cases = [("clips8x16", big[0]), ("random10", big[0]), ("all", small[0]), ("mp3", media["mp3"])]
    for lib in libs if "rss" not in args.skip else []:
        for workload, path in rss_cases:
            if workload == "mp3" and "decord" in lib:
                continue
            print(f"rss: {lib} {workload}", file=sys.stderr)
            out = _spawn(lib, "rss", [path], "1", 1, workload)
            if "rss_mib" in out:
                res["rss"].setdefault(f"{Path(path).name}|{workload}", {})[lib] = out["rss_mib"]
            else:
                res["errors"][f"{lib}|rss|{workload}"] = str(out.get("errors"))
    return res


def _median(xs):
    return statistics.median(xs) if xs else float("nan")


def _fmt_ratio(x, ref):
    if ref is None or x is None:
        return "—"
    return f"{x / ref:.2f}x"


def render(res: dict, command: str, png_name: str | None) -> str:
    libs = res["libraries"]
    lines = ["# Performance", "",
             "CPU decoding, mediadecode against torchcodec, decord and the FFmpeg CLI floor, measured in one run",
             "by `benchmarks/decode_benchmark.py`. Reproduce with:", "", "```", command, "```", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}, {_versions()}.", "",
             "Times are medians of the repetitions, in seconds, from opening the file to having the "
             "uint8 tensor; the ratio in brackets is to torchcodec's time in the same run (below 1: faster).",
             "mediadecode's frame-index cache is off in these runs: every open scans the file.", ""]
    for threads, title in (("1", "One decoding thread"), ("default", "Each library's default threads")):
        table = res["threads"].get(threads, {})
        if not table:
            continue
        lines += [f"## {title}", ""]
        cols = libs + ["ffmpeg CLI (rgb24)", "ffmpeg CLI (decode only)"]
        lines.append("| file | workload | " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * (len(cols) + 2))
        keys = sorted(table, key=lambda k: (k == "mp3", k.split("|")[0], VIDEO_WORKLOADS.index(k.split("|")[1]) if "|" in k else 0))
        for key in keys:
            row = table[key]
            ref = _median(row[REFERENCE]) if REFERENCE in row else None
            file, workload = key.split("|") if "|" in key else (Path(res["media"]["mp3"]).name, "mp3")
            cells = []
            for c in cols:
                if c in row:
                    m = _median(row[c])
                    cells.append(f"{m:.3f} ({_fmt_ratio(m, ref)})" if c != REFERENCE else f"{m:.3f}")
                else:
                    cells.append("—")
            lines.append(f"| {file} | {WORKLOAD_TITLES[workload]} | " + " | ".join(cells) + " |")
        lines.append("")
    if res.get("dataloader"):
        lines += ["## DataLoader throughput", "",
                  "Frames per second (higher is better), 2 fork workers, batch 4, one 16-frame clip per item, a new decoder "
                  "per item, each library's defaults (mediadecode: one thread per worker, index cache on).", "",
                  "| library | frames/s | ratio to torchcodec |", "|---|---|---|"]
        ref = _median(res["dataloader"].get(REFERENCE, []))
        for lib, fps in res["dataloader"].items():
            lines.append(f"| {lib} | {_median(fps):.0f} | {_median(fps) / ref:.2f}x |")
        lines.append("")
    if res.get("rss"):
        lines += ["## Peak RSS", "", "Peak resident memory (MiB) of a fresh process (imports included) running one workload once, one thread.", "",
                  "| file | workload | " + " | ".join(libs) + " |", "|" + "---|" * (len(libs) + 2)]
        for key, row in res["rss"].items():
            file, workload = key.split("|")
            ref = row.get(REFERENCE)
            cells = [f"{row[l]:.0f} ({_fmt_ratio(row[l], ref)})" if l in row else "—" for l in libs]
            lines.append(f"| {file} | {WORKLOAD_TITLES[workload]} | " + " | ".join(cells) + " |")
        lines.append("")
    if png_name:
        lines += [f"![ratio to torchcodec, one thread]({png_name})", ""]
    if res.get("errors"):
        lines += ["## Not measured", ""] + [f"- {k}: {v}" for k, v in sorted(res["errors"].items())] + [""]
    return "\n".join(lines)


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("torch", "av", "torchcodec", "decord2"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    try:  # a machine without system FFmpeg has no CLI (or one that cannot load its libraries)
        ff = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    except OSError:
        ff = ""
    return ", ".join(out) + f", CLI: {ff[:40] or 'none'}"


def chart(res: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = res["threads"].get("1", {})
    libs = [l for l in res["libraries"] if l != REFERENCE]
    keys = [k for k in table if REFERENCE in table[k]]
    keys.sort(key=lambda k: (k == "mp3", k))
    fig, ax = plt.subplots(figsize=(max(8, len(keys) * 0.45), 5))
    width = 0.8 / max(1, len(libs))
    for j, lib in enumerate(libs):
        ys = [(_median(table[k][lib]) / _median(table[k][REFERENCE])) if lib in table[k] else 0 for k in keys]
        ax.bar([i + j * width for i in range(len(keys))], ys, width, label=lib)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.axhline(0.8, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(keys))])
    ax.set_xticklabels([k.replace("|", "\n") for k in keys], rotation=90, fontsize=6)
    ax.set_ylabel("time / torchcodec time (one thread)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


# -- training-pipeline workload (decoder-side transforms; docs/transforms.md) ----------------------

TRAIN_LIBS = ["mediadecode", "torchcodec", "decord"]


def prepare_training_media(media_dir: Path, quick: bool) -> dict:
    """720p and 1080p H.264 and HEVC clips, a folder of 720p H.264 clips for the DataLoader, and
    a 10-bit HEVC clip (BT.2020 PQ tags) for float32 output."""
    media_dir.mkdir(parents=True, exist_ok=True)
    seconds = 3 if quick else 6
    out = {"clips": {}, "folder": [], "hevc10": None}
    for size, tag in (("1280x720", "720p"), ("1920x1080", "1080p")):
        for codec, args in (("h264", ["-c:v", "libx264", "-preset", "veryfast", "-g", "30"]),
                            ("hevc", ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:keyint=30"])):
            path = media_dir / f"train_{tag}_{codec}.mp4"
            if not path.exists():
                _ffmpeg(*_source(size, seconds, 1), *args, str(path))
            out["clips"][f"{tag} {codec}"] = str(path)
    for k in range(4 if quick else 8):
        path = media_dir / f"train_folder_{k}.mp4"
        if not path.exists():
            _ffmpeg(*_source("1280x720", 2, 10 + k), "-c:v", "libx264", "-preset", "veryfast", "-g", "30", str(path))
        out["folder"].append(str(path))
    path = media_dir / "train_hevc10.mp4"
    if not path.exists():
        _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}",
                "-pix_fmt", "yuv420p10le", "-c:v", "libx265", "-preset", "ultrafast",
                "-x265-params", "log-level=error:keyint=30", "-color_trc", "smpte2084",
                "-color_primaries", "bt2020", "-colorspace", "bt2020nc", str(path))
    out["hevc10"] = str(path)
    return out


def _train_size(h: int, w: int, short: int = 256) -> tuple[int, int]:
    # torchvision's Resize(256) rule: shorter side to 256, aspect kept
    return (short, int(short * w / h)) if h <= w else (int(short * h / w), short)


def _clip_indices(n: int) -> list[int]:
    starts = [int(k * (n - 16) / 7) for k in range(8)]
    return [s + j for s in starts for j in range(16)]


class TrainingLib:
    """One library's Resize(256) + CenterCrop(224) decode of 8 clips x 16 frames."""

    def __init__(self, name: str, threads: int = 1):
        self.name, self.threads = name, threads

    def frames(self, path: str, indices: list[int], dtype: str = "uint8"):
        import torch

        if self.name == "mediadecode":
            import mediadecode as md
            from mediadecode.transforms import CenterCrop, Resize

            probe = md.VideoDecoder(path, backend="ffmpeg", num_threads=self.threads)
            size = _train_size(probe.metadata.height, probe.metadata.width)
            probe.close()
            dec = md.VideoDecoder(path, backend="ffmpeg", num_threads=self.threads,
                                  transforms=[Resize(size), CenterCrop((224, 224))],
                                  output_dtype=torch.float32 if dtype == "float32" else torch.uint8)
            return dec.get_frames_at(indices).data
        if self.name == "torchcodec":
            from torchcodec.decoders import VideoDecoder
            from torchcodec.transforms import CenterCrop, Resize

            meta = VideoDecoder(path).metadata
            size = _train_size(meta.height, meta.width)
            dec = VideoDecoder(path, num_ffmpeg_threads=self.threads,
                               transforms=[Resize(size), CenterCrop((224, 224))],
                               output_dtype=torch.float32 if dtype == "float32" else torch.uint8)
            return dec.get_frames_at(indices).data
        import decord

        if dtype != "uint8":
            raise ValueError("decord has no float output")
        h, w = decord.VideoReader(path, ctx=decord.cpu(0))[0].shape[:2]
        size = _train_size(h, w)
        vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=self.threads, height=size[0], width=size[1])
        data = torch.from_numpy(vr.get_batch(indices).asnumpy())
        top, left = (size[0] - 224) // 2, (size[1] - 224) // 2
        return data[:, top:top + 224, left:left + 224].permute(0, 3, 1, 2).contiguous()


class _ClipFolder:
    """A map-style dataset: item k = 16 frames (Resize + CenterCrop) of one clip of the folder."""

    def __init__(self, lib: str, files: list[str]):
        self.lib, self.files = lib, files

    def __len__(self):
        return 4 * len(self.files)

    def __getitem__(self, k):
        path = self.files[k % len(self.files)]
        start = 8 * (k // len(self.files))
        return TrainingLib(self.lib, 1).frames(path, list(range(start, start + 16)))


def training_worker(args) -> None:
    lib = TrainingLib(args.worker)
    out: dict = {"times": {}, "errors": {}}
    try:
        if args.mode == "time":
            for key_path in args.files:
                key, path = key_path.split("=", 1)
                import mediadecode as md

                n = len(md.VideoDecoder(path, backend="ffmpeg"))
                dtype = "float32" if key.endswith("float32") else "uint8"
                indices = list(range(16)) if dtype == "float32" else _clip_indices(n)
                lib.frames(path, indices, dtype)  # warm-up (index cache, imports), untimed
                ts = []
                for _ in range(args.reps):
                    t0 = time.perf_counter()
                    lib.frames(path, indices, dtype)
                    ts.append(time.perf_counter() - t0)
                out["times"][key] = ts
        elif args.mode == "rss":
            key, path = args.files[0].split("=", 1)
            import mediadecode as md

            lib.frames(path, _clip_indices(len(md.VideoDecoder(path, backend="ffmpeg"))))
            out["rss_mib"] = _peak_rss_mib()
        elif args.mode == "dataloader":
            import torch

            ds = _ClipFolder(args.worker, args.files)
            loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2,
                                                 multiprocessing_context="fork")
            t0 = time.perf_counter()
            frames = sum(int(batch.shape[0]) for batch in loader)
            out["fps"] = frames / (time.perf_counter() - t0)
    except Exception as exc:  # a library that cannot run here
        out["errors"][args.mode] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))


def _spawn_training(lib: str, mode: str, files: list[str], reps: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--training-worker", lib, "--mode", mode,
           "--reps", str(reps), "--files", *files]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"errors": {mode: (proc.stderr or "no output")[-300:]}}


def run_training(args) -> str:
    media = prepare_training_media(Path(args.media_dir), args.quick)
    libs = [name for name in TRAIN_LIBS if not args.libraries or name in args.libraries]
    timed = [f"{k}={p}" for k, p in media["clips"].items()] + [f"hevc10 float32={media['hevc10']}"]
    times, rss, fps, errors = {}, {}, {}, {}
    for lib in libs:
        print(f"training: {lib}", file=sys.stderr)
        out = _spawn_training(lib, "time", timed, args.reps)
        for key, ts in out.get("times", {}).items():
            times.setdefault(key, {})[lib] = statistics.median(ts)
        for key in ("720p h264", "1080p hevc"):
            r = _spawn_training(lib, "rss", [f"{key}={media['clips'][key]}"], 1)
            if "rss_mib" in r:
                rss.setdefault(key, {})[lib] = r["rss_mib"]
        d = _spawn_training(lib, "dataloader", media["folder"], 1)
        if "fps" in d:
            fps[lib] = d["fps"]
        for src in (out, d):
            errors.update({f"{lib} {k}": v for k, v in src.get("errors", {}).items()})
    lines = ["| clip | workload | " + " | ".join(libs) + " |", "|" + "---|" * (len(libs) + 2)]
    for key, row in times.items():
        work = "16 frames float32 (Resize 256 + CenterCrop 224)" if "float32" in key else "8 clips x 16 frames, Resize 256 + CenterCrop 224"
        ref = row.get("torchcodec")
        cells = [f"{row[l]:.3f} s" + (f" ({row[l] / ref:.2f}x)" if ref and l in row else "") if l in row else "n/a" for l in libs]
        lines.append(f"| {key} | {work} | " + " | ".join(cells) + " |")
    ref = fps.get("torchcodec")
    lines.append("| 720p h264 folder | DataLoader, 2 workers (frames/s) | " + " | ".join(
        f"{fps[l]:.0f}" + (f" ({fps[l] / ref:.2f}x)" if ref else "") if l in fps else "n/a" for l in libs) + " |")
    for key, row in rss.items():
        lines.append(f"| {key} | peak RSS (MiB), one process | " + " | ".join(f"{row[l]:.0f}" if l in row else "n/a" for l in libs) + " |")
    if errors:
        lines += ["", "Errors: " + "; ".join(f"{k}: {v}" for k, v in errors.items())]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--media-dir", default=str(HERE / ".media"))
    p.add_argument("--libraries", nargs="*", help="only these (names as in the tables)")
    p.add_argument("--only", nargs="*", help="only videos whose file name contains one of these")
    p.add_argument("--skip", nargs="*", default=[], choices=["mp3", "dataloader", "rss"],
                   help="leave these parts out")
    p.add_argument("--write-doc", metavar="MD")
    p.add_argument("--json", metavar="PATH")
    # worker-process arguments
    p.add_argument("--worker")
    p.add_argument("--mode")
    p.add_argument("--threads", default="1")
    p.add_argument("--workload", default="")
    p.add_argument("--files", nargs="*")
    p.add_argument("--training", action="store_true",
                   help="run only the training-pipeline workload (decoder-side transforms)")
    p.add_argument("--training-worker")
    args = p.parse_args(argv)
    if args.training_worker:
        args.worker = args.training_worker
        training_worker(args)
        return 0
    if args.worker:
        worker_main(args)
        return 0
    if args.training:
        print(run_training(args))
        return 0
    if shutil.which("ffmpeg") is None:
        print("the ffmpeg CLI is needed (media generation and the floor)", file=sys.stderr)
        return 2
    res = run_all(args)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    command = "python benchmarks/decode_benchmark.py " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    png_name = None
    if args.write_doc:
        doc = Path(args.write_doc)
        png = doc.with_suffix(".png")
        chart(res, png)
        png_name = png.name
        doc.write_text(render(res, command.strip(), png_name))
    print(render(res, command.strip(), None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
