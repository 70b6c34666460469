"""Encoding speed: mediadecode.encoders against torchcodec 0.17's encoders and the ffmpeg CLI.

Cases (issue 15): 300 frames of 1280x720 RGB to H.264 (libx264, yuv420p, preset ultrafast and
medium, x264's default crf) in MP4; 60 s of stereo 44.1 kHz float audio to MP3, AAC (.m4a) and
FLAC. The ffmpeg CLI encodes the same raw input (rawvideo rgb24 / f32le read from a file in the
page cache), with its default thread count: the floor. Each tool writes to a file in a temporary
folder. Wall-clock medians of ``--repeat`` runs, in the same process run, as ratios.

    python benchmarks/encode_benchmark.py --repeat 2 --write-doc docs/encoding.md

``--write-doc`` replaces the text between the ``<!-- encode-benchmark -->`` markers of the file.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mediadecode.encoders import AudioEncoder, VideoEncoder  # noqa: E402

W, H, N, FPS = 1280, 720, 300, 30
SR, SECONDS = 44100, 60


def video_frames() -> torch.Tensor:
    """(300, 3, 720, 1280) uint8: moving gradients and a moving square (compressible, changing)."""
    y = torch.arange(H).view(1, H, 1)
    x = torch.arange(W).view(1, 1, W)
    frames = torch.empty(N, 3, H, W, dtype=torch.uint8)
    for i in range(N):
        frames[i, 0] = ((x * 255) // W + i * 3) % 256
        frames[i, 1] = ((y * 255) // H + i * 2) % 256
        frames[i, 2] = ((x + y) // 8 + i) % 256
        ox, oy = (i * 4) % (W - 200), (i * 3) % (H - 200)
        frames[i, :, oy:oy + 200, ox:ox + 200] = (i * 7) % 256
    return frames


def audio_samples() -> torch.Tensor:
    t = torch.arange(SR * SECONDS, dtype=torch.float64) / SR
    left = 0.3 * torch.sin(2 * math.pi * 440 * t) + 0.1 * torch.sin(2 * math.pi * 3000 * t)
    right = 0.3 * torch.sin(2 * math.pi * 660 * t) + 0.05 * torch.randn(t.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return torch.stack([left, right]).to(torch.float32)


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write-doc", default=None, metavar="MARKDOWN")
    args = parser.parse_args()
    ffmpeg = shutil.which("ffmpeg")
    try:
        from torchcodec.encoders import AudioEncoder as TCAudio, VideoEncoder as TCVideo
    except Exception as exc:  # FFmpeg's shared libraries missing
        print(f"torchcodec unavailable: {exc}", file=sys.stderr)
        TCAudio = TCVideo = None

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Load every library once before timing (first encodes pay for loading and page faults).
        small = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
        for ext in ("mp4", "mp3", "m4a", "flac"):
            if ext == "mp4":
                VideoEncoder(small, frame_rate=FPS).to_file(tmp / "warm.mp4")
                if TCVideo is not None:
                    TCVideo(small, frame_rate=FPS).to_file(str(tmp / "warm.mp4"))
            else:
                AudioEncoder(torch.zeros(2, 4410), sample_rate=SR).to_file(tmp / f"warm.{ext}")
                if TCAudio is not None and ext != "m4a":
                    TCAudio(torch.zeros(2, 4410), sample_rate=SR).to_file(str(tmp / f"warm.{ext}"))
        frames = video_frames()
        raw_video = tmp / "in.rgb"
        raw_video.write_bytes(frames.permute(0, 2, 3, 1).contiguous().numpy().tobytes())
        for preset in ("ultrafast", "medium"):
            out = tmp / "out.mp4"
            tools = {
                "mediadecode": lambda: VideoEncoder(frames, frame_rate=FPS).to_file(out, codec="libx264", preset=preset),
            }
            if TCVideo is not None:
                tools["torchcodec"] = lambda: TCVideo(frames, frame_rate=FPS).to_file(str(out), codec="libx264", preset=preset)
            if ffmpeg:
                cmd = [ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
                       "-r", str(FPS), "-i", str(raw_video), "-c:v", "libx264", "-preset", preset,
                       "-pix_fmt", "yuv420p", str(out)]
                tools["ffmpeg CLI"] = lambda: subprocess.run(cmd, check=True)
            rows.append((f"{N} frames 720p to H.264, preset {preset}", {k: timed(f, args.repeat) for k, f in tools.items()}))
            print(rows[-1], flush=True)
        del frames
        raw_video.unlink()

        samples = audio_samples()
        raw_audio = tmp / "in.f32"
        raw_audio.write_bytes(samples.t().contiguous().numpy().tobytes())
        for label, ext in (("MP3", "mp3"), ("AAC", "m4a"), ("FLAC", "flac")):
            out = tmp / f"out.{ext}"
            tools = {"mediadecode": lambda: AudioEncoder(samples, sample_rate=SR).to_file(out)}
            if TCAudio is not None and ext != "m4a":  # torchcodec 0.17 has no muxer guess for .m4a
                tools["torchcodec"] = lambda: TCAudio(samples, sample_rate=SR).to_file(str(out))
            if TCAudio is not None and ext == "m4a":
                tools["torchcodec"] = lambda: TCAudio(samples, sample_rate=SR).to_file(str(tmp / "out.mp4"))
            if ffmpeg:
                cmd = [ffmpeg, "-v", "error", "-y", "-f", "f32le", "-ar", str(SR), "-ac", "2", "-i", str(raw_audio), str(out)]
                tools["ffmpeg CLI"] = lambda: subprocess.run(cmd, check=True)
            rows.append((f"{SECONDS} s stereo {SR} Hz to {label}", {k: timed(f, args.repeat) for k, f in tools.items()}))
            print(rows[-1], flush=True)

    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; torch "
        f"{torch.__version__}; medians of {args.repeat} runs (seconds); ratios are mediadecode's time over the peer's.",
        "",
        "| case | mediadecode (s) | torchcodec (s) | ffmpeg CLI (s) | vs torchcodec | vs ffmpeg CLI |",
        "|---|---|---|---|---|---|",
    ]
    for label, t in rows:
        ours = t["mediadecode"]
        tc, cli = t.get("torchcodec"), t.get("ffmpeg CLI")
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        ratio = lambda v: "n/a" if v is None else f"{ours / v:.2f}x"  # noqa: E731
        lines.append(f"| {label} | {ours:.3f} | {fmt(tc)} | {fmt(cli)} | {ratio(tc)} | {ratio(cli)} |")
    lines += ["", f"Command: `python benchmarks/encode_benchmark.py --repeat {args.repeat} --write-doc docs/encoding.md`"]
    table = "\n".join(lines)
    print(table)
    if args.write_doc:
        doc = Path(args.write_doc)
        text = doc.read_text()
        start, end = "<!-- encode-benchmark -->", "<!-- /encode-benchmark -->"
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        doc.write_text(f"{head}{start}\n{table}\n{end}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
