"""The ffmpeg backend's audio reader: FFmpeg's decoders through PyAV, conversion by libswresample.

``av.AudioResampler`` (libswresample) turns any sample format into float32 in [-1, 1] and does the
resampling and channel mixing that ``sample_rate=``/``num_channels=`` ask for.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import DecodingError, InvalidMediaError
from ..metadata import AudioStreamMetadata
from ..pyav import av_reason, container_metadata, import_av, open_container, select_stream
from ..sources import Source

__all__ = ["FFmpegAudioReader"]


class FFmpegAudioReader:
    """An audio stream read with PyAV; conversion by libswresample (``av.AudioResampler``).

    Implements :class:`~mediadecode.protocol.AudioStreamReader`.
    """

    def __init__(
        self,
        source: Source,
        *,
        stream_index: int | None,
        sample_rate: int | None,
        num_channels: int | None,
    ):
        av = import_av()
        self._source = source
        self._used = False  # True once the container was read past its initial position
        self._media = open_container(source)
        self._container = self._media.container
        try:
            self.container_metadata = container_metadata(self._container)
            stream = select_stream(self._container, source, "audio", stream_index)
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
            raise InvalidMediaError(f"{source.name}: cannot read the audio stream: {av_reason(exc)}") from exc
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
        self._media.close()
        self._media = open_container(self._source)
        self._container = self._media.container
        self._stream = self._container.streams[index]
        self._used = False

    def close(self) -> None:
        """Close the container and its file; idempotent."""
        media = getattr(self, "_media", None)
        self._container = None
        if media is not None:
            media.close()

    def __del__(self) -> None:
        self.close()

    def _preroll_seconds(self) -> float:
        # Codecs with overlapping transforms or a bit reservoir (AAC, MP3, Opus, Vorbis) need a few
        # packets before the target to produce the same samples as a decode from the start.
        cc = self._stream.codec_context
        frame_size = cc.frame_size or 1024
        return max(0.1, 4 * frame_size / (self.metadata.sample_rate or 1))

    def get_samples_played_in_range(self, start_seconds: float, stop_seconds: float | None):
        av = import_av()
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
            raise DecodingError(f"{self._source.name}: audio decoding failed: {av_reason(exc)}") from exc
        if planar:
            data = planar[0] if len(planar) == 1 else np.concatenate(planar, axis=1)
            return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)), first_pts
        if not chunks:
            return torch.empty((self.num_channels, 0), dtype=torch.float32), (
                first_pts if first_pts is not None else start_seconds
            )
        data = np.concatenate(chunks, axis=1).reshape(-1, self.num_channels).T
        return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)), first_pts
