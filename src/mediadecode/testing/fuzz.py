"""A mutation campaign over mediadecode's public read paths (hostile media, issue 17).

Seed files of every codec and container the project's fixtures make (video and audio) are
damaged by seeded mutations (bit flips, overwritten runs, truncations, dropped and duplicated
chunks, damaged headers, lying header integers, splices of two files). Each damaged file goes
through every public read path in a worker process with a timeout, so that a crash (a signal) or
a hang is caught and counted, never taken down the caller:

- ``get_container_metadata``; :class:`~mediadecode.VideoDecoder` in both seek modes: metadata,
  ``len``, first and last frame, a batch with duplicates, a range, played-at, played-in-range,
  iteration, the clip samplers; :class:`~mediadecode.AudioDecoder`: all samples and chunks;
  the torchvision (``read_video``, ``VideoReader``) and torchaudio (``load``, ``info``) readers.

A path's outcome is ``ok``, a documented error (any :class:`~mediadecode.errors.MediaDecodeError`,
or an ``IndexError``/``ValueError``/``TypeError`` raised by a ``raise`` statement in mediadecode's
own code: a documented argument or bounds check), or an undocumented one (anything else: a raw
PyAV, numpy or torch error, a bug). The worker also reports open file descriptors and RSS after
each case. ``tests/test_fuzz.py`` runs a few hundred cases in CI; ``benchmarks/fuzz_campaign.py``
runs thousands and writes ``docs/reliability.md``'s figures.

Usage::

    from mediadecode.testing import fuzz

    seeds = fuzz.make_seed_corpus(folder)
    cases = fuzz.make_cases(seeds, n=300, seed=0)
    report = fuzz.run_cases(cases, folder / "cases", workers=2, timeout=20.0)
    assert report.crashes == [] and report.hangs == [] and report.undocumented == []
"""

from __future__ import annotations

import dataclasses
import linecache
import multiprocessing
import os
import random
import struct
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MUTATIONS",
    "Case",
    "CaseResult",
    "Report",
    "make_seed_corpus",
    "make_cases",
    "mutate",
    "exercise",
    "run_cases",
]

# Every read path's work is bounded by the file; this bounds a runaway iteration all the same.
MAX_ITERATED_FRAMES = 2000
# The output limit inside workers: a memory bomb must be refused, not allocated.
WORKER_MAX_OUTPUT_BYTES = 256 * 1024 * 1024


# -- the seed corpus -------------------------------------------------------------------------


