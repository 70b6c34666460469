"""The PyAV toolkit: what every part of mediadecode that talks to FFmpeg through PyAV shares.

Nobody's backend: the ffmpeg, nvdec and decord backends, the adapters and
:func:`mediadecode.get_container_metadata` use these public names. It opens containers under the
safety policy (:mod:`mediadecode.safety`), reads container and stream metadata, selects streams,
reads the first frame's rotation and colour tags, and converts ticks to seconds as FFmpeg does.
PyAV is imported on first use, never when this module is imported.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Any


from . import lifecycle, safety
from .errors import InvalidMediaError, NotMediaError, StreamNotFoundError
from .frame_index import ticks_to_seconds
from .metadata import (
    AudioStreamMetadata,
    ContainerMetadata,
    StreamMetadata,
    VideoStreamMetadata,
)
from .sources import Source

__all__ = [
    "FirstFrameInfo",
    "MediaHandle",
    "av_reason",
    "color_name",
    "container_metadata",
    "first_frame_info",
    "first_packet_pts",
    "import_av",
    "open_container",
    "refuse_unsafe_formats",
    "seconds_of",
    "select_stream",
    "stream_metadata",
    "timestamp_rate",
    "ticks_to_seconds",
]


def import_av():
    """The ``av`` module, imported on first use (so importing mediadecode loads no FFmpeg)."""
    import av

    return av


def av_reason(exc: BaseException) -> str:
    """FFmpeg's reason in a PyAV exception (its ``strerror``), else its text or class name."""
    strerror = getattr(exc, "strerror", None)
    return strerror or str(exc) or type(exc).__name__


@dataclass
class MediaHandle:
    """An open PyAV container and the Python file object it reads (None when FFmpeg opened a
    local path itself, or the file object belongs to the caller).

    ``close()`` closes the container, then the file object, through
    :func:`mediadecode.lifecycle.close_media` (safe with any PyAV log setting); idempotent. Also a
    context manager.
    """

    container: Any
    file: Any = None

    def close(self) -> None:
        container, fileobj = self.container, self.file
        self.container = self.file = None
        lifecycle.close_media(container, fileobj)

    def __enter__(self) -> "MediaHandle":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def refuse_unsafe_formats(source: Source) -> None:
    """Check ``source`` as :func:`open_container` would and close it again: for backends that
    open the source with their own FFmpeg (torchcodec), which would otherwise follow the
    references of a playlist. Does nothing when the source allows playlists.

    Raises:
        UnsafeMediaError, InvalidMediaError, RemoteSourceError: as :func:`open_container`.
    """
    if source.allow_playlists:
        return
    open_container(source).close()


def open_container(source: Source, *, hwaccel: Any = None, format: str | None = None) -> MediaHandle:
    """Open ``source`` with FFmpeg; returns a :class:`MediaHandle` (the container and the file
    object it reads, closed together by :meth:`MediaHandle.close`).

    Local paths are opened by FFmpeg's own ``file`` protocol and only that protocol is allowed;
    bytes, file objects and URLs (a :class:`~mediadecode.remote.RemoteFile` reading through
    fsspec) are handed to FFmpeg as Python file objects with no protocol allowed, so FFmpeg never
    opens a network address or another file itself. Demuxers that follow references named in
    the input (HLS, DASH, concat, image-sequence patterns...) are refused through FFmpeg's
    ``format_whitelist`` unless ``source.allow_playlists``; network-session demuxers and devices
    always. Text files, which FFmpeg's ``tty`` demuxer would show as ANSI-art video, are refused.
    ``hwaccel`` (an ``av.codec.hwaccel.HWAccel``) is passed to ``av.open`` for hardware decoding;
    ``format`` names the demuxer instead of probing (still subject to the same refusals).

    Raises:
        NotMediaError: FFmpeg's probe recognises no media in the source (an
            ``InvalidMediaError``; the message names the source and gives FFmpeg's reason).
        InvalidMediaError: FFmpeg cannot read the source as media otherwise, or as ``format``.
        UnsafeMediaError: a playlist-type format without ``allow_playlists`` (names the format).
        RemoteSourceError: a URL source that cannot be read (its subclasses for 404 and
            timeouts); raised from inside FFmpeg's reads unchanged.
    """
    av = import_av()
    extra = {} if hwaccel is None else {"hwaccel": hwaccel}
    if format is not None:
        extra["format"] = format
    as_what = "media" if format is None else f"media with format {format!r}"
    options = safety.open_options(source)
    target, owned = source.ffmpeg_input()
    try:
        container = av.open(target, mode="r", options=options, metadata_errors="ignore", **extra)
    except av.FFmpegError as exc:
        lifecycle.close_media(None, owned)
        if getattr(exc, "errno", None) == 22:  # EINVAL: "Format not on whitelist", or other
            refusal = safety.refusal(source)
            if refusal is not None:
                raise refusal from None
        # "Invalid data": the probe recognised no format (garbage, text, an empty or truncated
        # header); any FFmpeg build would say the same.
        cls = NotMediaError if isinstance(exc, av.error.InvalidDataError) else InvalidMediaError
        raise cls(f"{source.name}: cannot be read as {as_what}: {av_reason(exc)}") from exc
    except ValueError as exc:
        lifecycle.close_media(None, owned)
        if format is None:
            raise
        # PyAV's answer to a demuxer name FFmpeg does not know
        raise InvalidMediaError(f"{source.name}: cannot be read as {as_what}: {exc}") from exc
    except BaseException:
        lifecycle.close_media(None, owned)
        raise
    handle = MediaHandle(container, owned)
    fmt = container.format.name if container.format is not None else ""
    if fmt in safety.NOT_MEDIA_FORMATS:
        handle.close()
        raise NotMediaError(
            f"{source.name}: cannot be read as media: FFmpeg only recognises it as "
            f"{safety.NOT_MEDIA_FORMATS[fmt]} ('{fmt}' demuxer)"
        )
    return handle


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


