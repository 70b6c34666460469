"""The decode cursor: one open decoder of one video stream, and where it stands.

:class:`DecodeCursor` owns the decode position and is the only thing that changes it: the live
decode generator, a frame pushed back in front of it, the pts of the last frame consumed, the
packets skipped since the last seek. Every seek goes through :meth:`DecodeCursor.reset`, the one
reset of that state.

Strategy, for sorted requests:

- seek only when a keyframe lies between the last decoded frame and the next target (exact mode),
  or when the target is more than a forward window ahead (approximate mode), so each GOP is
  entered once;
- seeks go to the keyframe's own pts; if a demuxer lands after the target anyway, step back one
  keyframe (or window) at a time, then to the start of the stream;
- in exact mode, let FFmpeg skip non-reference frames nobody asked for (``skip_frame=NONREF``,
  packet by packet, only for decoders that read it per packet); a frame skipped earlier forces a
  seek when it is asked for later, and a request that fails while skipping is decoded again
  without;
- a packet the decoder rejects is skipped, as the ``ffmpeg`` CLI does: one corrupt packet costs
  the frames that depend on it; after ``MAX_BAD_PACKETS`` in a row decoding gives up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import DecodingError
from ..frame_index import FrameIndex
from ..pyav import MediaHandle, av_reason, import_av
from .output import FrameWriter, OutputBatch

__all__ = ["DecodeCursor", "MAX_BAD_PACKETS", "SKIP_NONREF_CODECS"]

# Consecutive packets the decoder may reject before decoding gives up.
MAX_BAD_PACKETS = 16

# Decoders that read AVCodecContext.skip_frame packet by packet (others, libdav1d among them, read
# it once when the codec opens, so changing it mid-stream would skip frames for good).
SKIP_NONREF_CODECS = frozenset({"h264", "hevc", "vp9", "mpeg2video", "mpeg4"})

Opener = Callable[[], "tuple[MediaHandle, Any]"]


class _PacketState:
    """What the decode generator shares with its cursor. Kept apart from the cursor so that the
    suspended generator holds no reference to it: a cursor dropped without ``close()`` is freed,
    with its container and file, at its last reference, not by the cycle collector."""

    __slots__ = ("wanted", "skipped", "last_error")

    def __init__(self) -> None:
        self.wanted: set[int] | None = None  # pts the current exact request needs
        self.skipped: set[int] = set()  # pts of packets skipped since the last seek
        self.last_error = ""  # FFmpeg's reason for the last packet the decoder rejected


def _decoded_frames(container, stream, state: _PacketState, source_name: str):
    """Decoded frames of ``stream`` from the container's current position (see the module doc
    for bad packets and skipping)."""
    av = import_av()
    bad = 0
    cc = stream.codec_context
    skipping = None  # unknown: the first packet sets skip_frame either way
    try:
        for packet in container.demux(stream):
            # A packet whose frame the request does not need: FFmpeg may skip it if no other
            # frame refers to it (a disposable B-frame). Requested frames always decode.
            wanted = state.wanted
            skip = wanted is not None and packet.pts is not None and packet.pts not in wanted
            if skip != skipping:
                cc.skip_frame = "NONREF" if skip else "DEFAULT"
                skipping = skip
            if skip:
                state.skipped.add(packet.pts)
            try:
                frames = packet.decode()
            except av.error.InvalidDataError as exc:
                bad += 1
                state.last_error = av_reason(exc)
                if bad > MAX_BAD_PACKETS:
                    raise DecodingError(
                        f"{source_name}: decoding failed on {bad} packets in a row: "
                        f"{state.last_error}"
                    ) from exc
                continue
            bad = 0
            yield from frames
    except DecodingError:
        raise
    except av.FFmpegError as exc:
        raise DecodingError(f"{source_name}: decoding failed: {av_reason(exc)}") from exc


class DecodeCursor:
    """A decoder positioned in one video stream.

    Args:
        opener: opens the source and returns ``(MediaHandle, stream)`` with the stream's decoder
            configured (threads, hardware); called again to reopen.
        source_name: for error messages.
        index: the exact frame index (None in approximate mode).
        forward_window: in approximate mode, how far ahead (ticks) decoding forward beats a seek.
        skip_nonref: whether exact requests may let FFmpeg skip unrequested non-reference frames.
    """

    def __init__(self, opener: Opener, *, source_name: str, index: FrameIndex | None,
                 forward_window: int, skip_nonref: bool = True):
        self._opener = opener
        self.source_name = source_name
        self.index = index
        self.forward_window = forward_window
        self._skip_nonref = skip_nonref
        self.media: MediaHandle | None = None
        self.stream: Any = None
        self._packets = _PacketState()
        self.reset(at_start=True)

    # -- opening and closing -------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.media is not None

    def open(self) -> None:
        """Open the source (again) and stand at its start."""
        self.media, self.stream = self._opener()
        self.reset(at_start=True)

    def adopt(self, media: MediaHandle, stream: Any) -> None:
        """Use an already open container (the reader's first open) and stand at its start."""
        self.media, self.stream = media, stream
        self.reset(at_start=True)

    def close(self) -> None:
        """Free the decoder and close the container; idempotent. :meth:`open` reopens."""
        self.reset(at_start=True)
        media, self.media, self.stream = self.media, None, None
        if media is not None:
            media.close()

    # -- position ------------------------------------------------------------------------------

    def reset(self, *, at_start: bool) -> None:
        """Forget the decode position (after a seek or a reopen). ``at_start``: the next frame
        is the stream's first."""
        frames = getattr(self, "_frames", None)
        self._frames = None  # the live decode generator; None after a seek or at the end
        if frames is not None:
            frames.close()
        self._pending = None  # a frame pushed back in front of the generator
        # The pts of the last frame consumed: every frame with pts <= it is behind (None:
        # unknown).
        self.position: int | None = None
        self._packets.skipped = set()
        self.at_start = at_start
        # Whether decoding ran out of frames since the last reset: the last frame consumed is
        # then the stream's last (a request past the real end learns it from this).
        self.at_end = False

    @property
    def skipped(self) -> set[int]:
        """The pts of packets FFmpeg was allowed to skip since the last seek."""
        return self._packets.skipped

    @property
    def last_error(self) -> str:
        """FFmpeg's reason for the last packet the decoder rejected ("" if none)."""
        return self._packets.last_error

    @property
    def container(self) -> Any:
        """The open PyAV container.

        Raises:
            ValueError: the cursor is closed.
        """
        if self.media is None:
            raise ValueError(f"{self.source_name}: the decoder is closed")
        return self.media.container

    def seek_to_start(self) -> None:
        try:
            self.container.seek(0, backward=True, any_frame=False)
        except import_av().FFmpegError:
            # Some demuxers (HLS, concat lists: allow_playlists=True) refuse to seek: open the
            # source again, which starts at the beginning.
            self.close()
            self.open()
            return
        self.reset(at_start=True)

    def seek(self, ts: int) -> None:
        """Seek to the keyframe at or before ``ts`` (ticks)."""
        try:
            self.container.seek(ts, backward=True, any_frame=False, stream=self.stream)
        except import_av().FFmpegError:
            # A demuxer that cannot seek there (a concat list past its first file): decode
            # forward from the start instead.
            self.seek_to_start()
            return
        self.reset(at_start=False)

    def next_frame(self):
        """The next decoded frame in presentation order, or None at the end of the stream."""
        frame = self._pending
        if frame is not None:
            self._pending = None
        else:
            if self._frames is None:
                self._frames = _decoded_frames(self.container, self.stream, self._packets, self.source_name)
            frame = next(self._frames, None)
            if frame is None:
                self._frames = None
                self.position = None
                self.at_end = True
                return None
            if frame.pts is None:
                # No timestamp (rare): continue from the previous frame's.
                frame.pts = (self.position + 1) if self.position is not None else 0
        self.position = frame.pts
        return frame

    def unread(self, frame) -> None:
        """Push ``frame`` back: the next :meth:`next_frame` returns it."""
        self._pending = frame
        self.position = frame.pts - 1

    def must_seek(self, target: int) -> bool:
        """Whether reaching ``target`` (ticks) needs a seek rather than decoding forward."""
        position = self.position
        if position is None or target <= position:
            return True
        if self.index is not None and self.index.keyframe_pts:
            # A keyframe in (position, target]: seeking there skips the rest of this GOP.
            return self.index.keyframe_between(position, target)
        return target - position > self.forward_window

    def _seek_for(self, target: int, attempt: int) -> None:
        """Seek so that decoding reaches ``target``; each retry starts one keyframe earlier."""
        if self.index is not None and self.index.keyframe_pts:
            k = self.index.keyframe_at_or_before(target) - attempt
            if k < 0:
                self.seek_to_start()
            else:
                self.seek(self.index.keyframe_pts[k])
            return
        back = attempt * self.forward_window
        if attempt > 3 or target - back <= (self.stream.start_time or 0):
            self.seek_to_start()
        else:
            self.seek(target - back)

    def reach(self, target: int) -> None:
        """Seek so that the next frame has pts <= ``target`` (or is the stream's first frame).

        A demuxer may land after the target (timestamps indexed by dts, imprecise indexes): then
        seek again one keyframe (or window) earlier, and finally from the start.
        """
        attempt = 0
        while True:
            self._seek_for(target, attempt)
            first = self.next_frame()
            if first is not None:
                self.unread(first)
                if first.pts <= target:
                    return
            if self.at_start:
                return
            attempt += 1

    # -- requests ------------------------------------------------------------------------------

    def decode_exact(self, targets: Sequence[int], batch: OutputBatch, writer: FrameWriter,
                     base: int = 0) -> None:
        """For each sorted target pts (ticks), write the frame with exactly that pts into slot
        ``base + k`` of ``batch``.

        Raises:
            DecodingError: a target frame does not decode (names the frame and FFmpeg's reason).
        """
        if not self._skip_nonref or self.stream.codec_context.name not in SKIP_NONREF_CODECS:
            self._decode_exact_once(targets, batch, writer, base)
            return
        self._packets.wanted = set(targets)
        try:
            self._decode_exact_once(targets, batch, writer, base)
            return
        except DecodingError:
            # Retried below, outside this handler: a decode generator resumed while the error
            # is being handled keeps a reference to it, a cycle (error -> traceback -> this
            # cursor -> generator -> error) that holds the file open until the cycle collector.
            pass
        finally:
            self._packets.wanted = None
        self._skip_nonref = False  # this cursor decodes every frame from now on
        self.reset(at_start=False)  # position unknown: seek again
        self._decode_exact_once(targets, batch, writer, base)

    def _decode_exact_once(self, targets, batch, writer, base) -> None:
        for slot, target in enumerate(targets, start=base):
            if self.must_seek(target) or target in self.skipped:
                self.reach(target)
            while True:
                frame = self.next_frame()
                if frame is None or frame.pts > target:
                    index = self.index.index_of_pts(target) if self.index is not None else "?"
                    why = f": {self.last_error}" if self.last_error else ""
                    raise DecodingError(
                        f"{self.source_name}: frame {index} (pts "
                        f"{float(target * self.stream.time_base):.6f} s) could not be decoded{why}"
                    )
                if frame.pts == target:
                    writer.write(frame, batch, slot)
                    break

    def decode_played(self, targets: Sequence[int], batch: OutputBatch, writer: FrameWriter) -> None:
        """For each sorted target time (ticks), write the last frame with pts <= target (the
        stream's first frame for a target before it).

        Raises:
            DecodingError: no frame decodes at a target.
        """
        prev = None  # the last consumed frame; its pts <= the current target
        for slot, target in enumerate(targets):
            if prev is None or self.must_seek(target):
                self.reach(target)
                prev = None
            while True:
                frame = self.next_frame()
                if frame is None or frame.pts > target:
                    if frame is not None:
                        self.unread(frame)
                    chosen = prev if prev is not None else frame
                    if chosen is None:
                        raise DecodingError(
                            f"{self.source_name}: no frame decodes at "
                            f"{float(target * self.stream.time_base):.6f} s"
                        )
                    writer.write(chosen, batch, slot)
                    break
                prev = frame

    def frames_played_in_range(self, start: int, stop: int) -> list:
        """The frame on screen at ``start`` (last pts <= start), then every frame with pts below
        ``stop`` (ticks), as decoded frames; empty when ``stop <= start``."""
        frames: list = []
        if stop <= start:
            return frames
        self.reach(start)
        while True:
            frame = self.next_frame()
            if frame is None or frame.pts >= stop:
                break
            if frame.pts <= start or not frames:
                frames[:] = [frame]
            else:
                frames.append(frame)
        return frames

    def first_frame(self):
        """The stream's first decoded frame (None when it does not decode); the cursor stands at
        the start again afterwards."""
        self.seek_to_start()
        try:
            frame = self.next_frame()
        except DecodingError:
            frame = None
        self.seek_to_start()
        return frame
