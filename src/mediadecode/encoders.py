"""Encoding video and audio: torchcodec 0.17's encoder API (``torchcodec.encoders``), on the
backend registry.

- :class:`VideoEncoder` (``frames``, ``frame_rate=``) and :class:`AudioEncoder` (``samples``,
  ``sample_rate=``) encode one stream in one call, with ``to_file``, ``to_tensor`` and
  ``to_file_like``;
- :class:`Encoder` writes several streams incrementally: ``add_video`` / ``add_audio``, then
  ``open_file`` / ``open_file_like``, then :meth:`VideoStream.add_frames` and
  :meth:`AudioStream.add_samples`, then ``close`` (or a ``with`` block).

Names, arguments and defaults are torchcodec 0.17's. What this facade adds, the same on every
backend:

- every argument and tensor is checked before anything is written, and a bad one raises
  :class:`~mediadecode.errors.InvalidEncoderInputError` (a ``ValueError``, as torchcodec raises);
  an unknown codec, format or pixel format, or a codec the container cannot hold, raises
  :class:`~mediadecode.errors.UnsupportedEncodingError` (also a ``ValueError``), again before
  anything is written;
- a path destination is written to a temporary file beside it and renamed over it only when the
  encode succeeded: a failed encode leaves the destination as it was (torchcodec 0.17 leaves a
  partial file);
- an encoder that fails, or a ``with`` block left by an exception, releases the encoder and
  discards the output;
- the backend is chosen as for decoding (``backend=`` > :func:`~mediadecode.use_backend` >
  ``MEDIADECODE_BACKEND`` > config file > the highest-priority backend that encodes): see
  :mod:`mediadecode.encoder_selection`.

Differences from torchcodec 0.17, all additions: frames may also be ``torch.float32`` in
[0, 1] (converted to the pixel format by FFmpeg's swscale from ``rgbf32``); ``add_samples`` also
takes ``float64``, ``int16``, ``int32`` and ``uint8`` samples (one dtype per stream); ``format``
may be a file extension (``"mkv"``, ``"m4a"``) as well as an FFmpeg muxer name; ``add_audio``
takes ``codec``, ``sample_format`` and ``extra_options``; empty tensors and non-finite values are
refused (torchcodec writes a file with no frames, or encodes NaN).
"""

from __future__ import annotations

import io
import math
import numbers
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import registry
from .encoder_selection import plan_encoders
from .encoding_protocol import AudioStreamSpec, OutputTarget, StreamEncoder, VideoStreamSpec
from .errors import InvalidEncoderInputError, MediaDecodeError, UnsupportedEncodingError
from .output_files import AtomicOutputFile, CallerOutputFile

__all__ = ["VideoEncoder", "AudioEncoder", "Encoder", "VideoStream", "AudioStream"]

MAX_CHANNELS = 8
"""FFmpeg encodes at most 8 channels per frame (torchcodec's limit too)."""

_SAMPLE_DTYPES = {
    torch.float32: "flt",
    torch.float64: "dbl",
    torch.int16: "s16",
    torch.int32: "s32",
    torch.uint8: "u8",
}


# ---------------------------------------------------------------------------------------------
# argument checks


def _bad(message: str) -> InvalidEncoderInputError:
    return InvalidEncoderInputError(message)