def seconds_of(ticks, time_base) -> float | None:
    if ticks is None or time_base is None:
        return None
    return float(ticks * time_base)


def timestamp_rate(stream) -> float | None:
    """The frame rate the stream's own timestamps show (FFmpeg's ``r_frame_rate``, estimated from
    the packets probed at open), or None when FFmpeg found none. A cross-check for the header's
    average rate, which a damaged header can set to anything."""
    rate = stream.base_rate
    return float(rate) if rate else None


def stream_metadata(container, stream) -> StreamMetadata:
    tb = stream.time_base
    cc = stream.codec_context
    common = dict(
        duration_seconds_from_header=seconds_of(stream.duration, tb),
        begin_stream_seconds_from_header=seconds_of(stream.start_time, tb),
        bit_rate=_float_or_none(cc.bit_rate) if cc is not None and cc.bit_rate else None,
        codec=cc.name if cc is not None else None,
        stream_index=stream.index,
        media_type=stream.type if stream.type in ("video", "audio", "subtitle", "data", "attachment") else "unknown",
    )
    if cc is None:  # a damaged header names a codec FFmpeg has no decoder for
        if stream.type == "video":
            return VideoStreamMetadata(**common)
        if stream.type == "audio":
            return AudioStreamMetadata(**common)
        return StreamMetadata(**common)
    if stream.type == "video":
        rate = stream.average_rate or stream.guessed_rate
        sar = cc.sample_aspect_ratio
        return VideoStreamMetadata(
            **common,
            width=cc.width or None,
            height=cc.height or None,
            num_frames_from_header=stream.frames or None,
            average_fps_from_header=float(rate) if rate else None,
            pixel_aspect_ratio=Fraction(sar) if sar else None,
            pixel_format=cc.format.name if cc.format is not None else None,
        )
    if stream.type == "audio":
        duration = common["duration_seconds_from_header"]
        if duration is None and container.duration is not None:
            duration = container.duration / 1_000_000
        begin = common["begin_stream_seconds_from_header"]
        return AudioStreamMetadata(
            **common,
            sample_rate=cc.sample_rate or None,
            num_channels=cc.channels or None,
            sample_format=cc.format.name if cc.format is not None else None,
            duration_seconds=duration,
            begin_stream_seconds=begin if begin is not None else 0.0,
        )
    return StreamMetadata(**common)


def container_metadata(container) -> ContainerMetadata:
    """:class:`~mediadecode.metadata.ContainerMetadata` of an open PyAV container."""
    streams = [stream_metadata(container, s) for s in container.streams]
    best_video = best_audio = None
    try:
        bv = container.streams.best("video")
        best_video = bv.index if bv is not None else None
        ba = container.streams.best("audio")
        best_audio = ba.index if ba is not None else None
    except Exception:  # pragma: no cover - defensive, best() is pure FFmpeg logic
        pass
    return ContainerMetadata(
        duration_seconds_from_header=(
            container.duration / 1_000_000 if container.duration is not None else None
        ),
        bit_rate_from_header=_float_or_none(container.bit_rate) or None,
        best_video_stream_index=best_video,
        best_audio_stream_index=best_audio,
        streams=streams,
        format_name=container.format.name if container.format is not None else None,
    )


