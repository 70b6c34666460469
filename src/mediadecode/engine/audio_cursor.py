"""The audio decode cursor: where an audio reader's decode stands, and how it gets to a range.

A *run* (:class:`AudioRun`) is one forward decode giving output blocks in order with the grid
index of its next sample. :class:`AudioCursor` keeps the current run and, for a range starting
at output sample ``lo``, either continues it (``lo`` at or shortly after its position: the same
decode, resampler state included), starts an *anchored* run after a seek (input dropped up to
an anchor, a fresh resampler from there: see :meth:`SampleClock.anchor_for`), or decodes from
the start (the only way where the clock is not ``seekable``, and the way the timing is learnt).

The run's generators reference the input, the clock and the converter, never the cursor or the
reader, so a reader dropped without ``close()`` frees its file at once.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction

from ..pyav import import_av
from ..sample_grid import SampleGrid
from .audio_clock import SampleClock, TimingLearner
from .audio_convert import AudioConverter, drop_head
from .audio_input import AudioInput

__all__ = ["AudioCursor", "AudioRun", "SeekMissed", "frames_from"]

# A range starting this many seconds past the cursor's position seeks instead of decoding through.
MAX_FORWARD_SECONDS = 4.0


class SeekMissed(Exception):
    """The decode after a seek started after its anchor (an imprecise demuxer seek), or its
    timestamps disagree with the sample count."""


class AudioRun:
    """One forward decode: output blocks ``(C, n)`` float32 in order, and the grid index of the
    next sample it will give (``next_index``). ``pending`` holds blocks already decoded."""

    def __init__(self, blocks, first_index: int):
        self.blocks = blocks
        self.next_index = first_index
        self.pending: deque = deque()
        self.exhausted = False

    def decode_ahead(self) -> None:
        """Decode the next block into ``pending`` (or mark the run exhausted)."""
        block = next(self.blocks, None)
        if block is None:
            self.exhausted = True
        else:
            self.pending.append(block)

    def next_block(self):
        """The next block, None at the end of the stream."""
        if self.pending:
            return self.pending.popleft()
        if self.exhausted:
            return None
        block = next(self.blocks, None)
        if block is None:
            self.exhausted = True
        return block

    def take(self, lo: int, hi: int | None) -> list:
        """The blocks of output samples ``[lo, hi)`` (``hi`` None: to the end), ``lo >=
        next_index``; the run then stands at ``hi`` (the rest of a cut block kept pending)."""
        parts = []
        index = self.next_index
        while hi is None or index < hi:
            block = self.next_block()
            if block is None:
                break
            n = block.shape[1]
            if index + n <= lo:
                index += n
                continue
            a = max(0, lo - index)
            b = n if hi is None else min(n, hi - index)
            parts.append(block[:, a:b])
            if b < n:
                self.pending.appendleft(block[:, b:])
                index += b
                break
            index += n
        self.next_index = index
        return parts


def frames_from(frames, clock: SampleClock, anchor: int, checks: int = 3):
    """``frames`` (decoded after a seek) from input sample ``anchor`` on: frames before it
    dropped, the one holding it cut, and the timestamps of the next ``checks`` frames checked
    against the sample count before any is given out (after a seek into an MPEG program stream
    the parser may give a frame twice).

    Raises:
        SeekMissed: the decode starts after the anchor, a frame has no pts, or the timestamps
            disagree with the sample count.
    """
    held = []
    pos = None
    for frame in frames:
        if frame.samples == 0:
            continue
        p = clock.position_of(frame)
        if pos is None:
            if p is None or p > anchor:
                raise SeekMissed
            if p + frame.samples <= anchor:
                continue
            if p < anchor:
                frame = drop_head(frame, anchor - p)
            pos = anchor
        elif p != pos:
            raise SeekMissed
        pos += frame.samples
        if checks:
            held.append(frame)
            checks -= 1
            if checks:
                continue
            yield from held
            held = []
            continue
        yield frame
    yield from held


class AudioCursor:
    """The current run of an audio reader and the choice of run for each range.

    Args:
        media: the container and stream decoded.
        clock: the stream's sample clock (learnt by the runs from the start).
        converter: frames to output blocks.
        begin_seconds: where sample 0 lies for a stream without any decoded frame.
    """

    def __init__(self, media: AudioInput, clock: SampleClock, converter: AudioConverter, begin_seconds: float):
        self._input = media
        self._clock = clock
        self._converter = converter
        self._begin_seconds = begin_seconds
        self._run: AudioRun | None = None

    def reset(self) -> None:
        """Forget the current run (after an error, or before closing)."""
        self._run = None

    def ensure_timing(self) -> SampleGrid:
        """Make the clock's origin and calibration known: decode the first frames from the start
        (kept as the run's pending output, so a range at the start reuses them). Returns the
        output grid."""
        clock = self._clock
        if not clock.known:
            run = self._run if self._run is not None and self._run.next_index == 0 else None
            run = run or self._start_from_beginning()
            while not clock.known and not run.exhausted:
                run.decode_ahead()
        grid = clock.grid
        if grid is None:  # no frame at all
            grid = clock.set_origin(Fraction(self._begin_seconds))
        return grid

    def run_for(self, lo: int) -> AudioRun:
        """The run to take output sample ``lo`` from (positioned at or before it)."""
        run = self._run
        forward = MAX_FORWARD_SECONDS * self._clock.out_rate
        if run is not None and run.next_index <= lo and (
            lo - run.next_index <= forward or not self._clock.seekable or run.exhausted
        ):
            return run
        if self._clock.seekable and lo > 0:
            run = self._seek_run(lo)
            if run is not None:
                self._run = run
                return run
        run = self._run
        if run is not None and run.next_index <= lo:
            return run
        return self._start_from_beginning()

    def _start_from_beginning(self) -> AudioRun:
        self._run = None
        self._input.rewind()
        frames = TimingLearner(self._clock).watch(self._input.frames())
        self._run = AudioRun(self._converter.blocks(frames), 0)
        return self._run

    def _preroll_seconds(self) -> float:
        # Codecs with overlapping transforms or a bit reservoir (AAC, MP3, Opus, Vorbis) need
        # packets before the target to produce the same samples as a decode from the start: an
        # MP3 frame's reservoir reaches back up to 511 bytes, several frames at low bit rates
        # (4 frames left errors at 16 kHz, 12 none). Opus' decoder state (SILK's and CELT's
        # filters) converges more slowly: measured on generated WebM, 0.2 s still left 1e-3,
        # 0.8 s none.
        cc = self._input.stream.codec_context
        if cc.name == "opus":
            return 0.8
        frame_size = cc.frame_size or 1024
        return max(0.1, 12 * frame_size / self._clock.in_rate)

    def _seek_run(self, lo: int) -> AudioRun | None:
        """A run positioned by a seek for output sample ``lo``, None when a decode from the start
        is as good (the target is near the start) or the only way (the container cannot seek)."""
        av = import_av()
        clock = self._clock
        anchor, first = clock.anchor_for(lo)
        origin = float(clock.origin or 0)  # known: ranges are cut after ensure_timing
        preroll = self._preroll_seconds()
        for attempt in range(2):
            target = origin + anchor / clock.in_rate - preroll * (1 + 4 * attempt)
            if target <= origin + preroll:
                return None
            self._run = None
            try:
                self._input.seek(target)
            except av.FFmpegError:
                clock.seekable = False  # the format cannot seek (SWF): decode forward
                return None
            run = AudioRun(self._converter.blocks(frames_from(self._input.frames(), clock, anchor)), first)
            try:
                run.decode_ahead()
            except SeekMissed:
                continue
            return run
        return None
