"""Decoded audio frames into output blocks: float32 ``(num_channels, n)`` arrays at the output
sample rate, converted by libswresample (``av.AudioResampler``), and :func:`drop_head` to cut
the start off a frame."""

from __future__ import annotations

import numpy as np

from ..pyav import import_av

__all__ = ["AudioConverter", "drop_head", "layout_name"]


def layout_name(num_channels: int) -> str:
    """FFmpeg's default channel layout name for ``num_channels`` channels."""
    return {1: "mono", 2: "stereo"}.get(num_channels, f"{num_channels}c")


class AudioConverter:
    """Converts decoded frames to float32 in [-1, 1] at ``sample_rate`` Hz in ``layout``.

    Args:
        sample_rate: output rate in Hz.
        num_channels: output channel count (that of ``layout``).
        layout: output channel layout name, fixed so that a mid-stream layout change is mixed
            to it.
        passthrough: the stream's rate and layout are kept, so planar float frames already in
            them are given out as they are (no resampler).
    """

    def __init__(self, sample_rate: int, num_channels: int, layout: str, passthrough: bool):
        self.sample_rate = sample_rate
        self.num_channels = num_channels
        self.layout = layout
        self.passthrough = passthrough

    def blocks(self, frames):
        """Output blocks ``(num_channels, n)`` float32 of ``frames``, in order: what one
        resampler fed every frame gives (rebuilt, after a flush, when the input format, layout or
        rate changes mid-stream, as FFmpeg's CLI reconfigures its filter graph)."""
        av = import_av()
        channels = self.num_channels
        resampler = None
        shape = None  # (format, layout, rate) the resampler was built for
        for frame in frames:
            if frame.samples == 0:
                continue
            if (
                resampler is None
                and self.passthrough
                and frame.format.name == "fltp"
                and frame.sample_rate == self.sample_rate
                and frame.layout.nb_channels == channels <= 8
            ):
                yield frame.to_ndarray()
                continue
            frame_shape = (frame.format.name, frame.layout.name, frame.sample_rate)
            if resampler is not None and frame_shape != shape:
                yield from self._packed(resampler.resample(None))
                resampler = None
            if resampler is None:
                # Packed float32 ("flt"), one plane: PyAV's to_ndarray on planar frames with more
                # than 8 channels reads past AVFrame.data[8] and crashes.
                resampler = av.AudioResampler(format="flt", layout=self.layout, rate=self.sample_rate)
                shape = frame_shape
            # Timestamps in samples: the resampler sees a steady clock whatever the container's.
            frame.pts = None
            yield from self._packed(resampler.resample(frame))
        if resampler is not None:
            yield from self._packed(resampler.resample(None))

    def _packed(self, frames):
        for out in frames:
            yield out.to_ndarray().reshape(-1, self.num_channels).T


def drop_head(frame, n: int):
    """``frame`` without its first ``n`` samples (a new frame, same format and rate)."""
    av = import_av()
    fmt = frame.format
    if fmt.is_planar and frame.layout.nb_channels > 8:
        # to_ndarray cannot read more than 8 planes: make it packed first (lossless).
        (frame,) = av.AudioResampler(format=fmt.packed.name).resample(frame) or [frame]
        fmt = frame.format
    arr = frame.to_ndarray()
    if fmt.is_planar:
        arr = arr[:, n:]
    else:
        arr = arr.reshape(-1, frame.layout.nb_channels)[n:].reshape(1, -1)
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt.name, layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    return out
