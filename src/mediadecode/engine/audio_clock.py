"""The sample clock of an audio stream: which input sample a decoded frame starts at, and the
output :class:`~mediadecode.sample_grid.SampleGrid` that ranges of seconds are cut on.

A frame's input sample position comes from its pts: ``round((pts_seconds - origin) * in_rate)``
plus a *calibration*, the constant offset between sample counts and timestamps that a container
time base coarser than a sample (Matroska's 1 ms) leaves. The origin (the pts of the first
decoded frame) and the calibration are learnt from the first frames of a decode from the start
(:class:`TimingLearner`); where no constant offset holds, or the container cannot seek, the clock
says positions cannot be reached by seeking (``seekable`` False) and readers decode forward.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from ..sample_grid import SampleGrid

__all__ = ["CALIBRATION_FRAMES", "SampleClock", "TimingLearner"]

# Frames used to calibrate timestamps against sample counts (the first one excluded: decoders
# trim it by the codec delay).
CALIBRATION_FRAMES = 6


class SampleClock:
    """Timestamps to sample positions for one audio stream decoded at ``in_rate`` Hz and output
    at ``out_rate`` Hz.

    Attributes:
        origin (Fraction | None): pts of the first decoded frame in seconds (exact); None until
            learnt.
        grid (SampleGrid | None): the output grid (``origin``, ``out_rate``); None until learnt.
        calibration (int | None): input sample count minus pts position, constant over the
            stream; None until learnt.
        seekable (bool): False once positions cannot be reached by a seek: timestamps do not
            identify samples, or the container cannot seek.
    """

    def __init__(self, in_rate: int, out_rate: int, stream_time_base: Any):
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream_time_base = stream_time_base  # for frames that carry no time base
        self.origin: Fraction | None = None
        self.grid: SampleGrid | None = None
        self.calibration: int | None = None
        self.seekable = True

    @property
    def known(self) -> bool:
        """Whether the origin is known and the calibration is known or not needed (no seeking)."""
        return self.grid is not None and (self.calibration is not None or not self.seekable)

    def set_origin(self, seconds: Fraction) -> SampleGrid:
        """Place sample 0 at ``seconds`` (exact); returns the new grid."""
        self.origin = seconds
        self.grid = SampleGrid(float(seconds), self.out_rate)
        return self.grid

    def start_at(self, frame) -> None:
        """Place sample 0 at ``frame``'s pts (0 without a pts or a time base)."""
        tb = frame.time_base or self._stream_time_base
        pts = frame.pts if frame.pts is not None else 0
        self.set_origin(Fraction(pts) * Fraction(tb) if tb is not None else Fraction(0))

    def frame_seconds(self, frame) -> Fraction | None:
        """``frame``'s pts in seconds (exact), None without a pts."""
        if frame.pts is None:
            return None
        tb = frame.time_base or self._stream_time_base
        return Fraction(frame.pts) * Fraction(tb)

    def position_of(self, frame) -> int | None:
        """The input sample index of ``frame``'s first sample in the full decode, from its pts;
        None without a pts or before the origin is known."""
        seconds = self.frame_seconds(frame)
        if seconds is None or self.origin is None:
            return None
        return math.floor((seconds - self.origin) * self.in_rate + Fraction(1, 2)) + (self.calibration or 0)

    def anchor_for(self, lo: int) -> tuple[int, int]:
        """``(input anchor, its output index)`` for a seek to output sample ``lo``: a multiple of
        ``in_rate / gcd(in_rate, out_rate)`` input samples (so a fresh resampler's output grid
        coincides with the full decode's), a warm-up before ``lo`` (so its filter converged)."""
        rin, rout = self.in_rate, self.out_rate
        if rin == rout:
            return lo, lo
        step = rin // math.gcd(rin, rout)
        warmup = 256 + 64 * math.ceil(rin / rout)  # input samples for the filter to converge
        anchor = max(0, (lo * rin // rout - warmup) // step * step)
        return anchor, anchor * rout // rin


class TimingLearner:
    """Learns a :class:`SampleClock`'s origin and calibration from a decode from the start.

    :meth:`watch` passes the decoded frames through unchanged, observing the first
    ``CALIBRATION_FRAMES``; when the frames end it settles the calibration of a stream too short
    to measure it (a frame or two: no offset).
    """

    def __init__(self, clock: SampleClock):
        self._clock = clock
        self._offsets: list[int] = []

    def watch(self, frames):
        """Yield ``frames`` unchanged, learning the timing from them."""
        count = 0  # input samples taken so far
        for i, frame in enumerate(frames):
            if frame.samples:
                if i < CALIBRATION_FRAMES:
                    self._observe(i, frame, count)
                count += frame.samples
            yield frame
        clock = self._clock
        if clock.calibration is None and clock.seekable and len(self._offsets) <= 1:
            clock.calibration = self._offsets[0] if self._offsets else 0

    def _observe(self, index: int, frame, count: int) -> None:
        """Frame ``index`` of the decode, ``count`` samples before it: the origin from the first,
        then the offset between sample counts and timestamps."""
        clock = self._clock
        if index == 0:
            if clock.origin is None:
                clock.start_at(frame)
            return
        if clock.calibration is not None or not clock.seekable:
            return
        if frame.pts is None:
            clock.seekable = False
            return
        offsets = self._offsets
        offsets.append(count - clock.position_of(frame))  # no calibration applied yet
        if len(offsets) == CALIBRATION_FRAMES - 1 or len(set(offsets)) > 1:
            if len(set(offsets)) == 1:
                clock.calibration = offsets[0]
            else:
                clock.seekable = False  # timestamps do not identify samples: decode forward
