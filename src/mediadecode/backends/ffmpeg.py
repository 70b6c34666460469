"""The ``ffmpeg`` backend: FFmpeg on the CPU through PyAV (whose wheel bundles FFmpeg).

Video:

- ``seek_mode="exact"`` builds the frame index from one pass over the stream's packets (demux only,
  no decoding): each packet's pts, duration and keyframe flag, sorted into presentation order.
  Packets that FFmpeg marks for discard (edit-list preroll) are left out, as the decoder drops them.
- ``seek_mode="approximate"`` trusts the header (frame count, rate, duration) and maps index ``i``
  to the frame on screen at ``begin + (i + 0.5) / fps``.
- Batched requests arrive sorted and de-duplicated (the facade does that). The reader seeks only
  when a keyframe lies between the last decoded frame and the next target, so each GOP is entered
  once; it decodes forward to the last requested frame and converts to RGB only the frames asked
  for (``frame.reformat(format="rgb24", threads=1)``), with FFmpeg frame threading for decoding.
- Seeks go to the keyframe's own timestamp; if a demuxer lands after the target anyway, the reader
  steps back one keyframe at a time, then to the start of the stream.

Audio is decoded and converted by FFmpeg: ``av.AudioResampler`` (libswresample) turns any sample
format into float32 in [-1, 1] and does the resampling and channel mixing that
``sample_rate=``/``num_channels=`` ask for.
"""

from __future__ import annotations

import bisect
import math
import os
import threading
import weakref
from fractions import Fraction
from typing import Any, Sequence

import numpy as np
import torch

from .. import index_cache
from ..errors import DecodingError, InvalidMediaError
from ..metadata import VideoStreamMetadata, resolve_video
from ..pyav import (
    FirstFrameInfo,
    MediaHandle,
    av_reason,
    container_metadata,
    first_frame_info,
    import_av,
    open_container,
    select_stream,
    ticks_to_seconds,
)
from ..sources import Source
from .ffmpeg_audio import FFmpegAudioReader
from .ffmpeg_encoder import FFMPEG_ENCODER_CAPABILITIES, PyAVStreamEncoder

__all__ = ["FFmpegBackend", "FFmpegVideoReader", "FFmpegAudioReader"]


# Consecutive packets the video decoder may reject before decoding gives up.
_MAX_BAD_PACKETS = 16

# Video readers with FFmpeg decoder threads; parked (see FFmpegVideoReader._park) before fork.
_THREADED_READERS: "weakref.WeakSet[FFmpegVideoReader]" = weakref.WeakSet()

# Decoders that read AVCodecContext.skip_frame packet by packet (others, libdav1d among them, read
# it once when the codec opens, so changing it mid-stream would skip frames for good).
_SKIP_NONREF_CODECS = frozenset({"h264", "hevc", "vp9", "mpeg2video", "mpeg4"})

# At most this many GOPs of one request decode at once (one thread and one decoder each).
_MAX_PARALLEL_GOPS = 8


def _park_threaded_readers() -> None:
    for reader in list(_THREADED_READERS):
        reader._park()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_park_threaded_readers)


