"""Encoding with FFmpeg through PyAV: the ffmpeg backend's (and the nvenc backend's) encoder.

PyAV encodes and muxes. Colour conversion from the input's RGB to the encoder's pixel format is
FFmpeg's swscale (``av.video.reformatter.VideoReformatter``); sample-format, channel-layout and
sample-rate conversion, and cutting samples into the encoder's frame size, is FFmpeg's
libswresample inside ``av.AudioResampler`` (which PyAV's audio encoder runs on every frame).

Everything that can be refused is refused in :class:`PyAVStreamEncoder`'s constructor, before
FFmpeg writes the header (the first byte of output): unknown codecs and container formats, a
codec the container cannot hold (FFmpeg's ``avformat_query_codec``), pixel and sample formats
and sample rates the encoder lacks, and options the encoder refuses (the codecs are opened).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Sequence

import numpy as np
import torch

from .. import lifecycle
from ..encoding_protocol import (
    AudioStreamSpec,
    EncoderCapabilities,
    OutputTarget,
    VideoStreamSpec,
)
from ..errors import EncodingError, InvalidEncoderInputError, UnsupportedEncodingError
from ..pyav import av_reason, import_av

__all__ = ["PyAVStreamEncoder", "FFMPEG_ENCODER_CAPABILITIES", "nvenc_unavailable_reason"]

FFMPEG_ENCODER_CAPABILITIES = EncoderCapabilities(
    devices=("cpu", "cuda"),
    media_types=("video", "audio"),
    notes="PyAV's FFmpeg encoders and muxers; CUDA frames are copied to the CPU",
)

# Most precise first: the default sample format is the first of these the encoder supports.
_SAMPLE_FORMAT_PREFERENCE = ("fltp", "flt", "dblp", "dbl", "s32p", "s32", "s16p", "s16", "u8p", "u8")
_SAMPLE_FORMATS = {
    torch.float32: "flt", torch.float64: "dbl", torch.int16: "s16", torch.int32: "s32", torch.uint8: "u8",
}
_PLANAR_INPUT = {"flt": "fltp", "dbl": "dblp", "s16": "s16p", "s32": "s32p", "u8": "u8p"}
# Frames are converted to NHWC in chunks of this many frames (bounds the extra memory).
_CHUNK = 8


def nvenc_unavailable_reason() -> str | None:
    """None when PyAV's FFmpeg has the NVENC encoders and a CUDA device is visible, otherwise
    the reason."""
    try:
        av = import_av()
    except ImportError as exc:
        return f"PyAV is not importable ({exc}); fix: pip install av"
    missing = [n for n in ("h264_nvenc", "hevc_nvenc") if n not in av.codecs_available]
    if len(missing) == 2:
        return "PyAV's FFmpeg build has no NVENC encoder (h264_nvenc, hevc_nvenc)"
    if not torch.cuda.is_available():
        return "no CUDA device is visible to torch (NVENC needs an NVIDIA GPU and driver)"
    return None


def _refuse(target: OutputTarget, what: str, exc: BaseException | None = None) -> UnsupportedEncodingError:
    reason = f": {av_reason(exc)}" if exc is not None else ""
    return UnsupportedEncodingError(f"{target.name}: {what}{reason}")


def _check_supported(target: OutputTarget, codec, what: str, value: str, supported: list[str]) -> None:
    """Refuse ``value`` (a pixel or sample format) when the encoder lists its formats and it is
    not one of them; an encoder that lists none is left to FFmpeg."""
    if supported and value not in supported:
        raise _refuse(
            target, f"{what} {value!r} is not supported by the {codec.name} encoder; "
            f"supported: {', '.join(supported)}"
        )


def _find_encoder(av, name: str, kind: str, target: OutputTarget):
    try:
        codec = av.Codec(name, "w")
    except ValueError:
        raise _refuse(
            target, f"{kind} codec {name!r} not found in PyAV's FFmpeg; its encoders are listed by "
            "python -c \"import av; print(sorted(av.codecs_available))\""
        ) from None
    if codec.type != kind:
        raise _refuse(target, f"{codec.name!r} is a {codec.type} codec, not a {kind} codec")
    return codec


def _default_encoder(av, container, kind: str, target: OutputTarget):
    name = container.default_video_codec if kind == "video" else container.default_audio_codec
    if not name or name == "none":
        raise _refuse(target, f"the {container.format.name!r} format has no default {kind} codec; pass codec=")
    return _find_encoder(av, name, kind, target)


def _add_stream(container, codec, target: OutputTarget, **kwargs):
    try:
        return container.add_stream(codec.name, **kwargs)
    except ValueError as exc:  # avformat_query_codec said no
        raise _refuse(target, f"the {container.format.name!r} container cannot hold {codec.name!r}", exc) from None


class _VideoOut:
    """One video stream: its PyAV stream and the swscale converter into its pixel format."""

    def __init__(self, av, container, spec: VideoStreamSpec, target: OutputTarget, default_codec: str | None):
        codec = (
            _find_encoder(av, spec.codec or default_codec, "video", target)
            if (spec.codec or default_codec) else _default_encoder(av, container, "video", target)
        )
        formats = [f.name for f in (codec.video_formats or ())]
        if spec.pixel_format is not None:
            try:
                av.VideoFormat(spec.pixel_format)
            except ValueError:
                raise _refuse(target, f"unknown pixel format {spec.pixel_format!r}") from None
            _check_supported(target, codec, "pixel format", spec.pixel_format, formats)
            pix_fmt = spec.pixel_format
        else:
            # The encoder's first listed format is FFmpeg's preferred one (yuv420p for libx264).
            pix_fmt = formats[0] if formats else "yuv420p"
        fmt = av.VideoFormat(pix_fmt)
        for size, what in ((spec.width, "width"), (spec.height, "height")):
            chroma = fmt.chroma_width(1024) if what == "width" else fmt.chroma_height(1024)
            step = 1024 // chroma if chroma else 1
            if size % step:
                raise InvalidEncoderInputError(
                    f"{target.name}: frame {what} {size} must be a multiple of {step} for pixel "
                    f"format {pix_fmt!r} (its chroma is subsampled)"
                )
        rate = Fraction(spec.frame_rate)
        self.stream = _add_stream(container, codec, target, rate=rate)
        ctx = self.stream.codec_context
        ctx.width, ctx.height = spec.width, spec.height
        ctx.pix_fmt = pix_fmt
        ctx.time_base = 1 / rate
        self.stream.time_base = 1 / rate
        options = {}
        if spec.crf is not None:
            options["crf"] = f"{spec.crf:g}"
        if spec.preset is not None:
            options["preset"] = str(spec.preset)
        options.update(dict(spec.extra_options))
        if codec.experimental:
            options.setdefault("strict", "experimental")
        ctx.options = options
        # FFmpeg's threading defaults (frame and slice threads, automatic count: x264 runs 1.5 x
        # cores frame threads), as the ffmpeg CLI and torchcodec use; PyAV asks for slices only
        options.setdefault("threads", "0")
        ctx.thread_type = "AUTO"
        self.codec_name = codec.name
        self.pix_fmt = pix_fmt
        self.width, self.height = spec.width, spec.height
        self.next_pts = 0
        self.reformatter = av.video.reformatter.VideoReformatter()
        self._av = av
        self._gbrp = None
        self._gbrp_views: list = []

    def frames_of(self, frames: torch.Tensor):
        """``av.VideoFrame`` objects in the encoder's pixel format, one per input frame."""
        av = self._av
        if frames.device.type != "cpu":
            frames = frames.cpu()
        if frames.dtype == torch.uint8:
            # NCHW is planar RGB already: copy the planes into a gbrp frame (no permute), which
            # swscale converts faster than packed rgb24
            for chw in frames.numpy():
                frame = self._gbrp_frame()
                for view, channel in zip(self._gbrp_views, (chw[1], chw[2], chw[0])):
                    view[:, : self.width] = channel
                yield self._stamp(frame)
            return
        for start in range(0, frames.shape[0], _CHUNK):
            chunk = frames[start:start + _CHUNK].permute(0, 2, 3, 1).contiguous().numpy()
            for hwc in chunk:
                yield self._stamp(av.VideoFrame.from_numpy_buffer(hwc, format="rgbf32le"))

    def _gbrp_frame(self):
        """The gbrp frame to fill: one, reused, when it is converted (swscale reads it before
        the next is filled); a new one when it goes to the encoder as it is (encoders keep a
        reference to the frames they are given)."""
        if self._gbrp is None or self.pix_fmt == "gbrp":
            self._gbrp = self._av.VideoFrame(self.width, self.height, "gbrp")
            self._gbrp_views = [
                np.frombuffer(p, dtype=np.uint8).reshape(p.height, p.line_size) for p in self._gbrp.planes
            ]
        return self._gbrp

    def _stamp(self, frame):
        if frame.format.name != self.pix_fmt:
            frame = self.reformatter.reformat(frame, format=self.pix_fmt, threads=1)
        frame.pts = self.next_pts
        self.next_pts += 1
        return frame


