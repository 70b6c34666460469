"""The ``decord`` backend: video and audio through the ``decord`` module, on the CPU.

Either distribution provides the module: ``decord`` 0.6 (unmaintained since 2021; its bundled
FFmpeg has no AV1 decoder) or its maintained fork ``decord2`` (same import name, FFmpeg 8). The
``[decord]`` extra installs ``decord2``; docs/backends.md has the measurements behind that choice.

What comes from where:

- frames, the frame count, each frame's timestamps and the keyframes come from decord:
  ``VideoReader.get_batch`` (exact: it seeks to the keyframe and decodes forward) and
  ``get_frame_timestamp`` (decord's own packet scan at open, sorted into presentation order);
- the container header (codec, stream indices, header frame count and rate, time base, start
  time) and the display matrix and colour tags of the first frame are read with PyAV, which
  mediadecode depends on anyway: decord's API exposes none of them.

decord's timestamps are float32 seconds relative to the stream's start time; they are snapped to
the stream's time base (``round(t / time_base) + start``) so that ``pts_seconds`` are the same
float64 values as FFmpeg's (exact while float32 resolves half a tick: for a 1/90000 time base,
the first ~90 s; later pts may be a tick off, indices are never affected).

decord's traps, handled here:

- ``decord.bridge.set_bridge`` is per thread: never used; frames go through ``.asnumpy()`` and
  :func:`torch.from_numpy`;
- a reader opened before ``fork`` aborts in the child: readers are opened lazily and reopened
  when the process id changes (the inherited handle is kept unreferenced-by-decord, never freed);
- ``AudioReader`` decodes the whole stream at open, always picks the *first* audio stream, mixes
  only to mono, and reports its start as padding: the reader refuses other streams and channel
  counts (:class:`~mediadecode.errors.UnsupportedRequestError`, so automatic selection moves on)
  and keeps only the real samples;
- ``seek`` is approximate, ``get_batch`` is exact: only ``get_batch`` is used;
- on a damaged file decord silently repeats the last good frame (its ``fault_tol`` default): the
  reader asks for an error instead (a tiny ``fault_tol`` fraction), raised as
  :class:`~mediadecode.errors.DecodingError`;
- decord's errors carry C++ source locations: messages are reduced to the reason.
"""

from __future__ import annotations

import io
import os
import re
import threading
from fractions import Fraction
from typing import Any, Sequence

import numpy as np
import torch

from .. import lifecycle
from ..capabilities import Capabilities, Tolerance
from ..registry import CachedAvailability
from ..engine.output import allocate_frames
from ..errors import DecodingError, InvalidMediaError, UnsupportedRequestError
from ..frame_index import FrameIndex, fill_missing_durations
from ..metadata import AudioStreamMetadata, VideoStreamMetadata, resolve_video
from ..sources import Source

__all__ = ["DecordBackend", "DecordVideoReader", "DecordAudioReader"]

# Any decoding failure counts past this fraction of the frames: decord raises instead of
# substituting the previous frame.
_FAULT_TOL = "0.000001"


def _decord():
    """Import decord with its shared library loaded RTLD_LOCAL.

    decord loads ``libdecord.so`` with ``RTLD_GLOBAL``, which exports its bundled FFmpeg and
    dav1d symbols to the whole process: a torchcodec decoder (system FFmpeg) then calls into
    decord's libdav1d and crashes on AV1. Loaded locally, each keeps its own libraries.
    """
    import sys

    if "decord" in sys.modules:
        return sys.modules["decord"]
    import ctypes

    saved = ctypes.RTLD_GLOBAL
    ctypes.RTLD_GLOBAL = ctypes.RTLD_LOCAL
    try:
        import decord
    finally:
        ctypes.RTLD_GLOBAL = saved
    return decord


def _clean(exc: BaseException) -> str:
    """decord's message without C++ timestamps, source paths and check expressions."""
    text = str(exc) or type(exc).__name__
    lines = []
    for line in text.splitlines():
        line = re.sub(r"\[\d\d:\d\d:\d\d\]\s*", "", line)
        line = re.sub(r"\S+\.(?:cc|h|cpp):\d+:\s*", "", line)
        line = line.strip()
        if line and not line.startswith(("Stack trace", "[bt]")):
            lines.append(line)
    return " ".join(lines)[:300] or type(exc).__name__


def _decord_uri(source: Source):
    """What decord's readers take: a path, or a file object (which they read whole)."""
    if source.kind == "path":
        return source.value
    if source.kind == "bytes":
        return io.BytesIO(source.value)
    return source.open_binary()


