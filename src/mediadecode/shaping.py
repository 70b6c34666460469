"""The facade's share of every video batch: :class:`FrameShaper`.

A backend's reader returns ``(N, H, W, 3)`` frames; the decoder facade then rotates them (unless
the reader did), applies the transform steps the backend does not apply itself, converts a
``uint8``-only backend's frames to ``float32`` when asked, and puts them in the requested
dimension order. The shaper is decided once per open, from the stream's metadata and the
backend's declared capabilities, then applied to every batch, so every backend's frames come out
the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .capabilities import Capabilities
from .metadata import VideoStreamMetadata
from .transforms import TransformPlan, TransformRequest

__all__ = ["FrameShaper", "backend_output_keywords"]


def backend_output_keywords(caps: Capabilities, transforms: TransformRequest | None,
                            output_dtype: str) -> dict[str, Any]:
    """The output keywords a backend's ``open_video`` is handed, as its capabilities declare
    (never sniffed): ``transforms=`` to a backend that applies transforms itself,
    ``output_dtype=`` to one that returns float32 itself. Backends written before either
    existed get neither, and :class:`FrameShaper` does that work."""
    extra: dict[str, Any] = {}
    if caps.transforms and transforms is not None:
        extra["transforms"] = transforms
    if "float32" in caps.output_dtypes and output_dtype != "uint8":
        extra["output_dtype"] = output_dtype
    return extra


@dataclass(frozen=True)
class FrameShaper:
    """How the frames of one open video stream are shaped for the user.

    Attributes:
        rot90: quarter turns counter-clockwise (``torch.rot90``) the facade applies.
        post_plan: transform steps the backend left to the facade (after rotation), or None.
        cast_float: convert ``uint8`` frames to ``float32`` in [0, 1] (``x / 255``).
        dimension_order: ``"NCHW"`` or ``"NHWC"``.
        output_size: ``(height, width)`` of the returned frames.
        output_dtype: ``torch.uint8`` or ``torch.float32``.
        device: where frames are returned (for empty batches).
    """

    rot90: int
    post_plan: TransformPlan | None
    cast_float: bool
    dimension_order: str
    output_size: tuple[int, int]
    output_dtype: torch.dtype
    device: str

    @classmethod
    def for_stream(
        cls,
        meta: VideoStreamMetadata,
        caps: Capabilities,
        *,
        frames_are_rotated: bool,
        transforms: TransformRequest | None,
        output_dtype: str,
        dimension_order: str,
        device: str,
    ) -> "FrameShaper":
        """The shaper for a stream with metadata ``meta`` read by a backend with ``caps``.

        ``output_dtype`` is ``"uint8"``, ``"float32"`` or ``"auto"`` (float32 for sources of more
        than 8 bits per sample, as torchcodec 0.17).
        """
        rotation = None if frames_are_rotated else meta.rotation
        size = (int(meta.height or 0), int(meta.width or 0))
        plan = None
        if transforms is not None:
            resolved = transforms.resolve(meta.height, meta.width)
            size = resolved.output_size
            plan = resolved.split(caps.transforms)[1] if caps.transforms else resolved
        if output_dtype == "auto":
            output_dtype = "float32" if (meta.bit_depth or 8) > 8 else "uint8"
        return cls(
            rot90=int(round((rotation or 0) / 90)) % 4,
            post_plan=plan,
            cast_float=output_dtype == "float32" and "float32" not in caps.output_dtypes,
            dimension_order=dimension_order,
            output_size=size,
            output_dtype=torch.float32 if output_dtype == "float32" else torch.uint8,
            device=device,
        )

    def apply(self, data: Tensor) -> Tensor:
        """``(N, H, W, 3)`` reader frames -> rotated, transformed, of the output dtype, in the
        dimension order."""
        if self.rot90:
            data = torch.rot90(data, self.rot90, dims=(1, 2)).contiguous()
        if self.post_plan is not None:
            data = self.post_plan.apply(data)
        if self.cast_float and data.dtype == torch.uint8:
            data = data.to(torch.float32) / 255.0
        if self.dimension_order == "NCHW":
            data = data.permute(0, 3, 1, 2)
        return data

    def empty(self) -> Tensor:
        """A batch of no frames with the output's shape, dtype and device."""
        h, w = self.output_size
        shape: Any = (0, 3, h, w) if self.dimension_order == "NCHW" else (0, h, w, 3)
        return torch.empty(shape, dtype=self.output_dtype, device=self.device)
