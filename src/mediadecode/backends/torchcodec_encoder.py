"""Encoding with torchcodec's public ``torchcodec.encoders.Encoder`` (the torchcodec backend's
encoder).

torchcodec writes its header while it opens the output, and may write part of it before it
refuses a codec the container cannot hold. :class:`_HeldWrites` keeps every byte in memory until
torchcodec's ``open_file_like`` has returned, so that a refusal leaves the destination untouched,
as the encoder protocol requires.

Differences with the ffmpeg backend: float32 frames are quantised to uint8 (``round(255 x)``)
before torchcodec sees them, as torchcodec encodes uint8 only; audio streams take float32 samples
only and no ``codec``, ``sample_format`` or ``extra_options``.
"""

from __future__ import annotations

import io
from typing import Any, Sequence

import torch

from ..encoding_protocol import AudioStreamSpec, EncoderCapabilities, OutputTarget, VideoStreamSpec
from ..errors import EncodingError, InvalidEncoderInputError, UnsupportedEncodingError

__all__ = ["TorchCodecStreamEncoder", "TORCHCODEC_ENCODER_CAPABILITIES"]

TORCHCODEC_ENCODER_CAPABILITIES = EncoderCapabilities(
    devices=("cpu", "cuda"),
    media_types=("video", "audio"),
    notes="torchcodec's Encoder (system FFmpeg); CUDA frames encode with NVENC",
)


class _HeldWrites:
    """A file object that holds writes in memory until :meth:`release`, then writes them (at the
    same offsets) to ``file`` and passes everything after through."""

    def __init__(self, file: Any):
        self.file = file
        self._held: io.BytesIO | None = io.BytesIO()

    def write(self, data) -> int:
        if self._held is not None:
            return self._held.write(data)
        return self.file.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._held is not None:
            return self._held.seek(offset, whence)
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self._held.tell() if self._held is not None else self.file.tell()

    def release(self) -> None:
        held, self._held = self._held, None
        if held is not None and held.getbuffer().nbytes:
            position = held.tell()
            self.file.seek(0)
            self.file.write(held.getbuffer())
            self.file.seek(position)


def _reason(exc: BaseException) -> str:
    # torchcodec's messages start with "function, file:line, "; the reason is the last part
    text = str(exc) or type(exc).__name__
    return text.split(", ", 2)[-1] if text.count(", ") >= 2 and ".cpp:" in text else text


class TorchCodecStreamEncoder:
    """A :class:`~mediadecode.encoding_protocol.StreamEncoder` over torchcodec's ``Encoder``.

    Raises:
        UnsupportedEncodingError: torchcodec refuses the streams or the format, or an audio
            stream asks for what torchcodec does not take; nothing has been written.
    """

    def __init__(self, target: OutputTarget, video: Sequence[VideoStreamSpec], audio: Sequence[AudioStreamSpec]):
        from torchcodec.encoders import Encoder

        self.target = target
        for spec in audio:
            extra = [n for n in ("codec", "sample_format") if getattr(spec, n) is not None]
            if spec.extra_options:
                extra.append("extra_options")
            if extra:
                raise UnsupportedEncodingError(
                    f"{target.name}: the torchcodec backend takes no audio {', '.join(extra)}"
                )
        encoder = Encoder()
        held = _HeldWrites(target.file)
        try:
            self._video = [
                encoder.add_video(
                    height=s.height, width=s.width, frame_rate=float(s.frame_rate), device=s.device,
                    codec=s.codec, pixel_format=s.pixel_format, crf=s.crf, preset=s.preset,
                    extra_options=dict(s.extra_options) or None,
                )
                for s in video
            ]
            self._audio = [
                encoder.add_audio(
                    sample_rate=s.sample_rate, num_channels=s.num_channels, bit_rate=s.bit_rate,
                    out_num_channels=s.out_num_channels, out_sample_rate=s.out_sample_rate,
                )
                for s in audio
            ]
            encoder.open_file_like(held, format=target.format)
        except RuntimeError as exc:
            raise UnsupportedEncodingError(f"{target.name}: torchcodec refuses: {_reason(exc)}") from exc
        held.release()
        self._encoder: Any = encoder

    def _call(self, fn, *args) -> None:
        if self._encoder is None:
            raise ValueError(f"{self.target.name}: the encoder is closed")
        try:
            fn(*args)
        except RuntimeError as exc:
            raise EncodingError(f"{self.target.name}: torchcodec failed: {_reason(exc)}") from exc

    def add_frames(self, stream: int, frames: torch.Tensor) -> None:
        if frames.dtype == torch.float32:
            frames = frames.mul(255).round_().clamp_(0, 255).to(torch.uint8)
        self._call(self._video[stream].add_frames, frames)

    def add_samples(self, stream: int, samples: torch.Tensor) -> None:
        if samples.dtype != torch.float32:
            raise InvalidEncoderInputError(
                f"{self.target.name}: the torchcodec backend encodes float32 samples only, got {samples.dtype}"
            )
        self._call(self._audio[stream].add_samples, samples)

    def finish(self) -> None:
        if self._encoder is None:
            return
        try:
            self._call(self._encoder.close)
        finally:
            self._encoder = None

    def abort(self) -> None:
        encoder, self._encoder = self._encoder, None
        if encoder is not None:
            try:  # torchcodec has no abort; what close writes goes to a discarded output
                encoder.close()
            except Exception:
                pass