def _probe(source: Source, media_type: str, stream_index: int | None):
    """Header metadata with PyAV (decord exposes none of it).

    Returns ``(container_metadata, stream_metadata, stream_info)``; for video ``stream_info``
    holds the time base, start ticks, coded size, rotation and colour tags of the first frame.
    """
    from ..pyav import container_metadata, open_container, select_stream

    with open_container(source) as media:
        container = media.container
        cmeta = container_metadata(container)
        stream = select_stream(container, source, media_type, stream_index)
        meta = cmeta.streams[stream.index]
        info: dict[str, Any] = {
            "index": stream.index,
            "time_base": stream.time_base,
            "start": stream.start_time,
            "first_audio": next(
                (s.index for s in container.streams if s.type == "audio"), None
            ),
        }
        if media_type == "video":
            info.update(_first_frame_info(container, stream))
            info.update(_demux_checks(container, stream))
        return cmeta, meta, info


def _demux_checks(container, stream) -> dict[str, int]:
    """Two ways decord's frame index departs from FFmpeg's, from one demux pass (no decoding).

    ``misplaced_keyframes``: decord records its keyframe positions in decode order but indexes
    frames in presentation order. Where the two differ at a keyframe (open-GOP HEVC, for one),
    its exact seek lands on the wrong frame and ``get_batch`` returns a neighbour of the frame
    asked for.

    ``hidden_frames``: packets FFmpeg flags as discarded, because the container's edit list
    starts after them (a clip cut without re-encoding keeps the GOP's first packets as
    references). FFmpeg decodes them but never returns them; decord counts them as frames
    (e.g. 87 where FFmpeg has 82) and fails to decode them.
    """
    container.seek(0, backward=True, any_frame=False)
    entries = []
    hidden = 0
    for packet in container.demux(stream):
        if packet.pts is None and packet.size == 0:
            continue  # the flush packet PyAV adds at the end; not a packet of the file
        entries.append((packet.pts if packet.pts is not None else -(2**62), packet.is_keyframe))
        hidden += bool(packet.is_discard)
    order = sorted(range(len(entries)), key=lambda k: entries[k][0])
    rank = {k: r for r, k in enumerate(order)}
    misplaced = sum(1 for k, (_, key) in enumerate(entries) if key and rank[k] != k)
    return {"misplaced_keyframes": misplaced, "hidden_frames": hidden}


def _first_frame_info(container, stream) -> dict[str, Any]:
    """Display-matrix rotation, coded size and colour tags of the first frame (empty if it
    fails)."""
    from ..pyav import first_frame_info

    try:
        frame = next(container.decode(stream), None)
    except Exception:
        frame = None
    if frame is None:
        return {}
    info = first_frame_info(frame).as_dict()
    info["coded_size"] = (info.pop("width"), info.pop("height"))
    return info


class _LazyHandle:
    """A decord reader opened on first use and reopened in a new process (after fork)."""

    def __init__(self, opener):
        self._opener = opener
        self._handle = None
        self._pid = os.getpid()

    def get(self):
        if self._handle is not None and self._pid != os.getpid():
            lifecycle.abandon(self._handle)  # freeing it here would abort: keep it
            self._handle = None
        if self._handle is None:
            self._handle = self._opener()
            self._pid = os.getpid()
            # A fork child must never free it, not even through the cycle collector.
            try:
                lifecycle.keep_alive_in_children(self._handle)
            except TypeError:  # pragma: no cover - not weak-referenceable
                pass
        return self._handle

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None and self._pid != os.getpid():
            lifecycle.abandon(handle)
        # In the owning process, dropping the last reference frees it.


