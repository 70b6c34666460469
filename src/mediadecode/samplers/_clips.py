"""Implementation of the clip samplers (see the package docstring for the shared contract)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import torch

from .checks import positive_int, random_generator
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


def _check_common(decoder, num_frames_per_clip, policy) -> int:
    if len(decoder) < 1:
        raise ValueError(f"the video must have at least one frame, it has {len(decoder)}")
    positive_int("num_frames_per_clip", num_frames_per_clip)
    if policy not in _POLICIES:
        raise ValueError(f"Invalid policy ({policy!r}); supported values are {', '.join(_POLICIES)}")
    return len(decoder)


def _as_clips(frames: FrameBatch, num_clips: int, num_frames_per_clip: int) -> FrameBatch:
    tail = frames.data.shape[-3:]
    return FrameBatch(
        data=frames.data.reshape(num_clips, num_frames_per_clip, *tail),
        pts_seconds=frames.pts_seconds.reshape(num_clips, num_frames_per_clip),
        duration_seconds=frames.duration_seconds.reshape(num_clips, num_frames_per_clip),
    )


def _completed(clips: Iterable[list], num_frames_per_clip: int, policy: str) -> list:
    """The clips' values (indices or times) end to end, each clip that runs past the end of the
    video completed to ``num_frames_per_clip`` values by ``policy``."""
    complete = _POLICIES[policy]
    values: list = []
    for clip in clips:
        if len(clip) < num_frames_per_clip:
            clip = complete(clip, num_frames_per_clip)
        values += clip
    return values


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


@dataclass(frozen=True)
class _IndexClips:
    """What both index samplers check and read: ``num_clips`` clips whose starts lie in
    ``[start, end)``, each ``num_frames_per_clip`` frames ``step`` indices apart."""

    num_frames: int
    num_clips: int
    num_frames_per_clip: int
    step: int
    span: int  # first to last frame of a clip, both included
    start: int
    end: int
    policy: str

    @classmethod
    def check(cls, decoder, num_clips, num_frames_per_clip, num_indices_between_frames,
              sampling_range_start, sampling_range_end, policy) -> "_IndexClips":
        num_frames = _check_common(decoder, num_frames_per_clip, policy)
        num_clips = positive_int("num_clips", num_clips)
        step = positive_int("num_indices_between_frames", num_indices_between_frames)
        span = step * (num_frames_per_clip - 1) + 1
        start, end = _index_range(num_frames, span, sampling_range_start, sampling_range_end)
        decoder.check_output_size(num_clips * num_frames_per_clip)
        return cls(num_frames, num_clips, num_frames_per_clip, step, span, start, end, policy)

    def read(self, decoder, starts: torch.Tensor) -> FrameBatch:
        """The clips starting at ``starts`` (one index per clip)."""
        indices = _completed(
            (list(range(first, min(first + self.span, self.num_frames), self.step))
             for first in starts.tolist()),
            self.num_frames_per_clip, self.policy,
        )
        return _as_clips(decoder.get_frames_at(indices), self.num_clips, self.num_frames_per_clip)


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
    clips = _IndexClips.check(decoder, num_clips, num_frames_per_clip, num_indices_between_frames,
                              sampling_range_start, sampling_range_end, policy)
    starts = torch.randint(clips.start, clips.end, (clips.num_clips,),
                           generator=random_generator(seed, generator))
    return clips.read(decoder, starts)


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
    clips = _IndexClips.check(decoder, num_clips, num_frames_per_clip, num_indices_between_frames,
                              sampling_range_start, sampling_range_end, policy)
    starts = torch.linspace(clips.start, clips.end - 1, steps=clips.num_clips, dtype=torch.int)
    return clips.read(decoder, starts)


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


@dataclass(frozen=True)
class _TimeClips:
    """What both timestamp samplers check and read: clips whose starts lie in ``[start, end)``
    seconds, each ``num_frames_per_clip`` sampling times ``seconds_between_frames`` apart."""

    num_frames_per_clip: int
    seconds_between_frames: float
    start: float
    end: float
    end_stream: float
    policy: str

    @classmethod
    def check(cls, decoder, num_frames_per_clip, seconds_between_frames, sampling_range_start,
              sampling_range_end, policy) -> "_TimeClips":
        """Called after :func:`_check_common` and the sampler's own count or spacing check."""
        meta = decoder.metadata
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
        return cls(num_frames_per_clip, seconds_between_frames, start, end, end_stream, policy)

    def read(self, decoder, starts: torch.Tensor) -> FrameBatch:
        """The clips starting at ``starts`` (float64 seconds, one per clip)."""
        n, step = self.num_frames_per_clip, self.seconds_between_frames
        times = _completed(
            ([t for i in range(n) if (t := first + i * step) < self.end_stream]
             for first in starts.tolist()),
            n, self.policy,
        )
        return _as_clips(decoder.get_frames_played_at(times), len(starts), n)


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
    _check_common(decoder, num_frames_per_clip, policy)
    num_clips = positive_int("num_clips", num_clips)
    clips = _TimeClips.check(decoder, num_frames_per_clip, seconds_between_frames,
                             sampling_range_start, sampling_range_end, policy)
    decoder.check_output_size(num_clips * num_frames_per_clip)
    starts = (
        torch.rand(num_clips, dtype=torch.float64, generator=random_generator(seed, generator))
        * (clips.end - clips.start) + clips.start
    )
    return clips.read(decoder, starts)


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
    _check_common(decoder, num_frames_per_clip, policy)
    if not seconds_between_clip_starts > 0:
        raise ValueError(
            f"seconds_between_clip_starts ({seconds_between_clip_starts}) must be > 0"
        )
    clips = _TimeClips.check(decoder, num_frames_per_clip, seconds_between_frames,
                             sampling_range_start, sampling_range_end, policy)
    # Before building the start times: a header's time base can make a 1 s file last for
    # months, and one clip every 0.25 s of that would be millions of clips.
    decoder.check_output_size(
        math.ceil((clips.end - clips.start) / seconds_between_clip_starts) * num_frames_per_clip)
    starts = torch.arange(clips.start, clips.end, seconds_between_clip_starts, dtype=torch.float64)
    starts = starts[starts < clips.end]  # arange's float steps may overshoot
    return clips.read(decoder, starts)


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
