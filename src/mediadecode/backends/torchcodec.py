"""The ``torchcodec`` backend: video and audio through torchcodec's public API, on the CPU and,
where torch sees a GPU, on CUDA.

Only public names are used: ``torchcodec.decoders.VideoDecoder``, ``AudioDecoder``,
``get_container_metadata`` and ``Demuxer`` (its ``VideoStream.scan()`` gives the exact-mode
frame index from the packets, without decoding). torchcodec loads FFmpeg's shared libraries
(major versions 4 to 8) when it is imported; where they are missing, :func:`mediadecode.list_backends`
lists this backend as unavailable with the fix (``apt-get install ffmpeg``, or
``conda install -c conda-forge ffmpeg``), and nothing is imported before that check.

torchcodec >= 0.11 rotates frames by the display matrix itself and reports ``width``/``height``
after rotation, as mediadecode does: readers set ``frames_are_rotated = True``.

In ``seek_mode="approximate"`` index ``i`` means the frame on screen at
``begin + (i + 0.5) / average_fps`` (the facade's documented rule, the same on every backend),
fetched with torchcodec's ``get_frames_played_at``.
"""

from __future__ import annotations

import json
import threading
from fractions import Fraction
from typing import Any, Sequence

import torch

from ..capabilities import Capabilities, Tolerance
from ..registry import CachedAvailability
from ..errors import (
    BackendUnavailableError,
    DecodingError,
    InvalidMediaError,
    StreamNotFoundError,
    UnsupportedRequestError,
)
from ..frame_index import FrameIndex, FrameMappings
from ..metadata import (
    AudioStreamMetadata,
    ContainerMetadata,
    StreamMetadata,
    VideoStreamMetadata,
    resolve_video,
)
from ..sources import Source
from .torchcodec_encoder import TORCHCODEC_ENCODER_CAPABILITIES, TorchCodecStreamEncoder

__all__ = ["TorchCodecBackend", "TorchCodecVideoReader", "TorchCodecAudioReader"]

FFMPEG_FIX = (
    "install FFmpeg's shared libraries: apt-get install ffmpeg (Debian/Ubuntu), "
    "or conda install -c conda-forge ffmpeg"
)


def _decoders():
    from torchcodec import decoders

    return decoders


def _tc_source(source: Source) -> Any:
    """What torchcodec takes: a path ``str``, ``bytes``, or the file object rewound to 0."""
    if source.kind == "path":
        return source.value
    if source.kind == "bytes":
        return source.value
    return source.open_binary()


def _reason(exc: BaseException) -> str:
    """torchcodec's message without the C++ function and source location prefix."""
    text = str(exc) or type(exc).__name__
    parts = [p.strip() for p in text.split(", ")]
    # "<function>, <file>.cpp:<line>, <message>": keep the message.
    for k, part in enumerate(parts):
        if ".cpp:" in part or ".h:" in part:
            return ", ".join(parts[k + 1:])[:400] or text[:400]
    return text[:400]


def _copy_fields(cls, obj, **overrides):
    import dataclasses

    values = {}
    for f in dataclasses.fields(cls):
        if f.name in overrides:
            values[f.name] = overrides[f.name]
        elif f.init:
            values[f.name] = getattr(obj, f.name, None)
    return cls(**values)


def _float(value) -> float | None:
    return None if value is None else float(value)


