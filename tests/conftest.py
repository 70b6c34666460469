"""Shared fixtures: the real-media folder and small videos generated with PyAV's encoders.

Generated media are written once per session, under pytest's temporary directory. Each generator
records how the file was made (frame count, size, rate, first pts, pts list) so that tests can
check mediadecode against those numbers, which come from the generator and not from mediadecode.

Pixel references are never computed here with mediadecode: see ``pyav_reference``, which decodes a
file sequentially with PyAV and converts each frame with ``frame.to_ndarray(format="rgb24")``.
"""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mediadecode.testing._media import _pattern as _kit_pattern

# The shared media corpus lives next to the repository: <repo>/../shared/media.
MEDIA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "media"
MEDIA_MISSING_REASON = (
    f"real media folder {MEDIA_DIR} is absent (it is present in CI; a fresh clone has only "
    "the generated media)"
)


def media_path(name: str) -> Path:
    """Path of one file of the shared corpus; skips the calling test when it is absent."""
    if not MEDIA_DIR.is_dir():
        pytest.skip(MEDIA_MISSING_REASON)
    path = MEDIA_DIR / name
    if not path.is_file():
        pytest.skip(f"{path} is not in the real media folder")
    return path


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """The shared media folder; tests that use it are skipped when it is absent."""
    if not MEDIA_DIR.is_dir():
        pytest.skip(MEDIA_MISSING_REASON)
    return MEDIA_DIR


def parse_manifest(path: Path) -> dict[str, list[tuple[str, ...]]]:
    """The stream table of MANIFEST.md: file name -> [(index, codec, type, a, b, c, rate), ...]."""
    table: dict[str, list[tuple[str, ...]]] = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[1].isdigit():
            continue
        streams = [tuple(s.strip().split(",")) for s in cells[2].split(";") if s.strip()]
        table[cells[0]] = streams
    return table


@pytest.fixture(scope="session")
def manifest(media_dir) -> dict[str, list[tuple[str, ...]]]:
    return parse_manifest(media_dir / "MANIFEST.md")


# -- torchcodec as a reference --------------------------------------------------------------------


def torchcodec_or_skip():
    """``torchcodec.decoders``, or skip the calling test with the reason torchcodec cannot decode
    here: not installed, or (torchcodec 0.17 imports without them) its native core cannot load
    FFmpeg's shared libraries, as on a fresh machine without system FFmpeg. The reason is the
    torchcodec backend's own availability check, so tests and ``list_backends()`` agree."""
    from mediadecode import registry

    reason = registry.unavailable_reason("torchcodec") if "torchcodec" in registry.registry() else (
        "the torchcodec backend is not registered")
    if reason is not None:
        pytest.skip(f"torchcodec cannot decode here: {reason}")
    from torchcodec import decoders

    return decoders


