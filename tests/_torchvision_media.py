"""Small deterministic media for the torchvision adapter's reference comparison.

Imported both by ``tests/_torchvision_reference.py`` (run with torchvision 0.21 in a separate
virtual environment, to record the reference) and by ``tests/test_adapter_torchvision.py`` (which
regenerates the same files and checks their SHA-256 against the one recorded with the reference).
It needs only PyAV and NumPy. Encoders run single-threaded so that the bytes depend only on the
PyAV (FFmpeg) build: the same ``av`` wheel gives the same files.

Run as a script to write the files into a folder: ``python tests/_torchvision_media.py OUTDIR``.
"""

from __future__ import annotations

import hashlib
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

X264 = {"threads": "1", "preset": "ultrafast", "bf": "2", "g": "12",
        "x264-params": "bframes=2:b-adapt=0:keyint=12:min-keyint=12:scenecut=0:threads=1"}


def pattern(i: int, width: int, height: int) -> np.ndarray:
    """A distinct RGB picture for frame ``i``: moving gradients and a bright square."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = (x * 4 + i * 9) % 256
    img[..., 1] = (y * 5 + i * 5) % 256
    img[..., 2] = ((x + y) * 2 + i * 13) % 256
    s = max(4, min(width, height) // 4)
    ox, oy = (i * 3) % max(1, width - s), (i * 2) % max(1, height - s)
    img[oy:oy + s, ox:ox + s] = 255 - (i * 17) % 128
    return img


def _write(path: Path, *, video: dict | None, audio: dict | None) -> None:
    import av

    # bitexact: no random Matroska UIDs, no encoder version strings.
    with av.open(str(path), mode="w", options={"fflags": "+bitexact"}) as out:
        vs = as_ = None
        if video is not None:
            rate = video["rate"]
            vs = out.add_stream(video["codec"], rate=rate, options=video.get("options", {}))
            vs.width, vs.height, vs.pix_fmt = video["width"], video["height"], "yuv420p"
            vs.codec_context.thread_count = 1
            tb = Fraction(1, int(rate)) if Fraction(rate).denominator == 1 else 1 / Fraction(rate)
            vs.time_base = tb
            vs.codec_context.time_base = tb
        if audio is not None:
            as_ = out.add_stream(audio["codec"], rate=audio["rate"])
            as_.layout = audio["layout"]
            as_.codec_context.thread_count = 1
        packets = []
        if vs is not None:
            for i in range(video["num_frames"]):
                frame = av.VideoFrame.from_ndarray(pattern(i, video["width"], video["height"]), format="rgb24")
                frame = frame.reformat(format="yuv420p")
                frame.pts = video.get("first_pts", 0) + i
                frame.time_base = vs.codec_context.time_base
                packets.extend(vs.encode(frame))
            packets.extend(vs.encode(None))
        if as_ is not None:
            rate, nch = audio["rate"], 2 if audio["layout"] == "stereo" else 1
            block = 1024
            total = int(audio["seconds"] * rate)
            t = np.arange(total) / rate
            sig = np.stack([0.5 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(nch)]).astype(np.float32)
            fmt = audio["format"]
            first = audio.get("first_sample", 0)
            for start in range(0, total, block):
                chunk = sig[:, start:start + block]
                if fmt == "s16":
                    arr = (chunk.T.reshape(1, -1) * 32767).astype(np.int16)
                elif fmt == "fltp":
                    arr = np.ascontiguousarray(chunk)
                else:  # pragma: no cover
                    raise ValueError(fmt)
                frame = av.AudioFrame.from_ndarray(arr, format=fmt, layout=audio["layout"])
                frame.sample_rate = rate
                frame.pts = first + start
                frame.time_base = Fraction(1, rate)
                packets.extend(as_.encode(frame))
            packets.extend(as_.encode(None))
        for packet in packets:
            out.mux(packet)


MEDIA = {
    # H.264 with B-frames and AAC stereo in MP4: the video and audio time bases differ.
    "h264_aac.mp4": dict(
        video=dict(codec="libx264", width=96, height=64, rate=24, num_frames=48, options=X264),
        audio=dict(codec="aac", rate=16000, layout="stereo", format="fltp", seconds=2.0),
    ),
    # Both streams start late: video at 1.5 s (pts 36 at 1/24 s), audio at 1.5 s less the AAC
    # encoder's 1024 priming samples.
    "nonzero_start.mkv": dict(
        video=dict(codec="libx264", width=96, height=64, rate=24, num_frames=24, first_pts=36, options=X264),
        audio=dict(codec="aac", rate=8000, layout="mono", format="fltp", seconds=1.0, first_sample=12000),
    ),
    # No audio; MPEG-4 part 2 from FFmpeg's own encoder (its extradata names Lavc).
    "mpeg4_only.mp4": dict(
        video=dict(codec="mpeg4", width=80, height=48, rate=25, num_frames=30, options={"g": "10"}),
        audio=None,
    ),
    # Packed 16-bit PCM audio: old read_video returned it as int16 of shape (1, samples * channels).
    "h264_s16.mkv": dict(
        video=dict(codec="libx264", width=64, height=48, rate=24, num_frames=24, options=X264),
        audio=dict(codec="pcm_s16le", rate=8000, layout="stereo", format="s16", seconds=1.0),
    ),
}


def make(folder: Path, name: str) -> Path:
    """Write media ``name`` (a key of :data:`MEDIA`) into ``folder``; returns its path."""
    path = Path(folder) / name
    if not path.exists():
        _write(path, **MEDIA[name])
    return path


def make_all(folder: Path) -> dict[str, Path]:
    return {name: make(folder, name) for name in MEDIA}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, path in make_all(out).items():
        print(name, sha256(path))
