"""The GOP planner: how a sorted request is cut for decoding in parallel threads.

A request that spans several GOPs is cut, at GOP boundaries, into one contiguous chunk per
worker. Each chunk is decoded by its own decoder in its own thread: PyAV releases the GIL while it
demuxes, decodes and converts, and independent GOPs need nothing from each other. This module is
the pure planning step; :mod:`mediadecode.engine.parallel` runs the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..frame_index import FrameIndex

__all__ = ["GopGroup", "plan_gop_chunks"]


@dataclass
class GopGroup:
    """The requested frames of one GOP: ``targets[start:stop]``, and how many frames must be
    decoded to reach them from the GOP's keyframe."""

    start: int
    stop: int
    frames_to_decode: int
    gop: int


def _groups(targets: Sequence[int], index: FrameIndex) -> list[GopGroup]:
    groups: list[GopGroup] = []
    for n, target in enumerate(targets):
        g = index.keyframe_at_or_before(target)
        if groups and groups[-1].gop == g:
            groups[-1].stop = n + 1
        else:
            groups.append(GopGroup(n, n + 1, 0, g))
        first = index.index_of_pts(index.keyframe_pts[g]) if g >= 0 else 0
        groups[-1].frames_to_decode = index.index_of_pts(target) - first + 1
    return groups


def plan_gop_chunks(
    targets: Sequence[int], index: FrameIndex, workers: int, min_frames: int = 8
) -> list[tuple[int, int]] | None:
    """Cut sorted, unique ``targets`` (pts in ticks) into contiguous ``(start, stop)`` slices,
    each made of whole GOPs, balanced by the number of frames each must decode.

    Returns None when one thread should do the whole request: fewer than two workers or GOPs,
    or fewer than ``min_frames`` frames to decode in all.
    """
    if workers < 2 or len(targets) < 2 or not index.keyframe_pts:
        return None
    groups = _groups(targets, index)
    total = sum(g.frames_to_decode for g in groups)
    if len(groups) < 2 or total < min_frames:
        return None
    workers = min(workers, len(groups))
    chunks: list[tuple[int, int]] = []
    done, start = 0, 0
    for k, g in enumerate(groups):
        done += g.frames_to_decode
        later = workers - len(chunks) - 1  # chunks still to make after this one
        if later <= 0 or k + 1 == len(groups):
            continue
        # Close this chunk where the work done so far is nearest its share, or when each later
        # chunk needs one of the GOPs left.
        share = total * (len(chunks) + 1) / workers
        if done >= share or share - done < done + groups[k + 1].frames_to_decode - share or (
            len(groups) - k - 1 == later
        ):
            chunks.append((start, g.stop))
            start = g.stop
    chunks.append((start, len(targets)))  # never empty: chunks close only before a GOP left
    return chunks