class _AudioOut:
    """One audio stream: its PyAV stream; PyAV's encoder resamples into it (libswresample)."""

    def __init__(self, av, container, spec: AudioStreamSpec, target: OutputTarget):
        codec = (
            _find_encoder(av, spec.codec, "audio", target)
            if spec.codec else _default_encoder(av, container, "audio", target)
        )
        out_rate = spec.out_sample_rate or spec.sample_rate
        rates = codec.audio_rates
        if rates and out_rate not in rates:
            raise _refuse(
                target, f"invalid sample rate={out_rate} for the {codec.name} encoder; supported "
                f"sample rates: {', '.join(str(r) for r in rates)} (pass sample_rate= to resample)"
            )
        formats = [f.name for f in (codec.audio_formats or ())]
        if spec.sample_format is not None:
            _check_supported(target, codec, "sample format", spec.sample_format, formats)
            sample_fmt = spec.sample_format
        else:
            sample_fmt = next((f for f in _SAMPLE_FORMAT_PREFERENCE if f in formats), None) or (
                formats[0] if formats else "fltp"
            )
        out_channels = spec.out_num_channels or spec.num_channels
        self.stream = _add_stream(container, codec, target, rate=out_rate)
        ctx = self.stream.codec_context
        ctx.format = sample_fmt
        ctx.layout = av.AudioLayout(f"{out_channels}c")  # FFmpeg's default layout for that count
        ctx.sample_rate = out_rate
        ctx.time_base = Fraction(1, out_rate)
        self.stream.time_base = Fraction(1, out_rate)
        if spec.bit_rate is not None:
            ctx.bit_rate = spec.bit_rate
        options = dict(spec.extra_options)
        if codec.experimental:
            options.setdefault("strict", "experimental")
        ctx.options = options
        self.codec_name = codec.name
        self.in_layout = av.AudioLayout(f"{spec.num_channels}c")
        self.in_rate = spec.sample_rate
        self.next_pts = 0
        self._av = av

    def frame_of(self, samples: torch.Tensor):
        frame = self._av.AudioFrame.from_ndarray(
            samples.numpy(), format=_PLANAR_INPUT[_SAMPLE_FORMATS[samples.dtype]], layout=self.in_layout
        )
        frame.sample_rate = self.in_rate
        frame.time_base = Fraction(1, self.in_rate)
        frame.pts = self.next_pts
        self.next_pts += samples.shape[1]
        return frame


