"""The output sample grid of an audio stream: which samples a range of seconds holds.

A decoded (and possibly resampled) stream is a sequence of samples at ``rate`` Hz whose first
sample is played at ``origin`` seconds (the pts of the first decoded frame): sample ``k`` covers
``[origin + k / rate, origin + (k + 1) / rate)``. The range ``[start, stop)`` holds the samples
whose index lies in ``[index_of(start), index_of(stop))``, with ``index_of(t) =
floor((t - origin) * rate + 1/2)`` (round half up, as torchcodec 0.17 rounds, so the same
boundary always falls on the same side whatever the range it ends or starts).

Consequences: consecutive ranges ``[t0, t1)``, ``[t1, t2)`` tile the stream exactly (no sample
is lost or repeated); a range holds ``round((stop - start) * rate)`` samples when ``start -
origin`` lies on the grid (a multiple of ``1 / rate``, e.g. ``origin = 0`` and chunk boundaries
in whole samples), and otherwise one more or one fewer where the rounding of its two ends falls
that way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SampleGrid"]


@dataclass(frozen=True)
class SampleGrid:
    """Sample ``k`` at ``origin + k / rate`` seconds; see the module docstring."""

    origin: float
    rate: int

    def index_of(self, seconds: float) -> int:
        """The first sample index at or after ``seconds`` (round half up); may be negative."""
        return math.floor((seconds - self.origin) * self.rate + 0.5)

    def seconds_of(self, index: int) -> float:
        """The time at which sample ``index`` starts, in seconds."""
        return self.origin + index / self.rate

    def span(self, start_seconds: float, stop_seconds: float | None) -> tuple[int, int | None]:
        """``(lo, hi)``: the sample indices of ``[start_seconds, stop_seconds)``, ``lo >= 0``;
        ``hi`` None means to the end of the stream, else ``hi >= lo``."""
        lo = max(0, self.index_of(start_seconds))
        if stop_seconds is None:
            return lo, None
        return lo, max(lo, self.index_of(stop_seconds))