def _positive_int(value, name: str, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise _bad(f"{name} must be an int > 0, got {value!r}")
    return int(value)


def _channels(value, name: str, *, allow_none: bool = False) -> int | None:
    value = _positive_int(value, name, allow_none=allow_none)
    if value is not None and value > MAX_CHANNELS:
        raise _bad(f"{name}={value}: FFmpeg encodes at most {MAX_CHANNELS} channels per frame")
    return value


def _frame_rate(value) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _bad(f"frame_rate must be a number, got {value!r}")
    if not math.isfinite(float(value)) or value <= 0:
        raise _bad(f"frame_rate = {value} must be > 0.")
    if isinstance(value, Fraction):
        return value
    # 29.97 -> 2997/100, 30000/1001 given as a float -> 30000/1001
    return Fraction(value).limit_denominator(100_000)


def _optional_str(value, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, got {type(value).__name__}")
    return value


def _options(value) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise TypeError(f"extra_options must be a dict or None, got {type(value).__name__}")
    return tuple((str(k), str(v)) for k, v in value.items())


def _device(device) -> str:
    if device is None:
        device = torch.get_default_device() if hasattr(torch, "get_default_device") else "cpu"
    return str(torch.device(device))


def _check_frames(frames) -> Tensor:
    """``frames`` as a contiguous ``(N, 3, H, W)`` tensor, or :class:`InvalidEncoderInputError`."""
    if not isinstance(frames, Tensor):
        raise _bad(f"Expected frames to be a Tensor, got {type(frames) = }.")
    if frames.ndim != 4:
        raise _bad(f"Expected 4D frames (N, C, H, W), got {frames.shape = }.")
    if frames.dtype not in (torch.uint8, torch.float32):
        raise _bad(
            f"Expected uint8 frames in [0, 255] or float32 frames in [0, 1], got {frames.dtype = }."
        )
    if frames.shape[1] != 3:
        hint = " (they look NHWC: pass frames.permute(0, 3, 1, 2))" if frames.shape[3] == 3 else ""
        raise _bad(f"frames must have 3 channels (R, G, B) in dimension 1, got {frames.shape = }{hint}.")
    if frames.numel() == 0:
        raise _bad(f"frames is empty ({frames.shape = }): nothing to encode.")
    if frames.dtype == torch.float32 and not bool(torch.isfinite(frames).all()):
        raise _bad("frames contain NaN or infinite values.")
    return frames


def _check_samples(samples) -> Tensor:
    if not isinstance(samples, Tensor):
        raise _bad(f"Expected samples to be a Tensor, got {type(samples) = }.")
    if samples.ndim == 1:
        samples = samples.unsqueeze(0)
    if samples.ndim != 2:
        raise _bad(f"Expected 1D or 2D samples (num_channels, num_samples), got {samples.shape = }.")
    if samples.dtype not in _SAMPLE_DTYPES:
        raise _bad(
            f"Expected float32 samples in [-1, 1] (or float64, int16, int32, uint8), got {samples.dtype = }."
        )
    if samples.shape[0] == 0 or samples.shape[1] == 0:
        raise _bad(f"samples is empty ({samples.shape = }): nothing to encode.")
    if samples.shape[0] > MAX_CHANNELS:
        raise _bad(
            f"Trying to encode {samples.shape[0]} channels, but FFmpeg only supports "
            f"{MAX_CHANNELS} channels per frame (samples are (num_channels, num_samples))."
        )
    if samples.dtype.is_floating_point and not bool(torch.isfinite(samples).all()):
        raise _bad("samples contain NaN or infinite values.")
    return samples


def _muxer(name: str | None, format: str | None) -> str:
    """FFmpeg's muxer for ``format`` (a muxer name or a file extension), else for ``name``'s
    extension.

    Raises:
        UnsupportedEncodingError: neither names a muxer FFmpeg has.
    """
    from .pyav import import_av

    av = import_av()
    if format is not None:
        if not isinstance(format, str) or not format:
            raise TypeError(f"format must be a non-empty str, got {format!r}")
        try:
            return av.format.ContainerFormat(format, "w").name
        except ValueError:
            guess_from = f"x.{format.lstrip('.')}"
    else:
        guess_from = str(name)
    probe = io.BytesIO()
    probe.name = guess_from
    try:
        container = av.open(probe, mode="w")
    except ValueError:
        what = f"format {format!r}" if format is not None else f"the extension of {name!r}"
        raise UnsupportedEncodingError(
            f"FFmpeg has no container format for {what}; use a known extension (.mp4, .mkv, "
            ".webm, .mov, .avi, .wav, .flac, .mp3, .ogg, .opus, .m4a) or pass format="
        ) from None
    try:
        return container.format.name
    finally:
        container.close()


# ---------------------------------------------------------------------------------------------
# the multi-stream encoder


class _EncoderStream:
    """One stream of an :class:`Encoder`: which encoder, its index among the streams of its
    kind, and the spec it was added with."""

    def __init__(self, encoder: "Encoder", index: int, spec):
        self._encoder = encoder
        self._index = index
        self._spec = spec


class VideoStream(_EncoderStream):
    """A video stream of an :class:`Encoder`, returned by :meth:`Encoder.add_video` (as
    torchcodec 0.17's)."""

    _spec: VideoStreamSpec

    def add_frames(self, frames: Tensor) -> None:
        """Encode more frames.

        Args:
            frames: ``(N, 3, H, W)`` RGB, ``torch.uint8`` in [0, 255] or ``torch.float32`` in
                [0, 1], with the ``height``, ``width`` and device given to
                :meth:`Encoder.add_video`. Each frame lasts ``1 / frame_rate`` seconds; the
                first of the stream has pts 0.

        Raises:
            InvalidEncoderInputError: wrong type, dtype, shape, size or device; empty; NaN or
                infinite values. Nothing of this call is written.
            EncodingError: FFmpeg failed; the encoder is closed and its output discarded.
        """
        frames = _check_frames(frames)
        spec = self._spec
        if (frames.shape[2], frames.shape[3]) != (spec.height, spec.width):
            raise _bad(
                f"frames are {frames.shape[3]}x{frames.shape[2]} (WxH), but the stream was added "
                f"with width={spec.width}, height={spec.height}"
            )
        if str(frames.device) != spec.device and not (
            frames.device.type == "cuda" and spec.device.startswith("cuda")
        ):
            raise _bad(f"frames are on {frames.device}, but the stream was added with device={spec.device!r}")
        self._encoder._write(lambda enc: enc.add_frames(self._index, frames.contiguous()))


class AudioStream(_EncoderStream):
    """An audio stream of an :class:`Encoder`, returned by :meth:`Encoder.add_audio` (as
    torchcodec 0.17's)."""

    _spec: AudioStreamSpec

    def __init__(self, encoder: "Encoder", index: int, spec: AudioStreamSpec):
        super().__init__(encoder, index, spec)
        self._dtype: torch.dtype | None = None

    def add_samples(self, samples: Tensor) -> None:
        """Encode more samples.

        Args:
            samples: ``(num_channels, num_samples)`` (or 1-D for one channel) with the
                ``num_channels`` given to :meth:`Encoder.add_audio`: ``torch.float32`` in
                [-1, 1] as torchcodec takes, or ``float64``, ``int16``, ``int32``, ``uint8``
                (full-scale integers); every call of a stream uses the same dtype.

        Raises:
            InvalidEncoderInputError: wrong type, dtype, shape or channel count; empty; NaN or
                infinite values. Nothing of this call is written.
            EncodingError: FFmpeg failed; the encoder is closed and its output discarded.
        """
        samples = _check_samples(samples)
        if samples.shape[0] != self._spec.num_channels:
            raise _bad(
                f"samples have {samples.shape[0]} channels, but the stream was added with "
                f"num_channels={self._spec.num_channels}"
            )
        if self._dtype is not None and samples.dtype != self._dtype:
            raise _bad(f"samples are {samples.dtype}, but earlier samples of this stream were {self._dtype}")
        self._dtype = samples.dtype
        samples = samples.cpu().contiguous()
        self._encoder._write(lambda enc: enc.add_samples(self._index, samples))


class Encoder:
    """A multi-stream encoder, as torchcodec 0.17's ``torchcodec.encoders.Encoder``.

    Add streams with :meth:`add_video` and :meth:`add_audio`, open the output with
    :meth:`open_file` or :meth:`open_file_like`, feed the returned streams, then :meth:`close`
    (a ``with`` block calls it; leaving the block by an exception discards the output instead)::

        encoder = Encoder()
        video = encoder.add_video(height=256, width=256, frame_rate=30)
        audio = encoder.add_audio(sample_rate=16000, num_channels=1)
        with encoder.open_file("output.mp4"):
            video.add_frames(frames)      # (N, 3, 256, 256) uint8
            audio.add_samples(samples)    # (1, S) float32

    Args:
        backend: backend name; None uses the selection rules (see the module docstring).

    An encoder that is garbage-collected without :meth:`close` discards its output.
    """

    def __init__(self, *, backend: str | None = None):
        if backend is not None and not isinstance(backend, str):
            raise TypeError(f"backend must be a str or None, got {type(backend).__name__}")
        self._backend_arg = backend
        self._video: list[VideoStreamSpec] = []
        self._audio: list[AudioStreamSpec] = []
        self._stream_encoder: StreamEncoder | None = None
        self._file: Any = None
        self._state = "configuring"  # -> "open" -> "closed"
        self.backend: str | None = None
        """Name of the backend that encodes, once opened."""

    # -- configuration ------------------------------------------------------------------------

    def _configuring(self, what: str) -> None:
        if self._state != "configuring":
            raise MediaDecodeError(f"{what} must be called before open_file() or open_file_like()")

    def add_video(
        self,
        *,
        height: int,
        width: int,
        frame_rate: float,
        device: str | torch.device | None = None,
        codec: str | None = None,
        pixel_format: str | None = None,
        crf: int | float | None = None,
        preset: str | int | None = None,
        extra_options: dict[str, Any] | None = None,
    ) -> VideoStream:
        """Add a video stream (before opening the output), as torchcodec 0.17's.

        Args:
            height, width: of the input frames, in pixels.
            frame_rate: input and output frame rate (frames per second, > 0).
            device: where the frames will be (``"cpu"``, ``"cuda"``); None: torch's default
                device.
            codec: encoder or codec name (``"libx264"``, ``"h264"``, ``"ffv1"``); None: the
                container's default (H.264 for .mp4/.mkv/.mov, VP9 for .webm, MPEG-4 for .avi).
            pixel_format: the encoded pixel format (``"yuv420p"``, ``"yuv444p"``); None: the
                encoder's preferred one (``yuv420p`` for libx264).
            crf: Constant Rate Factor (0-51 for libx264; 0 is lossless); None: the encoder's
                default.
            preset: speed/size trade-off (``"ultrafast"`` ... ``"veryslow"`` for libx264).
            extra_options: further encoder options, e.g. ``{"g": 12, "tune": "film"}``.

        Returns:
            :class:`VideoStream`, whose :meth:`~VideoStream.add_frames` feeds it.

        Raises:
            InvalidEncoderInputError: a size, frame rate or device that is not valid.
            TypeError: a codec, pixel format, preset or options of the wrong type.
            MediaDecodeError: the output is already open.
        """
        self._configuring("add_video")
        if isinstance(preset, int) and not isinstance(preset, bool):
            preset = str(preset)
        if crf is not None and (isinstance(crf, bool) or not isinstance(crf, numbers.Real)):
            raise TypeError(f"crf must be a number or None, got {type(crf).__name__}")
        spec = VideoStreamSpec(
            height=_positive_int(height, "height"),
            width=_positive_int(width, "width"),
            frame_rate=_frame_rate(frame_rate),
            device=_device(device),
            codec=_optional_str(codec, "codec"),
            pixel_format=_optional_str(pixel_format, "pixel_format"),
            crf=None if crf is None else float(crf),
            preset=_optional_str(preset, "preset"),
            extra_options=_options(extra_options),
        )
        self._video.append(spec)
        return VideoStream(self, len(self._video) - 1, spec)

    def add_audio(
        self,
        *,
        sample_rate: int,
        num_channels: int,
        bit_rate: int | None = None,
        out_num_channels: int | None = None,
        out_sample_rate: int | None = None,
        codec: str | None = None,
        sample_format: str | None = None,
        extra_options: dict[str, Any] | None = None,
    ) -> AudioStream:
        """Add an audio stream (before opening the output), as torchcodec 0.17's.

        Args:
            sample_rate, num_channels: of the input samples (Hz; 1 to 8 channels).
            bit_rate: output bit rate in bits per second; None: the encoder's default.
            out_num_channels, out_sample_rate: of the encoded stream; None: the input's.
                Resampling and channel mixing are FFmpeg's libswresample.
            codec: (mediadecode) encoder name (``"pcm_s24le"``, ``"libopus"``); None: the
                container's default (MP3 for .mp3, FLAC for .flac, AAC for .m4a/.mp4, 16-bit
                PCM for .wav, Opus for .opus/.webm).
            sample_format: (mediadecode) the encoder's sample format (``"s16"``, ``"s32"``);
                None: the most precise one the encoder supports.
            extra_options: (mediadecode) further encoder options.

        Returns:
            :class:`AudioStream`, whose :meth:`~AudioStream.add_samples` feeds it.

        Raises:
            InvalidEncoderInputError: a rate, channel count or bit rate that is not valid.
            MediaDecodeError: the output is already open.
        """
        self._configuring("add_audio")
        if bit_rate is not None and (isinstance(bit_rate, bool) or not isinstance(bit_rate, numbers.Integral) or bit_rate < 0):
            raise _bad(f"bit_rate={bit_rate!r} must be an int >= 0.")
        spec = AudioStreamSpec(
            sample_rate=_positive_int(sample_rate, "sample_rate"),
            num_channels=_channels(num_channels, "num_channels"),
            bit_rate=None if bit_rate is None else int(bit_rate),
            out_num_channels=_channels(out_num_channels, "num_channels", allow_none=True),
            out_sample_rate=_positive_int(out_sample_rate, "sample_rate", allow_none=True),
            codec=_optional_str(codec, "codec"),
            sample_format=_optional_str(sample_format, "sample_format"),
            extra_options=_options(extra_options),
        )
        self._audio.append(spec)
        return AudioStream(self, len(self._audio) - 1, spec)

    # -- opening ------------------------------------------------------------------------------

    def open_file(self, dest: str | Path, *, format: str | None = None) -> "Encoder":
        """Open ``dest`` for writing; its extension chooses the container (as torchcodec 0.17),
        unless (mediadecode) ``format`` names it.

        The encode goes to a temporary file beside ``dest``, renamed to ``dest`` by
        :meth:`close`; nothing is created if the streams cannot be encoded.

        Returns:
            ``self``, for ``with encoder.open_file(dest):``.

        Raises:
            UnsupportedEncodingError: an extension FFmpeg has no muxer for, an unknown codec or
                pixel format, a codec the container cannot hold, options the encoder refuses.
            InvalidEncoderInputError: a frame size the pixel format cannot hold.
            FileNotFoundError: the directory of ``dest`` does not exist.
            MediaDecodeError: no stream was added, or already opened.
        """
        self._configuring("open_file")
        if not isinstance(dest, (str, os.PathLike)):
            raise TypeError(f"dest must be a str or os.PathLike, got {type(dest).__name__}")
        format_name = _muxer(os.fspath(dest), format)
        self._open(AtomicOutputFile(dest), format_name)
        return self

    def open_file_like(self, dest, *, format: str) -> "Encoder":
        """Open a writable, seekable binary file object (``io.BytesIO``, a file opened
        ``"wb"``) for writing, in container ``format`` (``"mp4"``, ``"matroska"`` or ``"mkv"``,
        ``"wav"``...), as torchcodec 0.17. The object stays open: it is the caller's.

        Returns:
            ``self``.

        Raises:
            UnsupportedEncodingError, InvalidEncoderInputError, MediaDecodeError: as
                :meth:`open_file`; nothing has been written to ``dest``.
            TypeError: ``dest`` lacks ``write`` or ``seek``.
        """
        self._configuring("open_file_like")
        target = CallerOutputFile(dest)
        self._open(target, _muxer(None, format))
        return self

    def _open(self, file, format_name: str) -> None:
        if not self._video and not self._audio:
            raise MediaDecodeError("add_video() or add_audio() must be called before opening the output")
        media_types = [m for m, s in (("video", self._video), ("audio", self._audio)) if s]
        devices = {s.device for s in self._video}
        device = next((d for d in devices if d != "cpu"), "cpu")
        plan = plan_encoders(media_types, device, self._backend_arg)
        name = plan.names[0]
        backend = registry.get_backend_class(name)()
        target = OutputTarget(file=file, format=format_name, name=str(file.name))
        try:
            self._stream_encoder = backend.open_encoder(target, list(self._video), list(self._audio))
        except BaseException:
            file.discard()
            raise
        self._file = file
        self.backend = name
        self._state = "open"

    # -- writing and closing ------------------------------------------------------------------

    def _write(self, action) -> None:
        if self._state != "open":
            raise MediaDecodeError(
                "the encoder is not open: call open_file() or open_file_like() first"
                if self._state == "configuring" else "the encoder is closed"
            )
        try:
            action(self._stream_encoder)
        except InvalidEncoderInputError:
            raise
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        stream_encoder, file = self._stream_encoder, self._file
        self._stream_encoder = self._file = None
        self._state = "closed"
        if stream_encoder is not None:
            stream_encoder.abort()
        if file is not None:
            file.discard()

    def close(self) -> None:
        """Flush every stream, write the trailer and, for :meth:`open_file`, rename the
        temporary file to the destination (as torchcodec 0.17's ``close``); idempotent.

        Raises:
            EncodingError: FFmpeg failed to finish; the output is discarded.
        """
        if self._state != "open":
            self._state = "closed"
            return
        stream_encoder, file = self._stream_encoder, self._file
        try:
            stream_encoder.finish()
            file.commit()
        except BaseException:
            self._abort()
            raise
        self._stream_encoder = self._file = None
        self._state = "closed"

    def __enter__(self) -> "Encoder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def __del__(self) -> None:
        try:
            if self._state == "open":
                self._abort()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


# ---------------------------------------------------------------------------------------------
# one-shot encoders


def _to_tensor(buf: io.BytesIO) -> Tensor:
    return torch.frombuffer(bytearray(buf.getbuffer()), dtype=torch.uint8)


class VideoEncoder:
    """Encode a video stream in one call, as torchcodec 0.17's ``VideoEncoder``.

    Args:
        frames: ``(N, C, H, W)`` with ``C == 3`` (RGB): ``torch.uint8`` in [0, 255] or
            (mediadecode) ``torch.float32`` in [0, 1]; on the CPU or a CUDA device (which
            chooses the device the backend encodes on; the ffmpeg backend copies to the CPU).
        frame_rate: frames per second of the input, also the output's (> 0).
        backend: (mediadecode) backend name; None: the selection rules.

    Raises:
        InvalidEncoderInputError: frames of the wrong type, dtype or shape, empty, with NaN or
            infinite values; a frame rate that is not > 0.
    """

    def __init__(self, frames: Tensor, *, frame_rate: float, backend: str | None = None):
        self._frames = _check_frames(frames)
        self._frame_rate = _frame_rate(frame_rate)
        self._backend = backend

    def _encoder(self, codec, pixel_format, crf, preset, extra_options) -> tuple[Encoder, VideoStream]:
        encoder = Encoder(backend=self._backend)
        stream = encoder.add_video(
            height=self._frames.shape[2], width=self._frames.shape[3],
            frame_rate=self._frame_rate, device=self._frames.device, codec=codec,
            pixel_format=pixel_format, crf=crf, preset=preset, extra_options=extra_options,
        )
        return encoder, stream

    def to_file(
        self,
        dest: str | Path,
        *,
        codec: str | None = None,
        pixel_format: str | None = None,
        crf: int | float | None = None,
        preset: str | int | None = None,
        extra_options: dict[str, Any] | None = None,
    ) -> None:
        """Encode into ``dest``; its extension chooses the container. Arguments as
        :meth:`Encoder.add_video`. ``dest`` appears only when the encode succeeded.

        Raises:
            UnsupportedEncodingError, InvalidEncoderInputError, EncodingError: as
                :meth:`Encoder.open_file` and :meth:`VideoStream.add_frames`.
        """
        encoder, stream = self._encoder(codec, pixel_format, crf, preset, extra_options)
        with encoder.open_file(dest):
            stream.add_frames(self._frames)

    def to_tensor(
        self,
        format: str,
        *,
        codec: str | None = None,
        pixel_format: str | None = None,
        crf: int | float | None = None,
        preset: str | int | None = None,
        extra_options: dict[str, Any] | None = None,
    ) -> Tensor:
        """Encode into container ``format`` (``"mp4"``, ``"mkv"``...) and return the bytes as
        a 1-D ``torch.uint8`` CPU tensor."""
        buf = io.BytesIO()
        self.to_file_like(buf, format, codec=codec, pixel_format=pixel_format, crf=crf,
                          preset=preset, extra_options=extra_options)
        return _to_tensor(buf)

    def to_file_like(
        self,
        file_like,
        format: str,
        *,
        codec: str | None = None,
        pixel_format: str | None = None,
        crf: int | float | None = None,
        preset: str | int | None = None,
        extra_options: dict[str, Any] | None = None,
    ) -> None:
        """Encode into a writable, seekable binary file object, in container ``format``.
        Nothing is written to it when the arguments cannot be encoded."""
        encoder, stream = self._encoder(codec, pixel_format, crf, preset, extra_options)
        with encoder.open_file_like(file_like, format=format):
            stream.add_frames(self._frames)


class AudioEncoder:
    """Encode an audio stream in one call, as torchcodec 0.17's ``AudioEncoder``.

    Args:
        samples: ``(num_channels, num_samples)`` ``torch.float32`` in [-1, 1], or 1-D for one
            channel; at most 8 channels.
        sample_rate: of the input samples (Hz, > 0); the output's unless ``sample_rate=`` is
            given to an encoding method.
        backend: (mediadecode) backend name; None: the selection rules.

    Raises:
        InvalidEncoderInputError: samples of the wrong type, dtype or shape, empty, with NaN or
            infinite values; a sample rate that is not > 0.
    """

    def __init__(self, samples: Tensor, *, sample_rate: int, backend: str | None = None):
        samples = _check_samples(samples)
        if samples.dtype != torch.float32:
            raise _bad(f"Expected float32 samples, got {samples.dtype = }.")
        self._samples = samples
        self._sample_rate = _positive_int(sample_rate, "sample_rate")
        self._backend = backend

    def _encoder(self, bit_rate, num_channels, sample_rate) -> tuple[Encoder, AudioStream]:
        encoder = Encoder(backend=self._backend)
        stream = encoder.add_audio(
            sample_rate=self._sample_rate, num_channels=self._samples.shape[0], bit_rate=bit_rate,
            out_num_channels=num_channels, out_sample_rate=sample_rate,
        )
        return encoder, stream

    def to_file(self, dest: str | Path, *, bit_rate: int | None = None,
                num_channels: int | None = None, sample_rate: int | None = None) -> None:
        """Encode into ``dest``; its extension chooses the format (``.wav``, ``.flac``,
        ``.mp3``, ``.ogg``, ``.opus``, ``.m4a``...). ``bit_rate`` in bits per second;
        ``num_channels`` and ``sample_rate`` of the output (resampled by libswresample).
        ``dest`` appears only when the encode succeeded.

        Raises:
            UnsupportedEncodingError: an unknown format, a sample rate the encoder lacks (MP3,
                Opus), a codec the container cannot hold.
            InvalidEncoderInputError: a bit rate, channel count or sample rate that is not valid.
            EncodingError: FFmpeg failed while encoding.
        """
        encoder, stream = self._encoder(bit_rate, num_channels, sample_rate)
        with encoder.open_file(dest):
            stream.add_samples(self._samples)

    def to_tensor(self, format: str, *, bit_rate: int | None = None,
                  num_channels: int | None = None, sample_rate: int | None = None) -> Tensor:
        """Encode into ``format`` (``"wav"``, ``"flac"``, ``"mp3"``...) and return the bytes as a
        1-D ``torch.uint8`` tensor."""
        buf = io.BytesIO()
        self.to_file_like(buf, format, bit_rate=bit_rate, num_channels=num_channels,
                          sample_rate=sample_rate)
        return _to_tensor(buf)

    def to_file_like(self, file_like, format: str, *, bit_rate: int | None = None,
                     num_channels: int | None = None, sample_rate: int | None = None) -> None:
        """Encode into a writable, seekable binary file object, in ``format``."""
        encoder, stream = self._encoder(bit_rate, num_channels, sample_rate)
        with encoder.open_file_like(file_like, format=format):
            stream.add_samples(self._samples)
