"""The protocol an encoding backend implements.

A backend class declares that it encodes by setting ``encoder_capabilities =
EncoderCapabilities(...)`` and implementing ``open_encoder``; a class without that attribute does
not encode, and encoder selection (:mod:`mediadecode.encoder_selection`) skips it. The facade
(:mod:`mediadecode.encoders`) does everything every backend must do the same way before calling
the backend: argument and tensor checks, the choice of container format from the file name,
writing to a temporary file beside the destination and renaming it on success. A backend only
turns validated stream specifications into an open :class:`StreamEncoder` writing to a binary
file object.

Contract:

- ``open_encoder`` checks everything it can before writing a byte: codec names, the container's
  acceptance of each codec, pixel and sample formats, encoder options (by opening the codecs).
  It raises :class:`~mediadecode.errors.UnsupportedEncodingError` for those;
- ``add_frames`` receives ``(N, 3, H, W)`` contiguous tensors, ``torch.uint8`` in [0, 255] or
  ``torch.float32`` in [0, 1], on the stream's device, already validated;
- ``add_samples`` receives ``(num_channels, num_samples)`` contiguous CPU tensors, already
  validated, of one of the dtypes of :data:`INPUT_SAMPLE_FORMATS` (the same for every call of a
  stream);
- ``finish`` flushes every encoder and writes the trailer; ``abort`` releases everything
  without finishing. Both are idempotent, and after either the encoder holds no file or native
  resource. FFmpeg failures while encoding raise :class:`~mediadecode.errors.EncodingError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol, Sequence, runtime_checkable

from torch import Tensor

__all__ = [
    "AudioStreamSpec",
    "EncoderBackend",
    "EncoderCapabilities",
    "OutputTarget",
    "StreamEncoder",
    "VideoStreamSpec",
    "INPUT_SAMPLE_FORMATS",
]

INPUT_SAMPLE_FORMATS = ("flt", "dbl", "s16", "s32", "u8")
"""FFmpeg sample formats samples may arrive in (planar layout, one row per channel), for the
dtypes ``float32``, ``float64``, ``int16``, ``int32``, ``uint8``."""


@dataclass(frozen=True)
class VideoStreamSpec:
    """One video stream to encode, as :meth:`mediadecode.encoders.Encoder.add_video` takes it.

    Attributes:
        height, width: of the input frames, in pixels (> 0).
        frame_rate: input and output frame rate in frames per second, exact (> 0).
        device: ``"cpu"`` or ``"cuda[:N]"``: where the frames are.
        codec: FFmpeg encoder or codec name (``"libx264"``, ``"h264"``), None for the
            container's default.
        pixel_format: the encoder's pixel format (``"yuv420p"``), None for the default.
        crf: Constant Rate Factor, None for the encoder's default.
        preset: encoder preset (``"ultrafast"``, ``"medium"``), None for the default.
        extra_options: further encoder options, as ``(name, value)`` string pairs.
    """

    height: int
    width: int
    frame_rate: Fraction
    device: str = "cpu"
    codec: str | None = None
    pixel_format: str | None = None
    crf: float | None = None
    preset: str | None = None
    extra_options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AudioStreamSpec:
    """One audio stream to encode, as :meth:`mediadecode.encoders.Encoder.add_audio` takes it.

    Attributes:
        sample_rate, num_channels: of the input samples (Hz, > 0; 1 to 8 channels).
        bit_rate: output bit rate in bits per second, None for the encoder's default.
        out_num_channels, out_sample_rate: of the encoded stream, None for the input's.
        codec: FFmpeg encoder name (``"pcm_s24le"``, ``"libopus"``), None for the container's
            default.
        sample_format: the encoder's sample format (``"s16"``, ``"s32"``), None to let FFmpeg
            pick the best one the encoder supports.
        extra_options: further encoder options, as ``(name, value)`` string pairs.
    """

    sample_rate: int
    num_channels: int
    bit_rate: int | None = None
    out_num_channels: int | None = None
    out_sample_rate: int | None = None
    codec: str | None = None
    sample_format: str | None = None
    extra_options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class OutputTarget:
    """Where an encoder writes.

    Attributes:
        file: a writable, seekable binary file object (``write``, ``seek``, ``tell``).
        format: the FFmpeg muxer name (``"mp4"``, ``"matroska"``, ``"wav"``), already resolved
            by the facade from the destination's name or the ``format`` argument.
        name: the destination as users name it, for messages.
    """

    file: Any
    format: str
    name: str


@dataclass(frozen=True)
class EncoderCapabilities:
    """What an encoding backend can do, declared on its class as ``encoder_capabilities``.

    Attributes:
        devices: device types whose frames it encodes without a copy to the CPU (``"cpu"``,
            ``"cuda"``). Frames on another device are refused by automatic selection.
        media_types: subset of ``("video", "audio")``.
        notes: one line for ``mediadecode backends``.
    """

    devices: tuple[str, ...] = ("cpu",)
    media_types: tuple[str, ...] = ("video", "audio")
    notes: str = ""

    def cannot_serve(self, *, media_types: Sequence[str], device: str) -> str | None:
        """None when streams of ``media_types`` with frames on ``device`` are within the
        capabilities, otherwise the reason in a few words."""
        missing = [m for m in media_types if m not in self.media_types]
        if missing:
            return f"does not encode {', '.join(missing)}"
        if device.split(":", 1)[0] not in self.devices:
            return f"does not encode frames on {device!r}; its devices: {', '.join(self.devices)}"
        return None


@runtime_checkable
class StreamEncoder(Protocol):
    """An open output container with its streams, numbered per media type in the order they
    were given to ``open_encoder`` (as torchcodec numbers them)."""

    def add_frames(self, stream: int, frames: Tensor) -> None:
        """Encode validated frames ``(N, 3, H, W)`` into video stream ``stream``."""
        ...

    def add_samples(self, stream: int, samples: Tensor) -> None:
        """Encode validated samples ``(num_channels, num_samples)`` into audio stream ``stream``."""
        ...

    def finish(self) -> None:
        """Flush the encoders and write the trailer; idempotent."""
        ...

    def abort(self) -> None:
        """Release everything without finishing; idempotent, never raises."""
        ...


@runtime_checkable
class EncoderBackend(Protocol):
    """A backend that encodes: a :class:`~mediadecode.protocol.Backend` with these additions.

    Class attributes:
        encoder_capabilities: its :class:`EncoderCapabilities`.
    """

    name: str
    priority: int
    encoder_capabilities: EncoderCapabilities

    @classmethod
    def unavailable_reason(cls) -> str | None:
        ...

    def open_encoder(
        self,
        target: OutputTarget,
        video: Sequence[VideoStreamSpec],
        audio: Sequence[AudioStreamSpec],
    ) -> StreamEncoder:
        """Open ``target`` for writing with these streams.

        Raises:
            UnsupportedEncodingError: a codec, format, pixel or sample format or option that
                cannot be used; nothing has been written.
        """
        ...
