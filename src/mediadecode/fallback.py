""":class:`CpuFallbackStatus`: whether a GPU decoder fell back to decoding on the CPU.

The same interface as torchcodec 0.17's ``torchcodec.decoders.CpuFallbackStatus``
(``VideoDecoder.cpu_fallback``): ``bool(status)`` is True when a fallback happened and is known,
``str(status)`` is a one-line explanation, ``status.status_known`` says whether it has been
determined yet.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CpuFallbackStatus"]


@dataclass
class CpuFallbackStatus:
    """Whether a decoder that was asked for a GPU decodes on the CPU instead, and why.

    Attributes:
        status_known: True once the backend knows (the ``nvdec`` backend knows when it opens
            the stream: it decodes the first frame then).
        is_fallback: True when frames are (or were) decoded on the CPU.
        backend: the backend's name, shown in ``str()``.
        reason: why it fell back (codec without an NVDEC decoder, a profile the GPU does not
            support...); empty without a fallback.
        applicable: False for backends that decode on the CPU by design (their status is known
            and is never a fallback; ``str()`` is torchcodec 0.17's text for a CPU decoder,
            ``"[CPU] Fallback status: No fallback required"``).
    """

    status_known: bool = False
    is_fallback: bool = False
    backend: str = ""
    reason: str = ""
    applicable: bool = True

    @classmethod
    def not_applicable(cls, backend: str) -> "CpuFallbackStatus":
        """The status of a backend that decodes on the CPU by design."""
        return cls(status_known=True, is_fallback=False, backend=backend, applicable=False)

    def __bool__(self) -> bool:
        """True when a fallback happened (and is known)."""
        return self.status_known and self.is_fallback

    def __str__(self) -> str:
        if not self.applicable:
            # torchcodec 0.17 labels a CPU decoder's status by its device, "CPU"
            return "[CPU] Fallback status: No fallback required"
        label = f"[{self.backend}] Fallback status:"
        if not self.status_known:
            return f"{label} Unknown"
        if self.is_fallback:
            return f"{label} Falling back due to: {self.reason or 'unknown reason'}"
        return f"{label} No fallback required"
