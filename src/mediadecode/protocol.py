"""The protocol a backend implements.

A backend is a class registered under the ``mediadecode.backends`` entry-point group. It opens
sources into stream readers; a reader implements a few batch primitives. Everything else (argument
checks, negative indices, slices, bounds errors, the seconds-to-index rules of exact mode, dimension
order, rotation, empty requests) is done once by the facade (:mod:`mediadecode.decoders`), so it
behaves the same on every backend.

Contract for a reader's primitives:

- they receive requests that the facade already validated: indices sorted ascending, unique and in
  ``range(num_frames)``; times sorted ascending and unique;
- video frames come back as ``(data, pts_seconds, duration_seconds)``: ``data`` a ``torch.uint8``
  tensor ``(N, H, W, 3)`` RGB in the coded orientation (the facade applies ``metadata.rotation``
  unless the reader sets ``frames_are_rotated = True``), the other two ``torch.float64`` ``(N,)``
  tensors on the CPU, in seconds;
- audio comes back as ``(data, first_pts_seconds)`` with ``data`` ``torch.float32``
  ``(num_channels, num_samples)`` in [-1, 1] at the reader's output rate and channel count;
- unreadable media raise :class:`~mediadecode.errors.InvalidMediaError` (or a subclass) naming the
  source; a backend that does not handle the source at all may raise it from ``open_*`` so that
  automatic selection tries the next backend.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from torch import Tensor

from .metadata import AudioStreamMetadata, ContainerMetadata, VideoStreamMetadata
from .sources import Source

__all__ = ["Backend", "VideoStreamReader", "AudioStreamReader", "RawFrames"]

RawFrames = tuple[Tensor, Tensor, Tensor]
"""``(data uint8 (N, H, W, 3), pts_seconds float64 (N,), duration_seconds float64 (N,))``."""


@runtime_checkable
class VideoStreamReader(Protocol):
    """One open video stream.

    Attributes:
        metadata: the stream's :class:`~mediadecode.metadata.VideoStreamMetadata` with resolved
            fields filled; ``width``/``height`` are after rotation.
        container_metadata: the whole container's metadata.
        frame_pts: in exact mode, a ``float64`` tensor ``(num_frames,)`` of every frame's pts in
            seconds, ascending (presentation order); None in approximate mode.
        frame_durations: ``float64`` ``(num_frames,)`` durations in seconds, or None.
        frames_are_rotated: True when ``get_*`` already return frames rotated for display.

    Optional attributes (not part of the runtime check; a reader without them gets the default):

    - ``cpu_fallback``: a :class:`~mediadecode.fallback.CpuFallbackStatus` for readers of GPU
      backends, which ``VideoDecoder.cpu_fallback`` returns (default: torchcodec's CPU status, "No fallback required");
    - ``frame_index``: the exact :class:`~mediadecode.frame_index.FrameIndex` in stream ticks,
      which ``VideoDecoder.frame_index`` returns (default None);
    - ``key_frame_indices``: an ``int64`` tensor of the keyframes' indices (presentation order)
      for readers without a ``frame_index`` that know them from their library (default: those
      of ``frame_index``);
    - ``fills_positions``: True when ``get_frames_at``/``get_frames_played_at`` take a
      ``positions`` keyword (for each requested frame, the output positions that receive it:
      duplicates in the caller's order) and return the frames already in that order (default
      False: the facade gathers them).
    """

    metadata: VideoStreamMetadata
    container_metadata: ContainerMetadata
    frame_pts: Tensor | None
    frame_durations: Tensor | None
    frames_are_rotated: bool

    def get_frames_at(self, indices: Sequence[int]) -> RawFrames:
        """Frames at sorted, unique, in-range indices (presentation order)."""
        ...

    def get_frames_played_at(self, seconds: Sequence[float]) -> RawFrames:
        """For each sorted, unique time, the frame on screen at that time (approximate mode)."""
        ...

    def get_frames_played_in_range(self, start_seconds: float, stop_seconds: float) -> RawFrames:
        """The frame on screen at ``start_seconds``, then every frame whose pts is below
        ``stop_seconds`` (approximate mode)."""
        ...

    def close(self) -> None:
        """Release files and native resources; idempotent."""
        ...


@runtime_checkable
class AudioStreamReader(Protocol):
    """One open audio stream, decoding to ``sample_rate`` Hz and ``num_channels`` channels."""

    metadata: AudioStreamMetadata
    container_metadata: ContainerMetadata
    sample_rate: int
    num_channels: int

    def get_samples_played_in_range(
        self, start_seconds: float, stop_seconds: float | None
    ) -> tuple[Tensor, float]:
        """Decoded samples covering ``[start_seconds, stop_seconds)`` (None: to the end).

        Returns ``(data, first_pts_seconds)``: the samples may start before ``start_seconds``
        (from the frame that contains it); the facade trims them with torchcodec 0.17's rule.
        A reader whose class sets ``returns_exact_range = True`` returns exactly the samples of
        the range on the stream's :class:`~mediadecode.sample_grid.SampleGrid` instead, with
        ``first_pts_seconds`` the ``pts_seconds`` to report; the facade then trims nothing.
        """
        ...

    def close(self) -> None:
        """Release files and native resources; idempotent."""
        ...


@runtime_checkable
class Backend(Protocol):
    """A decoding backend, as registered in the ``mediadecode.backends`` entry-point group.

    Class attributes:
        name: the name users select it by (``backend="ffmpeg"``).
        priority: higher is tried first in automatic selection.
        devices: device types it decodes on, e.g. ``("cpu",)`` or ``("cuda",)``.
        media_types: subset of ``("video", "audio")``.
        install_hint: what to run to make it available (``pip install ...``).
    """

    name: str
    priority: int
    devices: tuple[str, ...]
    media_types: tuple[str, ...]
    install_hint: str

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when usable here; otherwise why not, with the command that fixes it.

        Must be cheap-ish and must not raise.
        """
        ...

    def open_video(
        self,
        source: Source,
        *,
        stream_index: int | None,
        seek_mode: str,
        num_threads: int,
        device: str,
    ) -> VideoStreamReader:
        """Open the video stream ``stream_index`` (None: the best one) of ``source``.

        A GPU backend that declares ``Capabilities(cpu_fallback=True)`` also takes a keyword
        ``allow_cpu_fallback: bool = False``: the decoder facade then passes True when it chose
        the backend automatically (the backend may decode on the CPU what its hardware cannot,
        and report it in the reader's ``cpu_fallback``) and False when the user named it (the
        backend must refuse instead, with :class:`~mediadecode.errors.UnsupportedRequestError`).

        A backend that declares ``Capabilities(frame_mappings=True)`` also takes a keyword
        ``frame_mappings`` (a :class:`~mediadecode.frame_index.FrameMappings`, passed only when
        the user gave ``custom_frame_mappings``): its exact-mode index, used instead of a scan.
        """
        ...

    def open_audio(
        self,
        source: Source,
        *,
        stream_index: int | None,
        sample_rate: int | None,
        num_channels: int | None,
    ) -> AudioStreamReader:
        """Open the audio stream ``stream_index`` (None: the best one) of ``source``."""
        ...
