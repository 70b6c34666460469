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
"""

from __future__ import annotations

import math
from collections import deque
from fractions import Fraction

import numpy as np
import torch

from ..errors import DecodingError, InvalidMediaError, MediaDecodeError
from ..metadata import AudioStreamMetadata
from ..pyav import av_reason, container_metadata, import_av, open_container, select_stream
from ..sample_grid import SampleGrid
from ..sources import Source

__all__ = ["FFmpegAudioReader"]

# Frames used to calibrate timestamps against sample counts (the first one excluded: decoders
# trim it by the codec delay).
_CALIBRATION_FRAMES = 6
# A range starting this many seconds past the cursor's position seeks instead of decoding through.
_MAX_FORWARD_SECONDS = 4.0


class _SeekMissed(Exception):
    """The decode after a seek started after its anchor (an imprecise demuxer seek)."""


def _layout_name(num_channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(num_channels, f"{num_channels}c")


class _Run:
    """One forward decode: output blocks ``(C, n)`` float32 in order, and the grid index of the
    next sample it will give (``next_index``). ``pending`` holds blocks already decoded."""

    def __init__(self, blocks, first_index: int):
        self.blocks = blocks
        self.next_index = first_index
        self.pending: deque = deque()
        self.exhausted = False

    def next_block(self):
        if self.pending:
            return self.pending.popleft()
        if self.exhausted:
            return None
        block = next(self.blocks, None)
        if block is None:
            self.exhausted = True
        return block


class FFmpegAudioReader:
    """An audio stream read with PyAV; conversion by libswresample (``av.AudioResampler``).

    Implements :class:`~mediadecode.protocol.AudioStreamReader` and returns exact ranges
    (``returns_exact_range``): see the module docstring for the guarantee.
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
        self._used = False  # True once the container was read past its initial position
        self._run: _Run | None = None
        self._grid: SampleGrid | None = None
        self._origin: Fraction | None = None  # pts of the first decoded frame, seconds (exact)
        self._calibration: int | None = None  # sample count minus pts position, when constant
        self._seekable = True
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
            self._in_rate = int(meta.sample_rate)
            self.sample_rate = int(sample_rate or meta.sample_rate)
            self.num_channels = int(num_channels or meta.num_channels or 1)
            # The output layout is fixed at open, so that a mid-stream layout change is mixed to it.
            self._layout = _layout_name(self.num_channels)
            if num_channels is None:
                cc_layout = stream.codec_context.layout
                if cc_layout is not None and cc_layout.nb_channels == self.num_channels:
                    self._layout = cc_layout.name
            self._keep_layout = num_channels is None
        except av.FFmpegError as exc:
            self.close()
            raise InvalidMediaError(f"{source.name}: cannot read the audio stream: {av_reason(exc)}") from exc
        except BaseException:
            self.close()
            raise

    # -- lifecycle --------------------------------------------------------------------------------

    def _reopen(self) -> None:
        """Go back to the start of the stream by reopening the container.

        ``seek(0)`` is not equivalent to a fresh open: it lands on the first packet with pts >= 0
        and skips those before it (the AAC priming packet that an MP4 edit list marks for discard,
        Opus pre-skip handling), so the first frames decode differently. A fresh open decodes them
        exactly as a plain decode from the start does.
        """
        self._run = None
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
        self._run = None
        if media is not None:
            try:
                media.close()
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def __del__(self) -> None:
        self.close()

    # -- frames -----------------------------------------------------------------------------------

    def _frames(self):
        """Decoded frames of the stream from the container's position. A packet FFmpeg cannot
        decode is skipped, as FFmpeg's CLI does (it logs and goes on): after a seek into an MPEG
        program stream the first packets start mid-frame and the decoder resyncs on the next."""
        av = import_av()
        self._used = True
        for packet in self._container.demux(self._stream):
            try:
                frames = packet.decode()
            except av.InvalidDataError:
                continue
            yield from frames

    def _position_of(self, frame) -> int | None:
        """The input sample index of ``frame``'s first sample in the full decode, from its pts."""
        if frame.pts is None or self._origin is None:
            return None
        tb = frame.time_base or self._stream.time_base
        seconds = Fraction(frame.pts) * Fraction(tb)
        return math.floor((seconds - self._origin) * self._in_rate + Fraction(1, 2)) + (
            self._calibration or 0
        )

    def _learn_timing(self, index: int, frame, count: int, offsets: list[int]) -> None:
        """Called for the first frames of a decode from the start: the origin, then the offset
        between sample counts and timestamps (``count`` samples precede ``frame``)."""
        if index == 0:
            if self._origin is None:
                tb = frame.time_base or self._stream.time_base
                pts = frame.pts if frame.pts is not None else 0
                self._origin = Fraction(pts) * Fraction(tb) if tb is not None else Fraction(0)
                self._grid = SampleGrid(float(self._origin), self.sample_rate)
            return
        if self._calibration is not None or not self._seekable:
            return
        if frame.pts is None:
            self._seekable = False
            return
        offsets.append(count - self._position_of(frame))  # no calibration applied yet
        if len(offsets) == _CALIBRATION_FRAMES - 1 or len(set(offsets)) > 1:
            if len(set(offsets)) == 1:
                self._calibration = offsets[0]
            else:
                self._seekable = False  # timestamps do not identify samples: decode forward

    def _blocks(self, anchor: int | None):
        """Output blocks ``(C, n)`` float32 of a decode from the container's position. With
        ``anchor`` (an input sample index), input before it is dropped and a fresh resampler
        starts there; without, this is a decode from the start (and learns the timing)."""
        av = import_av()
        channels = self.num_channels
        resampler = None
        shape = None  # (format, layout, rate) the resampler was built for
        count = 0  # input samples taken so far (decode from the start)
        offsets: list[int] = []
        learning = anchor is None
        passthrough = self.sample_rate == self._in_rate and self._keep_layout
        frames = self._frames() if learning else self._frames_from(anchor)
        for i, frame in enumerate(frames):
            if frame.samples == 0:
                continue
            if learning:
                if i < _CALIBRATION_FRAMES:
                    self._learn_timing(i, frame, count, offsets)
                count += frame.samples
            if (
                resampler is None
                and passthrough
                and frame.format.name == "fltp"
                and frame.sample_rate == self.sample_rate
                and frame.layout.nb_channels == channels <= 8
            ):
                yield frame.to_ndarray()
                continue
            frame_shape = (frame.format.name, frame.layout.name, frame.sample_rate)
            if resampler is not None and frame_shape != shape:
                # A mid-stream format change: FFmpeg's CLI reconfigures its filter graph; the
                # output keeps its format.
                yield from self._packed(resampler.resample(None))
                resampler = None
            if resampler is None:
                # Packed float32 ("flt"), one plane: PyAV's to_ndarray on planar frames with more
                # than 8 channels reads past AVFrame.data[8] and crashes.
                resampler = av.AudioResampler(format="flt", layout=self._layout, rate=self.sample_rate)
                shape = frame_shape
            # Timestamps in samples: the resampler sees a steady clock whatever the container's.
            frame.pts = None
            yield from self._packed(resampler.resample(frame))
        if learning and self._calibration is None and self._seekable and len(offsets) <= 1:
            self._calibration = offsets[0] if offsets else 0  # a stream of a frame or two
        if resampler is not None:
            yield from self._packed(resampler.resample(None))

    def _frames_from(self, anchor: int, checks: int = 3):
        """Frames from input sample ``anchor`` on, after a seek: frames before it dropped, the
        one holding it cut, and the timestamps of the next ``checks`` frames checked against the
        sample count before any is given out (after a seek into an MPEG program stream the
        parser may give a frame twice).

        Raises:
            _SeekMissed: the decode starts after the anchor, a frame has no pts, or the
                timestamps disagree with the sample count.
        """
        held = []
        pos = None
        for frame in self._frames():
            if frame.samples == 0:
                continue
            p = self._position_of(frame)
            if pos is None:
                if p is None or p > anchor:
                    raise _SeekMissed
                if p + frame.samples <= anchor:
                    continue
                if p < anchor:
                    frame = self._drop_head(frame, anchor - p)
                pos = anchor
            elif p != pos:
                raise _SeekMissed
            pos += frame.samples
            if checks:
                held.append(frame)
                checks -= 1
                if checks:
                    continue
                yield from held
                held = []
                continue
            yield frame
        yield from held

    def _packed(self, frames):
        for out in frames:
            yield out.to_ndarray().reshape(-1, self.num_channels).T

    @staticmethod
    def _drop_head(frame, n: int):
        """``frame`` without its first ``n`` samples (a new frame, same format)."""
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

    # -- runs -------------------------------------------------------------------------------------

    def _start_from_beginning(self) -> _Run:
        self._reopen()
        self._run = _Run(self._blocks(None), 0)
        return self._run

    def _ensure_timing(self) -> None:
        """Make the origin and the calibration known: decode the first frames from the start
        (kept as the cursor's pending output, so a range at the start reuses them)."""
        if self._grid is not None and (self._calibration is not None or not self._seekable):
            return
        run = self._run if self._run is not None and self._run.next_index == 0 else None
        run = run or self._start_from_beginning()
        while (
            (self._grid is None or (self._calibration is None and self._seekable))
            and not run.exhausted
        ):
            block = next(run.blocks, None)
            if block is None:
                run.exhausted = True
            else:
                run.pending.append(block)
        if self._grid is None:  # no frame at all
            begin = self.metadata.begin_stream_seconds or 0.0
            self._origin = Fraction(begin)
            self._grid = SampleGrid(float(begin), self.sample_rate)

    def _anchor_for(self, lo: int) -> tuple[int, int]:
        """``(input anchor, its output index)`` for a seek to output sample ``lo``."""
        rin, rout = self._in_rate, self.sample_rate
        if rin == rout:
            return lo, lo
        step = rin // math.gcd(rin, rout)
        warmup = 256 + 64 * math.ceil(rin / rout)  # input samples for the filter to converge
        anchor = max(0, (lo * rin // rout - warmup) // step * step)
        return anchor, anchor * rout // rin

    def _preroll_seconds(self) -> float:
        # Codecs with overlapping transforms or a bit reservoir (AAC, MP3, Opus, Vorbis) need
        # packets before the target to produce the same samples as a decode from the start: an
        # MP3 frame's reservoir reaches back up to 511 bytes, several frames at low bit rates
        # (4 frames left errors at 16 kHz, 12 none). Opus' decoder state (SILK's and CELT's filters) converges more slowly: measured on
        # generated WebM, 0.2 s still left 1e-3, 0.8 s none.
        cc = self._stream.codec_context
        if cc.name == "opus":
            return 0.8
        frame_size = cc.frame_size or 1024
        return max(0.1, 12 * frame_size / self._in_rate)

    def _seek_run(self, lo: int) -> _Run | None:
        """A run positioned by a seek for output sample ``lo``, None when a decode from the start
        is as good (the target is near the start) or the only way (no seeking)."""
        av = import_av()
        anchor, first = self._anchor_for(lo)
        preroll = self._preroll_seconds()
        for attempt in range(2):
            target = float(self._origin) + anchor / self._in_rate - preroll * (1 + 4 * attempt)
            if target <= float(self._origin) + preroll:
                return None
            self._run = None
            try:
                tb = self._stream.time_base
                self._container.seek(int(math.floor(target / tb)), stream=self._stream, backward=True)
                self._used = True
            except av.FFmpegError:
                self._seekable = False  # the format cannot seek (SWF): decode forward
                return None
            run = _Run(self._blocks(anchor), first)
            try:
                block = next(run.blocks, None)
            except _SeekMissed:
                continue
            if block is None:
                run.exhausted = True
            else:
                run.pending.append(block)
            return run
        return None

    def _position_for(self, lo: int) -> _Run:
        run = self._run
        forward = _MAX_FORWARD_SECONDS * self.sample_rate
        if run is not None and run.next_index <= lo and (
            lo - run.next_index <= forward or not self._seekable or run.exhausted
        ):
            return run
        if self._seekable and lo > 0:
            run = self._seek_run(lo)
            if run is not None:
                self._run = run
                return run
        run = self._run
        if run is not None and run.next_index <= lo:
            return run
        return self._start_from_beginning()

    @staticmethod
    def _take(run: _Run, lo: int, hi: int | None) -> list:
        parts = []
        index = run.next_index
        while hi is None or index < hi:
            block = run.next_block()
            if block is None:
                break
            n = block.shape[1]
            if index + n <= lo:
                index += n
                continue
            a = max(0, lo - index)
            b = n if hi is None else min(n, hi - index)
            parts.append(block[:, a:b])
            if b < n:
                run.pending.appendleft(block[:, b:])
                index += b
                break
            index += n
        run.next_index = index
        return parts

    # -- the protocol -----------------------------------------------------------------------------

    def get_samples_played_in_range(self, start_seconds: float, stop_seconds: float | None):
        """``(data, pts)``: exactly the samples of the grid indices of ``[start, stop)`` (see the
        module docstring), float32 ``(num_channels, n)``; ``pts`` is ``start_seconds``, or the
        stream's origin when the range starts before it.

        Raises:
            DecodingError: the stream cannot be decoded further (names the file, the time and
                FFmpeg's reason), or PyAV fails on a damaged stream.
        """
        try:
            self._ensure_timing()
            grid = self._grid
            lo, hi = grid.span(start_seconds, stop_seconds)
            pts = max(float(start_seconds), grid.origin)
            if hi is not None and hi <= lo:
                return torch.empty((self.num_channels, 0), dtype=torch.float32), pts
            run = self._position_for(lo)
            parts = self._take(run, lo, hi)
        except MediaDecodeError:
            self._run = None
            raise
        except Exception as exc:  # PyAV, numpy: a damaged stream; never a raw error
            self._run = None
            raise DecodingError(
                f"{self._source.name}: audio decoding failed in [{start_seconds}, {stop_seconds}) s: "
                f"{av_reason(exc)} ({type(exc).__name__})"
            ) from exc
        if not parts:
            return torch.empty((self.num_channels, 0), dtype=torch.float32), pts
        data = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)), pts