def select_stream(container, source: Source, media_type: str, stream_index: int | None):
    """The stream to decode: ``stream_index``, or FFmpeg's best stream of ``media_type``.

    Raises:
        StreamNotFoundError: no such stream, or not of ``media_type``.
        TypeError: ``stream_index`` is not an int.
        InvalidMediaError: the stream's codec has no decoder in this FFmpeg (a damaged header
            names an unknown codec).
    """
    stream = _select_stream(container, source, media_type, stream_index)
    if stream.codec_context is None:
        raise InvalidMediaError(
            f"{source.name}: stream {stream.index} ({media_type}) has no decoder in this FFmpeg "
            f"(codec {getattr(getattr(stream, 'codec', None), 'name', None) or 'unknown'})"
        )
    return stream


def _select_stream(container, source: Source, media_type: str, stream_index: int | None):
    streams = container.streams
    if stream_index is None:
        stream = streams.best(media_type)
        if stream is None:
            have = ", ".join(f"{s.index}:{s.type}" for s in streams) or "none"
            raise StreamNotFoundError(
                f"{source.name}: no {media_type} stream (streams: {have})"
            )
        return stream
    if isinstance(stream_index, bool) or not isinstance(stream_index, int):
        raise TypeError(f"stream_index must be an int or None, got {type(stream_index).__name__}")
    if not 0 <= stream_index < len(streams):
        raise StreamNotFoundError(
            f"{source.name}: stream_index {stream_index} is out of range; "
            f"the file has {len(streams)} streams"
        )
    stream = streams[stream_index]
    if stream.type != media_type:
        raise StreamNotFoundError(
            f"{source.name}: stream {stream_index} is a {stream.type} stream, not {media_type}"
        )
    return stream


def color_name(value, kind: str) -> str | None:
    """FFmpeg's name for a colour enum value, None when unspecified."""
    try:
        value = int(value)
    except (TypeError, ValueError):
        return None
    names = {
        "colorspace": {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
                       8: "ycgco", 9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc",
                       13: "chroma-derived-c", 14: "ictcp"},
        "primaries": {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
                      9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"},
        "trc": {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
                9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1",
                14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"},
    }[kind]
    return names.get(value)


@dataclass(frozen=True)
class FirstFrameInfo:
    """What only a decoded frame tells: the display-matrix rotation (degrees counter-clockwise,
    None without a matrix), the real coded size and pixel format, and the colour tags (FFmpeg's
    names, None when unspecified)."""

    rotation: float | None
    pixel_format: str
    width: int
    height: int
    color_space: str | None
    color_primaries: str | None
    color_transfer_characteristic: str | None
    color_range: str | None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable fields (the index cache stores them)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FirstFrameInfo":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def apply_to(self, meta: VideoStreamMetadata) -> None:
        """Write the rotation, pixel format and colour tags into ``meta``, and its
        ``width``/``height`` as frames are shown (swapped for a quarter turn)."""
        for name, value in self.as_dict().items():
            setattr(meta, name, value)
        if self.rotation is not None and int(self.rotation) % 180 != 0:
            meta.width, meta.height = self.height, self.width


def first_frame_info(frame) -> FirstFrameInfo:
    """The :class:`FirstFrameInfo` of a decoded ``av.VideoFrame``."""
    has_matrix = any(
        getattr(sd.type, "name", str(sd.type)) == "DISPLAYMATRIX" for sd in frame.side_data
    )
    return FirstFrameInfo(
        rotation=float(90 * round(frame.rotation / 90)) if has_matrix else None,
        pixel_format=frame.format.name,
        width=frame.width,
        height=frame.height,
        color_space=color_name(frame.colorspace, "colorspace"),
        color_primaries=color_name(frame.color_primaries, "primaries"),
        color_transfer_characteristic=color_name(frame.color_trc, "trc"),
        color_range={1: "tv", 2: "pc"}.get(int(frame.color_range)),
    )


def first_packet_pts(container, stream) -> int | None:
    """The pts (else dts) in ticks of the first packet of ``stream`` that is a frame (has data,
    not marked for discard by an edit list), demuxing from the container's current position;
    None when there is none. The caller seeks back if it needs to."""
    for packet in container.demux(stream):
        if packet.size and not packet.is_discard:
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is not None:
                return int(ts)
    return None
