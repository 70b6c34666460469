"""Decoder-side transforms: :class:`Resize`, :class:`CenterCrop`, :class:`RandomCrop`.

The same names, arguments and semantics as torchcodec 0.17's ``torchcodec.transforms``, with no
torchcodec install needed. :class:`~mediadecode.VideoDecoder` ``transforms=`` takes these, the
torchcodec 0.17 classes, and their ``torchvision.transforms.v2`` counterparts (converted and
checked as torchcodec converts them). As in torchcodec:

- frames are rotated by the stream's display matrix first, then transformed, in list order;
- :class:`RandomCrop` picks its location once, when the decoder is made (the same crop for every
  frame; ``torch.randint`` for top then left, as ``torchvision.transforms.v2.RandomCrop`` does,
  so a seeded run crops where torchvision would);
- ``decoder.metadata`` keeps the source size.

How the frames are transformed is the backend's business (see ``docs/transforms.md``): the ffmpeg
backend does it inside FFmpeg's conversion, as torchcodec does (a libavfilter graph
``format=rgb24,scale=W:H:flags=bilinear,crop=W:H:X:Y:exact=1``, or swscale for a lone resize);
backends that cannot are served by the decoder facade with :meth:`TransformPlan.apply` (torch's
antialiased bilinear interpolation, as ``torchvision.transforms.v2.Resize``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "DecoderTransform",
    "Resize",
    "CenterCrop",
    "RandomCrop",
    "TransformStep",
    "TransformPlan",
    "TransformRequest",
    "KINDS",
]

KINDS = frozenset({"resize", "crop"})
"""Kinds of step a backend may apply natively (``Capabilities.transforms``)."""


def _pair(size: Any, what: str) -> tuple[int, int]:
    try:
        n = len(size)
    except TypeError:
        n = -1
    if n != 2:
        raise ValueError(f"{what} transform must have a (height, width) pair for the size, got {size}.")
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"{what} size must be positive, got {size}.")
    return h, w


class DecoderTransform:
    """Base class of the transforms a decoder applies (torchcodec 0.17's ``DecoderTransform``).

    Attributes:
        size: ``(height, width)`` of the output frames.
    """

    size: tuple[int, int]

    def _step(self, input_size: tuple[int | None, int | None]) -> "TransformStep":
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={tuple(self.size)})"


class Resize(DecoderTransform):
    """Resize to ``size = (height, width)``; bilinear, antialiased (torchcodec 0.17's
    ``Resize``; complementary torchvision transform ``v2.Resize(size)`` with its defaults).

    Raises:
        ValueError: ``size`` is not a pair of positive ints.
    """

    def __init__(self, size: Sequence[int]):
        self.size = _pair(size, "Resize")

    def _step(self, input_size):
        return TransformStep("resize", *self.size)


class CenterCrop(DecoderTransform):
    """Crop ``size = (height, width)`` at the centre of the frame (torchcodec 0.17's
    ``CenterCrop``; FFmpeg's ``crop`` filter centre: ``x = (in_w - w) // 2``).

    Raises:
        ValueError: ``size`` is not a pair of positive ints; at decoder creation, a crop larger
            than its input.
    """

    def __init__(self, size: Sequence[int]):
        self.size = _pair(size, "CenterCrop")

    def _step(self, input_size):
        return TransformStep("crop", *self.size)


class RandomCrop(DecoderTransform):
    """Crop ``size = (height, width)`` at a location drawn once, when the decoder is made, with
    ``torch.randint`` (top, then left), as torchcodec 0.17's ``RandomCrop`` and
    ``torchvision.transforms.v2.RandomCrop`` draw it. No padding.

    Raises:
        ValueError: ``size`` is not a pair of positive ints; at decoder creation, a crop larger
            than its input, or an input of unknown size.
    """

    def __init__(self, size: Sequence[int]):
        self.size = _pair(size, "RandomCrop")

    def _step(self, input_size):
        height, width = input_size
        if height is None or width is None:
            raise ValueError(
                "Video metadata has no height or width. "
                "RandomCrop can only be used when input frame dimensions are known."
            )
        if height < self.size[0] or width < self.size[1]:
            raise ValueError(f"Input dimensions {input_size} are smaller than the crop size {self.size}.")
        top = int(torch.randint(0, height - self.size[0] + 1, size=()).item())
        left = int(torch.randint(0, width - self.size[1] + 1, size=()).item())
        return TransformStep("crop", self.size[0], self.size[1], left, top)


def _from_torchcodec(t: Any) -> DecoderTransform | None:
    """torchcodec 0.17's own transform objects (recognised by class, torchcodec not imported)."""
    module = type(t).__module__ or ""
    if not module.startswith("torchcodec."):
        return None
    cls = {"Resize": Resize, "CenterCrop": CenterCrop, "RandomCrop": RandomCrop}.get(type(t).__name__)
    if cls is None:
        raise ValueError(f"Unsupported torchcodec transform: {t!r}")
    return cls(t.size)


def _from_torchvision(t: Any) -> DecoderTransform:
    """A ``torchvision.transforms.v2`` Resize/CenterCrop/RandomCrop, with torchcodec 0.17's
    checks (``_decoder_transforms.py``)."""
    try:
        from torchvision.transforms import v2
    except ImportError:
        raise ValueError(
            f"The supplied transform, {t}, is not a decoder transform (mediadecode.transforms or "
            "torchcodec.transforms); torchvision v2 transforms are accepted too, but torchvision "
            "is not installed."
        ) from None
    if isinstance(t, v2.Resize):
        if t.interpolation not in (v2.InterpolationMode.BILINEAR, "bilinear"):
            raise ValueError("TorchVision Resize transform must use bilinear interpolation.")
        if t.antialias is False:
            raise ValueError("TorchVision Resize transform must have antialias enabled.")
        if t.size is None:
            raise ValueError("TorchVision Resize transform must have a size specified.")
        if len(t.size) != 2:
            raise ValueError(
                f"TorchVision Resize transform must have a (height, width) pair for the size, got {t.size}."
            )
        return Resize(t.size)
    if isinstance(t, v2.CenterCrop):
        return CenterCrop(_pair(t.size, "TorchVision CenterCrop"))
    if isinstance(t, v2.RandomCrop):
        if t.padding is not None:
            raise ValueError("TorchVision RandomCrop transform must not specify padding.")
        if t.pad_if_needed is True:
            raise ValueError("TorchVision RandomCrop transform must not specify pad_if_needed.")
        if t.fill != 0:
            raise ValueError("TorchVision RandomCrop fill must be 0.")
        if t.padding_mode != "constant":
            raise ValueError("TorchVision RandomCrop padding_mode must be constant.")
        return RandomCrop(_pair(t.size, "TorchVision RandomCrop"))
    raise ValueError(
        f"Unsupported transform: {t}. Transforms must be Resize, CenterCrop or RandomCrop from "
        "mediadecode.transforms, torchcodec.transforms or torchvision.transforms.v2."
    )


def as_decoder_transform(t: Any) -> DecoderTransform:
    """``t`` as one of this module's classes (torchcodec's and torchvision v2's converted).

    Raises:
        ValueError: an unsupported transform or argument, as torchcodec 0.17 raises it.
    """
    if isinstance(t, DecoderTransform):
        return t
    converted = _from_torchcodec(t)
    return converted if converted is not None else _from_torchvision(t)


@dataclass(frozen=True)
class TransformStep:
    """One resolved step, in display orientation.

    Attributes:
        kind: ``"resize"`` or ``"crop"``.
        height, width: output size in pixels.
        left, top: crop offset; None for a centre crop (FFmpeg's ``crop`` default, whose
            offset is ``((in_w - w) // 2, (in_h - h) // 2)``).
    """

    kind: str
    height: int
    width: int
    left: int | None = None
    top: int | None = None

    def offset(self, in_height: int, in_width: int) -> tuple[int, int]:
        """``(top, left)`` of a crop of an ``in_height x in_width`` frame."""
        if self.left is not None:
            return self.top, self.left
        return (in_height - self.height) // 2, (in_width - self.width) // 2

    def filter(self) -> tuple[str, str]:
        """The libavfilter filter (name, arguments) of this step, as torchcodec 0.17 spells it
        (``Transform.cpp``)."""
        if self.kind == "resize":
            return "scale", f"{self.width}:{self.height}:flags=bilinear"
        where = "" if self.left is None else f":{self.left}:{self.top}"
        return "crop", f"{self.width}:{self.height}{where}:exact=1"


@dataclass(frozen=True)
class TransformPlan:
    """Resolved transforms of one stream: the steps, in order, from ``input_size`` (the frames
    after rotation) to ``output_size``. Hashable, picklable.

    Attributes:
        steps: the :class:`TransformStep` objects.
        input_size: ``(height, width)`` of the rotated source frames.
        output_size: ``(height, width)`` of the returned frames.
    """

    steps: tuple[TransformStep, ...]
    input_size: tuple[int, int]
    output_size: tuple[int, int]

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds of step used (``{"resize", "crop"}``...)."""
        return frozenset(s.kind for s in self.steps)

    def split(self, kinds: frozenset[str]) -> tuple["TransformPlan | None", "TransformPlan | None"]:
        """``(native, rest)``: the longest leading run of steps whose kinds are in ``kinds``
        (what a backend applies itself), and the steps after it (what the facade applies);
        None for an empty part."""
        n = 0
        while n < len(self.steps) and self.steps[n].kind in kinds:
            n += 1
        if n == 0:
            return None, self
        if n == len(self.steps):
            return self, None
        mid = self.steps[n - 1]
        mid_size = (mid.height, mid.width)
        return (
            TransformPlan(self.steps[:n], self.input_size, mid_size),
            TransformPlan(self.steps[n:], mid_size, self.output_size),
        )

    def filters(self) -> list[tuple[str, str]]:
        """The libavfilter chain of the steps (see :meth:`TransformStep.filter`)."""
        return [s.filter() for s in self.steps]

    def apply(self, frames: Tensor) -> Tensor:
        """Apply the steps to ``(N, H, W, 3)`` frames (uint8 or float, any device) with torch:
        ``interpolate(mode="bilinear", antialias=True, align_corners=False)`` as
        ``torchvision.transforms.v2.Resize`` on float tensors, and slicing for crops. Used by
        the facade for backends that do not transform natively; within a few levels of FFmpeg's
        bilinear swscale (see ``docs/transforms.md``).

        Returns:
            ``(N, out_h, out_w, 3)`` contiguous, same dtype and device.
        """
        for step in self.steps:
            if step.kind == "resize":
                frames = _resize(frames, step.height, step.width)
            else:
                top, left = step.offset(frames.shape[1], frames.shape[2])
                frames = frames[:, top:top + step.height, left:left + step.width]
        return frames.contiguous()


def _resize(frames: Tensor, height: int, width: int) -> Tensor:
    if frames.shape[0] == 0:
        return frames.new_empty((0, height, width, frames.shape[3]))
    x = frames.permute(0, 3, 1, 2).float()
    y = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear",
                                        align_corners=False, antialias=True)
    if frames.dtype == torch.uint8:
        y = y.round_().clamp_(0, 255).to(torch.uint8)
    else:
        y = y.to(frames.dtype)
    return y.permute(0, 2, 3, 1)


class TransformRequest:
    """The transforms a decoder was made with, resolved once against the rotated source size.

    Made by :class:`~mediadecode.VideoDecoder` from its ``transforms=`` argument; backends that
    declare ``Capabilities.transforms`` receive it in ``open_video(transforms=...)`` and call
    :meth:`resolve` with the size of their rotated frames. The first call draws
    :class:`RandomCrop` locations; later calls (a reopened or unpickled decoder) return the same
    plan, so the crop never moves.

    Args:
        transforms: a sequence of this module's, torchcodec 0.17's or torchvision v2's
            Resize / CenterCrop / RandomCrop objects.

    Raises:
        ValueError: an unsupported transform or argument.
        TypeError: ``transforms`` is not a sequence.
    """

    def __init__(self, transforms: Sequence[Any]):
        if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence):
            raise TypeError(f"transforms must be a sequence of transforms, got {type(transforms).__name__}")
        self.transforms: tuple[DecoderTransform, ...] = tuple(as_decoder_transform(t) for t in transforms)
        self._plan: TransformPlan | None = None
        self._lock = threading.Lock()

    def resolve(self, height: int | None, width: int | None) -> TransformPlan:
        """The :class:`TransformPlan` for rotated frames of ``height x width`` (drawn once).

        Raises:
            ValueError: a crop larger than its input, or a random crop of an unknown size.
        """
        with self._lock:
            if self._plan is None:
                self._plan = self._resolve(height, width)
            return self._plan

    def _resolve(self, height, width) -> TransformPlan:
        size: tuple[int | None, int | None] = (height, width)
        steps = []
        for t in self.transforms:
            step = t._step(size)
            if step.kind == "crop" and size[0] is not None and size[1] is not None:
                if step.height > size[0] or step.width > size[1]:
                    raise ValueError(
                        f"Crop output size ({step.height}, {step.width}) is greater than its "
                        f"input ({size[0]}, {size[1]})"
                    )
            steps.append(step)
            size = (step.height, step.width)
        if height is None or width is None:
            raise ValueError("the video's frame size is unknown; transforms need it")
        return TransformPlan(tuple(steps), (int(height), int(width)), (int(size[0]), int(size[1])))

    def __getstate__(self):
        return {"transforms": self.transforms, "plan": self._plan}

    def __setstate__(self, state):
        self.transforms = state["transforms"]
        self._plan = state["plan"]
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TransformRequest({list(self.transforms)!r})"
