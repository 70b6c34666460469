"""The exact-mode frame index of one video stream: :class:`FrameIndex`.

torchcodec 0.17 keeps the same facts in its own ``FrameIndex``: every frame's pts and duration in
presentation order, and which frames are keyframes. Here they are integer ticks of the stream's
time base, so seeking compares exact integers, and the seconds are derived once (as FFmpeg and
torchcodec compute them: ``double(ticks) * num / den``).

An index is built from an MP4/MOV header (:meth:`FrameIndex.from_header`, where the container
allows), from a packet scan (:meth:`FrameIndex.from_packets`, demux only, no decoding), read back
from the index cache (:meth:`FrameIndex.from_dict`), taken from ffprobe's JSON
(:meth:`FrameIndex.from_ffprobe_json`: torchcodec 0.17's ``custom_frame_mappings``;
:meth:`FrameIndex.as_ffprobe_json` writes it back), or made by a backend from what its library
reports. It is validated once, then trusted by every backend, the decoder facade, the
index cache and the adapters (``VideoDecoder.frame_index``).
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import torch
from torch import Tensor

from .errors import FrameMappingsError

__all__ = ["FrameIndex", "FrameMappings", "read_ffprobe_json", "fill_missing_durations", "ticks_to_seconds"]


def ticks_to_seconds(ticks: Sequence[int] | Sequence[float], time_base: Fraction) -> Tensor:
    """float64 seconds ``(N,)`` of integer ``ticks``, computed as FFmpeg/PyAV (``frame.time``)
    and torchcodec do: ``double(ticks) * num / den`` (``ticks * float(time_base)`` can differ by
    one ulp)."""
    return torch.tensor(ticks, dtype=torch.float64) * time_base.numerator / time_base.denominator


def fill_missing_durations(pts: Sequence[int], durations: Sequence[int]) -> list[int]:
    """``durations`` with each non-positive entry replaced by the gap to the next frame's pts
    (the last frame: the previous frame's duration). ``pts`` ascending, same length."""
    out = list(durations)
    for k, d in enumerate(out):
        if d <= 0:
            if k + 1 < len(pts):
                out[k] = pts[k + 1] - pts[k]
            elif k > 0:
                out[k] = out[k - 1]
    return out


@dataclass(frozen=True)
class FrameMappings:
    """Frames as ffprobe lists them (``-show_frames`` JSON), parsed and checked, not yet tied to
    a stream: each frame's pts and duration in the stream's ticks and whether it is a keyframe,
    in the order of the JSON (presentation order for ``-show_frames``; any order is accepted).

    Build it with :func:`read_ffprobe_json`; a backend turns it into a :class:`FrameIndex` with
    :meth:`FrameIndex.from_ffprobe_json` once it knows the stream's time base.
    """

    pts: tuple[int, ...]
    durations: tuple[int, ...]
    key_frames: tuple[bool, ...]

    def __len__(self) -> int:
        return len(self.pts)


def _ffprobe_text(mappings: Any) -> Any:
    """The JSON value of ``mappings``: a path (``os.PathLike``, or a ``str`` that is not JSON text
    and names a file), JSON text (``str``, ``bytes``), a binary or text file object, or an already
    decoded ``dict``."""
    if isinstance(mappings, dict):
        return mappings
    if isinstance(mappings, os.PathLike) or (
        isinstance(mappings, str) and mappings.lstrip()[:1] not in ("{", "[", "")
        and os.path.isfile(mappings)
    ):
        with open(mappings, "rb") as f:
            return json.load(f)
    if hasattr(mappings, "read"):
        return json.load(mappings)
    if isinstance(mappings, (str, bytes, bytearray)):
        return json.loads(mappings)
    raise TypeError(
        "custom_frame_mappings must be a path, JSON text (str or bytes) or a file object, got "
        f"{type(mappings).__name__}"
    )


def read_ffprobe_json(mappings: Any) -> FrameMappings:
    """Parse ffprobe's frame list, as torchcodec 0.17's ``VideoDecoder(custom_frame_mappings=)``
    reads it: ``{"frames": [{"pts": int, "duration": int, "key_frame": 0|1}, ...]}`` with
    ``pkt_pts``/``pkt_duration`` accepted for ``pts``/``duration`` (the names the first frame
    uses apply to all), other fields ignored. Made by
    ``ffprobe -v error -i VIDEO -select_streams v:0 -show_frames
    -show_entries frame=pts,duration,pkt_duration,key_frame -of json`` or
    ``mediadecode index VIDEO``.

    Args:
        mappings: a path (``os.PathLike``, or a ``str`` naming a file), JSON text (``str`` or
            ``bytes``), a file object, or the decoded ``dict``. torchcodec takes no paths.

    Raises:
        ValueError: not JSON, no ``"frames"`` list, an empty one (torchcodec raises
            ``IndexError`` there), a frame without the three keys, or a value that is not an
            integer (messages as torchcodec's).
        TypeError: ``mappings`` is none of those types.
        OSError: the path cannot be read.
    """
    try:
        data = _ffprobe_text(mappings)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"Invalid custom frame mappings: {exc}. It should be a valid JSON string or a "
            "file-like object."
        ) from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"Invalid custom frame mappings: {exc}") from exc
    if not data or not isinstance(data, dict) or "frames" not in data:
        raise ValueError(
            "Invalid custom frame mappings. The input is empty or missing the required "
            "'frames' key."
        )
    frames = data["frames"]
    if not isinstance(frames, list) or not frames or not all(isinstance(f, dict) for f in frames):
        raise ValueError("Invalid custom frame mappings: 'frames' must be a non-empty list of objects")
    first = frames[0]
    pts_key = next((k for k in ("pts", "pkt_pts") if k in first), None)
    duration_key = next((k for k in ("duration", "pkt_duration") if k in first), None)
    if not pts_key or not duration_key or "key_frame" not in first:
        raise ValueError(
            "Invalid custom frame mappings. The 'pts'/'pkt_pts', 'duration'/'pkt_duration', and "
            "'key_frame' keys are required in the frame metadata."
        )
    try:
        pts = tuple(int(f[pts_key]) for f in frames)
        durations = tuple(int(f[duration_key]) for f in frames)
        keys = tuple(bool(int(f["key_frame"])) for f in frames)
    except KeyError as exc:
        raise ValueError(f"Invalid custom frame mappings: a frame has no {exc} key") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Invalid custom frame mappings: {exc}") from None
    return FrameMappings(pts, durations, keys)