class FFmpegVideoReader:
    """A video stream read with PyAV. See the module docstring for the strategy."""

    frames_are_rotated = False
    # Whether a request spanning several GOPs may be decoded by clones in parallel threads.
    _gop_parallel = True
    # Whether exact-mode requests let FFmpeg skip non-reference frames nobody asked for
    # (AVCodecContext.skip_frame = AVDISCARD_NONREF, set packet by packet).
    _skip_nonref = True

    def __init__(self, source: Source, *, stream_index: int | None, seek_mode: str, num_threads: int):
        av = import_av()
        self._source = source
        self._media = None
        self._container = None
        self._init_state()
        self._keyframe_pts: list[int] = []  # keyframes' pts, ascending, exact mode
        self._pts: list[int] = []  # every frame's pts in presentation order, exact mode
        self._media = self._open_container()
        self._container = self._media.container
        try:
            self.container_metadata = container_metadata(self._container)
            stream = select_stream(self._container, source, "video", stream_index)
            self._stream = stream
            self._tb = stream.time_base
            self._num_threads = num_threads
            self._configure_threads()
            meta = self.container_metadata.streams[stream.index]
            assert isinstance(meta, VideoStreamMetadata)
            self.metadata = meta
            self.frame_pts = self.frame_durations = None
            self._forward_window = max(1, int(round(2.0 / self._tb)))  # 2 s, approximate mode
            key = None
            if source.kind == "path":
                key = index_cache.file_key(source.value, "ffmpeg-video", 1, stream.index)
            elif source.kind == "url":  # the scan reads the whole object: worth keeping
                key = index_cache.url_key(source.value, self._media.file, "ffmpeg-video", 1, stream.index)
            cached = index_cache.lookup(key) or {}
            if seek_mode == "exact":
                if "index" in cached:
                    self._set_index(**cached["index"])
                else:
                    cached["index"] = self._scan()
            if "first" not in cached:
                info = self._first_frame_info()
                cached["first"] = None if info is None else info.as_dict()
            first = cached["first"]
            self._apply_first_frame(None if first is None else FirstFrameInfo.from_dict(first))
            if seek_mode == "exact":
                index_cache.store(key, cached)
            resolve_video(meta, self.container_metadata.duration_seconds_from_header)
            if seek_mode == "approximate" and not meta.average_fps:
                raise InvalidMediaError(
                    f"{source.name}: the header gives no frame rate; use seek_mode='exact'"
                )
        except av.FFmpegError as exc:
            self.close()
            raise InvalidMediaError(f"{source.name}: cannot read the video stream: {av_reason(exc)}") from exc
        except BaseException:
            self.close()
            raise

    def _init_state(self) -> None:
        """This reader's own decoding state (a clone gets a fresh one too)."""
        self._frames = self._pending = self._cursor = None
        self._at_start = True
        self._lock = threading.RLock()
        self._parked = False
        self._last_error = ""  # FFmpeg's reason for the last packet the decoder rejected
        self._reformatter = None
        self._workers: list[FFmpegVideoReader] = []  # single-threaded clones for GOP-parallel decode
        self._wanted: set[int] | None = None  # pts the current exact request needs
        self._skipped: set[int] = set()  # pts of packets skipped since the last seek

    # -- opening -------------------------------------------------------------------------------

    def _attach(self, stream_index: int) -> None:
        """Open the source again and take stream ``stream_index``, with this reader's threads."""
        self._media = self._open_container()
        self._container = self._media.container
        self._stream = self._container.streams[stream_index]
        self._configure_threads()

    def _close_media(self) -> None:
        media, self._media = self._media, None
        self._container = None
        self._frames = None
        if media is not None:
            media.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _open_container(self) -> MediaHandle:
        """``open_container(self._source)``; a subclass may open it differently (hardware
        decoding)."""
        return open_container(self._source)

    def _configure_threads(self) -> None:
        if self._num_threads == 1:
            # PyAV's default is slice threading with FFmpeg's automatic count: threads that a
            # fork child would block on when freeing the decoder, and not "one thread".
            self._stream.codec_context.thread_count = 1
        else:
            cc = self._stream.codec_context
            cc.thread_type = "AUTO"  # frame threading, plus slice threading where it helps
            cc.thread_count = self._num_threads  # 0: FFmpeg picks from the core count
            _THREADED_READERS.add(self)

    def _park(self) -> None:
        """Free the container and its decoder threads, keeping the frame index; the next
        request reopens the source. Called before ``fork``: a child that frees a decoder whose
        frame threads exist only in the parent blocks for ever inside ``avcodec_free_context``."""
        with self._lock:
            if self._container is None:
                return
            frames, self._frames = self._frames, None
            if frames is not None:
                frames.close()
            self._pending = self._cursor = None
            self._stream = None
            self._close_workers()
            self._close_media()
            self._parked = True

    def close(self) -> None:
        """Close the container and free the decoder; idempotent. Requests then raise."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ failed before the lock existed
            self._close_media()
            return
        with lock:
            frames, self._frames = self._frames, None
            if frames is not None:
                frames.close()
            self._pending = self._stream = None
            self._parked = False
            self._close_workers()
            self._close_media()

    def _ensure_open(self) -> None:
        if self._container is not None:
            return
        if not self._parked:
            raise ValueError(f"{self._source.name}: the reader is closed")
        self._attach(self.metadata.stream_index)
        self._parked = False
        self._seek_to_start()

    def _scan(self) -> None:
        """Build the exact frame index from the packets, without decoding; returns it as
        ``_set_index`` keyword arguments (plain lists, so the index cache can store them)."""
        entries = []
        keyframes = []
        for packet in self._container.demux(self._stream):
            if packet.size == 0 or packet.is_discard:
                continue
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                continue
            entries.append((ts, packet.duration or 0))
            if packet.is_keyframe:
                keyframes.append(ts)
        entries.sort()
        pts = [e[0] for e in entries]
        durations = [e[1] for e in entries]
        # Fill missing packet durations from the gap to the next frame.
        for k, d in enumerate(durations):
            if d <= 0:
                if k + 1 < len(pts):
                    durations[k] = pts[k + 1] - pts[k]
                elif k > 0:
                    durations[k] = durations[k - 1]
        self._seek_to_start()
        index = {"pts": pts, "durations": durations, "keyframes": sorted(keyframes)}
        self._set_index(**index)
        return index

    def _set_index(self, pts: list[int], durations: list[int], keyframes: list[int]) -> None:
        """Install the exact frame index: every frame's pts and duration (ticks, presentation
        order) and the keyframes' pts."""
        self._pts = pts
        # Seeks go to a keyframe's pts: pts-indexed demuxers (Matroska) land on it exactly,
        # dts-indexed ones (MP4) on it too, as its dts <= pts < the next keyframe's dts.
        self._keyframe_pts = keyframes
        tb = self._tb
        pts = ticks_to_seconds(self._pts, tb)
        dur = ticks_to_seconds(durations, tb)
        self.frame_pts = pts
        self.frame_durations = dur
        meta = self.metadata
        meta.num_frames_from_content = len(self._pts)
        if self._pts:
            meta.begin_stream_seconds_from_content = float(pts[0])
            meta.end_stream_seconds_from_content = float(torch.max(pts + dur))

    def _first_frame_info(self) -> FirstFrameInfo | None:
        """Decode the first frame: it carries the display matrix and the real size, pixel format
        and colour tags. None when it does not decode."""
        self._seek_to_start()
        try:
            frame = self._next_frame()
        except DecodingError:
            frame = None
        self._seek_to_start()
        return None if frame is None else first_frame_info(frame)

    def _apply_first_frame(self, info: FirstFrameInfo | None) -> None:
        meta = self.metadata
        if info is None:
            self._coded_size = (meta.width or 0, meta.height or 0)
            meta.rotation = None
            return
        info.apply_to(meta)
        self._coded_size = (info.width, info.height)

    # -- decoding engine -----------------------------------------------------------------------
    #
    # State: ``_frames`` is the live decode generator (None after a seek or at the end of the
    # stream), ``_pending`` a frame pushed back in front of it, and ``_cursor`` the pts of the last
    # frame consumed: every frame with pts <= _cursor is behind us (None: position unknown).

    def _seek_to_start(self) -> None:
        try:
            self._container.seek(0, backward=True, any_frame=False)
        except import_av().FFmpegError:
            # Some demuxers (HLS, concat lists: allow_playlists=True) refuse to seek: open the
            # source again, which starts at the beginning.
            self._reopen()
        self._frames = self._pending = self._cursor = None
        self._skipped = set()
        self._at_start = True

    def _reopen(self) -> None:
        frames, self._frames = self._frames, None
        if frames is not None:
            frames.close()
        meta = getattr(self, "metadata", None)
        index = meta.stream_index if meta is not None else self._stream.index
        self._close_media()
        self._attach(index)

    def _seek(self, ts: int) -> None:
        try:
            self._container.seek(ts, backward=True, any_frame=False, stream=self._stream)
        except import_av().FFmpegError:
            # A demuxer that cannot seek there (a concat list past its first file): decode
            # forward from the start instead.
            self._seek_to_start()
            return
        self._frames = self._pending = self._cursor = None
        self._skipped = set()
        self._at_start = False

    def _frame_iter(self):
        """Decoded frames from the current position. A packet the decoder rejects is skipped,
        as the ffmpeg CLI does, so one corrupt packet costs the frames that depend on it, not
        the rest of the stream; after _MAX_BAD_PACKETS rejected packets in a row it gives up."""
        av = import_av()
        bad = 0
        cc = self._stream.codec_context
        skipping = None  # unknown: the first packet sets skip_frame either way
        try:
            for packet in self._container.demux(self._stream):
                # A packet whose frame the request does not need: FFmpeg may skip it if no other
                # frame refers to it (a disposable B-frame). Requested frames always decode.
                wanted = self._wanted
                skip = wanted is not None and packet.pts is not None and packet.pts not in wanted
                if skip != skipping:
                    cc.skip_frame = "NONREF" if skip else "DEFAULT"
                    skipping = skip
                if skip:
                    self._skipped.add(packet.pts)
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError as exc:
                    bad += 1
                    self._last_error = av_reason(exc)
                    if bad > _MAX_BAD_PACKETS:
                        raise DecodingError(
                            f"{self._source.name}: decoding failed on {bad} packets in a row: "
                            f"{self._last_error}"
                        ) from exc
                    continue
                bad = 0
                yield from frames
        except DecodingError:
            raise
        except av.FFmpegError as exc:
            raise DecodingError(f"{self._source.name}: decoding failed: {av_reason(exc)}") from exc

    def _next_frame(self):
        """The next decoded frame in presentation order, or None at the end of the stream."""
        frame = self._pending
        if frame is not None:
            self._pending = None
        else:
            if self._frames is None:
                self._frames = self._frame_iter()
            frame = next(self._frames, None)
            if frame is None:
                self._frames = None
                self._cursor = None
                return None
            if frame.pts is None:
                # No timestamp (rare): continue from the previous frame's.
                frame.pts = (self._cursor + 1) if self._cursor is not None else 0
        self._cursor = frame.pts
        return frame

    def _unread(self, frame) -> None:
        self._pending = frame
        self._cursor = frame.pts - 1

    def _must_seek(self, target: int) -> bool:
        """Whether reaching ``target`` needs a seek rather than decoding forward."""
        cursor = self._cursor
        if cursor is None or target <= cursor:
            return True
        if self._keyframe_pts:
            # A keyframe in (cursor, target]: seeking there skips the rest of this GOP.
            k = bisect.bisect_right(self._keyframe_pts, cursor)
            return k < len(self._keyframe_pts) and self._keyframe_pts[k] <= target
        return target - cursor > self._forward_window

    def _seek_for(self, target: int, attempt: int) -> None:
        """Seek so that decoding reaches ``target``; each retry starts one keyframe earlier."""
        if self._keyframe_pts:
            k = bisect.bisect_right(self._keyframe_pts, target) - 1 - attempt
            if k < 0:
                self._seek_to_start()
            else:
                self._seek(self._keyframe_pts[k])
            return
        back = attempt * self._forward_window
        if attempt > 3 or target - back <= (self._stream.start_time or 0):
            self._seek_to_start()
        else:
            self._seek(target - back)

    def _reach(self, target: int) -> None:
        """Seek so that the next frame has pts <= ``target`` (or is the stream's first frame).

        A demuxer may land after the target (timestamps indexed by dts, imprecise indexes): then
        seek again one keyframe (or a few seconds) earlier, and finally from the start.
        """
        attempt = 0
        while True:
            self._seek_for(target, attempt)
            first = self._next_frame()
            if first is not None:
                self._unread(first)
                if first.pts <= target:
                    return
            if self._at_start:
                return
            attempt += 1

    def _new_into(self, n: int, positions=None):
        """Output arrays for ``n`` requested frames: ``(out, pts_out, dur_out, positions)``.
        ``positions`` (None: slot k is output k) lists, for each requested frame, the output
        positions that receive it (duplicates and the caller's order, so no second gather)."""
        total = n if positions is None else sum(len(p) for p in positions)
        return (self._alloc(total), [0] * total, [0] * total, positions)

    def _emit_into(self, frame, into, slot: int) -> None:
        out, pts_out, dur_out, positions = into
        if positions is None:
            self._emit(frame, out, pts_out, dur_out, slot)
            return
        first, *rest = positions[slot]
        self._emit(frame, out, pts_out, dur_out, first)
        for d in rest:
            out[d] = out[first]
            pts_out[d], dur_out[d] = pts_out[first], dur_out[first]

    def _decode_exact(self, targets: Sequence[int], into=None, base: int = 0):
        """For each sorted target pts (ticks), the frame with exactly that pts. ``into`` (from
        :meth:`_new_into`, maybe shared with other readers) receives them from slot ``base`` on;
        by default new arrays are made. Returns ``into``.

        Non-reference frames that are not requested may be skipped by the decoder; if a request
        fails while skipping, it is decoded again without skipping before the error is raised.
        """
        into = into if into is not None else self._new_into(len(targets))
        if not self._skip_nonref or self._stream.codec_context.name not in _SKIP_NONREF_CODECS:
            return self._decode_exact_once(targets, into, base)
        self._wanted = set(targets)
        try:
            return self._decode_exact_once(targets, into, base)
        except DecodingError:
            self._skip_nonref = False  # this reader decodes every frame from now on
            self._wanted = None
            self._frames = self._pending = self._cursor = None  # position unknown: seek again
            return self._decode_exact_once(targets, into, base)
        finally:
            self._wanted = None

    def _decode_exact_once(self, targets: Sequence[int], into, base: int):
        for slot, target in enumerate(targets, start=base):
            if self._must_seek(target) or target in self._skipped:
                self._reach(target)
            while True:
                frame = self._next_frame()
                if frame is None or frame.pts > target:
                    index = bisect.bisect_left(self._pts, target)
                    why = f": {self._last_error}" if self._last_error else ""
                    raise DecodingError(
                        f"{self._source.name}: frame {index} (pts {float(target * self._tb):.6f} s) "
                        f"could not be decoded{why}"
                    )
                if frame.pts == target:
                    self._emit_into(frame, into, slot)
                    break
        return into

    def _decode_played(self, targets: Sequence[int], positions=None):
        """For each sorted target time (ticks), the last frame with pts <= target (the first
        frame of the stream for a target before it). Returns :meth:`_new_into`'s arrays."""
        into = self._new_into(len(targets), positions)
        prev = None  # the last consumed frame; its pts <= the current target
        for slot, target in enumerate(targets):
            if prev is None or self._must_seek(target):
                self._reach(target)
                prev = None
            while True:
                frame = self._next_frame()
                if frame is None or frame.pts > target:
                    if frame is not None:
                        self._unread(frame)
                    chosen = prev if prev is not None else frame
                    if chosen is None:
                        raise DecodingError(
                            f"{self._source.name}: no frame decodes at "
                            f"{float(target * self._tb):.6f} s"
                        )
                    self._emit_into(chosen, into, slot)
                    break
                prev = frame
        return into

    def _alloc(self, n: int) -> np.ndarray:
        width, height = self._coded_size
        return np.empty((n, height, width, 3), dtype=np.uint8)

    def _convert(self, frame, out: np.ndarray, slot: int) -> None:
        """RGB24 by swscale, single-threaded (decoding threads already use the cores), written
        straight into the output slot; a mid-stream size change is scaled to the first size."""
        width, height = self._coded_size
        if self._reformatter is None:
            from av.video.reformatter import VideoReformatter

            self._reformatter = VideoReformatter()  # keeps its SwsContext between frames
        rgb = self._reformatter.reformat(frame, width=width, height=height, format="rgb24", threads=1)
        out[slot] = rgb.to_ndarray()

    def _emit(self, frame, out, pts_out, dur_out, slot) -> None:
        self._convert(frame, out, slot)
        pts_out[slot] = frame.pts
        dur = frame.duration
        if not dur:
            if self._pts:
                k = bisect.bisect_left(self._pts, frame.pts)
                if k + 1 < len(self._pts):
                    dur = self._pts[k + 1] - self._pts[k]
            if not dur and self.metadata.average_fps:
                dur = 1 / (self.metadata.average_fps * float(self._tb))
        dur_out[slot] = dur or 0

    def _result(self, out, pts_out, dur_out):
        tb = self._tb
        return (
            torch.from_numpy(out),
            ticks_to_seconds(pts_out, tb),
            ticks_to_seconds(dur_out, tb),
        )

    # -- GOP-parallel decoding -----------------------------------------------------------------
    #
    # A request that spans several GOPs is cut, at GOP boundaries, into one contiguous chunk per
    # core. Each chunk is decoded by a single-threaded clone of this reader (its own container
    # and decoder, sharing the frame index) in its own thread: PyAV releases the GIL while it
    # demuxes, decodes and converts, and independent GOPs need nothing from each other. Only in
    # exact mode (the keyframes are known), only when the reader may use several threads
    # (``num_threads != 1``) and only for sources that can be opened more than once.

    # Below this many frames to decode in all, the clones' thread start is not worth it.
    _PARALLEL_MIN_FRAMES = 8

    def _parallel_workers(self) -> int:
        if self._num_threads == 1:
            return 1
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            cores = os.cpu_count() or 1
        return max(1, min(cores, self._num_threads or cores, _MAX_PARALLEL_GOPS))

    def _plan_parallel(self, targets: Sequence[int]) -> list[tuple[int, int]] | None:
        """Cut sorted ``targets`` into contiguous ``(start, stop)`` slices, each made of whole
        GOPs, balanced by the number of frames each must decode; None when one thread should do
        the whole request."""
        if not self._gop_parallel or self._source.kind in ("file", "url"):
            # A caller's file object cannot be opened a second time; a URL could, but each
            # clone would fetch the header and its blocks again over the network.
            return None
        workers = self._parallel_workers()
        if workers < 2 or len(targets) < 2 or not self._keyframe_pts:
            return None
        if not self._must_seek(targets[0]):
            return None  # sequential reading (iteration): continue this reader's decode
        keys, pts = self._keyframe_pts, self._pts
        groups = []  # [start, stop, frames to decode, GOP number] per GOP touched
        for n, target in enumerate(targets):
            g = bisect.bisect_right(keys, target) - 1
            if groups and groups[-1][3] == g:
                groups[-1][1] = n + 1
            else:
                groups.append([n, n + 1, 0, g])
            first = bisect.bisect_left(pts, keys[g]) if g >= 0 else 0
            groups[-1][2] = bisect.bisect_left(pts, target) - first + 1
        total = sum(g[2] for g in groups)
        if len(groups) < 2 or total < self._PARALLEL_MIN_FRAMES:
            return None
        workers = min(workers, len(groups))
        chunks, done, start = [], 0, 0
        for k, g in enumerate(groups):
            done += g[2]
            later = workers - len(chunks) - 1  # chunks still to make after this one
            if later <= 0 or k + 1 == len(groups):
                continue
            # Close this chunk where the work done so far is nearest its share, or when each
            # later chunk needs one of the GOPs left.
            share = total * (len(chunks) + 1) / workers
            if done >= share or share - done < done + groups[k + 1][2] - share or (
                len(groups) - k - 1 == later
            ):
                chunks.append((start, g[1]))
                start = g[1]
        chunks.append((start, len(targets)))  # never empty: chunks close only before a GOP left
        return chunks

    def _clone(self) -> "FFmpegVideoReader":
        """A single-threaded reader of the same stream sharing this one's frame index."""
        clone = object.__new__(type(self))
        clone._source, clone._media, clone._container = self._source, None, None
        clone.__dict__.update(
            {
                k: getattr(self, k)
                for k in ("_tb", "metadata", "container_metadata", "frame_pts", "frame_durations",
                          "_pts", "_keyframe_pts", "_coded_size", "_forward_window")
            }
        )
        clone._init_state()
        clone._num_threads = 1
        try:
            clone._attach(self.metadata.stream_index)
        except BaseException:
            clone.close()
            raise
        return clone

    def _close_workers(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()

    def _decode_parallel(self, targets: Sequence[int], chunks: list[tuple[int, int]], positions=None):
        into = self._new_into(len(targets), positions)
        while len(self._workers) < len(chunks):
            self._workers.append(self._clone())
        # Give each chunk the clone that can reach it without seeking, if there is one.
        free = list(self._workers)
        jobs = []
        for start, stop in chunks:
            worker = next((w for w in free if not w._must_seek(targets[start])), free[0])
            free.remove(worker)
            jobs.append((worker, start, stop))
        errors: list[BaseException] = []

        def run(worker, start, stop):
            try:
                worker._decode_exact(targets[start:stop], into, start)
            except BaseException as exc:  # re-raised in the calling thread below
                worker._frames = worker._pending = worker._cursor = None
                errors.append(exc)

        threads = [threading.Thread(target=run, args=job, daemon=True) for job in jobs[1:]]
        for thread in threads:
            thread.start()
        run(*jobs[0])
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return into

    # -- primitives ----------------------------------------------------------------------------

    # The facade may pass ``positions`` (see _new_into): the output is then already in the
    # caller's order, duplicates included.
    fills_positions = True

    def get_frames_at(self, indices: Sequence[int], positions=None):
        with self._lock:
            self._ensure_open()
            return self._get_frames_at(indices, positions)

    def _get_frames_at(self, indices: Sequence[int], positions=None):
        if self._pts:
            targets = [self._pts[i] for i in indices]
            chunks = self._plan_parallel(targets)
            if chunks is not None:
                return self._result(*self._decode_parallel(targets, chunks, positions)[:3])
            return self._result(*self._decode_exact(targets, self._new_into(len(targets), positions))[:3])
        fps = self.metadata.average_fps
        begin = self.metadata.begin_stream_seconds or 0.0
        return self._get_frames_played_at([begin + (i + 0.5) / fps for i in indices], positions)

    def _ticks(self, seconds: float) -> int:
        return int(math.floor(seconds / self._tb + 1e-6))

    def get_frames_played_at(self, seconds: Sequence[float], positions=None):
        with self._lock:
            self._ensure_open()
            return self._get_frames_played_at(seconds, positions)

    def _get_frames_played_at(self, seconds: Sequence[float], positions=None):
        targets = [self._ticks(s) for s in seconds]
        return self._result(*self._decode_played(targets, positions)[:3])

    def get_frames_played_in_range(self, start_seconds: float, stop_seconds: float):
        """The frame on screen at ``start_seconds`` and every frame with pts below
        ``stop_seconds`` (approximate mode)."""
        with self._lock:
            self._ensure_open()
            return self._get_frames_played_in_range(start_seconds, stop_seconds)

    def _get_frames_played_in_range(self, start_seconds: float, stop_seconds: float):
        start, stop = self._ticks(start_seconds), self._ticks(stop_seconds)
        frames = []
        if stop > start:
            # The frame on screen at start (last pts <= start), then every pts below stop.
            self._reach(start)
            while True:
                frame = self._next_frame()
                if frame is None or frame.pts >= stop:
                    break
                if frame.pts <= start or not frames:
                    frames[:] = [frame]
                else:
                    frames.append(frame)
        out = self._alloc(len(frames))
        pts_out = [0] * len(frames)
        dur_out = [0] * len(frames)
        for slot, frame in enumerate(frames):
            self._emit(frame, out, pts_out, dur_out, slot)
        return self._result(out, pts_out, dur_out)


class FFmpegBackend:
    """FFmpeg through PyAV, on the CPU; the embedded default (priority 100)."""

    name = "ffmpeg"
    priority = 100
    devices = ("cpu",)
    media_types = ("video", "audio")
    install_hint = "pip install av"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import av  # noqa: F401
        except ImportError as exc:
            return f"PyAV is not importable ({exc}); fix: pip install av"
        return None

    def open_video(self, source: Source, *, stream_index, seek_mode, num_threads, device="cpu"):
        return FFmpegVideoReader(
            source, stream_index=stream_index, seek_mode=seek_mode, num_threads=num_threads
        )

    def open_audio(self, source: Source, *, stream_index, sample_rate, num_channels):
        return FFmpegAudioReader(
            source, stream_index=stream_index, sample_rate=sample_rate, num_channels=num_channels
        )

    # Encoding (mediadecode.encoders): PyAV's encoders and muxers, in ffmpeg_encoder.
    encoder_capabilities = FFMPEG_ENCODER_CAPABILITIES

    def open_encoder(self, target, video, audio):
        """A :class:`~mediadecode.backends.ffmpeg_encoder.PyAVStreamEncoder` writing ``target``."""
        return PyAVStreamEncoder(target, video, audio)
