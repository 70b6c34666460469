"""The ``ffmpeg`` backend: FFmpeg on the CPU through PyAV (whose wheel bundles FFmpeg).

Video:

- ``seek_mode="exact"`` builds the frame index from one pass over the stream's packets (demux only,
  no decoding): each packet's pts, duration and keyframe flag, sorted into presentation order.
  Packets that FFmpeg marks for discard (edit-list preroll) are left out, as the decoder drops them.
- ``seek_mode="approximate"`` trusts the header (frame count, rate, duration) and maps index ``i``
  to the frame on screen at ``begin + (i + 0.5) / fps``.
- Batched requests arrive sorted and de-duplicated (the facade does that). The reader seeks only
  when a keyframe lies between the last decoded frame and the next target, so each GOP is entered
  once; it decodes forward to the last requested frame and converts to RGB only the frames asked
  for (``frame.reformat(format="rgb24", threads=1)``), with FFmpeg frame threading for decoding.
- Seeks go to the keyframe's own timestamp; if a demuxer lands after the target anyway, the reader
  steps back one keyframe at a time, then to the start of the stream.

Audio is decoded and converted by FFmpeg: ``av.AudioResampler`` (libswresample) turns any sample
format into float32 in [-1, 1] and does the resampling and channel mixing that
``sample_rate=``/``num_channels=`` ask for.
"""

from __future__ import annotations

import bisect
import math
import os
import threading
import weakref
from fractions import Fraction
from typing import Any, Sequence

import numpy as np
import torch

from .. import index_cache
from ..errors import DecodingError, InvalidMediaError, StreamNotFoundError
from ..metadata import (
    AudioStreamMetadata,
    ContainerMetadata,
    StreamMetadata,
    VideoStreamMetadata,
    resolve_video,
)
from ..sources import Source

__all__ = ["FFmpegBackend", "FFmpegVideoReader", "FFmpegAudioReader", "open_container", "refuse_unsafe_formats"]


def _av():
    import av

    return av


def _reason(exc: BaseException) -> str:
    strerror = getattr(exc, "strerror", None)
    return strerror or str(exc) or type(exc).__name__


# Consecutive packets the video decoder may reject before decoding gives up.
_MAX_BAD_PACKETS = 16

# Demuxers that "succeed" on files that are not media: any *.txt opens as ANSI art.
_NOT_MEDIA_FORMATS = {"tty": "a text file rendered as ANSI art"}

# Demuxers that make FFmpeg open other resources named inside the input (or next to it): refused
# unless the source allows playlists (Source.allow_playlists). See docs/remote.md.
_REFERENCE_FORMATS = {
    "hls": "an HLS playlist (m3u8)",
    "dash": "a DASH manifest (mpd)",
    "concat": "an ffconcat list",
    "imf": "an IMF composition playlist",
    "webm_dash_manifest": "a WebM DASH manifest",
    "image2": "an image sequence named by a file-name pattern",
    "vobsub": "a VobSub index (opens the .sub file next to it)",
}
# Demuxers never allowed: network sessions and capture devices (not media files at all).
_NEVER_FORMATS = {
    "sdp": "an SDP session description (opens network streams)",
    "rtsp": "an RTSP session", "rtp": "an RTP stream", "sap": "a SAP announcement",
    "lavfi": "a libavfilter graph", "avisynth": "an AviSynth script",
    "vapoursynth": "a VapourSynth script", "alsa": "a capture device", "oss": "a capture device",
    "fbdev": "a capture device", "kmsgrab": "a capture device", "x11grab": "a capture device",
    "v4l2": "a capture device", "video4linux2": "a capture device",
}
# First bytes of reference formats, to name the format in the refusal message.
_REFERENCE_MAGIC = (
    (b"#EXTM3U", "hls"), (b"ffconcat version", "concat"), (b"v=0", "sdp"), (b"<MPD", "dash"),
    (b"# VobSub index file", "vobsub"),
)


def _demuxer_whitelist(allow_playlists: bool) -> tuple[str, str]:
    """``(allowed, refused)``: comma-separated names of FFmpeg's demuxers, for the
    ``format_whitelist`` option (FFmpeg refuses a probed format that is not listed, before the
    demuxer reads anything)."""
    key = bool(allow_playlists)
    cached = _WHITELISTS.get(key)
    if cached is None:
        av = _av()
        from av.format import ContainerFormat

        excluded = set(_NEVER_FORMATS) | (set() if allow_playlists else set(_REFERENCE_FORMATS))
        allowed, refused = set(), set()
        for name in av.formats_available:
            try:
                full = ContainerFormat(name, "r").name
            except Exception:
                continue  # a muxer only
            (refused if set(full.split(",")) & excluded else allowed).add(full)
        cached = _WHITELISTS[key] = (",".join(sorted(allowed)), ",".join(sorted(refused)))
    return cached


_WHITELISTS: dict[bool, tuple[str, str]] = {}


def _open_options(source: Source) -> dict[str, str]:
    """FFmpeg options that keep FFmpeg from opening anything but the source itself: a local
    path may use the ``file`` protocol (which playlists allowed by ``allow_playlists`` then
    use too); bytes, file objects and URLs get no protocol at all (a URL is read only through
    its fsspec transport); playlist-type demuxers are off unless allowed, devices and network
    sessions always."""
    if source.kind == "url":
        protocols = "none"
    elif source.kind == "path" or source.allow_playlists:
        protocols = "file"
    else:
        protocols = "none"
    allowed, _ = _demuxer_whitelist(source.allow_playlists)
    return {"protocol_whitelist": protocols, "format_whitelist": allowed}


