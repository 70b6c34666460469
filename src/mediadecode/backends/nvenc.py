"""The ``nvenc`` backend: H.264 / HEVC encoding on an NVIDIA GPU through FFmpeg's NVENC encoders
(``h264_nvenc``, ``hevc_nvenc``, ``av1_nvenc``) in PyAV's FFmpeg. Encode only.

It serves frames on a CUDA device (priority 110: above the ffmpeg backend, which would copy them
to the CPU and encode with libx264). It is unavailable, with the reason, wherever PyAV's FFmpeg
lacks the NVENC encoders or torch sees no CUDA device. Frames are copied to the CPU and FFmpeg
uploads them to the GPU, converting to the encoder's pixel format with swscale on the way, as
the ffmpeg backend does; audio streams are encoded on the CPU by the same PyAV encoder.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from ..capabilities import Capabilities
from ..encoding_protocol import AudioStreamSpec, EncoderCapabilities, OutputTarget, VideoStreamSpec
from ..errors import UnsupportedEncodingError
from .ffmpeg_encoder import PyAVStreamEncoder, nvenc_unavailable_reason

__all__ = ["NVENCBackend", "NVENC_CODECS"]

NVENC_CODECS = {"h264": "h264_nvenc", "hevc": "hevc_nvenc", "h265": "hevc_nvenc", "av1": "av1_nvenc"}
"""Codec names the nvenc backend takes, mapped to FFmpeg's NVENC encoder (the encoder names
themselves are taken too)."""


class NVENCBackend:
    """NVENC through PyAV's FFmpeg (encode only; priority 110 for CUDA frames)."""

    name = "nvenc"
    priority = 110
    devices = ("cuda",)
    media_types = ()  # decodes nothing
    install_hint = "an NVIDIA GPU and driver, a CUDA build of torch, and a PyAV whose FFmpeg has NVENC"
    capabilities = Capabilities(devices=("cuda",), media_types=(), notes="encode only (NVENC)")
    encoder_capabilities = EncoderCapabilities(
        devices=("cuda",), media_types=("video", "audio"),
        notes="FFmpeg's h264_nvenc/hevc_nvenc; frames copied to the CPU, uploaded by FFmpeg",
    )

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when NVENC can be used here; otherwise the reason. Never raises."""
        try:
            return nvenc_unavailable_reason()
        except Exception as exc:  # pragma: no cover - the check must not break listing
            return f"the NVENC availability check failed: {type(exc).__name__}: {exc}"

    def open_encoder(self, target: OutputTarget, video: Sequence[VideoStreamSpec],
                     audio: Sequence[AudioStreamSpec]) -> PyAVStreamEncoder:
        """A PyAV encoder whose video streams use NVENC (``h264_nvenc`` by default).

        Raises:
            UnsupportedEncodingError: a codec NVENC does not encode, or ``crf`` (NVENC has none:
                pass ``extra_options={"cq": N}``).
        """
        specs = []
        for spec in video:
            codec = NVENC_CODECS.get(spec.codec or "h264", spec.codec)
            if codec not in NVENC_CODECS.values():
                raise UnsupportedEncodingError(
                    f"{target.name}: the nvenc backend encodes {', '.join(sorted(NVENC_CODECS))}, "
                    f"not {spec.codec!r}"
                )
            if spec.crf is not None:
                raise UnsupportedEncodingError(
                    f"{target.name}: NVENC has no crf; pass extra_options={{'cq': {spec.crf:g}}}"
                )
            specs.append(replace(spec, codec=codec))
        return PyAVStreamEncoder(target, specs, audio)