def ffmpeg_cli_or_skip(tool: str = "ffmpeg") -> str:
    """The path of FFmpeg's ``ffmpeg``/``ffprobe`` command, or skip the calling test when it is
    missing or cannot run (its shared libraries absent)."""
    import shutil
    import subprocess

    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"the {tool} command is not installed")
    try:
        ok = subprocess.run([path, "-version"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    if not ok:
        pytest.skip(f"the {tool} command does not run here (FFmpeg's shared libraries missing?)")
    return path


# -- PyAV reference ------------------------------------------------------------------------------


@dataclasses.dataclass
class Reference:
    """What FFmpeg (through PyAV, decoding sequentially) says about one video stream."""

    frames: np.ndarray  # (N, H, W, 3) uint8, rotated as players show them
    times: np.ndarray  # (N,) float64, frame.time of each frame
    rotation: float  # frame.rotation of the first frame (display-matrix angle, CCW degrees)
    stream_index: int
    average_rate: Fraction | None
    header_frames: int
    end_seconds: float  # last frame's time + its duration

    def __len__(self) -> int:
        return len(self.frames)


def pyav_reference(path, stream_index: int | None = None) -> Reference:
    """Decode every frame of a video stream with PyAV, independently of mediadecode.

    ``stream_index=None`` takes FFmpeg's best video stream (what a VideoDecoder does).
    Frames are rotated with ``np.rot90(k=round(rotation / 90) % 4)``: as players show them.
    """
    import av

    frames, times = [], []
    rotation = None
    end = 0.0
    with av.open(str(path)) as container:
        if stream_index is None:
            stream = container.streams.best("video")
        else:
            stream = container.streams[stream_index]
        for frame in container.decode(stream):
            if rotation is None:
                rotation = frame.rotation
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(frame.time)
            if frame.duration:
                end = max(end, frame.time + float(frame.duration * frame.time_base))
        k = int(round((rotation or 0) / 90)) % 4
        data = np.stack([np.rot90(f, k) for f in frames]) if frames else np.empty((0, 0, 0, 3), np.uint8)
        return Reference(
            frames=np.ascontiguousarray(data),
            times=np.asarray(times, dtype=np.float64),
            rotation=float(rotation or 0),
            stream_index=stream.index,
            average_rate=stream.average_rate,
            header_frames=stream.frames,
            end_seconds=end,
        )


# -- generated media -----------------------------------------------------------------------------


@dataclasses.dataclass
class Generated:
    """A generated video and how it was made."""

    name: str
    path: Path
    width: int
    height: int
    num_frames: int
    rate: Fraction  # nominal frame rate given to the encoder
    time_base: Fraction
    pts: list[int]  # the pts given to each frame, in time_base units
    cfr: bool

    @property
    def first_pts_seconds(self) -> float:
        return float(self.pts[0] * self.time_base)


# The conformance kit's picture (moving gradients and a bright square), so both make the same media.
pattern = _kit_pattern


def _need_encoder(name: str) -> None:
    import av

    try:
        av.codec.Codec(name, "w")
    except Exception:
        pytest.skip(f"PyAV's FFmpeg has no {name} encoder")


def encode_video(
    path: Path,
    *,
    codec: str,
    width: int,
    height: int,
    pix_fmt: str,
    num_frames: int,
    rate: Fraction = Fraction(24),
    time_base: Fraction | None = None,
    pts: list[int] | None = None,
    options: dict[str, str] | None = None,
) -> Generated:
    """Encode ``pattern`` frames with PyAV. ``pts`` (in ``time_base``) defaults to 0, 1, 2..."""
    import av

    _need_encoder(codec)
    time_base = time_base or 1 / rate
    pts = list(range(num_frames)) if pts is None else list(pts)
    assert len(pts) == num_frames
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(pattern(i, width, height), format="rgb24")
            frame = frame.reformat(format=pix_fmt)
            frame.pts = p
            frame.time_base = time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return Generated(
        name=path.name,
        path=path,
        width=width,
        height=height,
        num_frames=num_frames,
        rate=Fraction(rate),
        time_base=Fraction(time_base),
        pts=pts,
        cfr=all(b - a == pts[1] - pts[0] for a, b in zip(pts, pts[1:])),
    )


X264_BFRAMES = {"bf": "2", "g": "12", "keyint_min": "12", "sc_threshold": "0", "preset": "ultrafast",
                "x264-params": "bframes=2:b-adapt=0:keyint=12:min-keyint=12:scenecut=0"}


def _gen_h264(folder: Path, ext: str) -> Generated:
    return encode_video(folder / f"h264_bframes.{ext}", codec="libx264", width=96, height=64,
                        pix_fmt="yuv420p", num_frames=48, options=X264_BFRAMES)


def _gen_vp9(folder: Path) -> Generated:
    return encode_video(folder / "vp9.webm", codec="libvpx-vp9", width=96, height=64,
                        pix_fmt="yuv420p", num_frames=30,
                        options={"g": "10", "deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"})


def _gen_odd(folder: Path) -> Generated:
    # 4:4:4 chroma allows odd sizes with libx264 (4:2:0 needs even ones).
    return encode_video(folder / "odd_67x45.mp4", codec="libx264", width=67, height=45,
                        pix_fmt="yuv444p", num_frames=20, options=X264_BFRAMES)


def _gen_nonzero_start(folder: Path) -> Generated:
    # First pts is 36 ticks of 1/24 s: the stream starts at 1.5 s.
    return encode_video(folder / "nonzero_start.mkv", codec="libx264", width=96, height=64,
                        pix_fmt="yuv420p", num_frames=24, pts=[36 + i for i in range(24)],
                        options=X264_BFRAMES)


def _gen_vfr(folder: Path) -> Generated:
    # Variable frame rate: irregular gaps of 20..100 ms on a 1/1000 time base.
    gaps = [40, 20, 100, 33, 60, 20, 80, 45, 25, 70, 30, 90, 41, 20, 55, 33, 100, 20, 65, 35,
            40, 85, 20, 50, 30, 75, 20, 60, 44]
    pts = [0]
    for g in gaps:
        pts.append(pts[-1] + g)
    return encode_video(folder / "vfr.mp4", codec="libx264", width=96, height=64,
                        pix_fmt="yuv420p", num_frames=len(pts), rate=Fraction(25),
                        time_base=Fraction(1, 1000), pts=pts, options=X264_BFRAMES)


GENERATORS = {
    "h264_bframes.mp4": lambda d: _gen_h264(d, "mp4"),
    "h264_bframes.mkv": lambda d: _gen_h264(d, "mkv"),
    "vp9.webm": _gen_vp9,
    "odd_67x45.mp4": _gen_odd,
    "nonzero_start.mkv": _gen_nonzero_start,
    "vfr.mp4": _gen_vfr,
}


@pytest.fixture(scope="session")
def generated_video_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("generated_media")


@pytest.fixture(scope="session")
def generated_video(generated_video_dir):
    """``generated_video(name)`` -> :class:`Generated`; each file is encoded once per session."""
    cache: dict[str, Generated] = {}

    def get(name: str) -> Generated:
        if name not in cache:
            cache[name] = GENERATORS[name](generated_video_dir)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def h264_mp4(generated_video) -> Generated:
    """48 frames of 96x64 H.264 with B-frames (GOP 12) at 24 fps, in MP4."""
    return generated_video("h264_bframes.mp4")


def count_open_fds() -> int | None:
    """Entries of /proc/self/fd, or None where that folder does not exist."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except FileNotFoundError:
        return None


@pytest.fixture(scope="module")
def module_decoders():
    """A dict for decoders that one test module reuses across many (hypothesis) examples, so
    that a reader's position left by the last request is exercised; closed after the module."""
    decoders: dict = {}
    yield decoders
    for dec in decoders.values():
        dec.close()