def _refusal(source: Source) -> Exception | None:
    """After FFmpeg refused a source with EINVAL: the UnsafeMediaError to raise when it was
    refused for its format (probed again with only the refused demuxers allowed and no
    protocol, so no reference can be followed), or None when the EINVAL had another cause."""
    from ..errors import UnsafeMediaError

    av = _av()
    _, refused = _demuxer_whitelist(source.allow_playlists)
    fobj = open(source.value, "rb") if source.kind == "path" else source.open_binary()
    fmt = None
    try:
        head = fobj.read(64)
        fobj.seek(0)
        sniffed = next(
            (name for magic, name in _REFERENCE_MAGIC if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(magic)),
            "",
        )
        try:
            with av.open(fobj, mode="r", metadata_errors="ignore",
                         options={"protocol_whitelist": "none", "format_whitelist": refused}) as c:
                fmt = c.format.name
        except av.FFmpegError as exc:
            # EINVAL again: not on this whitelist either, or a refused demuxer that failed to
            # open a reference (the nested open of a concat list gives EINVAL too): decided
            # by the first bytes. Any other error comes from a refused demuxer's own header.
            if getattr(exc, "errno", None) == 22 and not sniffed:
                return None  # the EINVAL was about the media itself
            fmt = sniffed
    finally:
        if source.kind != "file":
            fobj.close()
    names = fmt.split(",") if fmt else []
    desc = next((_REFERENCE_FORMATS.get(n) or _NEVER_FORMATS.get(n) for n in names
                 if n in _REFERENCE_FORMATS or n in _NEVER_FORMATS), "a playlist-type format")
    never = any(n in _NEVER_FORMATS for n in names)
    shown = f" ('{fmt}' demuxer)" if fmt else ""
    fix = (
        "mediadecode never opens it" if never else
        "mediadecode does not open such formats by default; for a trusted local file pass "
        "allow_playlists=True (see docs/remote.md)"
    )
    return UnsafeMediaError(
        f"{source.name}: refused: FFmpeg reads it as {desc}{shown}, a format that makes FFmpeg "
        f"open other files, devices or network addresses named inside it; {fix}"
    )


def refuse_unsafe_formats(source: Source) -> None:
    """Check ``source`` as :func:`open_container` would and close it again: for backends that
    open the source with their own FFmpeg (torchcodec), which would otherwise follow the
    references of a playlist. Does nothing when the source allows playlists.

    Raises:
        UnsafeMediaError, InvalidMediaError, RemoteSourceError: as :func:`open_container`.
    """
    if source.allow_playlists:
        return
    container, fobj = open_container(source)
    container.close()
    if fobj is not None:
        fobj.close()


def open_container(source: Source, *, hwaccel: Any = None, format: str | None = None) -> tuple[Any, Any]:
    """Open ``source`` with FFmpeg; returns ``(container, file_object_to_close_or_None)``.

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
        InvalidMediaError: FFmpeg cannot read the source as media, or as ``format`` (the message
            names the source and gives FFmpeg's reason).
        UnsafeMediaError: a playlist-type format without ``allow_playlists`` (names the format).
        RemoteSourceError: a URL source that cannot be read (its subclasses for 404 and
            timeouts); raised from inside FFmpeg's reads unchanged.
    """
    av = _av()
    fobj = None
    extra = {} if hwaccel is None else {"hwaccel": hwaccel}
    if format is not None:
        extra["format"] = format
    as_what = "media" if format is None else f"media with format {format!r}"
    options = _open_options(source)
    try:
        if source.kind == "path":
            container = av.open(
                "file:" + source.value,
                mode="r",
                options=options,
                metadata_errors="ignore",
                **extra,
            )
        else:
            fobj = source.open_binary()
            container = av.open(fobj, mode="r", options=options, metadata_errors="ignore", **extra)
    except av.FFmpegError as exc:
        if fobj is not None and source.owns_file:
            fobj.close()
        if getattr(exc, "errno", None) == 22:  # EINVAL: "Format not on whitelist", or other
            refusal = _refusal(source)
            if refusal is not None:
                raise refusal from None
        raise InvalidMediaError(f"{source.name}: cannot be read as {as_what}: {_reason(exc)}") from exc
    except ValueError as exc:
        if fobj is not None and source.owns_file:
            fobj.close()
        if format is None:
            raise
        # PyAV's answer to a demuxer name FFmpeg does not know
        raise InvalidMediaError(f"{source.name}: cannot be read as {as_what}: {exc}") from exc
    except Exception:
        if fobj is not None and source.owns_file:
            fobj.close()
        raise
    fmt = container.format.name if container.format is not None else ""
    if fmt in _NOT_MEDIA_FORMATS:
        container.close()
        if fobj is not None and source.owns_file:
            fobj.close()
        raise InvalidMediaError(
            f"{source.name}: cannot be read as media: FFmpeg only recognises it as "
            f"{_NOT_MEDIA_FORMATS[fmt]} ('{fmt}' demuxer)"
        )
    return container, (fobj if source.owns_file else None)


def _float(value) -> float | None:
    return None if value is None else float(value)


def _ticks_to_seconds(ticks, time_base) -> torch.Tensor:
    """float64 seconds of integer ``ticks``, computed as FFmpeg/PyAV (``frame.time``) and torchcodec
    do: ``double(ticks) * num / den``; ``ticks * float(time_base)`` can differ by one ulp."""
    return torch.tensor(ticks, dtype=torch.float64) * time_base.numerator / time_base.denominator


