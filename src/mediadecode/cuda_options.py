"""torchcodec 0.17's CUDA decoding settings, on mediadecode's backends.

- :func:`set_cuda_backend`: a context manager choosing the CUDA decoder for decoders created
  inside it, mapped onto :func:`mediadecode.use_backend` with ``device_type="cuda"``, so that CPU
  decoders inside the block are unaffected (as in torchcodec). torchcodec has two CUDA
  decoders, its own NVDEC one (``"nvdec"``, the default) and FFmpeg's (``"ffmpeg"``);
  mediadecode's ``nvdec`` backend is FFmpeg's NVDEC decoding through PyAV, so both names select
  it. As in torchcodec, a stream NVDEC cannot decode falls back to the CPU (reported by
  ``VideoDecoder.cpu_fallback``).
- :func:`set_nvdec_cache_capacity` / :func:`get_nvdec_cache_capacity`: how many NVDEC decoders
  torchcodec keeps per GPU for reuse (default 20). The value is handed to torchcodec when the
  ``torchcodec`` backend opens a CUDA decoder; the ``nvdec`` backend keeps no decoder cache (PyAV
  opens one decoder per container), so it has no effect there.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator

from .errors import InvalidArgumentError
from .selection import use_backend

__all__ = ["set_cuda_backend", "get_nvdec_cache_capacity", "set_nvdec_cache_capacity"]

CUDA_BACKEND_NAMES = ("nvdec", "ffmpeg")
# The mediadecode backend serving each of torchcodec's CUDA backend names.
_BACKEND_FOR = {"nvdec": "nvdec", "ffmpeg": "nvdec"}

# torchcodec 0.17's default capacity (per GPU).
DEFAULT_NVDEC_CACHE_CAPACITY = 20
_nvdec_cache_capacity = DEFAULT_NVDEC_CACHE_CAPACITY


@contextlib.contextmanager
def set_cuda_backend(backend: str) -> Iterator[None]:
    """Choose the CUDA decoder for :class:`~mediadecode.VideoDecoder` objects created inside the
    ``with`` block, as torchcodec 0.17's ``torchcodec.decoders.set_cuda_backend``. Only the
    creation needs to be inside; decoders with a CPU device are unaffected. Thread- and
    async-safe (a :mod:`contextvars` value).

    Args:
        backend: ``"nvdec"`` or ``"ffmpeg"`` (case-insensitive; ``"beta"`` is the old name of
            ``"nvdec"``). Both select mediadecode's ``nvdec`` backend (FFmpeg's NVDEC decoding).

    Raises:
        ValueError: another name (checked on entry; torchcodec's message).
    """
    name = str(backend).lower()
    if name == "beta":
        name = "nvdec"
    if name not in CUDA_BACKEND_NAMES:
        raise ValueError(
            f"Invalid CUDA backend ({backend}). Supported values are 'nvdec' and 'ffmpeg'."
        )
    with use_backend(_BACKEND_FOR[name], device_type="cuda"):
        yield


def set_nvdec_cache_capacity(capacity: int) -> None:
    """Set how many NVDEC decoders may be cached per GPU, as torchcodec 0.17's
    ``set_nvdec_cache_capacity`` (0 disables the cache). Applies to the ``torchcodec`` backend's
    CUDA decoders opened afterwards.

    Raises:
        InvalidArgumentError: ``capacity`` is negative (a ``RuntimeError``, as torchcodec's
            check raises, and a ``ValueError``).
        TypeError: ``capacity`` is not an integer.
    """
    global _nvdec_cache_capacity
    if isinstance(capacity, bool):
        raise TypeError("capacity must be an int, not bool")
    value = operator.index(capacity)
    if value < 0:
        raise InvalidArgumentError(f"NVDEC cache capacity must be non-negative, got {value}")
    _nvdec_cache_capacity = value


def get_nvdec_cache_capacity() -> int:
    """The NVDEC decoder cache capacity per GPU (default 20, as torchcodec 0.17's
    ``get_nvdec_cache_capacity``)."""
    return _nvdec_cache_capacity
