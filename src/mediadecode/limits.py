"""The output limit: how large one request's output may be, checked before allocating.

A small file can declare a huge frame size (16384x16384 RGB is 805 MB a frame) and a request can
ask for thousands of frames, or hours of 16-channel audio; a header can lie about either. Every
allocation-heavy request estimates its output size first and raises
:class:`~mediadecode.errors.OutputTooLargeError` above the limit, before decoding anything:

- video batches: ``N * H * W * 3 * bytes_per_sample`` (:func:`video_bytes`);
- audio: ``seconds * sample_rate * num_channels * 4`` (float32, :func:`audio_bytes`);
- encoder inputs: the encoders call :func:`check_output_bytes` with the size of what they are
  given to encode.

The limit, first that is set:

1. the ``max_output_bytes=`` argument of a decoder (or the ``limit=`` argument of
   :func:`check_output_bytes`);
2. the ``MEDIADECODE_MAX_OUTPUT_BYTES`` environment variable, read at each check (an integer
   number of bytes, with an optional ``K``/``M``/``G``/``T`` suffix in powers of 1024; ``0`` or
   ``none`` turns the check off);
3. :data:`DEFAULT_FRACTION` of the memory this process may use (physical memory, or the cgroup's
   ``memory.max`` when that is lower; measured once per process).
"""

from __future__ import annotations

import functools
import math
import os
import re

from .errors import OutputTooLargeError

__all__ = [
    "ENV_VAR",
    "DEFAULT_FRACTION",
    "max_output_bytes",
    "check_output_bytes",
    "video_bytes",
    "audio_bytes",
]

ENV_VAR = "MEDIADECODE_MAX_OUTPUT_BYTES"
DEFAULT_FRACTION = 0.5
"""Share of the available memory one request's output may take by default."""

_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _parse(value: str) -> int | None:
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    if text in ("0", "NONE", "OFF", ""):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)", text)
    if match is None:
        raise ValueError(
            f"{ENV_VAR}={value!r} is not a size in bytes (examples: 8000000000, 8G, 512M, none)"
        )
    return int(float(match.group(1)) * _SUFFIX[match.group(2)])


@functools.lru_cache(maxsize=1)
def _available_memory() -> int | None:
    """Physical memory, or this cgroup's memory limit when it is lower; None if unknown."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        total = None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and (total is None or int(text) < total):
            total = int(text)
        break
    return total


def max_output_bytes(limit: int | None = None) -> int | None:
    """The output limit in bytes now: ``limit`` if given, else the environment variable, else
    :data:`DEFAULT_FRACTION` of the available memory. None means no limit (``limit=0``, the
    variable set to ``0``/``none``, or memory that cannot be measured).

    Raises:
        ValueError: a negative ``limit`` or a malformed environment variable.
    """
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"max_output_bytes must be an int >= 0 or None, got {limit!r}")
        return limit or None
    env = os.environ.get(ENV_VAR)
    if env is not None:
        return _parse(env)
    memory = _available_memory()
    return None if memory is None else int(memory * DEFAULT_FRACTION)


def _size(nbytes: float) -> str:
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= factor:
            return f"{nbytes / factor:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def check_output_bytes(nbytes: float, *, what: str, source_name: str = "", limit: int | None = None) -> None:
    """Refuse an output of ``nbytes`` bytes above the limit (see :func:`max_output_bytes`).

    For any code about to allocate from what a file or a caller says: the decoders check each
    request with it, and the encoders check their inputs.

    Args:
        nbytes: the estimated output size in bytes (a float is fine: products of header values
            may be huge; NaN counts as unknown and passes).
        what: the request in a few words, for the message (``"get_frames_at of 4000 frames of
            16384x16384"``).
        source_name: the source, for the message.
        limit: an explicit limit (bytes; 0 means none), else the environment's or the default.

    Raises:
        OutputTooLargeError: ``nbytes`` is above the limit (names the source, the request, both
            sizes and how to raise the limit).
        ValueError: a malformed limit.
    """
    cap = max_output_bytes(limit)
    if cap is None or not nbytes > cap:  # NaN: unknown, not refused
        return
    where = f"{source_name}: " if source_name else ""
    raise OutputTooLargeError(
        f"{where}{what} would produce {_size(nbytes)}, above the output limit of {_size(cap)}; "
        f"ask for less (fewer frames, a shorter range), or raise the limit with "
        f"max_output_bytes=... or the {ENV_VAR} environment variable (bytes, or e.g. 64G; "
        f"'none' turns the check off)",
        requested_bytes=int(min(nbytes, 2**63 - 1)) if math.isfinite(nbytes) else 2**63 - 1,
        limit_bytes=cap,
    )


def video_bytes(num_frames: int, height: int, width: int, *, channels: int = 3,
                bytes_per_sample: int = 1) -> int:
    """Bytes of ``num_frames`` frames of ``height x width x channels`` samples (uint8: 1 byte,
    float32: 4, uint16: 2)."""
    return int(num_frames) * int(height or 0) * int(width or 0) * channels * bytes_per_sample


def audio_bytes(seconds: float, sample_rate: int, num_channels: int, *, bytes_per_sample: int = 4) -> float:
    """Bytes of ``seconds`` of ``num_channels`` channels at ``sample_rate`` Hz (float32 by
    default); NaN when the duration is unknown."""
    if seconds is None or not math.isfinite(seconds):
        return math.nan
    return max(0.0, seconds) * sample_rate * num_channels * bytes_per_sample