def _seconds(ticks, time_base) -> float | None:
    if ticks is None or time_base is None:
        return None
    return float(ticks * time_base)


def _stream_metadata(container, stream) -> StreamMetadata:
    tb = stream.time_base
    cc = stream.codec_context
    common = dict(
        duration_seconds_from_header=_seconds(stream.duration, tb),
        begin_stream_seconds_from_header=_seconds(stream.start_time, tb),
        bit_rate=_float(cc.bit_rate) if cc is not None and cc.bit_rate else None,
        codec=cc.name if cc is not None else None,
        stream_index=stream.index,
        media_type=stream.type if stream.type in ("video", "audio", "subtitle", "data", "attachment") else "unknown",
    )
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
    streams = [_stream_metadata(container, s) for s in container.streams]
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
        bit_rate_from_header=_float(container.bit_rate) or None,
        best_video_stream_index=best_video,
        best_audio_stream_index=best_audio,
        streams=streams,
        format_name=container.format.name if container.format is not None else None,
    )


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


class _Base:
    def __init__(self, source: Source):
        self._source = source
        self._container = None
        self._fobj = None

    def close(self) -> None:
        container, fobj = self._container, self._fobj
        self._container = self._fobj = None
        self._frames = None
        if container is not None:
            try:
                container.close()
            except Exception:  # pragma: no cover - closing must not raise
                pass
        if fobj is not None:
            fobj.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


# Video readers with FFmpeg decoder threads; parked (see FFmpegVideoReader._park) before fork.
_THREADED_READERS: "weakref.WeakSet[FFmpegVideoReader]" = weakref.WeakSet()

# Decoders that read AVCodecContext.skip_frame packet by packet (others, libdav1d among them, read
# it once when the codec opens, so changing it mid-stream would skip frames for good).
_SKIP_NONREF_CODECS = frozenset({"h264", "hevc", "vp9", "mpeg2video", "mpeg4"})

# At most this many GOPs of one request decode at once (one thread and one decoder each).
_MAX_PARALLEL_GOPS = 8


def _park_threaded_readers() -> None:
    for reader in list(_THREADED_READERS):
        reader._park()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_park_threaded_readers)


