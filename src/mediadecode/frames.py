"""Result containers: :class:`Frame`, :class:`FrameBatch`, :class:`AudioSamples`.

Same names, fields and behaviour as torchcodec 0.17's ``torchcodec.Frame``, ``FrameBatch`` and
``AudioSamples`` (including tuple-style unpacking of ``Frame`` and ``AudioSamples``), validated in
``__post_init__``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Frame", "FrameBatch", "AudioSamples"]


def _repr(self) -> str:
    lines = [type(self).__name__ + ":"]
    for field in dataclasses.fields(self):
        value = getattr(self, field.name)
        name = field.name
        if name == "data":
            name, value = "data (shape)", tuple(value.shape)
        lines.append(f"  {name}: {value}")
    return "\n".join(lines) + "\n"


@dataclass
class Frame(Iterable):
    """One video frame.

    Attributes:
        data: ``torch.uint8`` tensor of shape ``(3, H, W)`` (``dimension_order="NCHW"``) or
            ``(H, W, 3)`` (``"NHWC"``), RGB.
        pts_seconds: presentation timestamp of the frame, in seconds (float).
        duration_seconds: how long the frame is shown, in seconds (float).

    Raises:
        ValueError: ``data`` is not 3-D.
    """

    data: Tensor
    pts_seconds: float
    duration_seconds: float

    def __post_init__(self) -> None:
        if not isinstance(self.data, Tensor) or self.data.ndim != 3:
            shape = getattr(self.data, "shape", None)
            raise ValueError(f"Frame.data must be a 3-D tensor, got shape {shape}")
        self.pts_seconds = float(self.pts_seconds)
        self.duration_seconds = float(self.duration_seconds)

    def __iter__(self) -> Iterator[Tensor | float]:
        for field in dataclasses.fields(self):
            yield getattr(self, field.name)

    __repr__ = _repr


@dataclass
class FrameBatch(Iterable):
    """Several video frames (4-D ``data``) or several clips of frames (5-D, from the samplers).

    Attributes:
        data: ``torch.uint8`` tensor, ``(N, 3, H, W)`` or ``(N, H, W, 3)``; 5-D ``(num_clips,
            frames_per_clip, ...)`` for clips. ``N`` may be 0 (an empty request).
        pts_seconds: ``torch.float64`` tensor of the leading shape of ``data`` (``(N,)`` or
            ``(num_clips, frames_per_clip)``), seconds, always on the CPU.
        duration_seconds: ``torch.float64`` tensor, same shape as ``pts_seconds``, seconds.

    Indexing (``batch[i]``, ``batch[1:3]``) and iteration slice all three fields together.

    Raises:
        ValueError: ``data`` has fewer than 3 dimensions, or the leading dimensions of ``data``,
            ``pts_seconds`` and ``duration_seconds`` differ.
    """

    data: Tensor
    pts_seconds: Tensor
    duration_seconds: Tensor

    def __post_init__(self) -> None:
        if self.data.ndim < 3:
            raise ValueError(
                f"FrameBatch.data must be at least 3-dimensional, got shape {tuple(self.data.shape)}"
            )
        leading = self.data.shape[:-3]
        if not (leading == self.pts_seconds.shape == self.duration_seconds.shape):
            raise ValueError(
                "FrameBatch fields disagree: data has leading shape "
                f"{tuple(leading)} but pts_seconds has {tuple(self.pts_seconds.shape)} and "
                f"duration_seconds has {tuple(self.duration_seconds.shape)}"
            )

    def __iter__(self) -> Iterator[FrameBatch]:
        for data, pts, duration in zip(self.data, self.pts_seconds, self.duration_seconds):
            yield FrameBatch(data=data, pts_seconds=pts, duration_seconds=duration)

    def __getitem__(self, key) -> FrameBatch:
        return FrameBatch(
            data=self.data[key],
            pts_seconds=self.pts_seconds[key],
            duration_seconds=self.duration_seconds[key],
        )

    def __len__(self) -> int:
        return len(self.data)

    __repr__ = _repr


@dataclass
class AudioSamples(Iterable):
    """A run of audio samples.

    Attributes:
        data: ``torch.float32`` tensor of shape ``(num_channels, num_samples)``, values in
            [-1, 1].
        pts_seconds: presentation time of the first sample, in seconds.
        duration_seconds: ``num_samples / sample_rate``, in seconds.
        sample_rate: samples per second per channel, in Hz.

    Raises:
        ValueError: ``data`` is not 2-D.
    """

    data: Tensor
    pts_seconds: float
    duration_seconds: float
    sample_rate: int

    def __post_init__(self) -> None:
        if not isinstance(self.data, Tensor) or self.data.ndim != 2:
            shape = getattr(self.data, "shape", None)
            raise ValueError(f"AudioSamples.data must be a 2-D tensor, got shape {shape}")
        self.pts_seconds = float(self.pts_seconds)
        self.duration_seconds = float(self.duration_seconds)
        self.sample_rate = int(self.sample_rate)

    def __iter__(self) -> Iterator[Tensor | float]:
        for field in dataclasses.fields(self):
            yield getattr(self, field.name)

    __repr__ = _repr


def empty_pts() -> Tensor:
    """An empty float64 tensor, for the pts/duration of an empty :class:`FrameBatch`."""
    return torch.empty(0, dtype=torch.float64)
