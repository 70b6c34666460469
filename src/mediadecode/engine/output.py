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
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

import numpy as np
import torch

from ..frame_index import ticks_to_seconds
from ..protocol import RawFrames
from ..transforms import TransformPlan

__all__ = ["allocate_frames", "OutputBatch", "FrameWriter", "OutputStage", "OutputFormat", "CpuRGBOutput"]


def allocate_frames(shape: tuple[int, ...], dtype: torch.dtype, *, concurrent: bool = False) -> np.ndarray:
    """An uninitialised output array of ``shape`` and ``dtype``, as a writable numpy array.

    ``concurrent``: several decoding threads will write into it at once (GOP-parallel decoding).
    numpy's allocator asks the kernel for transparent huge pages (``madvise``) above 4 MiB: the
    fewest page faults for one writer, but where the kernel's THP ``defrag`` setting is
    ``madvise`` (Debian's default) threads that first-touch huge pages at the same time stall on
    each other's compaction: every frame of a 1080p clip with two decoding threads took longer
    than with one. For concurrent writers the array comes from torch's allocator, which asks for
    no huge pages (4 KiB faults, which threads take in parallel).
    """
    if concurrent:
        return torch.empty(shape, dtype=dtype).numpy()
    return np.empty(shape, dtype=torch.empty((), dtype=dtype).numpy().dtype)


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

    def new_batch(self, num_slots: int, positions: Sequence[Sequence[int]] | None = None, *,
                  concurrent: bool = False) -> OutputBatch:
        """Storage for ``num_slots`` requested frames (or ``positions``' output positions);
        ``concurrent``: several threads' writers will fill it at once."""
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


@dataclass(frozen=True)
class OutputFormat:
    """What an output stage produces besides plain ``uint8`` RGB at the coded size.

    Attributes:
        dtype: ``"uint8"`` (values 0-255) or ``"float32"`` (values in [0, 1], from FFmpeg's
            16-bit ``rgb48`` conversion divided by 65535, as torchcodec 0.17 computes it, so
            10/12-bit sources keep their precision).
        plan: transforms applied inside the conversion (display orientation), or None.
        rotation: the display-matrix rotation (degrees counter-clockwise) the stage applies
            before ``plan``; None leaves frames in the coded orientation (the facade rotates).
    """

    dtype: str = "uint8"
    plan: TransformPlan | None = None
    rotation: float | None = None

    @property
    def quarter_turns(self) -> int:
        """Counter-clockwise quarter turns the stage applies (0-3)."""
        return int(round((self.rotation or 0) / 90)) % 4

    def output_size(self, coded_size: tuple[int, int]) -> tuple[int, int]:
        """``(width, height)`` of the frames the stage returns."""
        if self.plan is not None:
            height, width = self.plan.output_size
            return width, height
        width, height = coded_size
        return (height, width) if self.quarter_turns % 2 else (width, height)


class CpuRGBOutput:
    """Frames as ``torch.uint8`` ``(N, H, W, 3)`` RGB on the CPU, converted by FFmpeg's swscale
    (``rgb24``, single-threaded: decoding threads already use the cores), written straight into
    the output array. A frame whose size differs from ``coded_size`` (a mid-stream resolution
    change) is scaled to it. ``device`` other than the CPU: the result is copied there.

    With an :class:`OutputFormat` (transforms, ``float32``, a rotation, or a source of more than
    8 bits per sample) each frame goes through FFmpeg as torchcodec 0.17's CPU device interface
    sends it (``CpuDeviceInterface.cpp``), so the pixels are torchcodec's:

    - no transform or one lone resize, and input and output widths multiples of 32: swscale,
      first the colour conversion at the source size (no scaler flag given, i.e. swscale's
      default bicubic), then, for a resize, a second swscale pass in RGB with ``SWS_BILINEAR``;
    - otherwise a libavfilter graph ``format=rgb24`` (``rgb48`` for float) then the rotation
      (``transpose``, ``hflip,vflip``) then each step (``scale=W:H:flags=bilinear``,
      ``crop=W:H[:X:Y]:exact=1``), through PyAV's ``av.filter.Graph``.

    Only the output size is allocated for the batch; FFmpeg's own intermediate frames are
    freed frame by frame.

    Args:
        coded_size: ``(width, height)`` of the decoded frames (before rotation).
        timing: how a frame's duration is found.
        device: where :meth:`finish` puts the frames.
        fmt: dtype, transforms and rotation; None is plain ``uint8`` RGB at ``coded_size``.
    """

    def __init__(self, coded_size: tuple[int, int], timing: FrameTiming, device: torch.device | None = None,
                 fmt: OutputFormat | None = None):
        self.coded_size = coded_size
        self.timing = timing
        self.device = device
        self.fmt = fmt
        self.output_size = fmt.output_size(coded_size) if fmt is not None else coded_size

    def new_batch(self, num_slots: int, positions=None, *, concurrent: bool = False) -> OutputBatch:
        size = num_slots if positions is None else sum(len(p) for p in positions)
        width, height = self.output_size
        dtype = torch.float32 if self.fmt is not None and self.fmt.dtype == "float32" else torch.uint8
        return OutputBatch(allocate_frames((size, height, width, 3), dtype, concurrent=concurrent), size, positions)

    def writer(self) -> "CpuRGBWriter":
        return CpuRGBWriter(self)

    def finish(self, batch: OutputBatch) -> RawFrames:
        tb = self.timing.time_base
        data = torch.from_numpy(batch.data)
        if self.device is not None and self.device.type != "cpu":
            data = data.to(self.device)
        return data, ticks_to_seconds(batch.pts, tb), ticks_to_seconds(batch.durations, tb)


