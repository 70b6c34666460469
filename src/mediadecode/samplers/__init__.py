"""Clip samplers: many short clips from one video, as training pipelines need them.

The four samplers have torchcodec 0.17's names, arguments, defaults, policies and results
(``torchcodec.samplers``), and two additions: ``seed`` and ``generator`` make the random draws
reproducible without touching torch's global random state. They use only the decoder facade
(``len``, ``metadata``, ``get_frames_at``, ``get_frames_played_at``), so they work with every
backend, and every clip's frames are fetched in one batched call (the backend decodes each GOP
once, however many clips overlap it).

Each returns a 5-D :class:`~mediadecode.FrameBatch`: ``data`` is ``(num_clips,
num_frames_per_clip, C, H, W)`` (or ``(..., H, W, C)`` for an NHWC decoder) ``torch.uint8``;
``pts_seconds`` and ``duration_seconds`` are ``(num_clips, num_frames_per_clip)`` float64 seconds.

Clips that would run past the end of the video are completed by ``policy``:

- ``"repeat_last"`` (default): repeat the clip's last valid frame;
- ``"wrap"``: start again from the clip's first frame;
- ``"error"``: raise :class:`ValueError`.

Audio windows: :func:`windows_at_random_timestamps` and :func:`windows_at_regular_timestamps` take
``num_windows`` windows of ``window_seconds`` from an :class:`~mediadecode.AudioDecoder` (or a
:class:`~mediadecode.WavDecoder`) with the same range arguments, policies (``"repeat_last"``
repeats the last sample) and ``seed``/``generator``; they return :class:`AudioWindows`, ``data``
``(num_windows, num_channels, num_samples)``. No peer has them; each window is exactly the samples
of the full decode from its start, and overlapping windows are decoded once.
"""

from ._clips import (
    clips_at_random_indices,
    clips_at_random_timestamps,
    clips_at_regular_indices,
    clips_at_regular_timestamps,
)
from ._windows import AudioWindows, windows_at_random_timestamps, windows_at_regular_timestamps

__all__ = [
    "clips_at_random_indices",
    "clips_at_regular_indices",
    "clips_at_random_timestamps",
    "clips_at_regular_timestamps",
    "AudioWindows",
    "windows_at_random_timestamps",
    "windows_at_regular_timestamps",
]