@dataclass(frozen=True, eq=False)
class FrameIndex:
    """Every frame of a stream, in presentation order.

    Attributes:
        time_base: seconds per tick.
        pts: each frame's presentation timestamp in ticks, ascending; ``len(pts)`` is the
            number of frames.
        durations: each frame's duration in ticks (> 0 where known).
        keyframe_pts: the keyframes' pts in ticks, ascending (a subset of ``pts`` when the
            stream's keyframes are frames of it).

    Raises:
        ValueError: lengths differ, or ``pts``/``keyframe_pts`` are not ascending.
    """

    time_base: Fraction
    pts: Sequence[int]
    durations: Sequence[int]
    keyframe_pts: Sequence[int]
    _seconds: dict[str, Tensor] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.pts) != len(self.durations):
            raise ValueError(
                f"FrameIndex: {len(self.pts)} pts but {len(self.durations)} durations"
            )
        for name in ("pts", "keyframe_pts"):
            values = getattr(self, name)
            if any(values[k] > values[k + 1] for k in range(len(values) - 1)):
                raise ValueError(f"FrameIndex: {name} must be ascending")

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_packets(cls, packets: Iterable[Any], time_base: Fraction) -> "FrameIndex":
        """The index of the PyAV packets of one stream (a demux pass, no decoding).

        Packets that carry no data or that FFmpeg marks for discard (edit-list preroll, which
        the decoder drops too) are not frames; a packet without pts counts at its dts; missing
        durations are filled from the gap to the next frame.
        """
        entries = []
        keyframes = []
        for packet in packets:
            if packet.size == 0 or packet.is_discard:
                continue
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                continue
            entries.append((ts, packet.duration or 0))
            if packet.is_keyframe:
                keyframes.append(ts)
        entries.sort()
        pts = [e[0] for e in entries]
        durations = fill_missing_durations(pts, [e[1] for e in entries])
        return cls(Fraction(time_base), pts, durations, sorted(keyframes))

    @classmethod
    def from_header(cls, container: Any, stream: Any) -> "FrameIndex | None":
        """The index of an MP4/MOV video stream read from the ``moov`` box alone (no packet
        scan: a remote file is not read whole), equal to :meth:`from_packets`'s; None where the
        container or stream does not allow it (see :mod:`mediadecode.header_index`)."""
        from .header_index import index_from_header

        data = index_from_header(container, stream)
        return None if data is None else cls.from_dict(data, stream.time_base)

    @classmethod
    def from_dict(cls, data: dict[str, Any], time_base: Fraction) -> "FrameIndex":
        """The index stored by :meth:`as_dict` (the index cache's JSON form).

        Raises:
            ValueError: the dict does not describe a valid index.
        """
        try:
            return cls(Fraction(time_base), list(data["pts"]), list(data["durations"]),
                       list(data["keyframes"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a frame index: {exc}") from None

    @classmethod
    def from_ffprobe_json(cls, mappings: Any, time_base: Fraction) -> "FrameIndex":
        """The index of ffprobe's frame list (see :func:`read_ffprobe_json` for the forms and the
        errors), its pts and durations in ticks of ``time_base`` (the stream's). Frames are put
        in presentation order, as torchcodec 0.17 sorts them; a non-positive duration is
        filled from the gap to the next frame."""
        m = mappings if isinstance(mappings, FrameMappings) else read_ffprobe_json(mappings)
        order = sorted(range(len(m.pts)), key=m.pts.__getitem__)
        pts = [m.pts[k] for k in order]
        durations = fill_missing_durations(pts, [m.durations[k] for k in order])
        keyframes = [m.pts[k] for k in order if m.key_frames[k]]
        return cls(Fraction(time_base), pts, durations, keyframes)

    def check_mapped(self, first_packet_pts: int | None, where: str) -> None:
        """Check an index made from caller's frame mappings against the stream: the stream's
        first packet (``first_packet_pts``, ticks) must be one of its frames. Mappings of another
        stream, time base or file fail here instead of giving wrong frames later.

        Raises:
            FrameMappingsError: it is not (``where`` names the source and stream).
        """
        if first_packet_pts is not None and first_packet_pts not in set(self.pts):
            raise FrameMappingsError(
                f"{where}: custom_frame_mappings do not fit the stream: its first packet has "
                f"pts {first_packet_pts} (time base {self.time_base}), which the mappings do not "
                f"list (they start at pts {self.pts[0]})"
            )

    def as_ffprobe_json(self, stream_index: int | None = None) -> dict[str, Any]:
        """This index as ffprobe's ``-show_frames -of json`` writes it: ``{"frames": [...]}``
        in presentation order, each frame with ffprobe's field names (``media_type``,
        ``stream_index``, ``key_frame``, ``pts``, ``pts_time``, ``duration``,
        ``duration_time``; times as ffprobe prints them, six decimals). Readable by
        :meth:`from_ffprobe_json` and by torchcodec's ``custom_frame_mappings``."""
        keys = set(self.keyframe_pts)
        tb = self.time_base
        frames = []
        for ticks, dur in zip(self.pts, self.durations):
            frame: dict[str, Any] = {"media_type": "video"}
            if stream_index is not None:
                frame["stream_index"] = int(stream_index)
            frame.update(
                key_frame=int(ticks in keys),
                pts=int(ticks),
                pts_time=f"{float(ticks * tb):.6f}",
                duration=int(dur),
                duration_time=f"{float(dur * tb):.6f}",
            )
            frames.append(frame)
        return {"frames": frames}

    def as_dict(self) -> dict[str, list[int]]:
        """``{"pts", "durations", "keyframes"}`` as plain int lists (JSON-serialisable)."""
        return {"pts": list(self.pts), "durations": list(self.durations),
                "keyframes": list(self.keyframe_pts)}

    # -- seconds -------------------------------------------------------------------------------

    def _tensor(self, name: str, ticks: Sequence[int]) -> Tensor:
        cached = self._seconds.get(name)
        if cached is None:
            cached = self._seconds[name] = ticks_to_seconds(ticks, self.time_base)
        return cached

    @property
    def pts_seconds(self) -> Tensor:
        """float64 ``(num_frames,)``: each frame's pts in seconds, ascending."""
        return self._tensor("pts", self.pts)

    @property
    def duration_seconds(self) -> Tensor:
        """float64 ``(num_frames,)``: each frame's duration in seconds."""
        return self._tensor("durations", self.durations)

    @property
    def num_frames(self) -> int:
        return len(self.pts)

    def __len__(self) -> int:
        return len(self.pts)

    @property
    def begin_seconds(self) -> float | None:
        """The first frame's pts in seconds; None for an empty index."""
        return float(self.pts_seconds[0]) if self.pts else None

    @property
    def end_seconds(self) -> float | None:
        """The latest ``pts + duration`` in seconds; None for an empty index."""
        if not self.pts:
            return None
        return float(torch.max(self.pts_seconds + self.duration_seconds))

    # -- lookups -------------------------------------------------------------------------------

    def index_played_at(self, seconds: float) -> int:
        """The index of the frame on screen at ``seconds``: the last frame whose pts is <= it,
        clamped to ``[0, num_frames - 1]``."""
        when = torch.tensor([seconds], dtype=torch.float64)
        index = int(torch.searchsorted(self.pts_seconds, when, right=True)[0]) - 1
        return min(max(index, 0), len(self.pts) - 1)

    def index_of_pts(self, ticks: int) -> int:
        """The index of the frame with pts ``ticks``, or of the first frame after it."""
        return bisect.bisect_left(self.pts, ticks)

    def keyframe_at_or_before(self, ticks: int) -> int:
        """The position in :attr:`keyframe_pts` of the last keyframe whose pts is <= ``ticks``
        (its GOP number); -1 when the stream has none before it."""
        return bisect.bisect_right(self.keyframe_pts, ticks) - 1

    def keyframe_between(self, after: int, upto: int) -> bool:
        """Whether a keyframe has a pts in ``(after, upto]`` (ticks)."""
        k = bisect.bisect_right(self.keyframe_pts, after)
        return k < len(self.keyframe_pts) and self.keyframe_pts[k] <= upto

    def duration_after(self, ticks: int) -> int:
        """The gap from the frame with pts ``ticks`` to the next frame (0 for the last)."""
        k = bisect.bisect_left(self.pts, ticks)
        return self.pts[k + 1] - self.pts[k] if k + 1 < len(self.pts) else 0

    @property
    def key_frame_indices(self) -> Tensor:
        """int64 ``(num_keyframes,)``: the indices (presentation order) of the keyframes, as
        torchcodec 0.17's ``_get_key_frame_indices()``."""
        cached = self._seconds.get("keys")
        if cached is None:
            indices = []
            for ticks in self.keyframe_pts:
                k = bisect.bisect_left(self.pts, ticks)
                if k < len(self.pts) and self.pts[k] == ticks:
                    indices.append(k)
            cached = self._seconds["keys"] = torch.tensor(indices, dtype=torch.int64)
        return cached
