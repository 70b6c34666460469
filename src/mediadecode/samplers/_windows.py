"""Audio window samplers: many fixed-length windows of one audio stream (see the package doc)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Literal

import torch

from .checks import positive_int, random_generator

Policy = Literal["repeat_last", "wrap", "error"]
_POLICY_NAMES = ("repeat_last", "wrap", "error")


@dataclass
class AudioWindows:
    """A batch of audio windows.

    Attributes:
        data: ``(num_windows, num_channels, num_samples)`` float32 in [-1, 1].
        pts_seconds: ``(num_windows,)`` float64, the time of each window's first sample.
        duration_seconds: ``num_samples / sample_rate`` (every window has the same length).
        sample_rate: samples per second of ``data`` (the decoder's output rate).
    """

    data: torch.Tensor
    pts_seconds: torch.Tensor
    duration_seconds: float
    sample_rate: int

    def __len__(self) -> int:
        return self.data.shape[0]


def _check(decoder, window_seconds, policy) -> tuple[int, int, float, float]:
    """``(rate, num_samples, begin, end)`` of the windows over ``decoder``'s stream."""
    if policy not in _POLICY_NAMES:
        raise ValueError(f"Invalid policy ({policy!r}); supported values are {', '.join(_POLICY_NAMES)}")
    if isinstance(window_seconds, bool) or not isinstance(window_seconds, numbers.Real) or not (
        math.isfinite(window_seconds) and window_seconds > 0
    ):
        raise ValueError(f"window_seconds must be a positive number, got {window_seconds!r}")
    meta = decoder.metadata
    rate = decoder.get_samples_played_in_range(0.0, 0.0).sample_rate
    num_samples = math.floor(window_seconds * rate + 0.5)
    if num_samples < 1:
        raise ValueError(f"window_seconds ({window_seconds}) is shorter than one sample at {rate} Hz")
    begin = float(meta.begin_stream_seconds or 0.0)
    if meta.duration_seconds is None:
        raise ValueError("the stream's duration is unknown: pass sampling_range_end")
    return rate, num_samples, begin, begin + float(meta.duration_seconds)


def _range(begin, end_stream, window_seconds, start, end) -> tuple[float, float]:
    if start is None:
        start = begin
    elif not begin <= start < end_stream:
        raise ValueError(f"sampling_range_start ({start}) must be in [{begin}, {end_stream})")
    if end is None:
        end = end_stream - window_seconds
    elif end <= begin:
        raise ValueError(f"sampling_range_end ({end}) must be greater than {begin}")
    if start >= end:
        raise ValueError(
            f"sampling_range_start ({start}) must be smaller than sampling_range_end ({end}); "
            f"windows of {window_seconds} s may not fit in the stream"
        )
    return float(start), float(min(end, end_stream))


def _complete(window: torch.Tensor, num_samples: int, policy: str) -> torch.Tensor:
    have = window.shape[1]
    if have == num_samples:
        return window
    if policy == "error" or have == 0:
        raise ValueError(
            f"a window runs past the end of the stream (it has {have} of its {num_samples} "
            "samples); leave sampling_range_end at its default to keep windows inside the stream"
            + ("" if policy == "error" else " (no sample at all to complete it from)")
        )
    if policy == "wrap":
        reps = -(-num_samples // have)
        return window.repeat(1, reps)[:, :num_samples]
    return torch.cat([window, window[:, -1:].expand(-1, num_samples - have)], dim=1)


def _decode_windows(decoder, starts: list[float], rate: int, num_samples: int, window_seconds: float,
                    policy: str, begin: float) -> AudioWindows:
    """Windows starting at ``starts``, overlapping ones decoded in one call; ``begin`` (the
    stream's begin, its first sample's time) places the reported times on the sample grid."""
    order = sorted(range(len(starts)), key=starts.__getitem__)
    out: list[torch.Tensor | None] = [None] * len(starts)
    pts = [0.0] * len(starts)
    i = 0
    while i < len(order):
        group = [order[i]]
        first = starts[order[i]]
        last = first
        # One decode for windows that overlap (or nearly touch) the group so far.
        while i + 1 < len(order) and starts[order[i + 1]] <= last + 2 * window_seconds:
            i += 1
            group.append(order[i])
            last = starts[order[i]]
        i += 1
        samples = decoder.get_samples_played_in_range(first, last + (num_samples + 1) / rate)
        data, origin = samples.data, samples.pts_seconds
        first_index = max(0, math.floor((origin - begin) * rate + 0.5))
        for j in group:
            # On the decoded block's grid: window j starts k samples after its first sample,
            # exactly the samples a range starting at origin + k / rate holds.
            k = max(0, math.floor((starts[j] - begin) * rate + 0.5) - first_index)
            out[j] = _complete(data[:, k:k + num_samples], num_samples, policy)
            pts[j] = begin + (first_index + k) / rate
    return AudioWindows(
        data=torch.stack(out) if out else torch.empty((0, 0, num_samples)),
        pts_seconds=torch.tensor(pts, dtype=torch.float64),
        duration_seconds=num_samples / rate,
        sample_rate=rate,
    )


def windows_at_random_timestamps(
    decoder,
    *,
    num_windows: int = 1,
    window_seconds: float,
    sampling_range_start: float | None = None,
    sampling_range_end: float | None = None,
    policy: Policy = "repeat_last",
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> AudioWindows:
    """``num_windows`` windows of ``window_seconds`` starting at times drawn uniformly from
    ``[sampling_range_start, sampling_range_end)`` (``torch.rand`` in float64, in the order
    drawn), the audio counterpart of ``torchcodec.samplers.clips_at_random_timestamps`` (0.17).

    Args:
        decoder: a :class:`~mediadecode.AudioDecoder` (any backend, any ``sample_rate`` and
            ``num_channels``) or :class:`~mediadecode.WavDecoder`.
        num_windows: how many windows (default 1).
        window_seconds: each window's length; it holds ``round(window_seconds * sample_rate)``
            samples.
        sampling_range_start: earliest window start in seconds (default: the stream's begin).
        sampling_range_end: windows start before this time (exclusive). None (default): the
            last start that keeps the window inside the stream (its metadata duration).
        policy: how to complete a window that runs past the end of the stream:
            ``"repeat_last"`` (default, repeats the last sample), ``"wrap"`` (starts again from
            the window's first sample) or ``"error"``.
        seed, generator: the random draws' seed or :class:`torch.Generator` (not both); with
            neither, torch's global generator, as torchcodec's samplers.

    Returns:
        AudioWindows: ``data`` ``(num_windows, num_channels, num_samples)`` float32 and
        ``pts_seconds`` ``(num_windows,)``: each window is exactly the samples of the decoder's
        full decode from its ``pts_seconds`` (the drawn time moved onto the sample grid, by less
        than half a sample). Overlapping windows are decoded once.

    Raises:
        ValueError: a non-positive count or length, an unknown policy, a sampling range that is
            empty or outside the stream, both ``seed`` and ``generator``, or a window past the
            end with ``policy="error"``.
    """
    num_windows = positive_int("num_windows", num_windows)
    rate, num_samples, begin, end_stream = _check(decoder, window_seconds, policy)
    start, end = _range(begin, end_stream, window_seconds, sampling_range_start, sampling_range_end)
    draws = torch.rand(num_windows, dtype=torch.float64, generator=random_generator(seed, generator))
    starts = (draws * (end - start) + start).tolist()
    return _decode_windows(decoder, starts, rate, num_samples, window_seconds, policy, begin)


def windows_at_regular_timestamps(
    decoder,
    *,
    num_windows: int = 1,
    window_seconds: float,
    sampling_range_start: float | None = None,
    sampling_range_end: float | None = None,
    policy: Policy = "repeat_last",
) -> AudioWindows:
    """``num_windows`` windows of ``window_seconds`` starting at equally spaced times
    ``start + i * (end - start) / num_windows`` of ``[sampling_range_start,
    sampling_range_end)``, the audio counterpart of torchcodec 0.17's regular samplers. No random
    draws. Arguments, result and errors as :func:`windows_at_random_timestamps`."""
    num_windows = positive_int("num_windows", num_windows)
    rate, num_samples, begin, end_stream = _check(decoder, window_seconds, policy)
    start, end = _range(begin, end_stream, window_seconds, sampling_range_start, sampling_range_end)
    starts = [start + i * (end - start) / num_windows for i in range(num_windows)]
    return _decode_windows(decoder, starts, rate, num_samples, window_seconds, policy, begin)