class DecordVideoReader:
    """A video stream read with ``decord.VideoReader`` (exact seek mode only).

    Frames come out rotated by decord itself (``frames_are_rotated = True``).
    """

    frames_are_rotated = True

    def __init__(self, source: Source, *, stream_index: int | None, num_threads: int,
                 transforms=None):
        self._source = source
        self._lock = threading.RLock()
        self._closed = False
        cmeta, meta, info = _probe(source, "video", stream_index)
        best = cmeta.best_video_stream_index
        if info["index"] != best:
            raise UnsupportedRequestError(
                f"{source.name}: decord decodes only FFmpeg's best video stream ({best}); "
                f"stream {info['index']} was asked for"
            )
        assert isinstance(meta, VideoStreamMetadata)
        if info["misplaced_keyframes"]:
            raise UnsupportedRequestError(
                f"{source.name}: decord would return wrong frames: {info['misplaced_keyframes']} "
                "keyframes sit at different positions in decode and presentation order, and "
                "decord's exact seek confuses the two"
            )
        if info["hidden_frames"]:
            raise UnsupportedRequestError(
                f"{source.name}: decord would count {info['hidden_frames']} frames that the "
                "container's edit list hides (FFmpeg decodes them only as references), so its "
                "frame count and indices would differ from FFmpeg's"
            )
        self.container_metadata = cmeta
        self.metadata = meta
        self._num_threads = int(num_threads)
        self._per_frame = False
        self._handle = _LazyHandle(self._open_decord)
        vr = self._handle.get()
        try:
            n = len(vr)
            stamps = np.asarray(vr.get_frame_timestamp(list(range(n))), dtype=np.float64)
        except Exception as exc:
            raise InvalidMediaError(f"{source.name}: decord cannot index it: {_clean(exc)}") from exc
        tb: Fraction = info["time_base"]
        start = int(info["start"] or 0)
        self.frame_index: FrameIndex | None = None
        if tb:
            scale = tb.numerator / tb.denominator
            begin_ticks = np.rint(stamps[:, 0] / scale).astype(np.int64)
            end_ticks = np.rint(stamps[:, 1] / scale).astype(np.int64)
            pts_ticks = (begin_ticks + start).tolist()
            durations_ticks = fill_missing_durations(pts_ticks, (end_ticks - begin_ticks).tolist())
            try:
                keys = sorted(pts_ticks[k] for k in vr.get_key_indices() if 0 <= k < n)
            except Exception:  # pragma: no cover - decord builds without keyframe indices
                keys = []
            self.frame_index = FrameIndex(tb, pts_ticks, durations_ticks, keys)
            pts = self.frame_index.pts_seconds
            durations = self.frame_index.duration_seconds
        else:  # pragma: no cover - a stream without a time base
            pts = torch.from_numpy(stamps[:, 0])
            durations = torch.from_numpy(stamps[:, 1]) - pts
            gaps = torch.diff(pts)
            for k in torch.nonzero(durations <= 0).flatten().tolist():
                if k < n - 1:
                    durations[k] = gaps[k]
                elif k > 0:
                    durations[k] = durations[k - 1]
        self.frame_pts = pts
        self.frame_durations = durations
        rotation = info.get("rotation")
        meta.rotation = rotation
        for key in ("pixel_format", "color_space", "color_primaries",
                    "color_transfer_characteristic", "color_range"):
            if key in info:
                setattr(meta, key, info[key])
        coded = info.get("coded_size") or (meta.width, meta.height)
        width, height = coded
        if rotation is not None and int(rotation) % 180 != 0:
            width, height = height, width
        meta.width, meta.height = width, height
        meta.num_frames_from_content = n
        if n:
            meta.begin_stream_seconds_from_content = float(pts[0])
            meta.end_stream_seconds_from_content = float(torch.max(pts + durations))
        resolve_video(meta, cmeta.duration_seconds_from_header)
        # Native resize (Capabilities.transforms = {"resize"}): the plan's leading resize, by
        # decord's own scaler (VideoReader width/height). decord sizes frames before rotating
        # them, so a quarter-turned stream is resized after decoding instead, with torch.
        self._size = (int(meta.height or 0), int(meta.width or 0))
        self._decord_size: tuple[int, int] | None = None
        self._torch_resize = None
        if transforms is not None:
            native = transforms.resolve(meta.height, meta.width).split(frozenset({"resize"}))[0]
            if native is not None:
                self._size = native.output_size
                if rotation is not None and int(rotation) % 180 != 0:
                    self._torch_resize = native
                else:
                    self._decord_size = native.output_size
                    self._handle.close()
                    self._handle = _LazyHandle(self._open_decord)

    def _open_decord(self):
        decord = _decord()
        uri = _decord_uri(self._source)
        sized = {}
        if getattr(self, "_decord_size", None) is not None:
            sized = {"height": self._decord_size[0], "width": self._decord_size[1]}
        try:
            return decord.VideoReader(
                uri, ctx=decord.cpu(0), num_threads=self._num_threads, fault_tol=_FAULT_TOL, **sized
            )
        except Exception as exc:
            raise InvalidMediaError(
                f"{self._source.name}: decord cannot open it: {_clean(exc)}"
            ) from exc

    def _reopen(self):
        """A fresh decord reader (after a failure left the old one in an unknown state)."""
        self._handle.close()
        return self._handle.get()

    def _frames_one_by_one(self, vr, indices: list[int]) -> np.ndarray:
        """Frames through ``vr[i]`` (exact: ``seek_accurate`` then ``next``), each one cut
        out of decord's row-padded buffer: ``height`` rows of ``stride`` bytes."""
        height, width = (self._size if self._torch_resize is None
                         else (int(self.metadata.height), int(self.metadata.width)))
        out = allocate_frames((len(indices), height, width, 3), torch.uint8)
        for slot, i in enumerate(indices):
            raw = vr[i].asnumpy()
            if raw.shape == (height, width, 3):
                out[slot] = raw
                continue
            flat = np.ascontiguousarray(raw).reshape(-1)
            if flat.size % height or flat.size // height < width * 3:
                raise DecodingError(
                    f"{self._source.name}: decord returned a frame of shape {raw.shape}, "
                    f"expected ({height}, {width}, 3)"
                )
            out[slot] = flat.reshape(height, -1)[:, : width * 3].reshape(height, width, 3)
        return out

    def _vr(self):
        if self._closed:
            raise ValueError(f"{self._source.name}: the reader is closed")
        return self._handle.get()

    def get_frames_at(self, indices: Sequence[int]):
        """Frames at sorted, unique indices: ``(uint8 (N, H, W, 3), pts, durations)``."""
        indices = list(indices)
        if not indices:
            h, w = self._size
            return torch.empty((0, h, w, 3), dtype=torch.uint8), torch.empty(0, dtype=torch.float64), torch.empty(0, dtype=torch.float64)
        with self._lock:
            vr = self._vr()
            try:
                if self._per_frame:
                    data = self._frames_one_by_one(vr, indices)
                else:
                    try:
                        data = vr.get_batch(indices).asnumpy()
                    except Exception as exc:
                        if "size must exactly match" not in str(exc):
                            raise
                        # decord pads each RGB row to an alignment and then fails to copy the
                        # padded frame into its batch buffer (widths such as 96, some rotated
                        # frames): fetch frames one at a time and drop the padding.
                        self._per_frame = True
                        data = self._frames_one_by_one(self._reopen(), indices)
            except Exception as exc:
                first, last = indices[0], indices[-1]
                raise DecodingError(
                    f"{self._source.name}: decord could not decode frames {first}..{last}: "
                    f"{_clean(exc)}"
                ) from exc
        index = torch.tensor(indices, dtype=torch.long)
        frames = torch.from_numpy(np.ascontiguousarray(data))
        if self._torch_resize is not None:
            frames = self._torch_resize.apply(frames)
        return (
            frames,
            self.frame_pts[index],
            self.frame_durations[index],
        )

    def _indices_played_at(self, seconds: Sequence[float]) -> list[int]:
        times = torch.tensor(list(seconds), dtype=torch.float64)
        idx = torch.searchsorted(self.frame_pts, times, right=True) - 1
        return idx.clamp(0, len(self.frame_pts) - 1).tolist()

    def get_frames_played_at(self, seconds: Sequence[float]):
        """The frame on screen at each sorted time (the facade normally maps times itself)."""
        indices = self._indices_played_at(seconds)
        unique = sorted(set(indices))
        data, pts, dur = self.get_frames_at(unique)
        order = torch.tensor([unique.index(i) for i in indices], dtype=torch.long)
        return data[order], pts[order], dur[order]

    def get_frames_played_in_range(self, start_seconds: float, stop_seconds: float):
        """The frame on screen at ``start_seconds``, then every frame with pts below stop."""
        lo = self._indices_played_at([start_seconds])[0]
        hi = int(torch.searchsorted(self.frame_pts, torch.tensor([stop_seconds], dtype=torch.float64))[0])
        return self.get_frames_at(list(range(lo, max(lo, hi))))

    def close(self) -> None:
        self._closed = True
        handle = getattr(self, "_handle", None)
        if handle is not None:
            handle.close()


