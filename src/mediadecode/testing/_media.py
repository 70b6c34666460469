"""Media the conformance kit makes for itself, and FFmpeg's reference decode of it.

Every file is encoded here with PyAV (whose wheel bundles FFmpeg and its encoders), so the kit
needs no data files. References come from FFmpeg directly: video frames decoded sequentially by
PyAV and converted with ``frame.to_ndarray(format="rgb24")``, rotated as players show them;
audio decoded by PyAV and converted to float32 by libswresample (``av.AudioResampler``).
"""

from __future__ import annotations

import dataclasses
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["VideoCase", "AudioCase", "MediaSet", "make_media", "VideoReference"]


@dataclasses.dataclass
class VideoReference:
    """FFmpeg's view of one video stream (sequential decode with PyAV).

    Attributes:
        frames: ``uint8`` ``(N, H, W, 3)`` RGB, rotated by the display matrix.
        pts: ``float64`` ``(N,)`` each frame's ``frame.time`` in seconds.
        durations: ``float64`` ``(N,)`` seconds (gap to the next frame for the last known one).
        rotation: display-matrix angle of the first frame (CCW degrees).
        header_frames: frame count in the header (0 when absent).
        average_rate: the header's average frame rate.
    """

    frames: np.ndarray
    pts: np.ndarray
    durations: np.ndarray
    rotation: float
    header_frames: int
    average_rate: Fraction | None

    def __len__(self) -> int:
        return len(self.frames)

    def index_played_at(self, seconds: float) -> int:
        """Index of the last frame whose pts is <= ``seconds`` (0 before the first)."""
        return max(0, int(np.searchsorted(self.pts, seconds, side="right")) - 1)


@dataclasses.dataclass
class VideoCase:
    """A generated video file and how it was made."""

    name: str
    path: Path
    num_frames: int
    width: int  # as displayed (after rotation)
    height: int
    rate: Fraction
    first_pts_seconds: float
    rotation: int = 0
    _ref: VideoReference | None = None
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def reference(self) -> VideoReference:
        """FFmpeg's decode of the file (computed once)."""
        with self._lock:
            if self._ref is None:
                self._ref = video_reference(self.path)
            return self._ref


@dataclasses.dataclass
class AudioCase:
    """A generated audio file and how it was made."""

    name: str
    path: Path
    sample_rate: int
    num_channels: int
    seconds: float
    codec: str


@dataclasses.dataclass
class MediaSet:
    """Everything the kit generated, in one folder.

    Attributes:
        videos: video cases by name.
        audios: audio cases by name.
        garbage: a file of random bytes with a ``.mp4`` name (not media).
        text: a small text file (FFmpeg's ``tty`` demuxer would show it as video).
    """

    folder: Path
    videos: dict[str, VideoCase]
    audios: dict[str, AudioCase]
    garbage: Path
    text: Path


def video_reference(path) -> VideoReference:
    """Decode every frame of the best video stream with PyAV (independently of mediadecode)."""
    import av

    frames, pts, durs = [], [], []
    rotation = None
    with av.open(str(path)) as container:
        stream = container.streams.best("video")
        header = stream.frames
        rate = stream.average_rate
        for frame in container.decode(stream):
            if rotation is None:
                rotation = frame.rotation
            frames.append(frame.to_ndarray(format="rgb24"))
            pts.append(frame.time)
            durs.append(float(frame.duration * frame.time_base) if frame.duration else 0.0)
    k = int(round((rotation or 0) / 90)) % 4
    data = np.stack([np.rot90(f, k) for f in frames])
    pts_arr = np.asarray(pts, dtype=np.float64)
    dur_arr = np.asarray(durs, dtype=np.float64)
    for i in range(len(dur_arr)):
        if dur_arr[i] <= 0 and i + 1 < len(pts_arr):
            dur_arr[i] = pts_arr[i + 1] - pts_arr[i]
    return VideoReference(
        frames=np.ascontiguousarray(data),
        pts=pts_arr,
        durations=dur_arr,
        rotation=float(rotation or 0),
        header_frames=int(header or 0),
        average_rate=rate,
    )


def audio_reference(path, sample_rate: int | None = None, layout: str | None = None) -> tuple[np.ndarray, float]:
    """``(float32 (C, S), first_pts_seconds)``: the best audio stream decoded by PyAV and
    converted by libswresample, optionally resampled / remixed."""
    import av

    chunks = []
    first = None
    with av.open(str(path)) as container:
        stream = container.streams.best("audio")
        resampler = av.AudioResampler(format="flt", layout=layout, rate=sample_rate or stream.rate)
        channels = None
        for frame in container.decode(stream):
            if first is None:
                first = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
            for out in resampler.resample(frame):
                channels = out.layout.nb_channels
                chunks.append(out.to_ndarray())
        for out in resampler.resample(None):
            channels = out.layout.nb_channels
            chunks.append(out.to_ndarray())
    data = np.concatenate(chunks, axis=1).reshape(-1, channels).T
    return np.ascontiguousarray(data, dtype=np.float32), first or 0.0


