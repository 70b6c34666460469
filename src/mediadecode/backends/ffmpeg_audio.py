"""The ffmpeg backend's audio reader: FFmpeg's decoders through PyAV, conversion by libswresample.

``av.AudioResampler`` (libswresample) turns any sample format into float32 in [-1, 1] and does the
resampling and channel mixing that ``sample_rate=``/``num_channels=`` ask for.

Exactness. The reference is FFmpeg's full decode: every frame of the stream decoded in order and
pushed through one resampler, the outputs concatenated (what ``ffmpeg -i X -ar R -f f32le`` and
PyAV's ``decode`` + ``AudioResampler`` give). Output sample ``k`` is played at ``origin + k / rate``
(:class:`~mediadecode.sample_grid.SampleGrid`, ``origin`` the pts of the first decoded frame), and
a range returns exactly the samples of its grid indices. The reader gets them in two ways:

- **Cursor.** The reader keeps its decode position: a range that starts at or shortly after the
  end of the previous one continues the same decode, resampler state included, so consecutive
  chunks are the full decode cut in pieces, bit for bit, for every codec and resampling.
- **Anchored seek.** Any other range seeks to a keyframe before it (with a codec pre-roll), maps
  the first decoded frame to its input sample position from its pts, drops input up to an *anchor*
  and starts a fresh resampler there. The anchor is a multiple of ``in_rate / gcd(in_rate,
  rate)`` input samples, so the resampler's output grid coincides with the full decode's, and lies
  a warm-up before the range, so the filter history has converged: the samples equal the full
  decode's bit for bit wherever the decoder's own output after a seek does (PCM, FLAC, MP3, AAC
  without perceptual noise substitution, whose noise generator carries state). Decoders whose state a seek resets converge instead: MP2 to within one 16-bit step (its
  fixed-point synthesis carries a rounding state), Opus and Vorbis to within about 1e-3.
  Positions come from timestamps only when they identify each sample: a container time base
  coarser than a sample (Matroska's 1 ms) is calibrated on the first frames (a constant offset
  between timestamps and sample counts, as constant-size Opus frames give), and where no constant
  offset holds, or the format cannot seek (SWF), the reader decodes forward from the start. Either way, ranges tile: no sample lost or repeated.

Damaged streams are followed as FFmpeg's CLI follows them: a packet that fails to decode is
skipped (the resync after a seek into an MPEG program stream), and a mid-stream change of sample
rate or channel layout rebuilds the resampler, whose output keeps the first format.

The reader composes four parts of :mod:`mediadecode.engine`:
:class:`~mediadecode.engine.audio_input.AudioInput` (the container: open, reopen, seek, frames),
:class:`~mediadecode.engine.audio_clock.SampleClock` (pts to sample positions, the calibration),
:class:`~mediadecode.engine.audio_convert.AudioConverter` (libswresample) and
:class:`~mediadecode.engine.audio_cursor.AudioCursor` (runs, seeks and anchors).
"""

from __future__ import annotations

import numpy as np
import torch

from ..engine.audio_clock import SampleClock
from ..engine.audio_convert import AudioConverter, layout_name
from ..engine.audio_cursor import AudioCursor
from ..engine.audio_input import AudioInput
from ..errors import DecodingError, InvalidMediaError, MediaDecodeError
from ..pyav import av_reason, import_av
from ..sources import Source

__all__ = ["FFmpegAudioReader"]


class FFmpegAudioReader:
    """An audio stream read with PyAV; conversion by libswresample (``av.AudioResampler``).

    Implements :class:`~mediadecode.protocol.AudioStreamReader` and returns exact ranges
    (``returns_exact_range``): see the module docstring for the guarantee.

    Args:
        source: the media.
        stream_index: absolute index of the audio stream; None picks FFmpeg's best.
        sample_rate: output rate in Hz; None keeps the stream's.
        num_channels: output channel count; None keeps the stream's.

    Raises:
        InvalidMediaError: PyAV cannot read the stream, or it has no sample rate.
        StreamNotFoundError, SourceNotFoundError: as :func:`mediadecode.pyav.open_container`
            and :func:`mediadecode.pyav.select_stream`.
    """

    returns_exact_range = True

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
        self._input: AudioInput | None = None
        try:
            self._input = media = AudioInput(source, stream_index)
            self.container_metadata = media.container_metadata
            meta = self.metadata = media.metadata
            stream = media.stream
            if not meta.sample_rate:
                raise InvalidMediaError(f"{source.name}: audio stream {stream.index} has no sample rate")
            in_rate = int(meta.sample_rate)
            self.sample_rate = int(sample_rate or meta.sample_rate)
            self.num_channels = int(num_channels or meta.num_channels or 1)
            # The output layout is fixed at open, so that a mid-stream layout change is mixed to it.
            layout = layout_name(self.num_channels)
            if num_channels is None:
                cc_layout = stream.codec_context.layout
                if cc_layout is not None and cc_layout.nb_channels == self.num_channels:
                    layout = cc_layout.name
            passthrough = self.sample_rate == in_rate and num_channels is None
            clock = SampleClock(in_rate, self.sample_rate, stream.time_base)
            converter = AudioConverter(self.sample_rate, self.num_channels, layout, passthrough)
            self._cursor: AudioCursor = AudioCursor(media, clock, converter, meta.begin_stream_seconds or 0.0)
        except av.FFmpegError as exc:
            self.close()
            raise InvalidMediaError(f"{source.name}: cannot read the audio stream: {av_reason(exc)}") from exc
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the container and its file; idempotent."""
        cursor, media = getattr(self, "_cursor", None), getattr(self, "_input", None)
        if cursor is not None:
            cursor.reset()
        if media is not None:
            media.close()

    def __del__(self) -> None:
        self.close()

    def get_samples_played_in_range(self, start_seconds: float, stop_seconds: float | None):
        """``(data, pts)``: exactly the samples of the grid indices of ``[start, stop)`` (see the
        module docstring), float32 ``(num_channels, n)``; ``pts`` is ``start_seconds``, or the
        stream's origin when the range starts before it.

        Raises:
            DecodingError: the stream cannot be decoded further (names the file, the time and
                FFmpeg's reason), or PyAV fails on a damaged stream.
        """
        cursor = self._cursor
        try:
            grid = cursor.ensure_timing()
            lo, hi = grid.span(start_seconds, stop_seconds)
            pts = max(float(start_seconds), grid.origin)
            if hi is not None and hi <= lo:
                return torch.empty((self.num_channels, 0), dtype=torch.float32), pts
            parts = cursor.run_for(lo).take(lo, hi)
        except MediaDecodeError:
            cursor.reset()
            raise
        except Exception as exc:  # PyAV, numpy: a damaged stream; never a raw error
            cursor.reset()
            raise DecodingError(
                f"{self._source.name}: audio decoding failed in [{start_seconds}, {stop_seconds}) s: "
                f"{av_reason(exc)} ({type(exc).__name__})"
            ) from exc
        if not parts:
            return torch.empty((self.num_channels, 0), dtype=torch.float32), pts
        data = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)), pts