class FFmpegVideoReader(_Base):
    """A video stream read with PyAV. See the module docstring for the strategy."""

    frames_are_rotated = False
    # Whether a request spanning several GOPs may be decoded by clones in parallel threads.
    _gop_parallel = True
    # Whether exact-mode requests let FFmpeg skip non-reference frames nobody asked for
    # (AVCodecContext.skip_frame = AVDISCARD_NONREF, set packet by packet).
    _skip_nonref = True

    def __init__(self, source: Source, *, stream_index: int | None, seek_mode: str, num_threads: int):
        super().__init__(source)
        av = _av()
        self._init_state()
        self._keyframe_pts: list[int] = []  # keyframes' pts, ascending, exact mode
        self._pts: list[int] = []  # every frame's pts in presentation order, exact mode
        self._container, self._fobj = self._open_container()
        try:
            self.container_metadata = container_metadata(self._container)
            stream = _select_stream(self._container, source, "video", stream_index)
            self._stream = stream
            self._tb = stream.time_base
            self._num_threads = num_threads
            self._configure_threads()
            meta = self.container_metadata.streams[stream.index]
            assert isinstance(meta, VideoStreamMetadata)
            self.metadata = meta
            self.frame_pts = self.frame_durations = None
            self._forward_window = max(1, int(round(2.0 / self._tb)))  # 2 s, approximate mode
            key = None
            if source.kind == "path":
                key = index_cache.file_key(source.value, "ffmpeg-video", 1, stream.index)
            elif source.kind == "url":  # the scan reads the whole object: worth keeping
                key = index_cache.url_key(source.value, self._fobj, "ffmpeg-video", 1, stream.index)
            cached = index_cache.lookup(key) or {}
            if seek_mode == "exact":
                if "index" in cached:
                    self._set_index(**cached["index"])
                else:
                    cached["index"] = self._scan()
            if "first" not in cached:
                cached["first"] = self._first_frame_info()
            self._apply_first_frame(cached["first"])
            if seek_mode == "exact":
                index_cache.store(key, cached)
            resolve_video(meta, self.container_metadata.duration_seconds_from_header)
            if seek_mode == "approximate" and not meta.average_fps:
                raise InvalidMediaError(
                    f"{source.name}: the header gives no frame rate; use seek_mode='exact'"
                )
        except av.FFmpegError as exc:
            self.close()
            raise InvalidMediaError(f"{source.name}: cannot read the video stream: {_reason(exc)}") from exc
        except BaseException:
            self.close()
            raise

    def _init_state(self) -> None:
        """This reader's own decoding state (a clone gets a fresh one too)."""
        self._frames = self._pending = self._cursor = None
        self._at_start = True
        self._lock = threading.RLock()
        self._parked = False
        self._last_error = ""  # FFmpeg's reason for the last packet the decoder rejected
        self._reformatter = None
        self._workers: list[FFmpegVideoReader] = []  # single-threaded clones for GOP-parallel decode
        self._wanted: set[int] | None = None  # pts the current exact request needs
        self._skipped: set[int] = set()  # pts of packets skipped since the last seek

    # -- opening -------------------------------------------------------------------------------

    def _attach(self, stream_index: int) -> None:
        """Open the source again and take stream ``stream_index``, with this reader's threads."""
        self._container, self._fobj = self._open_container()
        self._stream = self._container.streams[stream_index]
        self._configure_threads()

    def _open_container(self) -> tuple[Any, Any]:
        """``open_container(self._source)``; a subclass may open it differently (hardware
        decoding)."""
        return open_container(self._source)

    def _configure_threads(self) -> None:
        if self._num_threads == 1:
            # PyAV's default is slice threading with FFmpeg's automatic count: threads that a
            # fork child would block on when freeing the decoder, and not "one thread".
            self._stream.codec_context.thread_count = 1
        else:
            cc = self._stream.codec_context
            cc.thread_type = "AUTO"  # frame threading, plus slice threading where it helps
            cc.thread_count = self._num_threads  # 0: FFmpeg picks from the core count
            _THREADED_READERS.add(self)

    def _park(self) -> None:
        """Free the container and its decoder threads, keeping the frame index; the next
        request reopens the source. Called before ``fork``: a child that frees a decoder whose
        frame threads exist only in the parent blocks for ever inside ``avcodec_free_context``."""
        with self._lock:
            if self._container is None:
                return
            frames, self._frames = self._frames, None
            if frames is not None:
                frames.close()
            self._pending = self._cursor = None
            self._stream = None
            self._close_workers()
            _Base.close(self)
            self._parked = True

    def close(self) -> None:
        """Close the container and free the decoder; idempotent. Requests then raise."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ failed before the lock existed
            _Base.close(self)
            return
        with lock:
            frames, self._frames = self._frames, None
            if frames is not None:
                frames.close()
            self._pending = self._stream = None
            self._parked = False
            self._close_workers()
            _Base.close(self)

    def _ensure_open(self) -> None:
        if self._container is not None:
            return
        if not self._parked:
            raise ValueError(f"{self._source.name}: the reader is closed")
        self._attach(self.metadata.stream_index)
        self._parked = False
        self._seek_to_start()

    def _scan(self) -> None:
        """Build the exact frame index from the packets, without decoding; returns it as
        ``_set_index`` keyword arguments (plain lists, so the index cache can store them)."""
        entries = []
        keyframes = []
        for packet in self._container.demux(self._stream):
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
        durations = [e[1] for e in entries]
        # Fill missing packet durations from the gap to the next frame.
        for k, d in enumerate(durations):
            if d <= 0:
                if k + 1 < len(pts):
                    durations[k] = pts[k + 1] - pts[k]
                elif k > 0:
                    durations[k] = durations[k - 1]
        self._seek_to_start()
        index = {"pts": pts, "durations": durations, "keyframes": sorted(keyframes)}
        self._set_index(**index)
        return index

    def _set_index(self, pts: list[int], durations: list[int], keyframes: list[int]) -> None:
        """Install the exact frame index: every frame's pts and duration (ticks, presentation
        order) and the keyframes' pts."""
        self._pts = pts
        # Seeks go to a keyframe's pts: pts-indexed demuxers (Matroska) land on it exactly,
        # dts-indexed ones (MP4) on it too, as its dts <= pts < the next keyframe's dts.
        self._keyframe_pts = keyframes
        tb = self._tb
        pts = _ticks_to_seconds(self._pts, tb)
        dur = _ticks_to_seconds(durations, tb)
        self.frame_pts = pts
        self.frame_durations = dur
        meta = self.metadata
        meta.num_frames_from_content = len(self._pts)
        if self._pts:
            meta.begin_stream_seconds_from_content = float(pts[0])
            meta.end_stream_seconds_from_content = float(torch.max(pts + dur))

    def _first_frame_info(self) -> dict | None:
        """Decode the first frame: it carries the display matrix and the real size, pixel format
        and colour tags. None when it does not decode."""
        self._seek_to_start()
        try:
            frame = self._next_frame()
        except DecodingError:
            frame = None
        self._seek_to_start()
        if frame is None:
            return None
        has_matrix = any(
            getattr(sd.type, "name", str(sd.type)) == "DISPLAYMATRIX" for sd in frame.side_data
        )
        return {
            "rotation": float(90 * round(frame.rotation / 90)) if has_matrix else None,
            "pixel_format": frame.format.name,
            "width": frame.width,
            "height": frame.height,
            "color_space": _color_name(frame.colorspace, "colorspace"),
            "color_primaries": _color_name(frame.color_primaries, "primaries"),
            "color_transfer_characteristic": _color_name(frame.color_trc, "trc"),
            "color_range": {1: "tv", 2: "pc"}.get(int(frame.color_range)),
        }

    def _apply_first_frame(self, info: dict | None) -> None:
        meta = self.metadata
        if info is None:
            self._coded_size = (meta.width or 0, meta.height or 0)
            meta.rotation = None
            return
        for name, value in info.items():
            setattr(meta, name, value)
        self._coded_size = (info["width"], info["height"])
        if meta.rotation is not None and int(meta.rotation) % 180 != 0:
            meta.width, meta.height = meta.height, meta.width

    # -- decoding engine -----------------------------------------------------------------------
    #
    # State: ``_frames`` is the live decode generator (None after a seek or at the end of the
    # stream), ``_pending`` a frame pushed back in front of it, and ``_cursor`` the pts of the last
    # frame consumed: every frame with pts <= _cursor is behind us (None: position unknown).

    def _seek_to_start(self) -> None:
        try:
            self._container.seek(0, backward=True, any_frame=False)
        except _av().FFmpegError:
            # Some demuxers (HLS, concat lists: allow_playlists=True) refuse to seek: open the
            # source again, which starts at the beginning.
            self._reopen()
        self._frames = self._pending = self._cursor = None
        self._skipped = set()
        self._at_start = True

    def _reopen(self) -> None:
        frames, self._frames = self._frames, None
        if frames is not None:
            frames.close()
        meta = getattr(self, "metadata", None)
        index = meta.stream_index if meta is not None else self._stream.index
        _Base.close(self)
        self._attach(index)

    def _seek(self, ts: int) -> None:
        try:
            self._container.seek(ts, backward=True, any_frame=False, stream=self._stream)
        except _av().FFmpegError:
            # A demuxer that cannot seek there (a concat list past its first file): decode
            # forward from the start instead.
            self._seek_to_start()
            return
        self._frames = self._pending = self._cursor = None
        self._skipped = set()
        self._at_start = False

    def _frame_iter(self):
        """Decoded frames from the current position. A packet the decoder rejects is skipped,
        as the ffmpeg CLI does, so one corrupt packet costs the frames that depend on it, not
        the rest of the stream; after _MAX_BAD_PACKETS rejected packets in a row it gives up."""
        av = _av()
        bad = 0
        cc = self._stream.codec_context
        skipping = None  # unknown: the first packet sets skip_frame either way
        try:
            for packet in self._container.demux(self._stream):
                # A packet whose frame the request does not need: FFmpeg may skip it if no other
                # frame refers to it (a disposable B-frame). Requested frames always decode.
                wanted = self._wanted
                skip = wanted is not None and packet.pts is not None and packet.pts not in wanted
                if skip != skipping:
                    cc.skip_frame = "NONREF" if skip else "DEFAULT"
                    skipping = skip
                if skip:
                    self._skipped.add(packet.pts)
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError as exc:
                    bad += 1
                    self._last_error = _reason(exc)
                    if bad > _MAX_BAD_PACKETS:
                        raise DecodingError(
                            f"{self._source.name}: decoding failed on {bad} packets in a row: "
                            f"{self._last_error}"
                        ) from exc
                    continue
                bad = 0
                yield from frames
        except DecodingError:
            raise
        except av.FFmpegError as exc:
            raise DecodingError(f"{self._source.name}: decoding failed: {_reason(exc)}") from exc

    def _next_frame(self):
        """The next decoded frame in presentation order, or None at the end of the stream."""
        frame = self._pending
        if frame is not None:
            self._pending = None
        else:
            if self._frames is None:
                self._frames = self._frame_iter()
            frame = next(self._frames, None)
            if frame is None:
                self._frames = None
                self._cursor = None
                return None
            if frame.pts is None:
                # No timestamp (rare): continue from the previous frame's.
                frame.pts = (self._cursor + 1) if self._cursor is not None else 0
        self._cursor = frame.pts
        return frame

    def _unread(self, frame) -> None:
        self._pending = frame
        self._cursor = frame.pts - 1

    def _must_seek(self, target: int) -> bool:
        """Whether reaching ``target`` needs a seek rather than decoding forward."""
        cursor = self._cursor
        if cursor is None or target <= cursor:
            return True
        if self._keyframe_pts:
            # A keyframe in (cursor, target]: seeking there skips the rest of this GOP.
            k = bisect.bisect_right(self._keyframe_pts, cursor)
            return k < len(self._keyframe_pts) and self._keyframe_pts[k] <= target
        return target - cursor > self._forward_window

    def _seek_for(self, target: int, attempt: int) -> None:
        """Seek so that decoding reaches ``target``; each retry starts one keyframe earlier."""
        if self._keyframe_pts:
            k = bisect.bisect_right(self._keyframe_pts, target) - 1 - attempt
            if k < 0:
                self._seek_to_start()
            else:
                self._seek(self._keyframe_pts[k])
            return
        back = attempt * self._forward_window
        if attempt > 3 or target - back <= (self._stream.start_time or 0):
            self._seek_to_start()
        else:
            self._seek(target - back)

    def _reach(self, target: int) -> None:
        """Seek so that the next frame has pts <= ``target`` (or is the stream's first frame).

        A demuxer may land after the target (timestamps indexed by dts, imprecise indexes): then
        seek again one keyframe (or a few seconds) earlier, and finally from the start.
        """
        attempt = 0
        while True:
            self._seek_for(target, attempt)
            first = self._next_frame()
            if first is not None:
                self._unread(first)
                if first.pts <= target:
                    return
            if self._at_start:
                return
            attempt += 1

    def _new_into(self, n: int, positions=None):
        """Output arrays for ``n`` requested frames: ``(out, pts_out, dur_out, positions)``.
        ``positions`` (None: slot k is output k) lists, for each requested frame, the output
        positions that receive it (duplicates and the caller's order, so no second gather)."""
        total = n if positions is None else sum(len(p) for p in positions)
        return (self._alloc(total), [0] * total, [0] * total, positions)

    def _emit_into(self, frame, into, slot: int) -> None:
        out, pts_out, dur_out, positions = into
        if positions is None:
            self._emit(frame, out, pts_out, dur_out, slot)
            return
        first, *rest = positions[slot]
        self._emit(frame, out, pts_out, dur_out, first)
        for d in rest:
            out[d] = out[first]
            pts_out[d], dur_out[d] = pts_out[first], dur_out[first]

    def _decode_exact(self, targets: Sequence[int], into=None, base: int = 0):
        """For each sorted target pts (ticks), the frame with exactly that pts. ``into`` (from
        :meth:`_new_into`, maybe shared with other readers) receives them from slot ``base`` on;
        by default new arrays are made. Returns ``into``.

        Non-reference frames that are not requested may be skipped by the decoder; if a request
        fails while skipping, it is decoded again without skipping before the error is raised.
        """
        into = into if into is not None else self._new_into(len(targets))
        if not self._skip_nonref or self._stream.codec_context.name not in _SKIP_NONREF_CODECS:
            return self._decode_exact_once(targets, into, base)
        self._wanted = set(targets)
        try:
            return self._decode_exact_once(targets, into, base)
        except DecodingError:
            self._skip_nonref = False  # this reader decodes every frame from now on
            self._wanted = None
            self._frames = self._pending = self._cursor = None  # position unknown: seek again
            return self._decode_exact_once(targets, into, base)
        finally:
            self._wanted = None

    def _decode_exact_once(self, targets: Sequence[int], into, base: int):
        for slot, target in enumerate(targets, start=base):
            if self._must_seek(target) or target in self._skipped:
                self._reach(target)
            while True:
                frame = self._next_frame()
                if frame is None or frame.pts > target:
                    index = bisect.bisect_left(self._pts, target)
                    why = f": {self._last_error}" if self._last_error else ""
                    raise DecodingError(
                        f"{self._source.name}: frame {index} (pts {float(target * self._tb):.6f} s) "
                        f"could not be decoded{why}"
                    )
                if frame.pts == target:
                    self._emit_into(frame, into, slot)
                    break
        return into

    def _decode_played(self, targets: Sequence[int], positions=None):
        """For each sorted target time (ticks), the last frame with pts <= target (the first
        frame of the stream for a target before it). Returns :meth:`_new_into`'s arrays."""
        into = self._new_into(len(targets), positions)
        prev = None  # the last consumed frame; its pts <= the current target
        for slot, target in enumerate(targets):
            if prev is None or self._must_seek(target):
                self._reach(target)
                prev = None
            while True:
                frame = self._next_frame()
                if frame is None or frame.pts > target:
                    if frame is not None:
                        self._unread(frame)
                    chosen = prev if prev is not None else frame
                    if chosen is None:
                        raise DecodingError(
                            f"{self._source.name}: no frame decodes at "
                            f"{float(target * self._tb):.6f} s"
                        )
                    self._emit_into(chosen, into, slot)
                    break
                prev = frame
        return into

    def _alloc(self, n: int) -> np.ndarray:
        width, height = self._coded_size
        return np.empty((n, height, width, 3), dtype=np.uint8)

    def _convert(self, frame, out: np.ndarray, slot: int) -> None:
        """RGB24 by swscale, single-threaded (decoding threads already use the cores), written
        straight into the output slot; a mid-stream size change is scaled to the first size."""
        width, height = self._coded_size
        if self._reformatter is None:
            from av.video.reformatter import VideoReformatter

            self._reformatter = VideoReformatter()  # keeps its SwsContext between frames
        rgb = self._reformatter.reformat(frame, width=width, height=height, format="rgb24", threads=1)
        out[slot] = rgb.to_ndarray()

    def _emit(self, frame, out, pts_out, dur_out, slot) -> None:
        self._convert(frame, out, slot)
        pts_out[slot] = frame.pts
        dur = frame.duration
        if not dur:
            if self._pts:
                k = bisect.bisect_left(self._pts, frame.pts)
                if k + 1 < len(self._pts):
                    dur = self._pts[k + 1] - self._pts[k]
            if not dur and self.metadata.average_fps:
                dur = 1 / (self.metadata.average_fps * float(self._tb))
        dur_out[slot] = dur or 0

    def _result(self, out, pts_out, dur_out):
        tb = self._tb
        return (
            torch.from_numpy(out),
            _ticks_to_seconds(pts_out, tb),
            _ticks_to_seconds(dur_out, tb),
        )

    # -- GOP-parallel decoding -----------------------------------------------------------------
    #
    # A request that spans several GOPs is cut, at GOP boundaries, into one contiguous chunk per
    # core. Each chunk is decoded by a single-threaded clone of this reader (its own container
    # and decoder, sharing the frame index) in its own thread: PyAV releases the GIL while it
    # demuxes, decodes and converts, and independent GOPs need nothing from each other. Only in
    # exact mode (the keyframes are known), only when the reader may use several threads
    # (``num_threads != 1``) and only for sources that can be opened more than once.

    # Below this many frames to decode in all, the clones' thread start is not worth it.
    _PARALLEL_MIN_FRAMES = 8

    def _parallel_workers(self) -> int:
        if self._num_threads == 1:
            return 1
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            cores = os.cpu_count() or 1
        return max(1, min(cores, self._num_threads or cores, _MAX_PARALLEL_GOPS))

    def _plan_parallel(self, targets: Sequence[int]) -> list[tuple[int, int]] | None:
        """Cut sorted ``targets`` into contiguous ``(start, stop)`` slices, each made of whole
        GOPs, balanced by the number of frames each must decode; None when one thread should do
        the whole request."""
        if not self._gop_parallel or self._source.kind in ("file", "url"):
            # A caller's file object cannot be opened a second time; a URL could, but each
            # clone would fetch the header and its blocks again over the network.
            return None
        workers = self._parallel_workers()
        if workers < 2 or len(targets) < 2 or not self._keyframe_pts:
            return None
        if not self._must_seek(targets[0]):
            return None  # sequential reading (iteration): continue this reader's decode
        keys, pts = self._keyframe_pts, self._pts
        groups = []  # [start, stop, frames to decode, GOP number] per GOP touched
        for n, target in enumerate(targets):
            g = bisect.bisect_right(keys, target) - 1
            if groups and groups[-1][3] == g:
                groups[-1][1] = n + 1
            else:
                groups.append([n, n + 1, 0, g])
            first = bisect.bisect_left(pts, keys[g]) if g >= 0 else 0
            groups[-1][2] = bisect.bisect_left(pts, target) - first + 1
        total = sum(g[2] for g in groups)
        if len(groups) < 2 or total < self._PARALLEL_MIN_FRAMES:
            return None
        workers = min(workers, len(groups))
        chunks, done, start = [], 0, 0
        for k, g in enumerate(groups):
            done += g[2]
            later = workers - len(chunks) - 1  # chunks still to make after this one
            if later <= 0 or k + 1 == len(groups):
                continue
            # Close this chunk where the work done so far is nearest its share, or when each
            # later chunk needs one of the GOPs left.
            share = total * (len(chunks) + 1) / workers
            if done >= share or share - done < done + groups[k + 1][2] - share or (
                len(groups) - k - 1 == later
            ):
                chunks.append((start, g[1]))
                start = g[1]
        chunks.append((start, len(targets)))  # never empty: chunks close only before a GOP left
        return chunks

    def _clone(self) -> "FFmpegVideoReader":
        """A single-threaded reader of the same stream sharing this one's frame index."""
        clone = object.__new__(type(self))
        _Base.__init__(clone, self._source)
        clone.__dict__.update(
            {
                k: getattr(self, k)
                for k in ("_tb", "metadata", "container_metadata", "frame_pts", "frame_durations",
                          "_pts", "_keyframe_pts", "_coded_size", "_forward_window")
            }
        )
        clone._init_state()
        clone._num_threads = 1
        try:
            clone._attach(self.metadata.stream_index)
        except BaseException:
            clone.close()
            raise
        return clone

    def _close_workers(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()

    def _decode_parallel(self, targets: Sequence[int], chunks: list[tuple[int, int]], positions=None):
        into = self._new_into(len(targets), positions)
        while len(self._workers) < len(chunks):
            self._workers.append(self._clone())
        # Give each chunk the clone that can reach it without seeking, if there is one.
        free = list(self._workers)
        jobs = []
        for start, stop in chunks:
            worker = next((w for w in free if not w._must_seek(targets[start])), free[0])
            free.remove(worker)
            jobs.append((worker, start, stop))
        errors: list[BaseException] = []

        def run(worker, start, stop):
            try:
                worker._decode_exact(targets[start:stop], into, start)
            except BaseException as exc:  # re-raised in the calling thread below
                worker._frames = worker._pending = worker._cursor = None
                errors.append(exc)

        threads = [threading.Thread(target=run, args=job, daemon=True) for job in jobs[1:]]
        for thread in threads:
            thread.start()
        run(*jobs[0])
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return into

    # -- primitives ----------------------------------------------------------------------------

    # The facade may pass ``positions`` (see _new_into): the output is then already in the
    # caller's order, duplicates included.
    fills_positions = True

    def get_frames_at(self, indices: Sequence[int], positions=None):
        with self._lock:
            self._ensure_open()
            return self._get_frames_at(indices, positions)

    def _get_frames_at(self, indices: Sequence[int], positions=None):
        if self._pts:
            targets = [self._pts[i] for i in indices]
            chunks = self._plan_parallel(targets)
            if chunks is not None:
                return self._result(*self._decode_parallel(targets, chunks, positions)[:3])
            return self._result(*self._decode_exact(targets, self._new_into(len(targets), positions))[:3])
        fps = self.metadata.average_fps
        begin = self.metadata.begin_stream_seconds or 0.0
        return self._get_frames_played_at([begin + (i + 0.5) / fps for i in indices], positions)

    def _ticks(self, seconds: float) -> int:
        return int(math.floor(seconds / self._tb + 1e-6))

    def get_frames_played_at(self, seconds: Sequence[float], positions=None):
        with self._lock:
            self._ensure_open()
            return self._get_frames_played_at(seconds, positions)

    def _get_frames_played_at(self, seconds: Sequence[float], positions=None):
        targets = [self._ticks(s) for s in seconds]
        return self._result(*self._decode_played(targets, positions)[:3])

    def get_frames_played_in_range(self, start_seconds: float, stop_seconds: float):
        """The frame on screen at ``start_seconds`` and every frame with pts below
        ``stop_seconds`` (approximate mode)."""
        with self._lock:
            self._ensure_open()
            return self._get_frames_played_in_range(start_seconds, stop_seconds)

    def _get_frames_played_in_range(self, start_seconds: float, stop_seconds: float):
        start, stop = self._ticks(start_seconds), self._ticks(stop_seconds)
        frames = []
        if stop > start:
            # The frame on screen at start (last pts <= start), then every pts below stop.
            self._reach(start)
            while True:
                frame = self._next_frame()
                if frame is None or frame.pts >= stop:
                    break
                if frame.pts <= start or not frames:
                    frames[:] = [frame]
                else:
                    frames.append(frame)
        out = self._alloc(len(frames))
        pts_out = [0] * len(frames)
        dur_out = [0] * len(frames)
        for slot, frame in enumerate(frames):
            self._emit(frame, out, pts_out, dur_out, slot)
        return self._result(out, pts_out, dur_out)


def _color_name(value, kind: str) -> str | None:
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


class FFmpegAudioReader(_Base):
    """An audio stream read with PyAV; conversion by libswresample (``av.AudioResampler``)."""

    def __init__(
        self,
        source: Source,
        *,
        stream_index: int | None,
        sample_rate: int | None,
        num_channels: int | None,
    ):
        super().__init__(source)
        av = _av()
        self._frames = None
        self._used = False  # True once the container was read past its initial position
        self._container, self._fobj = open_container(source)
        try:
            self.container_metadata = container_metadata(self._container)
            stream = _select_stream(self._container, source, "audio", stream_index)
            self._stream = stream
            meta = self.container_metadata.streams[stream.index]
            assert isinstance(meta, AudioStreamMetadata)
            self.metadata = meta
            if not meta.sample_rate:
                raise InvalidMediaError(f"{source.name}: audio stream {stream.index} has no sample rate")
            self.sample_rate = int(sample_rate or meta.sample_rate)
            self.num_channels = int(num_channels or meta.num_channels or 1)
            if num_channels is None:
                self._layout = None  # keep the source's layout exactly
            else:
                self._layout = {1: "mono", 2: "stereo"}.get(num_channels, f"{num_channels}c")
        except av.FFmpegError as exc:
            self.close()
            raise InvalidMediaError(f"{source.name}: cannot read the audio stream: {_reason(exc)}") from exc
        except BaseException:
            self.close()
            raise

    def _rewind(self) -> None:
        """Go back to the start of the stream by reopening the container.

        ``seek(0)`` is not equivalent to a fresh open: it lands on the first packet with pts >= 0
        and skips those before it (the AAC priming packet that an MP4 edit list marks for discard,
        Opus pre-skip handling), so the first frames decode differently (near-silence instead of
        the signal). A fresh open decodes them exactly as a plain decode from the start does.
        """
        if not self._used:
            return
        index = self.metadata.stream_index
        container, fobj = self._container, self._fobj
        self._container = self._fobj = None
        container.close()
        if fobj is not None:
            fobj.close()
        self._container, self._fobj = open_container(self._source)
        self._stream = self._container.streams[index]
        self._used = False

    def _preroll_seconds(self) -> float:
        # Codecs with overlapping transforms or a bit reservoir (AAC, MP3, Opus, Vorbis) need a few
        # packets before the target to produce the same samples as a decode from the start.
        cc = self._stream.codec_context
        frame_size = cc.frame_size or 1024
        return max(0.1, 4 * frame_size / (self.metadata.sample_rate or 1))

    def get_samples_played_in_range(self, start_seconds: float, stop_seconds: float | None):
        av = _av()
        stream = self._stream
        tb = stream.time_base
        begin = self.metadata.begin_stream_seconds or 0.0
        seek_to = start_seconds - self._preroll_seconds()
        try:
            if seek_to > begin:
                self._container.seek(int(math.floor(seek_to / tb)), stream=stream, backward=True)
            else:
                self._rewind()
                stream = self._stream
            self._used = True
            # Packed float32 ("flt"), one plane: PyAV's to_ndarray on planar frames with more than 8
            # channels reads past AVFrame.data[8] and crashes.
            resampler = av.AudioResampler(format="flt", layout=self._layout, rate=self.sample_rate)
            # Frames already in float32 planar at the output rate and layout (MP3, AAC, Opus and
            # Vorbis decoders give fltp) are taken as they are: (channels, samples) per frame.
            direct = self._layout is None and self.sample_rate == self.metadata.sample_rate
            planar = []  # (channels, samples) arrays; chunks: packed (1, samples * channels)
            chunks = []
            first_pts = None
            next_pts = None
            num, den = tb.numerator, tb.denominator
            for frame in self._container.decode(stream):
                # (pts * num) / den: the correctly rounded seconds, as float(Fraction), cheaper
                t = (frame.pts * num) / den if frame.pts is not None else next_pts
                if t is None:
                    t = begin
                end = t + frame.samples / frame.sample_rate
                next_pts = end
                if stop_seconds is not None and t >= stop_seconds:
                    break
                if end <= start_seconds:
                    continue
                if first_pts is None:
                    first_pts = t
                if (
                    direct
                    and not chunks
                    and frame.format.name == "fltp"
                    and frame.sample_rate == self.sample_rate
                    and len(frame.layout.channels) == self.num_channels <= 8
                ):
                    planar.append(frame.to_ndarray())
                    continue
                if planar:  # the stream changed format mid-way: pack what was taken directly
                    chunks.append(np.concatenate(planar, axis=1).T.reshape(1, -1))
                    planar = []
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            if chunks:
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray())
        except av.FFmpegError as exc:
            raise DecodingError(f"{self._source.name}: audio decoding failed: {_reason(exc)}") from exc
        if planar:
            data = planar[0] if len(planar) == 1 else np.concatenate(planar, axis=1)
            return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)), first_pts
        if not chunks:
            return torch.empty((self.num_channels, 0), dtype=torch.float32), (
                first_pts if first_pts is not None else start_seconds
            )
        data = np.concatenate(chunks, axis=1).reshape(-1, self.num_channels).T
        return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)), first_pts


class FFmpegBackend:
    """FFmpeg through PyAV, on the CPU; the embedded default (priority 100)."""

    name = "ffmpeg"
    priority = 100
    devices = ("cpu",)
    media_types = ("video", "audio")
    install_hint = "pip install av"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import av  # noqa: F401
        except ImportError as exc:
            return f"PyAV is not importable ({exc}); fix: pip install av"
        return None

    def open_video(self, source: Source, *, stream_index, seek_mode, num_threads, device="cpu"):
        return FFmpegVideoReader(
            source, stream_index=stream_index, seek_mode=seek_mode, num_threads=num_threads
        )

    def open_audio(self, source: Source, *, stream_index, sample_rate, num_channels):
        return FFmpegAudioReader(
            source, stream_index=stream_index, sample_rate=sample_rate, num_channels=num_channels
        )