class DecordAudioReader:
    """An audio stream read with ``decord.AudioReader`` (which decodes it whole at open).

    Only the first audio stream (decord's choice) and ``num_channels`` of None, 1 or the
    stream's own count can be served; anything else raises
    :class:`~mediadecode.errors.UnsupportedRequestError`.
    """

    def __init__(
        self,
        source: Source,
        *,
        stream_index: int | None,
        sample_rate: int | None,
        num_channels: int | None,
    ):
        self._source = source
        cmeta, meta, info = _probe(source, "audio", stream_index)
        assert isinstance(meta, AudioStreamMetadata)
        first = info["first_audio"]
        if info["index"] != first:
            which = "FFmpeg's best audio stream" if stream_index is None else "stream"
            raise UnsupportedRequestError(
                f"{source.name}: decord decodes only the first audio stream ({first}); "
                f"{which} {info['index']} was asked for"
            )
        native = meta.num_channels or 1
        if num_channels not in (None, 1, native):
            raise UnsupportedRequestError(
                f"{source.name}: decord mixes only to mono or keeps the {native} channels; "
                f"num_channels={num_channels} was asked for"
            )
        if not meta.sample_rate:
            raise InvalidMediaError(f"{source.name}: audio stream {info['index']} has no sample rate")
        self.container_metadata = cmeta
        self.metadata = meta
        self.sample_rate = int(sample_rate or meta.sample_rate)
        self.num_channels = int(num_channels or native)
        decord = _decord()
        try:
            reader = decord.AudioReader(
                _decord_uri(source),
                ctx=decord.cpu(0),
                sample_rate=self.sample_rate if sample_rate else -1,
                mono=(num_channels == 1 and native != 1),
            )
            channels, total = reader.shape
            data = reader[0:total].asnumpy() if total else np.zeros((channels, 0), np.float32)
        except Exception as exc:
            raise InvalidMediaError(f"{source.name}: decord cannot decode the audio: {_clean(exc)}") from exc
        if data.shape[0] != self.num_channels:
            raise DecodingError(
                f"{source.name}: decord returned {data.shape[0]} channels, expected {self.num_channels}"
            )
        self._data = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
        # decord starts its array at the first frame's pts (it reports that as "padding").
        self._first = max(0.0, float(meta.begin_stream_seconds or 0.0))

    def get_samples_played_in_range(self, start_seconds: float, stop_seconds: float | None):
        """``(float32 (C, S), first_pts)`` covering the range; the facade trims to it."""
        if self._data is None:
            raise ValueError(f"{self._source.name}: the reader is closed")
        rate = self.sample_rate
        total = self._data.shape[1]
        begin = max(0, int(np.floor((start_seconds - self._first) * rate)) - 1)
        begin = min(begin, total)
        end = total if stop_seconds is None else min(total, int(np.ceil((stop_seconds - self._first) * rate)) + 1)
        end = max(begin, end)
        return self._data[:, begin:end].clone(), self._first + begin / rate

    def close(self) -> None:
        self._data = None