def _pattern(i: int, width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = (x * 4 + i * 9) % 256
    img[..., 1] = (y * 5 + i * 5) % 256
    img[..., 2] = ((x + y) * 2 + i * 13) % 256
    return img


def _has_encoder(name: str) -> bool:
    import av

    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


def _encode(path: Path, *, video: dict | None = None, audio: dict | None = None, fmt: str | None = None,
            container_options: dict | None = None) -> Path:
    """Encode a short file with PyAV: ``video`` (codec, width, height, frames, rate, pix_fmt,
    options, time_base, pts, rotation) and/or ``audio`` (codec, rate, channels, seconds)."""
    import av

    with av.open(str(path), mode="w", format=fmt, options=container_options or {}) as out:
        vstream = astream = None
        if video is not None:
            vstream = out.add_stream(video["codec"], rate=video.get("rate", 24), options=video.get("options", {}))
            vstream.width, vstream.height = video["width"], video["height"]
            vstream.pix_fmt = video.get("pix_fmt", "yuv420p")
            tb = video.get("time_base", Fraction(1, video.get("rate", 24)))
            vstream.time_base = tb
            vstream.codec_context.time_base = tb
            if video.get("rotation"):
                vstream.set_display_rotation(video["rotation"])
        if audio is not None:
            layout = {1: "mono", 2: "stereo"}[audio["channels"]]
            astream = out.add_stream(audio["codec"], rate=audio["rate"], layout=layout)
        packets = []
        if vstream is not None:
            pts = video.get("pts") or list(range(video["frames"]))
            for i, p in enumerate(pts):
                frame = av.VideoFrame.from_ndarray(_pattern(i, video["width"], video["height"]), format="rgb24")
                frame = frame.reformat(format=vstream.pix_fmt)
                frame.pts, frame.time_base = p, vstream.time_base
                packets += vstream.encode(frame)
            packets += vstream.encode(None)
        if astream is not None:
            rate, channels = audio["rate"], audio["channels"]
            total = int(round(audio["seconds"] * rate))
            t = np.arange(total) / rate
            tones = np.stack([0.4 * np.sin(2 * np.pi * (330 + 110 * c) * t) for c in range(channels)])
            tones = tones.astype(np.float32)
            size = astream.codec_context.frame_size or 1024
            layout = {1: "mono", 2: "stereo"}[channels]
            for start in range(0, total, size):
                frame = av.AudioFrame.from_ndarray(
                    _samples_as(tones[:, start:start + size], astream.codec_context.format.name),
                    format=astream.codec_context.format.name, layout=layout)
                frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
                packets += astream.encode(frame)
            packets += astream.encode(None)
        for packet in packets:
            out.mux(packet)
    return path


def _samples_as(part: np.ndarray, fmt: str) -> np.ndarray:
    """Float samples ``(channels, n)`` in the array layout PyAV takes for sample format
    ``fmt`` (planar: one row per channel; packed: one interleaved row)."""
    dtype = {"s16": np.int16, "s32": np.int32, "flt": np.float32, "dbl": np.float64, "u8": np.uint8}[fmt.rstrip("p")]
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        scaled = part * (info.max if info.min < 0 else 127) + (0 if info.min < 0 else 128)
        data = scaled.astype(dtype)
    else:
        data = part.astype(dtype)
    if not fmt.endswith("p"):
        data = data.T.reshape(1, -1)
    return np.ascontiguousarray(data)


_X264 = {"bf": "2", "g": "8", "preset": "ultrafast",
         "x264-params": "bframes=2:b-adapt=0:keyint=8:min-keyint=8:scenecut=0"}


def make_seed_corpus(folder: Path) -> list[Path]:
    """Encode the seed files into ``folder`` (small: a few kB to ~100 kB each) and return them:
    H.264 with B-frames in MP4, MOV (header first) and Matroska, a non-zero start, variable frame
    rate, a display matrix, 4:4:4 odd size, VP9 in WebM, MPEG-4 in AVI, MJPEG, H.264 + AAC in
    MP4; WAV, AAC, MP3, FLAC and Opus audio (those PyAV's FFmpeg can encode)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    small = dict(codec="libx264", width=64, height=48, frames=24, options=_X264)
    specs: list[tuple[str, dict]] = [
        ("h264_bframes.mp4", dict(video=small)),
        ("h264_faststart.mov", dict(video=small, fmt="mov", container_options={"movflags": "faststart"})),
        ("h264.mkv", dict(video=small)),
        ("nonzero_start.mkv", dict(video={**small, "pts": [36 + i for i in range(24)]})),
        ("vfr.mp4", dict(video={**small, "time_base": Fraction(1, 1000), "rate": 25,
                                "pts": [0, 40, 60, 160, 193, 253, 273, 353, 398, 423, 493, 523,
                                        613, 654, 674, 729, 762, 862, 882, 947]})),
        ("rotated90.mp4", dict(video={**small, "frames": 12, "rotation": 90})),
        ("odd_67x45.mp4", dict(video={**small, "width": 67, "height": 45, "pix_fmt": "yuv444p", "frames": 12})),
        ("vp9.webm", dict(video=dict(codec="libvpx-vp9", width=64, height=48, frames=20,
                                     options={"g": "10", "deadline": "realtime", "cpu-used": "8",
                                              "lag-in-frames": "0"}))),
        ("mpeg4.avi", dict(video=dict(codec="mpeg4", width=64, height=48, frames=20, options={"g": "10"}))),
        ("mjpeg.mkv", dict(video=dict(codec="mjpeg", width=64, height=48, frames=10, pix_fmt="yuvj420p"))),
        ("av_h264_aac.mp4", dict(video={**small, "frames": 24},
                                 audio=dict(codec="aac", rate=16000, channels=2, seconds=1.0))),
        ("tone_s16.wav", dict(audio=dict(codec="pcm_s16le", rate=8000, channels=2, seconds=0.5))),
        ("tone_aac.m4a", dict(audio=dict(codec="aac", rate=16000, channels=1, seconds=0.75), fmt="mp4")),
        ("tone.mp3", dict(audio=dict(codec="libmp3lame", rate=22050, channels=2, seconds=0.75))),
        ("tone.flac", dict(audio=dict(codec="flac", rate=16000, channels=1, seconds=0.5))),
        ("tone_opus.ogg", dict(audio=dict(codec="libopus", rate=48000, channels=2, seconds=0.5))),
    ]
    seeds = []
    for name, spec in specs:
        codecs = [s["codec"] for s in (spec.get("video"), spec.get("audio")) if s]
        if not all(_has_encoder(c) for c in codecs):
            continue
        path = folder / name
        if not path.exists():
            _encode(path, **spec)
        seeds.append(path)
    return seeds


# -- mutations -------------------------------------------------------------------------------


def _bitflips(data: bytearray, rng: random.Random, other: bytes) -> str:
    n = rng.randint(1, 24)
    for _ in range(n):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    return f"{n} bit flips"


def _overwrite(data: bytearray, rng: random.Random, other: bytes) -> str:
    size = rng.randint(1, max(1, len(data) // 20))
    at = rng.randrange(len(data))
    fill = rng.choice([b"\x00", b"\xff", None])
    chunk = bytes(rng.getrandbits(8) for _ in range(size)) if fill is None else fill * size
    data[at:at + size] = chunk[: len(data) - at]
    return f"overwrote {size} bytes at {at}"


def _truncate(data: bytearray, rng: random.Random, other: bytes) -> str:
    keep = rng.randint(0, len(data) - 1)
    del data[keep:]
    return f"truncated to {keep} bytes"


def _drop_chunk(data: bytearray, rng: random.Random, other: bytes) -> str:
    size = rng.randint(1, max(1, len(data) // 8))
    at = rng.randrange(len(data))
    del data[at:at + size]
    return f"dropped {size} bytes at {at}"


def _duplicate_chunk(data: bytearray, rng: random.Random, other: bytes) -> str:
    size = rng.randint(1, max(1, len(data) // 8))
    at = rng.randrange(len(data))
    data[at:at] = data[at:at + size]
    return f"duplicated {size} bytes at {at}"


def _damage_header(data: bytearray, rng: random.Random, other: bytes) -> str:
    span = min(len(data), 1024)
    n = rng.randint(1, 16)
    for _ in range(n):
        data[rng.randrange(span)] = rng.getrandbits(8)
    return f"{n} random bytes in the first {span}"


def _lying_integer(data: bytearray, rng: random.Random, other: bytes) -> str:
    """A 16- or 32-bit big- or little-endian integer in the header area set to a large value:
    counts, sizes, durations, dimensions."""
    width = rng.choice([2, 4])
    order = rng.choice([">", "<"])
    span = max(1, min(len(data), 4096) - width)
    at = rng.randrange(span)
    value = rng.choice([0, 1, 0x7FFF, 0xFFFF, 0x4000, 16384, 0x7FFFFFFF, 0xFFFFFFFF, 9437187, 1 << 24])
    value &= (1 << (8 * width)) - 1
    struct.pack_into(order + ("H" if width == 2 else "I"), data, at, value)
    return f"set the {width}-byte {order} integer at {at} to {value}"


def _splice(data: bytearray, rng: random.Random, other: bytes) -> str:
    at = rng.randrange(len(data))
    frm = rng.randrange(max(1, len(other)))
    data[at:] = other[frm:]
    return f"spliced another file from its byte {frm} at {at}"


MUTATIONS = {
    "bitflips": _bitflips,
    "overwrite": _overwrite,
    "truncate": _truncate,
    "drop_chunk": _drop_chunk,
    "duplicate_chunk": _duplicate_chunk,
    "damage_header": _damage_header,
    "lying_integer": _lying_integer,
    "splice": _splice,
}
"""Mutation kinds: name -> ``f(data: bytearray, rng, other_seed_bytes) -> description``."""


@dataclass(frozen=True)
class Case:
    """One damaged file: seed file, mutation kinds applied in order, and the RNG seed that makes
    it reproducible (:func:`mutate`)."""

    index: int
    seed_file: str
    kinds: tuple[str, ...]
    rng_seed: int
    other_file: str


def mutate(case: Case) -> tuple[bytes, str]:
    """The bytes of ``case`` and a description of what was done."""
    rng = random.Random(case.rng_seed)
    data = bytearray(Path(case.seed_file).read_bytes())
    other = Path(case.other_file).read_bytes()
    what = []
    for kind in case.kinds:
        if not data:
            break
        what.append(MUTATIONS[kind](data, rng, other))
    return bytes(data), "; ".join(what)


def make_cases(seeds: list[Path], n: int, seed: int = 0) -> list[Case]:
    """``n`` cases spread evenly over the seed files, each with one or two mutations."""
    rng = random.Random(seed)
    kinds = sorted(MUTATIONS)
    cases = []
    for i in range(n):
        seed_file = seeds[i % len(seeds)]
        chosen = tuple(rng.choice(kinds) for _ in range(rng.choice([1, 1, 1, 2])))
        cases.append(Case(i, str(seed_file), chosen, rng.getrandbits(32), str(rng.choice(seeds))))
    return cases


# -- the read paths --------------------------------------------------------------------------


def _documented(exc: BaseException) -> bool:
    from mediadecode.errors import MediaDecodeError

    if isinstance(exc, MediaDecodeError):
        return True
    if not isinstance(exc, (IndexError, ValueError, TypeError)):
        return False
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = tb.tb_frame.f_code.co_filename
    package = str(Path(__file__).resolve().parents[1])
    line = linecache.getline(filename, tb.tb_lineno).strip()
    # A check mediadecode makes on purpose (its own ``raise``), not a builtin failing inside it.
    return filename.startswith(package) and line.startswith("raise ")


class _Recorder:
    """Runs read paths, recording each one's outcome."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}
        self.undocumented: dict[str, str] = {}
        self.frames = 0
        self.samples = 0

    def run(self, name: str, fn) -> Any:
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - classifying every failure is the point
            if isinstance(exc, KeyboardInterrupt):
                raise
            kind = type(exc).__name__
            if _documented(exc):
                self.outcomes[name] = kind
            else:
                self.outcomes[name] = "UNDOCUMENTED " + kind
                where = traceback.extract_tb(exc.__traceback__)[-1]
                self.undocumented[name] = (
                    f"{type(exc).__module__}.{kind}: {str(exc)[:300]} "
                    f"(at {Path(where.filename).name}:{where.lineno})"
                )
            del exc
            return None
        self.outcomes[name] = "ok"
        return result


def _video_paths(rec: _Recorder, path: str, seek_mode: str) -> None:
    from mediadecode import VideoDecoder, samplers

    tag = f"video[{seek_mode}]"
    dec = rec.run(f"{tag}.open", lambda: VideoDecoder(path, seek_mode=seek_mode))
    if dec is None:
        return
    try:
        meta = rec.run(f"{tag}.metadata", lambda: dec.metadata)
        n = rec.run(f"{tag}.len", lambda: len(dec)) or 0

        def count(batch):
            rec.frames += int(batch.data.shape[0]) if batch is not None else 0
            return batch

        if n:
            count(rec.run(f"{tag}.first", lambda: dec.get_frames_at([0])))
            count(rec.run(f"{tag}.last", lambda: dec.get_frames_at([-1])))
            count(rec.run(f"{tag}.batch", lambda: dec.get_frames_at([0, len(dec) // 2, len(dec) - 1, 0])))
            count(rec.run(f"{tag}.range", lambda: dec.get_frames_in_range(0, min(len(dec), 6))))
        if meta is not None and meta.begin_stream_seconds is not None:
            begin = meta.begin_stream_seconds
            end = meta.end_stream_seconds if meta.end_stream_seconds is not None else begin + 1.0
            if end > begin:
                count(rec.run(f"{tag}.played_at", lambda: dec.get_frames_played_at([begin, (begin + end) / 2])))
                count(rec.run(f"{tag}.played_in_range",
                              lambda: dec.get_frames_played_in_range(begin, min(end, begin + 0.3))))

        def iterate():
            seen = 0
            for _ in dec:
                seen += 1
                if seen > MAX_ITERATED_FRAMES:
                    raise RuntimeError(f"iteration did not stop after {MAX_ITERATED_FRAMES} frames")
            return seen

        rec.frames += rec.run(f"{tag}.iterate", iterate) or 0
        if n:
            rec.run(f"{tag}.random_clips",
                    lambda: samplers.clips_at_random_indices(dec, num_clips=2, num_frames_per_clip=3))
            rec.run(f"{tag}.regular_clips",
                    lambda: samplers.clips_at_regular_timestamps(dec, seconds_between_clip_starts=0.25,
                                                                 num_frames_per_clip=2))
    finally:
        dec.close()


def _audio_paths(rec: _Recorder, path: str) -> None:
    from mediadecode import AudioDecoder

    dec = rec.run("audio.open", lambda: AudioDecoder(path))
    if dec is None:
        return
    try:
        samples = rec.run("audio.all", dec.get_all_samples)
        if samples is not None:
            rec.samples += int(samples.data.shape[1])
        begin = dec.metadata.begin_stream_seconds or 0.0
        for k in range(3):
            rec.run(f"audio.chunk{k}",
                    lambda k=k: dec.get_samples_played_in_range(begin + 0.2 * k, begin + 0.2 * (k + 1)))
        rec.run("audio.resampled", lambda: AudioDecoder(path, sample_rate=8000, num_channels=1).get_all_samples())
    finally:
        dec.close()


def _adapter_paths(rec: _Recorder, path: str) -> None:
    from mediadecode import get_container_metadata
    from mediadecode.adapters import torchaudio as ta
    from mediadecode.adapters import torchvision as tv

    rec.run("container_metadata", lambda: get_container_metadata(path))
    rec.run("torchvision.read_video", lambda: tv.read_video(path, pts_unit="sec", output_format="TCHW"))

    def reader():
        frames = 0
        for _ in tv.VideoReader(path, "video"):
            frames += 1
            if frames > MAX_ITERATED_FRAMES:
                raise RuntimeError("VideoReader did not stop")
        return frames

    rec.run("torchvision.VideoReader", reader)
    rec.run("torchaudio.info", lambda: ta.info(path))
    rec.run("torchaudio.load", lambda: ta.load(path))


def exercise(path: str | os.PathLike) -> dict[str, Any]:
    """Every public read path on ``path``, in this process. Returns ``outcomes`` (path name ->
    ``"ok"``, a documented error class, or ``"UNDOCUMENTED <class>"``), ``undocumented`` (path
    name -> class, message and where it was raised), ``frames`` and ``samples`` decoded."""
    rec = _Recorder()
    path = str(path)
    for seek_mode in ("exact", "approximate"):
        _video_paths(rec, path, seek_mode)
    _audio_paths(rec, path)
    _adapter_paths(rec, path)
    return {"outcomes": rec.outcomes, "undocumented": rec.undocumented, "frames": rec.frames,
            "samples": rec.samples}


# -- workers ---------------------------------------------------------------------------------


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except FileNotFoundError:  # pragma: no cover - not Linux
        return -1


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # pragma: no cover
        return -1


def _worker_main(conn) -> None:
    """Worker process: receives case file paths, answers each with its :func:`exercise` dict
    plus ``fds_without_gc`` (growth of open descriptors over the case, run with the cycle
    collector off), ``fds`` (the growth left after a collection) and ``rss`` (bytes after it)."""
    import gc
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("MEDIADECODE_MAX_OUTPUT_BYTES", str(WORKER_MAX_OUTPUT_BYTES))
    try:
        import av

        av.logging.set_level(None)
    except Exception:  # pragma: no cover
        pass
    while True:
        try:
            path = conn.recv()
        except EOFError:
            return
        if path is None:
            return
        # The cycle collector stays off during the case, so a descriptor that only a collection
        # would free is counted every time, not only when no automatic collection happened to run.
        gc.collect()
        gc.disable()
        try:
            before = _open_fds()
            result = exercise(path)
            result["fds_without_gc"] = _open_fds() - before
        finally:
            gc.enable()
        gc.collect()
        result["fds"] = _open_fds() - before
        result["rss"] = _rss_bytes()
        conn.send(result)


@dataclass
class CaseResult:
    """What happened to one case: ``status`` is ``"done"``, ``"hang"`` (no answer within the
    timeout: the worker was killed) or ``"crash"`` (the worker died; ``detail`` has its exit
    code or signal)."""

    case: Case
    description: str
    status: str
    detail: str = ""
    outcomes: dict[str, str] = field(default_factory=dict)
    undocumented: dict[str, str] = field(default_factory=dict)
    frames: int = 0
    samples: int = 0
    fds: int = 0
    fds_without_gc: int = 0
    rss: int = 0
    seconds: float = 0.0


@dataclass
class Report:
    """The counts of a campaign."""

    results: list[CaseResult]

    @property
    def crashes(self) -> list[CaseResult]:
        return [r for r in self.results if r.status == "crash"]

    @property
    def hangs(self) -> list[CaseResult]:
        return [r for r in self.results if r.status == "hang"]

    @property
    def undocumented(self) -> list[CaseResult]:
        return [r for r in self.results if r.undocumented]

    @property
    def fd_growth(self) -> list[CaseResult]:
        """Cases after which the worker held more open descriptors (after a collection)."""
        return [r for r in self.results if r.fds > 0]

    @property
    def fd_growth_without_gc(self) -> list[CaseResult]:
        """Cases after which the worker held more open descriptors before a collection: a
        dropped object that waits for the cycle collector to close its file."""
        return [r for r in self.results if r.fds_without_gc > 0]

    @property
    def decoded_frames(self) -> int:
        """Cases from which at least one video frame was decoded."""
        return sum(1 for r in self.results if r.frames > 0)

    @property
    def decoded_samples(self) -> int:
        return sum(1 for r in self.results if r.samples > 0)

    @property
    def max_rss(self) -> int:
        return max((r.rss for r in self.results), default=0)

    def fault_classes(self) -> Counter:
        """Undocumented errors by read path and exception class."""
        counts: Counter = Counter()
        for r in self.results:
            for name, what in r.undocumented.items():
                counts[(name.split(".")[0], what.split(":")[0])] += 1
        return counts

    def outcome_counts(self) -> Counter:
        counts: Counter = Counter()
        for r in self.results:
            for outcome in r.outcomes.values():
                counts[outcome] += 1
        return counts

    def summary(self) -> str:
        lines = [
            f"cases: {len(self.results)}",
            f"crashes: {len(self.crashes)}",
            f"hangs: {len(self.hangs)}",
            f"cases with undocumented errors: {len(self.undocumented)}",
            f"cases leaving open descriptors: {len(self.fd_growth)} "
            f"({len(self.fd_growth_without_gc)} before a garbage collection)",
            f"cases with decoded frames: {self.decoded_frames}",
            f"cases with decoded audio: {self.decoded_samples}",
            f"largest worker RSS after a case: {self.max_rss / 2**20:.0f} MiB",
        ]
        for (where, what), n in sorted(self.fault_classes().items()):
            lines.append(f"  undocumented {what} in {where}: {n}")
        for r in self.crashes + self.hangs:
            lines.append(f"  {r.status}: case {r.case.index} ({Path(r.case.seed_file).name}: {r.description}) {r.detail}")
        return "\n".join(lines)


class _Worker:
    """One spawned worker process and its pipe; restarted after a crash or a hang."""

    def __init__(self, ctx) -> None:
        self._ctx = ctx
        self._start()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self.process = self._ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.conn = parent

    def run(self, path: str, timeout: float) -> tuple[str, Any]:
        try:
            self.conn.send(path)
            if not self.conn.poll(timeout):
                self._kill()
                return "hang", f"no answer within {timeout:g} s"
            return "done", self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.process.join(5)
            code = self.process.exitcode
            self._restart()
            return "crash", f"worker exit code {code}"

    def _kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self._restart()

    def _restart(self) -> None:
        try:
            self.conn.close()
        except OSError:  # pragma: no cover
            pass
        self._start()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


def run_cases(cases: list[Case], folder: Path, *, workers: int = 2, timeout: float = 30.0,
              progress=None) -> Report:
    """Run ``cases`` through :func:`exercise` in ``workers`` spawned processes, each case within
    ``timeout`` seconds (the worker is killed and replaced after a hang or a crash). Damaged
    files are written to ``folder`` one at a time per worker and removed after their case.
    ``progress(done, total)`` is called after each case."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")
    pending = list(cases)
    lock = threading.Lock()
    results: list[CaseResult] = []

    def drive(slot: int) -> None:
        worker = _Worker(ctx)
        try:
            while True:
                with lock:
                    if not pending:
                        return
                    case = pending.pop(0)
                data, description = mutate(case)
                suffix = Path(case.seed_file).suffix
                path = folder / f"case{case.index:06d}{suffix}"
                path.write_bytes(data)
                start = time.monotonic()
                status, answer = worker.run(str(path), timeout)
                result = CaseResult(case, description, status, seconds=time.monotonic() - start)
                if status == "done":
                    for key in ("outcomes", "undocumented", "frames", "samples", "fds", "fds_without_gc", "rss"):
                        setattr(result, key, answer[key])
                else:
                    result.detail = answer
                    result.description += f" [kept as {path.name}]"
                if status == "done":
                    path.unlink()
                with lock:
                    results.append(result)
                    if progress is not None:
                        progress(len(results), len(cases))
        finally:
            worker.close()

    threads = [threading.Thread(target=drive, args=(k,), daemon=True) for k in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.sort(key=lambda r: r.case.index)
    return Report(results)


def as_dict(result: CaseResult) -> dict[str, Any]:
    """A JSON-serialisable form of a :class:`CaseResult`."""
    out = dataclasses.asdict(result)
    out["case"] = dataclasses.asdict(result.case)
    return out
