"""GPU decoding benchmark: the nvdec backend vs torchcodec's CUDA decoding vs the ffmpeg backend
on the CPU, in frames per second.

For 1080p H.264 and HEVC clips (made here with PyAV's libx264/libx265, or given with
``--input``) it measures, through the mediadecode facade:

- every frame: a fresh decoder decodes all frames in order (``get_frames_in_range`` in chunks);
- 10 random frames: a fresh decoder decodes 10 seeded random indices (``get_frames_at``).

Each number is the median of ``--repeats`` runs; opening the decoder (packet scan, first frame)
is timed separately and not counted in frames/s. CUDA work is synchronised before a clock is
read. The table is printed as Markdown; ``--write-doc docs/gpu.md`` replaces the section between
``<!-- gpu-benchmark:start -->`` and ``<!-- gpu-benchmark:end -->`` with it, with the machine,
the versions, the date and which CUDA backend was faster (the one automatic selection should
prefer for ``device="cuda"``: its priority must be the higher of the two).

Without a CUDA device it exits with status 2 and the reason. ``--help`` works anywhere.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

START = "<!-- gpu-benchmark:start -->"
END = "<!-- gpu-benchmark:end -->"

CODECS = {"h264": ("libx264", "h264_1080p.mp4"), "hevc": ("libx265", "hevc_1080p.mp4")}

# (label, backend, device)
RUNS = [
    ("nvdec (CUDA)", "nvdec", "cuda"),
    ("torchcodec (CUDA)", "torchcodec", "cuda"),
    ("ffmpeg (CPU)", "ffmpeg", "cpu"),
]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Decode 1080p H.264 and HEVC with nvdec (CUDA), torchcodec (CUDA) and the ffmpeg "
            "backend (CPU); print frames/s for every frame and for 10 random frames."
        ),
        epilog="Needs a CUDA device; exits with status 2 and the reason without one.",
    )
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where to write the generated clips (default: a temporary folder)")
    parser.add_argument("--input", action="append", default=[], metavar="CODEC=PATH",
                        help="use PATH instead of a generated clip for CODEC (h264 or hevc)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of the generated clips at 30 frames/s (default 10)")
    parser.add_argument("--gop", type=int, default=30, help="keyframe interval of generated clips")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; median")
    parser.add_argument("--random-count", type=int, default=10, help="random frames per run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random indices")
    parser.add_argument("--chunk", type=int, default=32,
                        help="frames per get_frames_in_range call when decoding every frame")
    parser.add_argument("--threads", type=int, default=0,
                        help="num_threads for the decoders (0: FFmpeg's choice)")
    parser.add_argument("--backends", default=",".join(r[1] for r in RUNS),
                        help="comma-separated subset of nvdec,torchcodec,ffmpeg")
    parser.add_argument("--write-doc", type=Path, default=None, metavar="PATH",
                        help="replace the benchmark section of this Markdown file (docs/gpu.md)")
    return parser.parse_args(argv)


def _pattern(i: int, width: int, height: int, rng):
    import numpy as np

    y, x = np.mgrid[0:height:4, 0:width:4]
    small = np.empty((y.shape[0], y.shape[1], 3), dtype=np.uint8)
    small[..., 0] = (x + i * 7) % 256
    small[..., 1] = (y * 2 + i * 3) % 256
    small[..., 2] = ((x + y) // 2 + i * 11) % 256
    img = small.repeat(4, axis=0).repeat(4, axis=1)[:height, :width]
    noise = rng.integers(0, 24, img.shape, dtype=np.uint8)
    return img + noise  # wraps: texture the encoder has to spend bits on


def make_clip(path: Path, encoder: str, seconds: float, gop: int) -> Path:
    """A 1920x1080, 30 frames/s clip with B-frames, encoded by PyAV's ``encoder``."""
    import av
    import numpy as np

    if path.exists():
        return path
    rng = np.random.default_rng(1)
    frames = max(1, int(round(seconds * 30)))
    tmp = path.with_suffix(".part" + path.suffix)
    options = {"g": str(gop), "preset": "ultrafast" if encoder == "libx264" else "fast"}
    if encoder == "libx265":
        options["x265-params"] = f"log-level=error:keyint={gop}:bframes=3"
    else:
        options["bf"] = "3"
    with av.open(str(tmp), mode="w") as out:
        stream = out.add_stream(encoder, rate=30, options=options)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(_pattern(i, 1920, 1080, rng), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    os.replace(tmp, path)
    return path


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(path: Path, backend: str, device: str, args) -> dict:
    """Median open time and frames/s (every frame, random frames) of one backend on one file."""
    import numpy as np

    import mediadecode as md

    opens, every, random = [], [], []
    rng = np.random.default_rng(args.seed)
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        decoder = md.VideoDecoder(path, backend=backend, device=device, num_threads=args.threads)
        n = len(decoder)
        _sync(device)
        opens.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for start in range(0, n, args.chunk):
            batch = decoder.get_frames_in_range(start, min(n, start + args.chunk))
            del batch
        _sync(device)
        every.append(n / (time.perf_counter() - t0))
        decoder.close()

        decoder = md.VideoDecoder(path, backend=backend, device=device, num_threads=args.threads)
        indices = rng.integers(0, n, size=args.random_count).tolist()
        _sync(device)
        t0 = time.perf_counter()
        decoder.get_frames_at(indices)
        _sync(device)
        random.append(len(indices) / (time.perf_counter() - t0))
        fallback = re.sub(r"^\[.*?\] Fallback status: ", "", str(decoder.cpu_fallback))
        decoder.close()
    return {
        "open_s": statistics.median(opens),
        "every_fps": statistics.median(every),
        "random_fps": statistics.median(random),
        "frames": n,
        "fallback": fallback,
    }


def machine() -> str:
    import av
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    try:
        import torchcodec

        tc = torchcodec.__version__
    except Exception:
        tc = "not installed"
    return (
        f"{gpu}; {platform.processor() or platform.machine()} ({os.cpu_count()} CPUs); "
        f"torch {torch.__version__} (CUDA {torch.version.cuda}); PyAV {av.__version__}; "
        f"torchcodec {tc}; Python {platform.python_version()}"
    )


def render(results: dict, args) -> str:
    lines = [
        f"Measured {_dt.date.today().isoformat()} on {machine()}.",
        f"Median of {args.repeats} runs; `num_threads={args.threads}`; every frame in chunks of "
        f"{args.chunk}; {args.random_count} random frames (seed {args.seed}). frames/s, higher is "
        "better; the open time (packet scan and first frame) is not included.",
        "",
        "| clip | backend | every frame (frames/s) | 10 random frames (frames/s) | open (s) | CPU fallback |",
        "|---|---|---:|---:|---:|---|",
    ]
    for clip, rows in results.items():
        for label, r in rows.items():
            if "error" in r:
                lines.append(f"| {clip} | {label} | — | — | — | {r['error']} |")
            else:
                lines.append(
                    f"| {clip} ({r['frames']} frames) | {label} | {r['every_fps']:.1f} | "
                    f"{r['random_fps']:.1f} | {r['open_s']:.2f} | {r['fallback']} |"
                )
    verdicts = []
    for clip, rows in results.items():
        nv, tc = rows.get("nvdec (CUDA)", {}), rows.get("torchcodec (CUDA)", {})
        if "every_fps" in nv and "every_fps" in tc:
            faster = "nvdec" if nv["every_fps"] >= tc["every_fps"] else "torchcodec"
            verdicts.append(f"{clip}: {faster} is faster on every frame "
                            f"({nv['every_fps']:.1f} vs {tc['every_fps']:.1f} frames/s)")
    if verdicts:
        lines += ["", "CUDA backends: " + "; ".join(verdicts) + ". Automatic selection for "
                  "`device=\"cuda\"` should prefer the faster one (the higher `priority`)."]
    return "\n".join(lines)


def write_doc(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    block = f"{START}\n{section}\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## Benchmark results\n\n" + block + "\n"
    path.write_text(text)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mediadecode.backends.nvdec import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason is not None:
        print(f"gpu_decode.py needs a CUDA device with NVDEC: {reason}", file=sys.stderr)
        return 2
    wanted = [r for r in RUNS if r[1] in args.backends.split(",")]
    inputs = dict(item.split("=", 1) for item in args.input)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="gpu_decode_"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for codec, (encoder, name) in CODECS.items():
        path = Path(inputs[codec]) if codec in inputs else make_clip(work / name, encoder, args.seconds, args.gop)
        clip = f"1080p {codec.upper()}"
        results[clip] = {}
        for label, backend, device in wanted:
            try:
                results[clip][label] = measure(path, backend, device, args)
            except Exception as exc:  # an unavailable backend is a row, not a crash
                results[clip][label] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
            print(f"{clip} {label}: {results[clip][label]}", file=sys.stderr)
    section = render(results, args)
    print(section)
    if args.write_doc is not None:
        write_doc(args.write_doc, section)
        print(f"wrote {args.write_doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