class PyAVStreamEncoder:
    """A :class:`~mediadecode.encoding_protocol.StreamEncoder` writing ``target`` with PyAV.

    ``default_video_codec`` replaces the container's default video codec (the nvenc backend
    passes ``"h264_nvenc"``).

    Raises:
        UnsupportedEncodingError: as the module says; nothing has been written.
        InvalidEncoderInputError: a frame size the pixel format cannot hold.
    """

    def __init__(
        self,
        target: OutputTarget,
        video: Sequence[VideoStreamSpec],
        audio: Sequence[AudioStreamSpec],
        *,
        default_video_codec: str | None = None,
    ):
        av = import_av()
        self.target = target
        try:
            container = av.open(target.file, mode="w", format=target.format)
        except ValueError as exc:
            raise _refuse(target, f"FFmpeg has no container format {target.format!r}", exc) from None
        self._container: Any = container
        try:
            self._video = [_VideoOut(av, container, s, target, default_video_codec) for s in video]
            self._audio = [_AudioOut(av, container, s, target) for s in audio]
            for out in (*self._video, *self._audio):
                try:
                    out.stream.codec_context.open()
                except av.FFmpegError as exc:
                    raise _refuse(target, f"FFmpeg cannot open the {out.codec_name} encoder with "
                                  "these settings", exc) from None
            try:
                container.start_encoding()  # writes the header: the first byte of output
            except av.FFmpegError as exc:
                raise _refuse(target, f"the {container.format.name!r} muxer refuses these streams",
                              exc) from None
        except BaseException:
            self.abort()
            raise

    @property
    def format_name(self) -> str:
        return self._container.format.name

    def _mux(self, packets) -> None:
        try:
            self._container.mux(packets)
        except Exception as exc:
            raise EncodingError(f"{self.target.name}: writing failed: {av_reason(exc)}") from exc

    def _encode(self, stream, frame) -> None:
        av = import_av()
        try:
            packets = stream.encode(frame)
        except av.FFmpegError as exc:
            raise EncodingError(
                f"{self.target.name}: the {stream.codec_context.name} encoder failed: {av_reason(exc)}"
            ) from exc
        if packets:
            self._mux(packets)

    def _check_open(self) -> None:
        if self._container is None:
            raise ValueError(f"{self.target.name}: the encoder is closed")

    def add_frames(self, stream: int, frames: torch.Tensor) -> None:
        self._check_open()
        out = self._video[stream]
        for frame in out.frames_of(frames):
            self._encode(out.stream, frame)

    def add_samples(self, stream: int, samples: torch.Tensor) -> None:
        self._check_open()
        out = self._audio[stream]
        if samples.shape[1] == 0:
            return
        self._encode(out.stream, out.frame_of(samples))

    def finish(self) -> None:
        if self._container is None:
            return
        try:
            for out in (*self._video, *self._audio):
                self._encode(out.stream, None)
            container, self._container = self._container, None
            try:
                container.close()  # writes the trailer
            except Exception as exc:
                raise EncodingError(f"{self.target.name}: writing the trailer failed: {av_reason(exc)}") from exc
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        container, self._container = self._container, None
        self._video = self._audio = []
        lifecycle.close_media(container)
