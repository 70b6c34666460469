"""Audio benchmark: mediadecode against torchcodec (and soundfile, the WAV/FLAC floor), in one run.

Reproduce (writes the tables into docs/audio.md between its benchmark markers)::

    PYTHONPATH=src .venv/bin/python benchmarks/audio_benchmark.py --write-doc docs/audio.md

Workloads (media generated once with the ffmpeg CLI into ``--media-dir``, default
``benchmarks/.media``, which git ignores):

1. **Long file in chunks.** A one-hour stereo 44.1 kHz MP3 (128 kb/s; generating it takes a
   minute) streamed in consecutive 10 s windows resampled to 16 kHz, mono and stereo kept:
   ``get_samples_played_in_range(t, t + 10)`` on one decoder, for ``--hour-seconds`` of it (the
   whole hour by default). Time and peak RSS of a fresh process per library.
2. **Random windows.** 200 files of 8 s (MP3, FLAC and WAV, 16 kHz mono), 1000 random 2 s windows
   (fixed seed, the same for every library) read through a ``torch.utils.data.DataLoader`` with 2
   worker processes; each item opens its file. soundfile reads WAV and FLAC (libsndfile,
   ``sf.read(start=, stop=)``).

Each library runs in its own subprocess. Times are medians of ``--reps`` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WINDOWS = 1000
WINDOW_SECONDS = 2.0
NUM_FILES = 200
FILE_SECONDS = 8


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def make_media(media_dir: Path) -> dict:
    media_dir.mkdir(parents=True, exist_ok=True)
    hour = media_dir / "hour_stereo.mp3"
    if not hour.exists():
        tmp = hour.with_suffix(".part.mp3")
        _ffmpeg("-f", "lavfi", "-i",
                "aevalsrc=exprs='0.4*sin(2*PI*(300+50*sin(t))*t)|0.3*sin(2*PI*660*t)':s=44100:d=3600",
                "-c:a", "libmp3lame", "-b:a", "128k", str(tmp))
        tmp.rename(hour)
    folder = media_dir / "windows"
    if not (folder / "done").exists():
        folder.mkdir(exist_ok=True)
        codecs = {"mp3": ["-c:a", "libmp3lame"], "flac": ["-c:a", "flac"], "wav": ["-c:a", "pcm_s16le"]}
        for i in range(NUM_FILES):
            ext = ("mp3", "flac", "wav")[i % 3]
            _ffmpeg("-f", "lavfi", "-i",
                    f"aevalsrc=0.5*sin(2*PI*{200 + i}*t)+0.05*random(0):s=16000:d={FILE_SECONDS}",
                    *codecs[ext], str(folder / f"{i:03d}.{ext}"))
        (folder / "done").write_text("ok")
    return {"hour": str(hour), "folder": str(folder)}


# -- workers (each in its own process) -------------------------------------------------------------


def _chunks(lib: str, path: str, seconds: float) -> int:
    total = 0
    if lib == "mediadecode":
        import mediadecode as md

        decoder = md.AudioDecoder(path, sample_rate=16000)
    else:
        from torchcodec.decoders import AudioDecoder

        decoder = AudioDecoder(path, sample_rate=16000)
    t = 0.0
    while t < seconds:
        total += decoder.get_samples_played_in_range(t, t + 10.0).data.shape[1]
        t += 10.0
    return total


class _Windows:
    def __init__(self, lib: str, items: list):
        self.lib, self.items = lib, items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, start = self.items[i]
        stop = start + WINDOW_SECONDS
        if self.lib == "soundfile":
            import soundfile as sf

            with sf.SoundFile(path) as f:
                rate = f.samplerate
                f.seek(round(start * rate))
                return f.read(round(stop * rate) - round(start * rate), dtype="float32").shape[0]
        if self.lib == "mediadecode":
            import mediadecode as md

            with md.AudioDecoder(path) as d:
                return d.get_samples_played_in_range(start, stop).data.shape[1]
        from torchcodec.decoders import AudioDecoder

        return AudioDecoder(path).get_samples_played_in_range(start, stop).data.shape[1]


def _windows(lib: str, folder: str, ext: str) -> int:
    import torch

    files = sorted(str(p) for p in Path(folder).glob(f"*.{ext}"))
    rng = random.Random(0)
    items = [(rng.choice(files), rng.uniform(0, FILE_SECONDS - WINDOW_SECONDS)) for _ in range(WINDOWS)]
    loader = torch.utils.data.DataLoader(_Windows(lib, items), batch_size=None, num_workers=2)
    return sum(int(n) for n in loader)


def worker(args) -> None:
    start = time.perf_counter()
    if args.workload == "chunks":
        n = _chunks(args.lib, args.path, args.seconds)
    else:
        n = _windows(args.lib, args.path, args.ext)
    elapsed = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "rss_mb": rss, "samples": n}))


def run(lib: str, workload: str, path: str, reps: int, **extra) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--lib", lib, "--workload", workload, "--path", path]
    for k, v in extra.items():
        cmd += [f"--{k}", str(v)]
    results = []
    for i in range(reps + 1):
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        if i:  # the first run warms the page cache
            results.append(json.loads(out.strip().splitlines()[-1]))
    return {
        "seconds": statistics.median(r["seconds"] for r in results),
        "rss_mb": max(r["rss_mb"] for r in results),
        "samples": results[0]["samples"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--media-dir", default=str(HERE / ".media"))
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--hour-seconds", type=float, default=3600.0)
    p.add_argument("--write-doc")
    p.add_argument("--worker", action="store_true")
    p.add_argument("--lib")
    p.add_argument("--workload")
    p.add_argument("--path")
    p.add_argument("--seconds", type=float, default=3600.0)
    p.add_argument("--ext", default="mp3")
    args = p.parse_args()
    if args.worker:
        return worker(args)
    media = make_media(Path(args.media_dir))
    libs = ["mediadecode"] + (["torchcodec"] if _has_torchcodec() else [])
    rows = []
    for lib in libs:
        r = run(lib, "chunks", media["hour"], args.reps, seconds=args.hour_seconds)
        rows.append(("chunks", "mp3", lib, r))
        print(rows[-1], flush=True)
    for ext in ("mp3", "flac", "wav"):
        for lib in libs + (["soundfile"] if ext != "mp3" else []):
            r = run(lib, "windows", media["folder"], args.reps, ext=ext)
            rows.append(("windows", ext, lib, r))
            print(rows[-1], flush=True)
    table = _table(rows, args)
    print(table)
    if args.write_doc:
        _write(Path(args.write_doc), table)


def _has_torchcodec() -> bool:
    try:
        subprocess.run([sys.executable, "-c", "import torchcodec.decoders"], check=True,
                       capture_output=True)
        return True
    except subprocess.CalledProcessError:
        return False


def _table(rows, args) -> str:
    base = {(w, e): r for w, e, lib, r in rows if lib == "mediadecode"}
    lines = [
        f"Command: `PYTHONPATH=src python benchmarks/audio_benchmark.py --reps {args.reps} "
        f"--hour-seconds {args.hour_seconds:g}{' --write-doc ' + args.write_doc if args.write_doc else ''}`"
        f" ({os.cpu_count()} CPUs; medians of {args.reps} run(s) after a warm-up).",
        "",
        "| workload | format | library | time (s) | mediadecode / library | peak RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for w, e, lib, r in rows:
        name = (f"{args.hour_seconds:g} s of a 1 h stereo MP3 in 10 s chunks at 16 kHz" if w == "chunks"
                else f"{WINDOWS} random 2 s windows, {NUM_FILES // 3} files, DataLoader 2 workers")
        ratio = base[(w, e)]["seconds"] / r["seconds"]
        lines.append(f"| {name} | {e} | {lib} | {r['seconds']:.2f} | {ratio:.2f}x | {r['rss_mb']:.0f} |")
    return "\n".join(lines)


def _write(doc: Path, table: str) -> None:
    begin, end = "<!-- audio-benchmark:begin -->", "<!-- audio-benchmark:end -->"
    text = doc.read_text() if doc.exists() else f"{begin}\n{end}\n"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    doc.write_text(f"{head}{begin}\n{table}\n{end}{tail}")


if __name__ == "__main__":
    if shutil.which("ffmpeg") is None:
        sys.exit("the ffmpeg CLI is needed to generate the media")
    main()