def _stream_metadata(tc_meta) -> StreamMetadata:
    media_type = getattr(tc_meta, "media_type", None) or "unknown"
    common = dict(
        duration_seconds_from_header=_float(tc_meta.duration_seconds_from_header),
        begin_stream_seconds_from_header=_float(tc_meta.begin_stream_seconds_from_header),
        bit_rate=_float(tc_meta.bit_rate) or None,
        codec=tc_meta.codec,
        stream_index=int(tc_meta.stream_index),
        media_type=media_type if media_type in ("video", "audio", "subtitle", "data", "attachment") else "unknown",
    )
    if media_type == "video":
        g = lambda name: getattr(tc_meta, name, None)  # noqa: E731
        fps = g("average_fps_from_header")
        return VideoStreamMetadata(
            **common,
            width=g("width"),
            height=g("height"),
            num_frames_from_header=g("num_frames_from_header"),
            average_fps_from_header=_float(fps),
            pixel_aspect_ratio=g("pixel_aspect_ratio"),
            rotation=_float(g("rotation")),
            color_primaries=g("color_primaries"),
            color_space=g("color_space"),
            color_transfer_characteristic=g("color_transfer_characteristic"),
            pixel_format=g("pixel_format"),
        )
    if media_type == "audio":
        begin = common["begin_stream_seconds_from_header"]
        return AudioStreamMetadata(
            **common,
            sample_rate=getattr(tc_meta, "sample_rate", None),
            num_channels=getattr(tc_meta, "num_channels", None),
            sample_format=getattr(tc_meta, "sample_format", None),
            duration_seconds=common["duration_seconds_from_header"],
            begin_stream_seconds=begin if begin is not None else 0.0,
        )
    return StreamMetadata(**common)


def _container_metadata(source: Source) -> ContainerMetadata:
    # torchcodec's FFmpeg has no protocol or format whitelist: check the source with the ffmpeg
    # backend's safe defaults first, so that a playlist never makes it open other files.
    from ..pyav import refuse_unsafe_formats

    refuse_unsafe_formats(source)
    decoders = _decoders()
    try:
        cm = decoders.get_container_metadata(_tc_source(source))
    except Exception as exc:
        raise InvalidMediaError(
            f"{source.name}: torchcodec cannot read it as media: {_reason(exc)}"
        ) from exc
    streams = [_stream_metadata(s) for s in cm.streams]
    if any(s.codec in ("ansi", "tty") for s in streams):
        # FFmpeg's tty demuxer "opens" any text file as ANSI-art video.
        raise InvalidMediaError(
            f"{source.name}: cannot be read as media: FFmpeg only recognises it as a text file "
            "rendered as ANSI art ('tty' demuxer)"
        )
    duration = _float(cm.duration_seconds_from_header)
    for s in streams:
        if isinstance(s, AudioStreamMetadata) and s.duration_seconds is None:
            s.duration_seconds = duration
    return ContainerMetadata(
        duration_seconds_from_header=duration,
        bit_rate_from_header=_float(cm.bit_rate_from_header) or None,
        best_video_stream_index=cm.best_video_stream_index,
        best_audio_stream_index=cm.best_audio_stream_index,
        streams=streams,
        format_name=None,
    )


def _mapped_index(source: Source, stream_index: int, mappings: FrameMappings) -> FrameIndex:
    """The frame index of the caller's mappings, checked against the stream as the ffmpeg
    backend checks it. The stream's time base, which torchcodec does not expose, and its first
    packet are read with PyAV.

    Raises:
        FrameMappingsError: the mappings do not fit the stream.
    """
    from ..pyav import first_packet_pts, open_container

    with open_container(source) as media:
        stream = media.container.streams[stream_index]
        index = FrameIndex.from_ffprobe_json(mappings, Fraction(stream.time_base))
        index.check_mapped(first_packet_pts(media.container, stream),
                           f"{source.name}, stream {stream_index}")
    return index


def _check_stream(source: Source, cmeta: ContainerMetadata, media_type: str, stream_index: int | None) -> int:
    """The stream to decode, checked as the ffmpeg backend checks it (same error classes)."""
    if stream_index is None:
        best = cmeta.best_video_stream_index if media_type == "video" else cmeta.best_audio_stream_index
        if best is None:
            have = ", ".join(f"{s.stream_index}:{s.media_type}" for s in cmeta.streams) or "none"
            raise StreamNotFoundError(f"{source.name}: no {media_type} stream (streams: {have})")
        return int(best)
    if not 0 <= stream_index < len(cmeta.streams):
        raise StreamNotFoundError(
            f"{source.name}: stream_index {stream_index} is out of range; "
            f"the file has {len(cmeta.streams)} streams"
        )
    kind = cmeta.streams[stream_index].media_type
    if kind != media_type:
        raise StreamNotFoundError(
            f"{source.name}: stream {stream_index} is a {kind} stream, not {media_type}"
        )
    return stream_index