def _pattern(i: int, width: int, height: int) -> np.ndarray:
    """A distinct, compressible picture for frame ``i``: moving gradients and a square."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = (x * 4 + i * 9) % 256
    img[..., 1] = (y * 5 + i * 5) % 256
    img[..., 2] = ((x + y) * 2 + i * 13) % 256
    s = max(4, min(width, height) // 4)
    ox, oy = (i * 3) % max(1, width - s), (i * 2) % max(1, height - s)
    img[oy:oy + s, ox:ox + s] = 255 - (i * 17) % 128
    return img


def _video_codec() -> tuple[str, dict[str, str]]:
    import av

    try:
        av.codec.Codec("libx264", "w")
        return "libx264", {"bf": "2", "g": "8", "preset": "ultrafast",
                           "x264-params": "bframes=2:b-adapt=0:keyint=8:min-keyint=8:scenecut=0"}
    except Exception:  # pragma: no cover - PyAV wheels ship libx264
        return "mpeg4", {"g": "8", "bf": "2"}


def _encode_video(path: Path, *, width, height, pts, time_base, rate, rotation=0) -> None:
    import av

    codec, options = _video_codec()
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(_pattern(i, width, height), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = p, time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _encode_audio(path: Path, *, codec: str, rate: int, channels: int, seconds: float, fmt: str | None = None) -> None:
    import av

    layout = {1: "mono", 2: "stereo"}[channels]
    total = int(round(seconds * rate))
    t = np.arange(total) / rate
    tones = np.stack([0.4 * np.sin(2 * np.pi * (330 + 110 * c) * t) for c in range(channels)]).astype(np.float32)
    with av.open(str(path), mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        chunk = 1024
        for start in range(0, total, chunk):
            part = np.ascontiguousarray(tones[:, start:start + chunk])
            frame = av.AudioFrame.from_ndarray(part, format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def make_media(folder: Path) -> MediaSet:
    """Encode the kit's media into ``folder`` (a few hundred kB, about a second on 2 cores)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    videos = {}
    # H.264 with B-frames (decode order != presentation order), GOP 8, in MP4.
    path = folder / "bframes.mp4"
    _encode_video(path, width=96, height=64, pts=list(range(40)), time_base=Fraction(1, 24), rate=24)
    videos["bframes_mp4"] = VideoCase("bframes_mp4", path, 40, 96, 64, Fraction(24), 0.0)
    # Matroska, first pts 1.5 s.
    path = folder / "nonzero_start.mkv"
    _encode_video(path, width=64, height=48, pts=[36 + i for i in range(24)], time_base=Fraction(1, 24), rate=24)
    videos["nonzero_start_mkv"] = VideoCase("nonzero_start_mkv", path, 24, 64, 48, Fraction(24), 1.5)
    # Variable frame rate on a 1/1000 time base.
    gaps = [40, 20, 100, 33, 60, 20, 80, 45, 25, 70, 30, 90, 41, 20, 55, 33, 100, 20, 65]
    pts = [0]
    for g in gaps:
        pts.append(pts[-1] + g)
    path = folder / "vfr.mp4"
    _encode_video(path, width=64, height=48, pts=pts, time_base=Fraction(1, 1000), rate=25)
    videos["vfr_mp4"] = VideoCase("vfr_mp4", path, len(pts), 64, 48, Fraction(25), 0.0)
    # A display matrix: 90 degrees counter-clockwise; shown as 48x64.
    path = folder / "rotated90.mp4"
    _encode_video(path, width=64, height=48, pts=list(range(16)), time_base=Fraction(1, 24), rate=24, rotation=90)
    videos["rotated90_mp4"] = VideoCase("rotated90_mp4", path, 16, 48, 64, Fraction(24), 0.0, rotation=90)

    audios = {}
    path = folder / "tone_s16.wav"
    _encode_audio(path, codec="pcm_s16le", rate=8000, channels=2, seconds=0.75)
    audios["wav_s16_stereo"] = AudioCase("wav_s16_stereo", path, 8000, 2, 0.75, "pcm_s16le")
    path = folder / "tone_aac.m4a"
    _encode_audio(path, codec="aac", rate=16000, channels=1, seconds=0.75, fmt="mp4")
    audios["aac_mono_m4a"] = AudioCase("aac_mono_m4a", path, 16000, 1, 0.75, "aac")

    garbage = folder / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    text = folder / "notes.txt"
    text.write_text("this is not a video\n" * 20)
    return MediaSet(folder, videos, audios, garbage, text)


_cache: dict[str, MediaSet] = {}
_cache_lock = threading.Lock()


def media_in(folder: Path) -> MediaSet:
    """The kit's media under ``folder``, made on first use and cached for the process."""
    key = str(Path(folder).resolve())
    with _cache_lock:
        if key not in _cache:
            _cache[key] = make_media(Path(folder))
        return _cache[key]
