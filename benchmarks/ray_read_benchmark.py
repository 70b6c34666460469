"""Sampled clips on Ray Data: ``ray.data.read_videos`` against ``mediadecode.ray.read_videos``.

Inputs are generated H.264 clips served over loopback HTTP (aiohttp, Range requests, bytes and
requests counted by the server). Each run reads every row through ``iter_batches`` on a local Ray
with 2 CPUs. Also measures the bytes a first exact-mode ``VideoDecoder`` open of a 10 s 1080p
H.264 MP4 over HTTP reads (the frame index from the ``moov`` box) against a packet scan.

    PYTHONPATH=src .venv/bin/python benchmarks/ray_read_benchmark.py --seconds 30 --write-doc docs/ray.md

``--write-doc`` replaces the part of the doc between the BENCHMARK markers.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

BEGIN, END = "<!-- BENCHMARK BEGIN -->", "<!-- BENCHMARK END -->"


def make_inputs(folder: Path, count: int, seconds: int, width: int, height: int) -> list[Path]:
    from conftest import X264_BFRAMES, encode_video

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        p = folder / f"clip{k}.mp4"
        encode_video(p, codec="libx264", width=width, height=height, pix_fmt="yuv420p",
                     num_frames=seconds * 30, rate=Fraction(30),
                     options={**X264_BFRAMES, "g": "30", "crf": "23"})
        paths.append(p)
    return paths


def consume(ds) -> tuple[int, int]:
    rows = nbytes = 0
    for batch in ds.iter_batches(batch_size=16, batch_format="numpy"):
        for value in batch.values():
            if isinstance(value, np.ndarray) and value.dtype != object:
                nbytes += value.nbytes
            elif isinstance(value, np.ndarray):
                nbytes += sum(getattr(v, "nbytes", 0) for v in value)
        rows += len(next(iter(batch.values())))
    return rows, nbytes


def run(server, name, make_ds, frames_per_row, repeats):
    """Best wall time of ``repeats`` executions of ``make_ds(k)`` (k = 0, 1...); the bytes and
    requests of the last one."""
    best = math.inf
    for k in range(repeats):
        server.reset_counts()
        t = time.perf_counter()
        rows, produced = consume(make_ds(k))
        best = min(best, time.perf_counter() - t)
    return {"name": name, "wall": best, "frames": rows * frames_per_row, "produced": produced,
            "fetched": server.bytes_served, "requests": server.get_requests}


def first_exact_open_bytes(folder: Path) -> dict:
    """Bytes read by a first exact open of a 10 s 1080p H.264 MP4 over HTTP (``decoder.stats``;
    the frame index comes from the ``moov`` box) against a packet scan of the same file."""
    from _remote_servers import MediaHTTPServer
    from conftest import encode_video

    import mediadecode as md
    from mediadecode.pyav import open_container
    from mediadecode.sources import as_source

    path = folder / "ten_seconds_1080p.mp4"
    encode_video(path, codec="libx264", width=1920, height=1080, pix_fmt="yuv420p",
                 num_frames=300, rate=Fraction(30),
                 options={"preset": "ultrafast", "g": "30", "crf": "23", "bf": "2"})
    server = MediaHTTPServer({"v.mp4": path}).start()
    try:
        with md.VideoDecoder(server.url("media/v.mp4"), seek_mode="exact") as decoder:
            header = decoder.stats["bytes_read"]
            frames = len(decoder)
        src = as_source(server.url("media/v.mp4"))
        with open_container(src) as media:
            stream = media.container.streams.video[0]
            for _ in media.container.demux(stream):
                pass
        scan = src.stats["bytes_read"]
    finally:
        server.stop()
    return {"size": path.stat().st_size, "header": header, "scan": scan, "frames": frames}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames-per-clip", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="executions per row (best wall time kept)")
    parser.add_argument("--write-doc", type=Path)
    args = parser.parse_args()

    import ray

    import mediadecode.ray as mdray
    from _remote_servers import MediaHTTPServer

    tmp = Path(tempfile.mkdtemp(prefix="ray_bench_"))
    os.environ["HOME"] = str(tmp)  # Ray 2.60 writes ~/.ray/auth_token
    paths = make_inputs(tmp, args.files, args.seconds, 640, 360)
    total = sum(p.stat().st_size for p in paths)
    # Two one-second clips, not measured: every reader first imports its libraries in Ray's
    # worker processes on them, so that no row of the table pays for the workers' start.
    warm = make_inputs(tmp / "warmup", 2, 1, 64, 48)
    # Each repetition of the exact row reads the files under new URLs: a worker keeps the
    # indexes it built in memory, and every repetition must be a first open.
    files = {f"r{k}_{p.name}": p for k in range(args.repeats) for p in paths}
    server = MediaHTTPServer(files | {f"warm_{p.name}": p for p in warm}).start()
    urls = [server.url(f"media/r0_{p.name}") for p in paths]
    fresh = [[server.url(f"media/r{k}_{p.name}") for p in paths] for k in range(args.repeats)]
    warm_urls = [server.url(f"media/warm_{p.name}") for p in warm]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    clip = dict(sampler="random_indices", num_clips=args.clips, num_frames_per_clip=args.frames_per_clip, seed=0)
    cache = tmp / "index_cache"
    results = []
    try:
        consume(ray.data.read_videos(warm_urls, override_num_blocks=2))
        consume(mdray.read_videos(warm_urls, override_num_blocks=2, **clip))
        n = args.repeats
        results.append(run(server, "ray.data.read_videos (every frame)",
                           lambda k: ray.data.read_videos(urls), 1, n))
        results.append(run(server, "ray.data.read_videos (fps=5)",
                           lambda k: ray.data.read_videos(urls, fps=5), 1, n))
        results.append(run(server, "mediadecode.ray, exact (first open)",
                           lambda k: mdray.read_videos(fresh[k], **clip), args.frames_per_clip, n))
        results.append(run(server, "mediadecode.ray, approximate",
                           lambda k: mdray.read_videos(urls, seek_mode="approximate", **clip),
                           args.frames_per_clip, n))
        consume(mdray.read_videos(urls, index_cache_dir=cache, **clip))  # fills the shared cache
        results.append(run(server, "mediadecode.ray, exact, shared index cache",
                           lambda k: mdray.read_videos(urls, index_cache_dir=cache, **clip),
                           args.frames_per_clip, n))
    finally:
        ray.shutdown()
        server.stop()
    header = first_exact_open_bytes(tmp)

    base = results[0]
    lines = [
        f"{args.files} files of {args.seconds} s 640x360 H.264 at 30 fps ({total / 2**20:.1f} MiB in all) "
        f"served over loopback HTTP; mediadecode samples {args.clips} clips x {args.frames_per_clip} "
        f"frames per file; local Ray, `num_cpus=2`; wall time: the best of {args.repeats} executions "
        "(each a new epoch, so a new draw of clips), after the workers imported their libraries.",
        "",
        "| read | wall s | frames | frames/s | MiB produced | MiB fetched | requests | wall vs read_videos | produced vs read_videos |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['wall']:.2f} | {r['frames']} | {r['frames'] / r['wall']:.0f} | "
            f"{r['produced'] / 2**20:.1f} | {r['fetched'] / 2**20:.2f} | {r['requests']} | "
            f"{base['wall'] / r['wall']:.1f}x less | {base['produced'] / max(1, r['produced']):.1f}x less |")
    most = max(r["fetched"] for r in results[2:])
    lines += [
        "",
        f"Bytes the files hold: {total / 2**20:.2f} MiB; the most any mediadecode read fetched: "
        f"{most / 2**20:.2f} MiB ({100 * most / total:.0f}%); ray.data.read_videos fetched "
        f"{results[0]['fetched'] / total:.1f}x what they hold. mediadecode reads the header (the exact "
        "index of an MP4 comes from its `moov` box) and the GOPs of the sampled clips with range "
        "requests.",
        "",
        f"First exact-mode open of a 10 s 1080p H.264 MP4 ({header['size'] / 2**20:.2f} MiB, "
        f"{header['frames']} frames) over HTTP: `VideoDecoder(url, seek_mode=\"exact\")` read "
        f"{header['header'] / 1024:.0f} KiB ({100 * header['header'] / header['size']:.1f}% of the file); "
        f"a packet scan reads {header['scan'] / 2**20:.2f} MiB ({100 * header['scan'] / header['size']:.0f}%).",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_doc:
        doc = args.write_doc.read_text()
        a, b = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        args.write_doc.write_text(doc[:a] + "\n" + text + "\n" + doc[b:])


if __name__ == "__main__":
    main()
