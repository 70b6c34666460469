"""Implementation of the clip samplers (see the package docstring for the shared contract)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Literal

import torch

from ..frames import FrameBatch

Policy = Literal["repeat_last", "wrap", "error"]

_ARGS_DOC = """
    Args:
        decoder: a :class:`~mediadecode.VideoDecoder` (any backend).
        num_frames_per_clip: frames in each clip (default 1).
        policy: how to complete a clip that runs past the end of the video: ``"repeat_last"``
            (default), ``"wrap"`` or ``"error"``.
        seed: seed for the random draws (ignored by the regular samplers); with neither
            ``seed`` nor ``generator``, torch's global generator is used, as in torchcodec.
        generator: a :class:`torch.Generator` for the random draws.

    Returns:
        FrameBatch: 5-D, ``data`` ``(num_clips, num_frames_per_clip, ...)`` uint8 and
        ``pts_seconds``/``duration_seconds`` ``(num_clips, num_frames_per_clip)`` float64.

    Raises:
        ValueError: an empty video, a non-positive count or spacing, an unknown policy, a
            sampling range that is empty or outside the video, or a clip past the end with
            ``policy="error"``.
"""


def _repeat_last(values: list, size: int) -> list:
    return values + [values[-1]] * (size - len(values))


def _wrap(values: list, size: int) -> list:
    return (values * (size // len(values) + 1))[:size]


def _error(values: list, size: int) -> list:
    raise ValueError(
        "policy='error': a clip runs past the end of the video (it has "
        f"{len(values)} of its {size} frames); leave sampling_range_end at its default to keep "
        "clips inside the video"
    )


_POLICIES: dict[str, Callable[[list, int], list]] = {
    "repeat_last": _repeat_last,
    "wrap": _wrap,
    "error": _error,
}


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_common(decoder, num_frames_per_clip, policy) -> int:
    if len(decoder) < 1:
        raise ValueError(f"the video must have at least one frame, it has {len(decoder)}")
    _positive_int("num_frames_per_clip", num_frames_per_clip)
    if policy not in _POLICIES:
        raise ValueError(f"Invalid policy ({policy!r}); supported values are {', '.join(_POLICIES)}")
    return len(decoder)


def _generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator | None:
    if seed is not None and generator is not None:
        raise ValueError("pass seed or generator, not both")
    if seed is not None:
        return torch.Generator().manual_seed(int(seed))
    return generator


def _as_clips(frames: FrameBatch, num_clips: int, num_frames_per_clip: int) -> FrameBatch:
    tail = frames.data.shape[-3:]
    return FrameBatch(
        data=frames.data.reshape(num_clips, num_frames_per_clip, *tail),
        pts_seconds=frames.pts_seconds.reshape(num_clips, num_frames_per_clip),
        duration_seconds=frames.duration_seconds.reshape(num_clips, num_frames_per_clip),
    )


# -- index based -----------------------------------------------------------------------------------


def _index_range(num_frames: int, span: int, start: int, end: int | None) -> tuple[int, int]:
    for name, value in (("sampling_range_start", start), ("sampling_range_end", end)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise ValueError(f"{name} must be an int, got {value!r}")
    if start < 0:
        start += num_frames
    if not 0 <= start < num_frames:
        raise ValueError(
            f"sampling_range_start ({start}) must be in [0, {num_frames}) for a video of "
            f"{num_frames} frames"
        )
    if end is None:
        end = max(num_frames - span + 1, 1)
        if start >= end:
            raise ValueError(
                f"clips of span {span} starting at or after {start} would run past the end of "
                f"the video ({num_frames} frames): the automatic sampling_range_end is {end}"
            )
    else:
        if end < 0:
            end += num_frames
        end = min(end, num_frames)
        if start >= end:
            raise ValueError(
                f"sampling_range_start ({start}) must be smaller than sampling_range_end ({end})"
            )
    return start, end


def _index_sampler(kind, decoder, *, num_clips, num_frames_per_clip, num_indices_between_frames,
                   sampling_range_start, sampling_range_end, policy, seed=None, generator=None):
    num_frames = _check_common(decoder, num_frames_per_clip, policy)
    num_clips = _positive_int("num_clips", num_clips)
    step = _positive_int("num_indices_between_frames", num_indices_between_frames)
    span = step * (num_frames_per_clip - 1) + 1  # first to last frame of a clip, both included
    start, end = _index_range(num_frames, span, sampling_range_start, sampling_range_end)
    decoder.check_output_size(num_clips * num_frames_per_clip)
    if kind == "random":
        starts = torch.randint(start, end, (num_clips,), generator=_generator(seed, generator))
    else:
        starts = torch.linspace(start, end - 1, steps=num_clips, dtype=torch.int)
    complete = _POLICIES[policy]
    indices: list[int] = []
    for first in starts.tolist():
        clip = list(range(first, min(first + span, num_frames), step))
        if len(clip) < num_frames_per_clip:
            clip = complete(clip, num_frames_per_clip)
        indices += clip
    return _as_clips(decoder.get_frames_at(indices), num_clips, num_frames_per_clip)


def clips_at_random_indices(
    decoder,
    *,
    num_clips: int = 1,
    num_frames_per_clip: int = 1,
    num_indices_between_frames: int = 1,
    sampling_range_start: int = 0,
    sampling_range_end: int | None = None,
    policy: Policy = "repeat_last",
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> FrameBatch:
    return _index_sampler(
        "random", decoder, num_clips=num_clips, num_frames_per_clip=num_frames_per_clip,
        num_indices_between_frames=num_indices_between_frames,
        sampling_range_start=sampling_range_start, sampling_range_end=sampling_range_end,
        policy=policy, seed=seed, generator=generator,
    )


def clips_at_regular_indices(
    decoder,
    *,
    num_clips: int = 1,
    num_frames_per_clip: int = 1,
    num_indices_between_frames: int = 1,
    sampling_range_start: int = 0,
    sampling_range_end: int | None = None,
    policy: Policy = "repeat_last",
) -> FrameBatch:
    return _index_sampler(
        "regular", decoder, num_clips=num_clips, num_frames_per_clip=num_frames_per_clip,
        num_indices_between_frames=num_indices_between_frames,
        sampling_range_start=sampling_range_start, sampling_range_end=sampling_range_end,
        policy=policy,
    )


_INDEX_ARGS_DOC = """
        num_clips: how many clips (default 1).
        num_indices_between_frames: index step between the frames of a clip ("dilation";
            default 1, consecutive frames).
        sampling_range_start: first index a clip may start at (default 0; negative counts from
            the end).
        sampling_range_end: clips start before this index (exclusive). None (default): the last
            start that keeps the whole clip inside the video. Negative counts from the end.