def _torchcodec_transforms(plan) -> list:
    """A resolved :class:`~mediadecode.transforms.TransformPlan` as torchcodec 0.17 transform
    objects. A crop at a drawn location (our ``RandomCrop``, drawn once by the decoder) is
    handed over as torchcodec's own fixed-location crop spec (``"crop, h, w, x, y"``, what its
    ``RandomCrop`` produces), through a ``DecoderTransform`` subclass, so torchcodec does not
    draw again."""
    from torchcodec import transforms as tct

    class FixedCrop(tct.DecoderTransform):
        def __init__(self, height: int, width: int, left: int, top: int):
            self.size = (height, width)
            self.left, self.top = left, top

        def _make_transform_spec(self, input_dims) -> str:
            return f"crop, {self.size[0]}, {self.size[1]}, {self.left}, {self.top}"

        def _get_output_dims(self):
            return self.size

    out = []
    for step in plan.steps:
        if step.kind == "resize":
            out.append(tct.Resize((step.height, step.width)))
        elif step.left is None:
            out.append(tct.CenterCrop((step.height, step.width)))
        else:
            out.append(FixedCrop(step.height, step.width, step.left, step.top))
    return out


class TorchCodecVideoReader:
    """A video stream read with ``torchcodec.decoders.VideoDecoder``.

    ``frame_mappings`` (ffprobe's frame list) are handed to torchcodec as its
    ``custom_frame_mappings``; the reader's own frame index is then built from them (the stream's
    time base read with PyAV, as torchcodec does not expose it) instead of a scan.

    Attributes:
        frame_index: the :class:`~mediadecode.frame_index.FrameIndex` built from
            ``frame_mappings``, else None (the scan gives seconds only).
        key_frame_indices: int64 keyframe indices from torchcodec's scan (its ``Demuxer``) or
            the mappings; None in approximate mode.
    """

    frames_are_rotated = True

    def __init__(
        self,
        source: Source,
        *,
        stream_index: int | None,
        seek_mode: str,
        num_threads: int,
        device: str,
        transforms=None,
        output_dtype: str = "uint8",
        frame_mappings: FrameMappings | None = None,
    ):
        self._source = source
        self._lock = threading.RLock()
        self._seek_mode = seek_mode
        self.frame_index: FrameIndex | None = None
        self.key_frame_indices: torch.Tensor | None = None
        self._device = device
        cmeta = _container_metadata(source)
        index = _check_stream(source, cmeta, "video", stream_index)
        decoders = _decoders()
        extra = {}
        if transforms is not None:
            shown = cmeta.streams[index]
            extra["transforms"] = _torchcodec_transforms(
                transforms.resolve(getattr(shown, "height", None), getattr(shown, "width", None))
            )
        if output_dtype != "uint8":
            extra["output_dtype"] = torch.float32 if output_dtype == "float32" else "auto"
        if frame_mappings is not None:
            self.frame_index = _mapped_index(source, index, frame_mappings)
            extra["custom_frame_mappings"] = json.dumps(self.frame_index.as_ffprobe_json())
        try:
            self._dec = decoders.VideoDecoder(
                _tc_source(source),
                stream_index=index,
                dimension_order="NHWC",
                num_ffmpeg_threads=int(num_threads),
                device=device,
                seek_mode=seek_mode,
                **extra,
            )
        except Exception as exc:
            raise InvalidMediaError(
                f"{source.name}: torchcodec cannot open the video stream: {_reason(exc)}"
            ) from exc
        tc = self._dec.metadata
        meta = _stream_metadata(tc)
        assert isinstance(meta, VideoStreamMetadata)
        self._frame_pts: torch.Tensor | None = None
        self._frame_durations: torch.Tensor | None = None
        if self.frame_index is not None:
            self._frame_pts = self.frame_index.pts_seconds
            self._frame_durations = self.frame_index.duration_seconds
            self.key_frame_indices = self.frame_index.key_frame_indices
        elif seek_mode == "exact":
            self._scan(meta.stream_index)
        if seek_mode == "exact":
            # Content fields from the scan (torchcodec's Demuxer) or the mappings, with missing
            # packet durations filled from the gap to the next frame (as the ffmpeg backend
            # does): torchcodec leaves them 0, which would end a VFR stream at its last frame.
            pts, dur = self._frame_pts, self._frame_durations
            meta.num_frames_from_content = len(pts)
            if len(pts):
                meta.begin_stream_seconds_from_content = float(pts[0])
                meta.end_stream_seconds_from_content = float(torch.max(pts + dur))
        resolve_video(meta, cmeta.duration_seconds_from_header)
        if seek_mode == "approximate" and not meta.average_fps:
            raise InvalidMediaError(
                f"{source.name}: the header gives no frame rate; use seek_mode='exact'"
            )
        cmeta.streams[index] = meta
        self.metadata = meta
        self.container_metadata = cmeta

    # -- exact-mode frame index (a demux pass with torchcodec's Demuxer, no decoding) ----------

    def _scan(self, stream_index: int) -> None:
        decoders = _decoders()
        try:
            demuxer = decoders.Demuxer(_tc_source(self._source), streams=stream_index)
            index = demuxer.streams[0].scan()
        except Exception as exc:
            raise InvalidMediaError(
                f"{self._source.name}: torchcodec could not scan the packets: {_reason(exc)}"
            ) from exc
        self.key_frame_indices = index.key_frame_indices.to(torch.int64).cpu()
        pts = index.pts_seconds.to(torch.float64).cpu()
        dur = index.duration_seconds.to(torch.float64).cpu().clone()
        gaps = torch.diff(pts)
        for k in torch.nonzero(dur <= 0).flatten().tolist():
            if k + 1 < len(pts):
                dur[k] = gaps[k]
            elif k > 0:
                dur[k] = dur[k - 1]
        self._frame_pts, self._frame_durations = pts, dur

    @property
    def frame_pts(self) -> torch.Tensor | None:
        """Every frame's pts (float64 seconds, presentation order) in exact mode, else None."""
        return self._frame_pts if self._seek_mode == "exact" else None

    @property
    def frame_durations(self) -> torch.Tensor | None:
        """Every frame's duration (float64 seconds; a missing one is the gap to the next frame)
        in exact mode, else None."""
        return self._frame_durations if self._seek_mode == "exact" else None

    # -- primitives ----------------------------------------------------------------------------

    def _result(self, batch):
        return (
            batch.data,
            batch.pts_seconds.to(torch.float64).cpu(),
            batch.duration_seconds.to(torch.float64).cpu(),
        )

    def _call(self, what: str, fn, *args):
        if self._dec is None:
            raise ValueError(f"{self._source.name}: the reader is closed")
        try:
            with self._lock:
                return self._result(fn(*args))
        except (IndexError, ValueError):
            raise
        except Exception as exc:
            raise DecodingError(
                f"{self._source.name}: torchcodec could not decode {what}: {_reason(exc)}"
            ) from exc

    def get_frames_at(self, indices: Sequence[int]):
        """Frames at sorted, unique indices: ``(uint8 (N, H, W, 3), pts, durations)``."""
        indices = [int(i) for i in indices]
        if self._seek_mode == "exact":
            data, _, _ = self._call(f"frames {indices[:1]}..{indices[-1:]}", self._dec.get_frames_at, indices)
            index = torch.tensor(indices, dtype=torch.long)
            return data, self._frame_pts[index], self._frame_durations[index]
        meta = self.metadata
        begin = meta.begin_stream_seconds or 0.0
        end = meta.end_stream_seconds
        times = [begin + (i + 0.5) / meta.average_fps for i in indices]
        if end is not None:
            last = end - 1e-6
            times = [min(t, last) for t in times]
        return self.get_frames_played_at(times)

    def get_frames_played_at(self, seconds: Sequence[float]):
        """For each sorted time, the frame on screen then."""
        return self._call("frames played at the given times", self._dec.get_frames_played_at, list(seconds))

    def get_frames_played_in_range(self, start_seconds: float, stop_seconds: float):
        """The frame on screen at ``start_seconds``, then every frame with pts below stop.

        torchcodec 0.17's approximate mode turns the range into frame indices with the header's
        frame rate, so a header rate above the real one returns frames past ``stop_seconds``
        (a range shorter than a frame came back as ten frames on a VFR file): they are dropped
        here, and so are frames before the one on screen at the start."""
        data, pts, dur = self._call(
            f"frames in [{start_seconds}, {stop_seconds})",
            self._dec.get_frames_played_in_range,
            start_seconds,
            stop_seconds,
        )
        keep = pts < stop_seconds
        on_screen = torch.nonzero(keep & (pts <= start_seconds)).flatten()
        if len(on_screen):
            keep[: int(on_screen[-1])] = False
        if bool(keep.all()):
            return data, pts, dur
        where = torch.nonzero(keep).flatten()
        return data[where.to(data.device)], pts[where], dur[where]

    def close(self) -> None:
        self._dec = None


class TorchCodecAudioReader:
    """An audio stream read with ``torchcodec.decoders.AudioDecoder`` (FFmpeg's swresample)."""

    def __init__(
        self,
        source: Source,
        *,
        stream_index: int | None,
        sample_rate: int | None,
        num_channels: int | None,
    ):
        self._source = source
        cmeta = _container_metadata(source)
        index = _check_stream(source, cmeta, "audio", stream_index)
        decoders = _decoders()
        try:
            self._dec = decoders.AudioDecoder(
                _tc_source(source),
                stream_index=index,
                sample_rate=sample_rate,
                num_channels=num_channels,
            )
        except Exception as exc:
            raise InvalidMediaError(
                f"{source.name}: torchcodec cannot open the audio stream: {_reason(exc)}"
            ) from exc
        meta = cmeta.streams[index]
        assert isinstance(meta, AudioStreamMetadata)
        if not meta.sample_rate:
            raise InvalidMediaError(f"{source.name}: audio stream {index} has no sample rate")
        self.metadata = meta
        self.container_metadata = cmeta
        self.sample_rate = int(sample_rate or meta.sample_rate)
        self.num_channels = int(num_channels or meta.num_channels or 1)
        self._lock = threading.RLock()

    def get_samples_played_in_range(self, start_seconds: float, stop_seconds: float | None):
        """``(float32 (C, S), first_pts)`` for ``[start, stop)``; empty past the end."""
        if self._dec is None:
            raise ValueError(f"{self._source.name}: the reader is closed")
        begin = self.metadata.begin_stream_seconds or 0.0
        start = max(float(start_seconds), begin)
        empty = torch.empty((self.num_channels, 0), dtype=torch.float32)
        if stop_seconds is not None and stop_seconds <= start:
            return empty, start
        try:
            with self._lock:
                samples = self._dec.get_samples_played_in_range(start, stop_seconds)
        except Exception as exc:
            if "No audio frames were decoded" in str(exc):
                return empty, start  # the range lies past the last sample
            raise DecodingError(
                f"{self._source.name}: torchcodec audio decoding failed: {_reason(exc)}"
            ) from exc
        return samples.data.to(torch.float32), float(samples.pts_seconds)

    def close(self) -> None:
        self._dec = None