class CpuRGBWriter:
    """One thread's conversion state: swscale contexts (``VideoReformatter`` keeps them between
    frames) or the libavfilter graph of the stage's :class:`OutputFormat`."""

    def __init__(self, stage: CpuRGBOutput):
        self._stage = stage
        self._reformatter: Any = None  # av.video.reformatter.VideoReformatter, made on first use
        self._conversion: FrameConversion | None = None

    def rgb(self, frame: Any) -> np.ndarray:
        """``frame`` as a uint8 ``(H, W, 3)`` array at the stage's size (plain conversion)."""
        width, height = self._stage.coded_size
        if self._reformatter is None:
            from av.video.reformatter import VideoReformatter

            self._reformatter = VideoReformatter()
        rgb = self._reformatter.reformat(frame, width=width, height=height, format="rgb24", threads=1)
        return rgb.to_ndarray()

    def convert(self, frame: Any) -> np.ndarray:
        """``frame`` as the stage's ``(H, W, 3)`` output: uint8, or uint16 (``rgb48``) when the
        output is float32."""
        conv = self._conversion
        if conv is None or not conv.fits(frame):
            conv = self._conversion = FrameConversion(self._stage, frame)
        return conv(frame)

    def write(self, frame: Any, batch: OutputBatch, slot: int) -> None:
        first, *rest = batch.targets(slot)
        fmt = self._stage.fmt
        if fmt is None:
            batch.data[first] = self.rgb(frame)
        elif fmt.dtype == "float32":
            # torchcodec 0.17's arithmetic (Frame.cpp): float32(rgb48) / 65535, correctly rounded
            # float32 division written straight into the output slot (no temporaries)
            np.divide(self.convert(frame), np.float32(65535), out=batch.data[first])
        else:
            batch.data[first] = self.convert(frame)
        batch.pts[first] = frame.pts
        batch.durations[first] = self._stage.timing.duration(frame)
        for d in rest:
            batch.data[d] = batch.data[first]
            batch.pts[d], batch.durations[d] = batch.pts[first], batch.durations[first]


_ROTATION_FILTERS = {1: [("transpose", "cclock")], 2: [("hflip", ""), ("vflip", "")], 3: [("transpose", "clock")]}


class FrameConversion:
    """The conversion of frames of one geometry and pixel format to a stage's output, chosen as
    torchcodec 0.17 chooses it (see :class:`CpuRGBOutput`). Rebuilt when a frame's size or
    pixel format changes."""

    def __init__(self, stage: CpuRGBOutput, frame: Any):
        fmt = stage.fmt
        self.key = (frame.width, frame.height, frame.format.name)
        self.rgb_format = "rgb48le" if fmt.dtype == "float32" else "rgb24"
        out_w, out_h = stage.output_size
        self.out_size = (out_w, out_h)
        plan = fmt.plan
        steps = plan.steps if plan is not None else ()
        turns = fmt.quarter_turns
        # the stage's expected coded size: a frame of another size is scaled to it first
        self.prescale = None if (frame.width, frame.height) == stage.coded_size else stage.coded_size
        swscale_compatible = turns == 0 and self.prescale is None and (
            not steps or (len(steps) == 1 and steps[0].kind == "resize")
        )
        self.use_swscale = swscale_compatible and frame.width % 32 == 0 and out_w % 32 == 0
        if self.use_swscale:
            from av.video.reformatter import VideoReformatter

            self._convert = VideoReformatter()
            self._resize = VideoReformatter() if steps else None
            self._graph = None
        else:
            self._graph = self._build_graph(frame, turns, plan)

    def fits(self, frame: Any) -> bool:
        return (frame.width, frame.height, frame.format.name) == self.key

    def _build_graph(self, frame: Any, turns: int, plan: TransformPlan | None):
        import av

        graph = av.filter.Graph()
        src = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                               time_base=frame.time_base or Fraction(1, 1))
        chain: list[tuple[str, str]] = [("format", self.rgb_format.replace("le", ""))]
        if self.prescale is not None:
            chain.append(("scale", f"{self.prescale[0]}:{self.prescale[1]}"))
        chain += _ROTATION_FILTERS.get(turns, [])
        if plan is not None:
            chain += plan.filters()
        prev = src
        for name, args in chain:
            node = graph.add(name, args) if args else graph.add(name)
            prev.link_to(node)
            prev = node
        sink = graph.add("buffersink")
        prev.link_to(sink)
        graph.configure()
        self._src, self._sink = src, sink
        return graph

    def __call__(self, frame: Any) -> np.ndarray:
        if self._graph is None:
            # swscale: colour conversion at the source size with swscale's default scaler
            # (torchcodec passes no flags: bicubic), then a bilinear resize in RGB.
            rgb = self._convert.reformat(frame, format=self.rgb_format, interpolation="BICUBIC", threads=1)
            if self._resize is not None:
                w, h = self.out_size
                rgb = self._resize.reformat(rgb, width=w, height=h, interpolation="BILINEAR", threads=1)
            return rgb.to_ndarray()
        self._src.push(frame)
        return self._sink.pull().to_ndarray()
