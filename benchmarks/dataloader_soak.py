"""DataLoader soak on a folder with damaged files: mediadecode against torchcodec in the same run.

Each item decodes one random 8-frame clip (random file, random start) from a folder of good
clips plus a truncated, a corrupt and a non-media file, as a training job over a scraped set
does: the decoder is dropped without ``close()`` and a file that fails gives an empty item. Two
DataLoader worker processes, started by ``fork`` and by ``spawn``. Reported per library and
start method: items per second, and the workers' RSS and open file descriptors after a warm-up
(the first ``--warmup`` items of each worker) and at the end.

Reproduce (writes the table into docs/reliability.md between its soak markers)::

    .venv/bin/python benchmarks/dataloader_soak.py --items 4000 --write-doc docs/reliability.md

Each library runs in its own subprocess, so neither's imports weigh on the other's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

START = "<!-- soak:start -->"
END = "<!-- soak:end -->"
CLIP = 8


def make_folder(folder: Path, num_good: int = 12) -> list[Path]:
    """``num_good`` H.264 clips (160x120, 48 frames, GOP 12), then a truncated copy, a copy with
    its frame data overwritten, and a file of random bytes."""
    import av

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for k in range(num_good):
        path = folder / f"clip{k:02d}.mp4"
        if not path.exists():
            with av.open(str(path), "w") as out:
                stream = out.add_stream("libx264", rate=24, options={"g": "12", "preset": "ultrafast"})
                stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
                stream.time_base = Fraction(1, 24)
                base = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
                for i in range(48):
                    img = np.roll(base, i * 2, axis=1)
                    frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
                    frame.pts = i
                    for packet in stream.encode(frame):
                        out.mux(packet)
                for packet in stream.encode(None):
                    out.mux(packet)
        paths.append(path)
    data = paths[0].read_bytes()
    damaged = {
        "truncated.mp4": data[: len(data) // 2],
        "corrupt.mp4": data[:2000] + bytes(rng.integers(0, 256, len(data) - 2000, dtype=np.uint8)),
        "not_media.mp4": bytes(rng.integers(0, 256, 20000, dtype=np.uint8)),
    }
    for name, content in damaged.items():
        (folder / name).write_bytes(content)
        paths.append(folder / name)
    return paths


def _usage() -> tuple[int, int]:
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return rss, len(os.listdir("/proc/self/fd"))


class ClipDataset:
    """Item ``i``: a random clip of ``CLIP`` frames (seeded by ``i``) and the worker's usage."""

    def __init__(self, library: str, paths: list[str], items: int):
        self.library, self.paths, self.items = library, paths, items

    def __len__(self) -> int:
        return self.items

    def _decode(self, path: str, rng) -> int:
        import torch

        if self.library == "mediadecode":
            import mediadecode

            decoder = mediadecode.VideoDecoder(path)
        else:
            from torchcodec.decoders import VideoDecoder

            decoder = VideoDecoder(path)
        n = len(decoder)
        start = int(rng.integers(0, max(1, n - CLIP)))
        frames = decoder.get_frames_at(list(range(start, min(n, start + CLIP)))).data
        return int(torch.as_tensor(frames).shape[0])

    def __getitem__(self, i: int):
        rng = np.random.default_rng(i)
        path = self.paths[int(rng.integers(0, len(self.paths)))]
        try:
            frames = self._decode(path, rng)
        except Exception:  # a damaged file: skip the item, as a training job does
            frames = 0
        rss, fds = _usage()
        return os.getpid(), frames, rss, fds


def _collate(batch):
    return batch


def run_one(library: str, start_method: str, paths: list[str], items: int, warmup: int) -> dict:
    import torch
    from torch.utils.data import DataLoader

    torch.set_num_threads(1)
    loader = DataLoader(ClipDataset(library, paths, items), batch_size=1, num_workers=2,
                        multiprocessing_context=start_method, collate_fn=_collate)
    seen: dict[int, list[tuple[int, int]]] = {}
    start = time.perf_counter()
    begin_timed = None
    frames = 0
    for k, batch in enumerate(loader):
        for pid, n, rss, fds in batch:
            seen.setdefault(pid, []).append((rss, fds))
            frames += n
        if k == warmup * 2 and begin_timed is None:
            begin_timed = (time.perf_counter(), k)
    end = time.perf_counter()
    t0, k0 = begin_timed or (start, 0)
    workers = list(seen.values())
    return {
        "library": library,
        "start_method": start_method,
        "items": items,
        "items_per_s": (items - k0) / (end - t0),
        "rss_start_mib": sum(w[min(warmup, len(w) - 1)][0] for w in workers) / len(workers) / 2**20,
        "rss_end_mib": sum(w[-1][0] for w in workers) / len(workers) / 2**20,
        "fds_start": sum(w[min(warmup, len(w) - 1)][1] for w in workers) / len(workers),
        "fds_end": sum(w[-1][1] for w in workers) / len(workers),
        "frames": frames,
    }


def _table(rows: list[dict], args) -> str:
    lines = [
        START,
        f"Command: `python benchmarks/dataloader_soak.py --items {args.items} --warmup {args.warmup}`",
        "",
        f"{args.items} items per run, 2 workers, 12 good clips + a truncated, a corrupt and a "
        f"non-media file; RSS and fds are per worker (mean of the two), after {args.warmup} items "
        "of each worker and at the end.",
        "",
        "| library | workers | items/s | RSS start → end (MiB) | RSS growth | fds start → end |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        growth = 100 * (r["rss_end_mib"] / r["rss_start_mib"] - 1)
        lines.append(
            f"| {r['library']} | {r['start_method']} | {r['items_per_s']:.1f} | "
            f"{r['rss_start_mib']:.0f} → {r['rss_end_mib']:.0f} | {growth:+.1f} % | "
            f"{r['fds_start']:.0f} → {r['fds_end']:.0f} |"
        )
    lines.append(END)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--warmup", type=int, default=200, help="items per worker before the start figures")
    parser.add_argument("--libraries", default="mediadecode,torchcodec")
    parser.add_argument("--start-methods", default="fork,spawn")
    parser.add_argument("--write-doc", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # library,start_method,folder (subprocess)
    args = parser.parse_args(argv)

    if args.one:
        library, method, folder = args.one.split(",", 2)
        paths = sorted(str(p) for p in Path(folder).iterdir())
        print(json.dumps(run_one(library, method, paths, args.items, args.warmup)))
        return 0

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        make_folder(Path(tmp))
        for library in args.libraries.split(","):
            for method in args.start_methods.split(","):
                out = subprocess.run(
                    [sys.executable, __file__, "--items", str(args.items), "--warmup", str(args.warmup),
                     "--one", f"{library},{method},{tmp}"],
                    capture_output=True, text=True,
                )
                if out.returncode != 0:
                    print(f"{library}/{method} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                    continue
                row = json.loads(out.stdout.strip().splitlines()[-1])
                print(row, flush=True)
                rows.append(row)
    table = _table(rows, args)
    print(table)
    if args.write_doc is not None:
        text = args.write_doc.read_text() if args.write_doc.exists() else ""
        if START in text and END in text:
            text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: table, text, flags=re.S)
        else:
            text = text.rstrip() + "\n\n" + table + "\n"
        args.write_doc.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