def _core_load_error() -> BaseException | None:
    """The error torchcodec's loader gives for its FFmpeg-backed core: its public entry points
    re-run the loader, which raises a ``RuntimeError`` listing what it tried."""
    try:
        _decoders().VideoDecoder(b"")
    except Exception as exc:
        return exc
    return None


def _libraries_missing(exc: BaseException | None) -> str:
    detail = ""
    if exc is not None:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        detail = f" ({type(exc).__name__}: {first})"
    return (
        f"torchcodec is installed but its native core cannot load FFmpeg's shared "
        f"libraries{detail}; fix: {FFMPEG_FIX}"
    )


class TorchCodecBackend(CachedAvailability):
    """torchcodec (priority 50: below ffmpeg, above decord); CPU, and CUDA where available."""

    name = "torchcodec"
    priority = 50
    install_hint = 'pip install "mediadecode[torchcodec]"'
    capabilities = Capabilities(
        devices=("cpu", "cuda"),
        media_types=("video", "audio"),
        source_kinds=("path", "bytes", "file"),
        remote=True,  # torchcodec reads a file object through AVIO callbacks, on demand
        seek_modes=("exact", "approximate"),
        codecs=None,
        # Another FFmpeg build: lossy audio decoders may differ by float rounding (measured
        # 1.2e-7 on AAC and Opus). NVDEC frames go through torchcodec's CUDA colour
        # conversion, not swscale.
        tolerance={
            "cpu": Tolerance(audio_max_abs=1e-5),
            "cuda": Tolerance(max_abs=64, mean_abs=3.0, audio_max_abs=1e-5),
        },
        notes="system FFmpeg 4-8 shared libraries; CUDA through NVDEC",
        # torchcodec 0.17 applies decoder transforms (CPU only) and float output itself.
        transforms=frozenset({"resize", "crop"}),
        output_dtypes=("uint8", "float32"),
        frame_mappings=True,  # handed to torchcodec's custom_frame_mappings
        ffmpeg_based=True,
    )
    # Stated once, in the capabilities; the class attributes mirror them for the protocol.
    devices = capabilities.devices
    media_types = capabilities.media_types

    @staticmethod
    def check_availability() -> str | None:
        """Whether torchcodec's native core loaded FFmpeg's shared libraries.

        torchcodec 0.17 imports without them (its image decoders need no FFmpeg) and binds its
        FFmpeg operations to stubs that raise on first use; ``torchcodec.ffmpeg_major_version``
        (public, for downstream builds) is None then. Older releases fail at import instead.
        Both are checked once per process, at the first availability question, never at import
        of mediadecode.
        """
        import importlib.util

        if importlib.util.find_spec("torchcodec") is None:
            return 'torchcodec is not installed; fix: pip install "mediadecode[torchcodec]"'
        try:
            import torchcodec

            _decoders()
        except Exception as exc:  # an older torchcodec whose import loads FFmpeg
            return _libraries_missing(exc)
        if getattr(torchcodec, "ffmpeg_major_version", 0) is None:
            return _libraries_missing(_core_load_error())
        return None

    def open_video(self, source: Source, *, stream_index, seek_mode, num_threads, device="cpu",
                   transforms=None, output_dtype="uint8",
                   frame_mappings: FrameMappings | None = None):
        if device.split(":", 1)[0] == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError(
                "torchcodec: CUDA decoding needs a GPU that torch can see "
                "(torch.cuda.is_available() is False)"
            )
        if device.split(":", 1)[0] == "cuda" and transforms is not None:
            # torchcodec 0.17 applies decoder transforms on the CPU only: its CUDA decoder fails
            # inside torchcodec. Refused here, so automatic selection can hand over.
            raise UnsupportedRequestError(
                f"{source.name}: torchcodec 0.17 applies decoder transforms on the CPU only, "
                f"not on {device!r}; decode on the CPU, or let mediadecode choose the backend"
            )
        if device.split(":", 1)[0] == "cuda":
            from ..cuda_options import get_nvdec_cache_capacity

            capacity = get_nvdec_cache_capacity()  # mediadecode.set_nvdec_cache_capacity's value
            if _decoders().get_nvdec_cache_capacity() != capacity:
                _decoders().set_nvdec_cache_capacity(capacity)
        return TorchCodecVideoReader(
            source, stream_index=stream_index, seek_mode=seek_mode, num_threads=num_threads,
            device=device, transforms=transforms, output_dtype=output_dtype,
            frame_mappings=frame_mappings,
        )

    def open_audio(self, source: Source, *, stream_index, sample_rate, num_channels):
        return TorchCodecAudioReader(
            source, stream_index=stream_index, sample_rate=sample_rate, num_channels=num_channels
        )

    # Encoding (mediadecode.encoders): torchcodec's Encoder, in torchcodec_encoder.
    encoder_capabilities = TORCHCODEC_ENCODER_CAPABILITIES

    def open_encoder(self, target, video, audio):
        """A :class:`~mediadecode.backends.torchcodec_encoder.TorchCodecStreamEncoder`."""
        return TorchCodecStreamEncoder(target, video, audio)