class DecordBackend(CachedAvailability):
    """decord on the CPU (priority 20, below ffmpeg and torchcodec)."""

    name = "decord"
    priority = 20
    install_hint = 'pip install "mediadecode[decord]"'
    capabilities = Capabilities(
        devices=("cpu",),
        media_types=("video", "audio"),
        source_kinds=("path", "bytes", "file"),
        # decord reads a file object whole into memory: a URL would be downloaded entirely.
        remote=False,
        seek_modes=("exact",),
        codecs=None,
        any_stream=False,
        audio_num_channels="mono-or-native",
        # Frames measured bit-identical to FFmpeg's rgb24; audio comes from decord's own FFmpeg
        # build, where lossy decoders may differ by float rounding.
        tolerance={"cpu": Tolerance(audio_max_abs=1e-5)},
        notes="decord's bundled FFmpeg (decord2: FFmpeg 8; decord 0.6: no AV1)",
        # A leading Resize runs in decord's own scaler (VideoReader width/height); crops are
        # the facade's.
        transforms=frozenset({"resize"}),
        ffmpeg_based=True,
    )
    # Stated once, in the capabilities; the class attributes mirror them for the protocol.
    devices = capabilities.devices
    media_types = capabilities.media_types

    @classmethod
    def check_availability(cls) -> str | None:
        """Whether the decord module imports (checked once, see ``CachedAvailability``)."""
        try:
            getattr(_decord(), "VideoReader")
        except Exception as exc:
            return (
                f"the decord module is not importable ({type(exc).__name__}: {exc}); "
                f'fix: pip install "mediadecode[decord]" (installs decord2)'
            )
        return None

    def open_video(self, source: Source, *, stream_index, seek_mode, num_threads, device="cpu",
                   transforms=None):
        if seek_mode != "exact":
            raise UnsupportedRequestError("decord has only an exact frame index (seek_mode='exact')")
        return DecordVideoReader(source, stream_index=stream_index, num_threads=num_threads,
                                 transforms=transforms)

    def open_audio(self, source: Source, *, stream_index, sample_rate, num_channels):
        return DecordAudioReader(
            source, stream_index=stream_index, sample_rate=sample_rate, num_channels=num_channels
        )
