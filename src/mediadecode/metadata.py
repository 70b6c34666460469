"""Stream and container metadata, with torchcodec 0.17's field names.

A backend fills these from the container header and, in ``seek_mode="exact"``, from the packet scan
(``*_from_content`` fields). The resolved fields (``num_frames``, ``duration_seconds``,
``average_fps``, ``begin_stream_seconds``, ``end_stream_seconds``) follow torchcodec's rules:
content values when a scan was made, header values otherwise; :func:`resolve_video` computes them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from fractions import Fraction

__all__ = [
    "StreamMetadata",
    "VideoStreamMetadata",
    "AudioStreamMetadata",
    "ContainerMetadata",
    "resolve_video",
    "header_frame_bound",
    "plausible_header_fps",
]


def _repr(self) -> str:
    lines = [type(self).__name__ + ":"]
    for f in dataclasses.fields(self):
        if f.name == "streams":
            continue
        lines.append(f"  {f.name}: {getattr(self, f.name)}")
    return "\n".join(lines) + "\n"


@dataclass
class StreamMetadata:
    """What the container header says about one stream (any media type).

    Attributes:
        duration_seconds_from_header: stream duration in seconds from the header, or None.
        begin_stream_seconds_from_header: stream start time in seconds from the header, or None.
        bit_rate: bits per second, or None.
        codec: FFmpeg codec name (``"h264"``, ``"aac"``...), or None.
        stream_index: absolute index of the stream in the container (int).
        media_type: ``"video"``, ``"audio"``, ``"subtitle"``, ``"data"``, ``"attachment"`` or
            ``"unknown"``.
    """

    duration_seconds_from_header: float | None
    begin_stream_seconds_from_header: float | None
    bit_rate: float | None
    codec: str | None
    stream_index: int
    media_type: str

    __repr__ = _repr


@dataclass
class VideoStreamMetadata(StreamMetadata):
    """Metadata of one video stream.

    Attributes (besides :class:`StreamMetadata`'s):
        width, height: size in pixels of the frames the decoder returns, **after rotation** (as
            torchcodec >= 0.11 reports them): for a 90 or -90 degree rotation they are the coded
            height and width.
        num_frames_from_header: frame count written in the header (may be wrong), or None.
        average_fps_from_header: frames per second from the header, or None.
        pixel_aspect_ratio: sample aspect ratio as a :class:`fractions.Fraction`, or None.
        rotation: display-matrix rotation in degrees, counter-clockwise, rounded to a multiple of
            90 (0, 90, 180, -90, -180, as FFmpeg's ``av_display_rotation_get``); None when the stream has no display matrix. Decoded frames are
            already rotated by this angle, as players show them.
        color_primaries, color_space, color_transfer_characteristic: FFmpeg's names
            (``"bt709"``...), or None when unspecified.
        color_range: ``"tv"`` (limited) or ``"pc"`` (full), or None when unspecified.
        pixel_format: the decoder's pixel format (``"yuv420p"``...), or None.
        bit_depth: bits per sample of the pixel format's first component (8, 10, 12...), as
            FFmpeg's pixel format descriptor gives it; None when the format is unknown.
            ``output_dtype="auto"`` gives float32 above 8 (torchcodec 0.17's rule). A
            mediadecode addition; the HDR transfer function is ``color_transfer_characteristic``
            (``"smpte2084"`` for PQ, ``"arib-std-b67"`` for HLG).
        begin_stream_seconds_from_content: first frame's pts in seconds (exact mode), or None.
        end_stream_seconds_from_content: max(pts + duration) in seconds (exact mode), or None.
        num_frames_from_content: frame count from the packet scan (exact mode), or None.
        num_frames: ``num_frames_from_content`` when scanned, else the header value, else
            ``duration * fps`` rounded.
        duration_seconds: ``end - begin`` from content when scanned, else the header duration.
        average_fps: ``num_frames / duration_seconds`` when scanned, else the header rate.
        begin_stream_seconds: first frame's pts when scanned, else 0 (or the header's start).
        end_stream_seconds: from content when scanned, else ``begin + duration_seconds``.
    """

    width: int | None = None
    height: int | None = None
    num_frames_from_header: int | None = None
    average_fps_from_header: float | None = None
    pixel_aspect_ratio: Fraction | None = None
    rotation: float | None = None
    color_primaries: str | None = None
    color_space: str | None = None
    color_transfer_characteristic: str | None = None
    color_range: str | None = None
    pixel_format: str | None = None
    bit_depth: int | None = None
    begin_stream_seconds_from_content: float | None = None
    end_stream_seconds_from_content: float | None = None
    num_frames_from_content: int | None = None
    num_frames: int | None = None
    duration_seconds: float | None = None
    average_fps: float | None = None
    begin_stream_seconds: float | None = None
    end_stream_seconds: float | None = None

    __repr__ = _repr


@dataclass
class AudioStreamMetadata(StreamMetadata):
    """Metadata of one audio stream.

    Attributes (besides :class:`StreamMetadata`'s):
        sample_rate: the stream's own sample rate in Hz (not the decoder's output rate).
        num_channels: the stream's own channel count.
        sample_format: FFmpeg's sample format name (``"fltp"``, ``"s16"``...).
        duration_seconds: stream duration in seconds (header, else container), or None.
        begin_stream_seconds: first sample's time in seconds (header start, else 0).
    """

    sample_rate: int | None = None
    num_channels: int | None = None
    sample_format: str | None = None
    duration_seconds: float | None = None
    begin_stream_seconds: float | None = None

    __repr__ = _repr


@dataclass
class ContainerMetadata:
    """Container-level metadata and one entry per stream (indexed by stream index).

    Attributes:
        duration_seconds_from_header: container duration in seconds, or None.
        bit_rate_from_header: overall bits per second, or None.
        best_video_stream_index, best_audio_stream_index: FFmpeg's "best" stream of each type
            (what a decoder uses when ``stream_index`` is None), or None.
        streams: :class:`VideoStreamMetadata`, :class:`AudioStreamMetadata` or plain
            :class:`StreamMetadata` (subtitles, data) per stream.
        format_name: FFmpeg's demuxer name (``"mov,mp4,m4a,3gp,3g2,mj2"``...).
    """

    duration_seconds_from_header: float | None
    bit_rate_from_header: float | None
    best_video_stream_index: int | None
    best_audio_stream_index: int | None
    streams: list[StreamMetadata] = field(default_factory=list)
    format_name: str | None = None

    __repr__ = _repr


def pixel_format_bit_depth(pixel_format: str) -> int | None:
    """Bits per sample of ``pixel_format``'s first component (FFmpeg's pixel format
    descriptor, through PyAV), or None for a name FFmpeg does not know (``"cuda"``...)."""
    try:
        import av

        fmt = av.VideoFormat(pixel_format)
        return int(fmt.components[0].bits) if fmt.components else None
    except Exception:
        return None


# A header frame count may exceed duration x rate by this factor (plus HEADER_COUNT_SLACK frames)
# before it is disbelieved: rounding, a rate rounded in the header, a last frame held longer.
HEADER_COUNT_TOLERANCE = 1.1
HEADER_COUNT_SLACK = 2

# A header's average rate may exceed the rate the stream's own timestamps show (FFmpeg's
# r_frame_rate) by this factor before it is disbelieved. Frames on a 1/r grid cannot average more
# than r per second; the slack covers a variable-rate stream whose probed start is slower than
# its average.
HEADER_RATE_TOLERANCE = 2.0


def header_frame_bound(duration: float | None, fps: float | None, size_bytes: int | None) -> int | None:
    """The most frames a header can be believed about (approximate mode), or None when nothing
    bounds it: ``duration * fps`` (with :data:`HEADER_COUNT_TOLERANCE` and
    :data:`HEADER_COUNT_SLACK`) and one frame per byte of the file (a coded frame, with its
    container framing, takes at least one byte)."""
    bounds = []
    if duration and fps and duration > 0 and fps > 0 and math.isfinite(duration * fps):
        bounds.append(math.floor(duration * fps * HEADER_COUNT_TOLERANCE) + HEADER_COUNT_SLACK)
    if size_bytes is not None and size_bytes > 0:
        bounds.append(int(size_bytes))
    return min(bounds) if bounds else None


def plausible_header_fps(header_fps: float | None, timestamp_fps: float | None) -> float | None:
    """The frame rate approximate mode believes: the header's average rate, unless it exceeds
    ``timestamp_fps`` (the rate the stream's timestamps show, FFmpeg's ``r_frame_rate``) by more
    than :data:`HEADER_RATE_TOLERANCE`; then ``timestamp_fps``. None when the header has none."""
    if header_fps and timestamp_fps and timestamp_fps > 0 and header_fps > timestamp_fps * HEADER_RATE_TOLERANCE:
        return float(timestamp_fps)
    return header_fps


def resolve_video(meta: VideoStreamMetadata, container_duration: float | None = None, *,
                  size_bytes: int | None = None, timestamp_fps: float | None = None) -> None:
    """Fill the resolved fields of ``meta`` in place from its header and content fields.

    The rules are torchcodec 0.17's (``_metadata.py``): content first, header second, then values
    derived from each other. Fields stay None only when nothing at all is known.

    Without a scan (approximate mode) a hostile header cannot stretch the frame count: a count
    above what the header's duration and rate allow, or above one frame per byte of the file
    (``size_bytes``, when known), is replaced by that bound (:func:`header_frame_bound`);
    ``num_frames_from_header`` keeps what the header said. A header rate far above the rate the
    stream's timestamps show (``timestamp_fps``, when known) is replaced by the latter
    (:func:`plausible_header_fps`); ``average_fps_from_header`` keeps the header's word. A
    reader that finds the real end earlier still raises
    :class:`~mediadecode.errors.EndOfStreamError` there.
    """
    if meta.pixel_format:
        meta.bit_depth = pixel_format_bit_depth(meta.pixel_format)
    scanned = meta.num_frames_from_content is not None
    if scanned:
        begin = meta.begin_stream_seconds_from_content
        end = meta.end_stream_seconds_from_content
        meta.begin_stream_seconds = begin if begin is not None else 0.0
        meta.end_stream_seconds = end
        meta.num_frames = meta.num_frames_from_content
        if begin is not None and end is not None:
            meta.duration_seconds = end - begin
        else:
            meta.duration_seconds = meta.duration_seconds_from_header
        if meta.duration_seconds and meta.num_frames:
            meta.average_fps = meta.num_frames / meta.duration_seconds
        else:
            meta.average_fps = meta.average_fps_from_header
        return

    fps = plausible_header_fps(meta.average_fps_from_header, timestamp_fps)
    duration = meta.duration_seconds_from_header
    if duration is None and meta.num_frames_from_header and fps:
        duration = meta.num_frames_from_header / fps
    if duration is None and container_duration is not None:
        # A container duration (Matroska's segment duration, say) runs from time 0, not from
        # the stream's first timestamp.
        begin = meta.begin_stream_seconds_from_header or 0.0
        duration = container_duration - begin if container_duration > begin else container_duration
    meta.duration_seconds = duration
    meta.average_fps = fps
    if meta.num_frames_from_header:
        meta.num_frames = meta.num_frames_from_header
        bound = header_frame_bound(duration, meta.average_fps, size_bytes)
        if bound is not None and meta.num_frames > bound:
            by_rate = duration * meta.average_fps if duration and meta.average_fps else math.inf
            meta.num_frames = max(1, min(int(math.ceil(by_rate)) if math.isfinite(by_rate) else bound, bound))
    elif duration is not None and meta.average_fps and math.isfinite(duration * meta.average_fps):
        meta.num_frames = int(round(duration * meta.average_fps))
        if size_bytes is not None and size_bytes > 0:
            meta.num_frames = min(meta.num_frames, int(size_bytes))
    begin = meta.begin_stream_seconds_from_header
    meta.begin_stream_seconds = begin if begin is not None else 0.0
    if duration is not None:
        meta.end_stream_seconds = meta.begin_stream_seconds + duration