"""

clips_at_random_indices.__doc__ = (
    "Clips starting at indices drawn uniformly from ``[sampling_range_start, "
    "sampling_range_end)``, as ``torchcodec.samplers.clips_at_random_indices`` in 0.17.\n"
    + _ARGS_DOC.replace("        policy:", _INDEX_ARGS_DOC.strip("\n") + "\n        policy:", 1)
)
clips_at_regular_indices.__doc__ = (
    "Clips starting at ``num_clips`` equally spaced indices of ``[sampling_range_start, "
    "sampling_range_end)`` (``torch.linspace`` truncated to int), as "
    "``torchcodec.samplers.clips_at_regular_indices`` in 0.17. No random draws, so no seed.\n"
    + _ARGS_DOC.replace("        policy:", _INDEX_ARGS_DOC.strip("\n") + "\n        policy:", 1)
)


# -- time based ------------------------------------------------------------------------------------


def _time_sampler(kind, decoder, *, num_clips, seconds_between_clip_starts, num_frames_per_clip,
                  seconds_between_frames, sampling_range_start, sampling_range_end, policy,
                  seed=None, generator=None):
    _check_common(decoder, num_frames_per_clip, policy)
    meta = decoder.metadata
    if kind == "random":
        num_clips = _positive_int("num_clips", num_clips)
    elif not seconds_between_clip_starts > 0:
        raise ValueError(
            f"seconds_between_clip_starts ({seconds_between_clip_starts}) must be > 0"
        )
    if meta.average_fps is None or meta.end_stream_seconds is None:
        raise ValueError(
            "the video's frame rate or end time is unknown; use an index-based sampler"
        )
    if seconds_between_frames is None:
        seconds_between_frames = 1 / meta.average_fps
    elif not seconds_between_frames > 0:
        raise ValueError(f"seconds_between_frames ({seconds_between_frames}) must be > 0")
    begin, end_stream = meta.begin_stream_seconds, meta.end_stream_seconds

    start = sampling_range_start
    if start is None:
        start = begin
    elif not begin <= start < end_stream:
        raise ValueError(
            f"sampling_range_start ({start}) must be in [{begin}, {end_stream})"
        )
    end = sampling_range_end
    if end is None:
        end = end_stream - (num_frames_per_clip - 1) * seconds_between_frames
    elif end <= begin:
        raise ValueError(f"sampling_range_end ({end}) must be greater than {begin}")
    if start >= end:
        raise ValueError(
            f"sampling_range_start ({start}) must be smaller than sampling_range_end ({end})"
        )
    end = min(end, end_stream)

    if kind == "random":
        decoder.check_output_size(num_clips * num_frames_per_clip)
        starts = (
            torch.rand(num_clips, dtype=torch.float64, generator=_generator(seed, generator))
            * (end - start) + start
        )
    else:
        # Before building the start times: a header's time base can make a 1 s file last
        # for months, and one clip every 0.25 s of that would be millions of clips.
        decoder.check_output_size(math.ceil((end - start) / seconds_between_clip_starts) * num_frames_per_clip)
        starts = torch.arange(start, end, seconds_between_clip_starts, dtype=torch.float64)
        starts = starts[starts < end]  # arange's float steps may overshoot
        num_clips = len(starts)
    complete = _POLICIES[policy]
    times: list[float] = []
    for first in starts.tolist():
        clip = [t for i in range(num_frames_per_clip)
                if (t := first + i * seconds_between_frames) < end_stream]
        if len(clip) < num_frames_per_clip:
            clip = complete(clip, num_frames_per_clip)
        times += clip
    return _as_clips(decoder.get_frames_played_at(times), num_clips, num_frames_per_clip)


def clips_at_random_timestamps(
    decoder,
    *,
    num_clips: int = 1,
    num_frames_per_clip: int = 1,
    seconds_between_frames: float | None = None,
    sampling_range_start: float | None = None,
    sampling_range_end: float | None = None,
    policy: Policy = "repeat_last",
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> FrameBatch:
    return _time_sampler(
        "random", decoder, num_clips=num_clips, seconds_between_clip_starts=None,
        num_frames_per_clip=num_frames_per_clip, seconds_between_frames=seconds_between_frames,
        sampling_range_start=sampling_range_start, sampling_range_end=sampling_range_end,
        policy=policy, seed=seed, generator=generator,
    )


def clips_at_regular_timestamps(
    decoder,
    *,
    seconds_between_clip_starts: float,
    num_frames_per_clip: int = 1,
    seconds_between_frames: float | None = None,
    sampling_range_start: float | None = None,
    sampling_range_end: float | None = None,
    policy: Policy = "repeat_last",
) -> FrameBatch:
    return _time_sampler(
        "regular", decoder, num_clips=None,
        seconds_between_clip_starts=seconds_between_clip_starts,
        num_frames_per_clip=num_frames_per_clip, seconds_between_frames=seconds_between_frames,
        sampling_range_start=sampling_range_start, sampling_range_end=sampling_range_end,
        policy=policy,
    )


_TIME_ARGS_DOC = """
        seconds_between_frames: seconds between the sampling times of a clip's frames; each
            frame is the one on screen at its time. Default: the average frame duration.
        sampling_range_start: earliest clip start, in seconds (default: the stream's begin).
        sampling_range_end: clips start before this time, in seconds (exclusive). None
            (default): the last start that keeps the clip's sampling times inside the stream.
"""

clips_at_random_timestamps.__doc__ = (
    "``num_clips`` clips starting at times drawn uniformly from ``[sampling_range_start, "
    "sampling_range_end)`` seconds, as ``torchcodec.samplers.clips_at_random_timestamps`` "
    "in 0.17.\n"
    + _ARGS_DOC.replace("        policy:", "        num_clips: how many clips (default 1).\n"
                        + _TIME_ARGS_DOC.strip("\n") + "\n        policy:", 1)
)
clips_at_regular_timestamps.__doc__ = (
    "Clips starting every ``seconds_between_clip_starts`` seconds from "
    "``sampling_range_start`` (as many as fit before ``sampling_range_end``), as "
    "``torchcodec.samplers.clips_at_regular_timestamps`` in 0.17. No random draws.\n"
    + _ARGS_DOC.replace("        policy:", "        seconds_between_clip_starts: seconds between "
                        "two clip starts (required, > 0).\n"
                        + _TIME_ARGS_DOC.strip("\n") + "\n        policy:", 1)
)
