"""The output stage: decoded frames become the tensors a request returns.

One interface, :class:`OutputStage`, with a CPU implementation here (:class:`CpuRGBOutput`,
FFmpeg's swscale into a numpy array) and a GPU one in the nvdec backend. A request asks the stage
for an :class:`OutputBatch` (its slots), each decoding thread gets its own :class:`FrameWriter`
(a writer keeps per-thread conversion state, such as swscale's context), and :meth:`finish` turns
the batch into ``(data, pts_seconds, duration_seconds)``.

``positions`` lets a request write each decoded frame straight to every output position that
asked for it (duplicates, the caller's order), so a batch with duplicates is never gathered into a
second copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any, Protocol

import numpy as np
import torch

from ..frame_index import ticks_to_seconds
from ..protocol import RawFrames

__all__ = ["OutputBatch", "FrameWriter", "OutputStage", "CpuRGBOutput"]


class OutputBatch:
    """The slots of one request: ``data`` (what the stage allocated) and each output
    position's pts and duration in ticks.

    Args:
        data: the stage's storage for the frames (a numpy array, a GPU batch...).
        size: number of output positions.
        positions: for each requested frame (a slot), the output positions that receive it;
            None means slot ``k`` is position ``k``.
    """

    __slots__ = ("data", "pts", "durations", "positions")

    def __init__(self, data: Any, size: int, positions: Sequence[Sequence[int]] | None = None):
        self.data = data
        self.pts: list[int] = [0] * size
        self.durations: list[float] = [0] * size
        self.positions = positions

    def targets(self, slot: int) -> Sequence[int]:
        """The output positions of requested frame ``slot``, the first one written first."""
        return (slot,) if self.positions is None else self.positions[slot]


class FrameWriter(Protocol):
    """Writes decoded frames into a batch; one per decoding thread."""

    def write(self, frame: Any, batch: OutputBatch, slot: int) -> None:
        """Convert ``frame`` (an ``av.VideoFrame``) into every output position of ``slot`` and
        record its pts and duration."""
        ...


class OutputStage(Protocol):
    """How a reader's decoded frames become tensors."""

    def new_batch(self, num_slots: int, positions: Sequence[Sequence[int]] | None = None) -> OutputBatch:
        """Storage for ``num_slots`` requested frames (or ``positions``' output positions)."""
        ...

    def writer(self) -> FrameWriter:
        """A writer for one decoding thread."""
        ...

    def finish(self, batch: OutputBatch) -> RawFrames:
        """``(data, pts_seconds, duration_seconds)`` of a filled batch."""
        ...


class FrameTiming:
    """A frame's duration in ticks: its own, else the gap to the next frame of the index, else
    one frame at the average rate."""

    def __init__(self, time_base: Fraction, gap_after: Callable[[int], int] | None, average_fps: float | None):
        self.time_base = time_base
        self._gap_after = gap_after
        self._fallback = 1 / (average_fps * float(time_base)) if average_fps else 0

    def duration(self, frame: Any) -> float:
        dur = frame.duration
        if not dur and self._gap_after is not None:
            dur = self._gap_after(frame.pts)
        return dur or self._fallback


class CpuRGBOutput:
    """Frames as ``torch.uint8`` ``(N, H, W, 3)`` RGB on the CPU, converted by FFmpeg's swscale
    (``rgb24``, single-threaded: decoding threads already use the cores), written straight into
    the output array. A frame whose size differs from ``coded_size`` (a mid-stream resolution
    change) is scaled to it. ``device`` other than the CPU: the result is copied there.

    Args:
        coded_size: ``(width, height)`` of the output frames.
        timing: how a frame's duration is found.
        device: where :meth:`finish` puts the frames.
    """

    def __init__(self, coded_size: tuple[int, int], timing: FrameTiming, device: torch.device | None = None):
        self.coded_size = coded_size
        self.timing = timing
        self.device = device

    def new_batch(self, num_slots: int, positions=None) -> OutputBatch:
        size = num_slots if positions is None else sum(len(p) for p in positions)
        width, height = self.coded_size
        return OutputBatch(np.empty((size, height, width, 3), dtype=np.uint8), size, positions)

    def writer(self) -> "CpuRGBWriter":
        return CpuRGBWriter(self)

    def finish(self, batch: OutputBatch) -> RawFrames:
        tb = self.timing.time_base
        data = torch.from_numpy(batch.data)
        if self.device is not None and self.device.type != "cpu":
            data = data.to(self.device)
        return data, ticks_to_seconds(batch.pts, tb), ticks_to_seconds(batch.durations, tb)


class CpuRGBWriter:
    """One thread's swscale context (``VideoReformatter`` keeps it between frames)."""

    def __init__(self, stage: CpuRGBOutput):
        self._stage = stage
        self._reformatter: Any = None  # av.video.reformatter.VideoReformatter, made on first use

    def rgb(self, frame: Any) -> np.ndarray:
        """``frame`` as a uint8 ``(H, W, 3)`` array at the stage's size."""
        width, height = self._stage.coded_size
        if self._reformatter is None:
            from av.video.reformatter import VideoReformatter

            self._reformatter = VideoReformatter()
        rgb = self._reformatter.reformat(frame, width=width, height=height, format="rgb24", threads=1)
        return rgb.to_ndarray()

    def write(self, frame: Any, batch: OutputBatch, slot: int) -> None:
        first, *rest = batch.targets(slot)
        batch.data[first] = self.rgb(frame)
        batch.pts[first] = frame.pts
        batch.durations[first] = self._stage.timing.duration(frame)
        for d in rest:
            batch.data[d] = batch.data[first]
            batch.pts[d], batch.durations[d] = batch.pts[first], batch.durations[first]
