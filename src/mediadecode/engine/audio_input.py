"""The input of an audio reader: one container opened with PyAV and the audio stream read from
it, with the two ways to move in it (a seek, or a reopen to go back to the very start) and its
decoded frames."""

from __future__ import annotations

import math
from typing import Any

from ..metadata import AudioStreamMetadata, ContainerMetadata
from ..pyav import MediaHandle, container_metadata, import_av, open_container, select_stream
from ..sources import Source

__all__ = ["AudioInput"]


class AudioInput:
    """An open container and its selected audio stream.

    Args:
        source: the media.
        stream_index: absolute index of the audio stream; None picks FFmpeg's best.

    Attributes:
        container_metadata (ContainerMetadata): the container's metadata at open.
        metadata (AudioStreamMetadata): the selected stream's.
        stream: the PyAV stream (a new object after :meth:`rewind`).

    Raises:
        av.FFmpegError: PyAV cannot read the container's metadata (the container is closed).
        StreamNotFoundError, InvalidMediaError: as :func:`mediadecode.pyav.select_stream` and
            :func:`mediadecode.pyav.open_container`.
    """

    def __init__(self, source: Source, stream_index: int | None):
        self._source = source
        self._used = False  # True once the container was read past its initial position
        self._media: MediaHandle = open_container(source)
        try:
            self.container_metadata: ContainerMetadata = container_metadata(self._media.container)
            self.stream: Any = select_stream(self._media.container, source, "audio", stream_index)
            meta = self.container_metadata.streams[self.stream.index]
            assert isinstance(meta, AudioStreamMetadata)
            self.metadata: AudioStreamMetadata = meta
        except BaseException:
            self.close()
            raise

    def rewind(self) -> None:
        """Go back to the start of the stream by reopening the container (if it was read).

        ``seek(0)`` is not equivalent to a fresh open: it lands on the first packet with pts >= 0
        and skips those before it (the AAC priming packet that an MP4 edit list marks for discard,
        Opus pre-skip handling), so the first frames decode differently. A fresh open decodes them
        exactly as a plain decode from the start does.
        """
        if not self._used:
            return
        self._media.close()
        self._media = open_container(self._source)
        self.stream = self._media.container.streams[self.metadata.stream_index]
        self._used = False

    def seek(self, seconds: float) -> None:
        """Seek the stream to the last keyframe at or before ``seconds``.

        Raises:
            av.FFmpegError: the format cannot seek (SWF).
        """
        tb = self.stream.time_base
        self._media.container.seek(math.floor(seconds / tb), stream=self.stream, backward=True)
        self._used = True

    def frames(self):
        """Decoded frames of the stream from the container's position. A packet FFmpeg cannot
        decode is skipped, as FFmpeg's CLI does (it logs and goes on): after a seek into an MPEG
        program stream the first packets start mid-frame and the decoder resyncs on the next."""
        av = import_av()
        self._used = True
        for packet in self._media.container.demux(self.stream):
            try:
                frames = packet.decode()
            except av.InvalidDataError:
                continue
            yield from frames

    def close(self) -> None:
        """Close the container and its file; idempotent."""
        try:
            self._media.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass
