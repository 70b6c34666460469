"""The ``ffmpeg`` backend: FFmpeg on the CPU through PyAV (whose wheel bundles FFmpeg).

Video is read by :class:`FFmpegVideoReader`, which composes the engine's stages
(:mod:`mediadecode.engine`): a :class:`~mediadecode.engine.DecoderSetup` opens and configures the
decoder, a :class:`~mediadecode.frame_index.FrameIndex` says where every frame is, a
:class:`~mediadecode.engine.DecodeCursor` seeks and decodes, an output stage converts the frames
asked for, and the GOP planner splits multi-GOP requests over threads.

- ``seek_mode="exact"`` builds the frame index from one pass over the stream's packets (demux only,
  no decoding), or takes it from the index cache.
- ``seek_mode="approximate"`` trusts the header (frame count, rate, duration) and maps index ``i``
  to the frame on screen at ``begin + (i + 0.5) / fps``.
- Batched requests arrive sorted and de-duplicated (the facade does that); only the frames asked
  for are converted to RGB (swscale, ``rgb24``), with FFmpeg frame threading for decoding.

Audio is read by :class:`~mediadecode.backends.ffmpeg_audio.FFmpegAudioReader`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

from .. import index_cache, lifecycle
from ..capabilities import Capabilities
from ..engine import (
    CpuDecoderSetup,
    DecodeCursor,
    DecoderSetup,
    FrameTiming,
    GopParallelDecoder,
    OutputFormat,
    plan_gop_chunks,
)
from ..engine.parallel import MAX_PARALLEL_GOPS, available_cores
from ..errors import DecodingError, EndOfStreamError, InvalidMediaError
from ..frame_index import FrameIndex, FrameMappings
from ..metadata import VideoStreamMetadata, resolve_video
from ..protocol import RawFrames
from ..pyav import (
    FirstFrameInfo,
    MediaHandle,
    av_reason,
    container_metadata,
    first_packet_pts,
    import_av,
    select_stream,
    timestamp_rate,
)
from ..sources import Source
from ..transforms import TransformRequest
from ..wav import WavReader
from .ffmpeg_audio import FFmpegAudioReader
from .ffmpeg_encoder import FFMPEG_ENCODER_CAPABILITIES, PyAVStreamEncoder

__all__ = ["FFmpegBackend", "FFmpegVideoReader", "FFmpegAudioReader"]

# 8-bit 4:2:0 formats whose even-sized frames swscale converts with its unscaled converter.
_PLAIN_FORMATS = frozenset({"yuv420p", "yuvj420p", "nv12", "nv21"})

# Version of what this reader stores in the index cache.
_CACHE_VERSION = 1


def _container_size(container) -> int | None:
    """The input's size in bytes (FFmpeg's ``avio_size``), None when the input cannot tell."""
    try:
        size = int(container.size)
    except (AttributeError, OSError, ValueError, import_av().FFmpegError):
        return None
    return size if size > 0 else None


class _ReportedAsDecodingError:
    """Context manager: an FFmpeg error that escapes a request's stages (a seek, a conversion)
    is raised as :class:`DecodingError` naming the source, never as PyAV's own class. A plain
    class, not a generator, so no suspended frame keeps the error alive."""

    __slots__ = ("source_name",)

    def __init__(self, source_name: str):
        self.source_name = source_name

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ, exc, tb) -> bool:
        if exc is not None and isinstance(exc, import_av().FFmpegError):
            raise DecodingError(f"{self.source_name}: decoding failed: {av_reason(exc)}") from exc
        return False


class _StreamOpener:
    """Opens the source and its stream ``index`` with a setup's decoder configuration. Holds no
    reference to a reader, so a reader dropped without ``close()`` is freed at once."""

    __slots__ = ("source", "setup", "index")

    def __init__(self, source: Source, setup: DecoderSetup, index: int):
        self.source, self.setup, self.index = source, setup, index

    def __call__(self) -> tuple[MediaHandle, Any]:
        media = self.setup.open(self.source)
        try:
            stream = media.container.streams[self.index]
            self.setup.configure(stream)
        except BaseException:
            media.close()
            raise
        return media, stream


class FFmpegVideoReader:
    """A video stream read with PyAV; implements
    :class:`~mediadecode.protocol.VideoStreamReader`.

    Args:
        source: the source to open.
        stream_index: the video stream (None: FFmpeg's best).
        seek_mode: ``"exact"`` or ``"approximate"``.
        num_threads: FFmpeg decoding threads (0: automatic); ignored when ``setup`` is given.
        setup: how the decoder is opened and where frames go (default: FFmpeg's software
            decoders, RGB by swscale; the nvdec backend passes its own).
        transforms: resize/crop steps applied inside FFmpeg's conversion, after the rotation
            (then ``frames_are_rotated`` is True).
        output_dtype: ``"uint8"``, ``"float32"`` (FFmpeg's ``rgb48`` over 65535) or ``"auto"``
            (float32 for sources of more than 8 bits per sample, as torchcodec 0.17).
        frame_mappings: ffprobe's frame list (torchcodec's ``custom_frame_mappings``): the
            exact-mode index, used instead of the index cache and the packet scan.

    Attributes:
        metadata, container_metadata: as the protocol says.
        frame_index: the exact :class:`~mediadecode.frame_index.FrameIndex` (None in approximate
            mode).
        frame_pts, frame_durations: float64 seconds of the index (None in approximate mode).

    Raises:
        InvalidMediaError: not readable media, or approximate mode without a frame rate.
        StreamNotFoundError: no such video stream.
        FrameMappingsError: ``frame_mappings`` do not fit the stream (their first frame is not
            the stream's).
    """

    _cursor: DecodeCursor  # set once the stream is chosen
    frames_are_rotated = False
    fills_positions = True  # get_* accept ``positions`` (see mediadecode.engine.output)
    # Below this many frames to decode in all, GOP-parallel threads are not worth starting.
    PARALLEL_MIN_FRAMES = 8

    def __init__(self, source: Source, *, stream_index: int | None, seek_mode: str,
                 num_threads: int = 0, setup: DecoderSetup | None = None,
                 transforms: TransformRequest | None = None, output_dtype: str = "uint8",
                 frame_mappings: FrameMappings | None = None):
        av = import_av()
        self._frame_mappings = frame_mappings
        self._source = source
        self._lock = threading.RLock()
        self._setup = setup if setup is not None else CpuDecoderSetup(num_threads)
        self._num_threads = num_threads
        self._parked = False
        self._parallel: GopParallelDecoder | None = None
        self.frame_index: FrameIndex | None = None
        media: MediaHandle | None = self._setup.open(source)
        assert media is not None
        try:
            self.container_metadata = container_metadata(media.container)
            stream = select_stream(media.container, source, "video", stream_index)
            self._setup.configure(stream)
            meta = self.container_metadata.streams[stream.index]
            assert isinstance(meta, VideoStreamMetadata)
            self.metadata = meta
            self._tb = stream.time_base
            self._cursor = DecodeCursor(
                _StreamOpener(source, self._setup, stream.index),
                source_name=source.name,
                index=None,
                forward_window=max(1, int(round(2.0 / self._tb))),  # 2 s, approximate mode
                skip_nonref=self._setup.skip_nonref,
            )
            self._cursor.adopt(media, stream)
            media = None  # the cursor owns it now
            self._setup.probe(self._cursor)
            self._load_index_and_first_frame(seek_mode)
            self._setup.fix_metadata(self.container_metadata, meta)
            resolve_video(meta, self.container_metadata.duration_seconds_from_header,
                          size_bytes=_container_size(self._cursor.media.container),
                          timestamp_fps=timestamp_rate(stream))
            if seek_mode == "approximate" and not meta.average_fps:
                raise InvalidMediaError(
                    f"{source.name}: the header gives no frame rate; use seek_mode='exact'"
                )
            index = self.frame_index
            timing = FrameTiming(self._tb, index.duration_after if index else None, meta.average_fps)
            fmt = self._output_format(transforms, output_dtype)
            if fmt is None:
                self._output = self._setup.output_stage(self._coded_size, timing)
            else:
                self._output = self._setup.output_stage(self._coded_size, timing, fmt)
            self._writer = self._output.writer()
            if self._setup.threaded:
                lifecycle.park_before_fork(self)
        except av.FFmpegError as exc:
            self.close()
            if media is not None:
                media.close()
            raise InvalidMediaError(f"{source.name}: cannot read the video stream: {av_reason(exc)}") from exc
        except BaseException:
            self.close()
            if media is not None:
                media.close()
            raise

    # -- opening -------------------------------------------------------------------------------

    def _load_index_and_first_frame(self, seek_mode: str) -> None:
        """The exact index (the caller's frame mappings, the index cache, else a packet scan)
        and the first frame's facts (cache, else a decode), written into the metadata."""
        cursor = self._cursor
        stream = cursor.stream
        key = self._source.cache_key(cursor.media.file if cursor.media else None, "ffmpeg-video", _CACHE_VERSION, stream.index)
        cached = index_cache.lookup(key) or {}
        complete = "index" in cached and "first" in cached  # nothing to store again
        if self._frame_mappings is not None:
            index = FrameIndex.from_ffprobe_json(self._frame_mappings, self._tb)
            index.check_mapped(first_packet_pts(cursor.container, stream),
                               f"{self._source.name}, stream {stream.index}")
            cursor.seek_to_start()
            self._set_index(index)
        elif seek_mode == "exact":
            if "index" in cached:
                index = FrameIndex.from_dict(cached["index"], self._tb)
            else:
                index = self._scan()
                cached["index"] = index.as_dict()
            self._set_index(index)
        if "first" not in cached:
            frame = cursor.first_frame()
            info = None if frame is None else self._setup.first_frame_info(frame)
            cached["first"] = None if info is None else info.as_dict()
        first = cached["first"]
        self._apply_first_frame(None if first is None else FirstFrameInfo.from_dict(first))
        if seek_mode == "exact" and self._frame_mappings is None and not complete:
            # (the cache keeps scanned indices only, never a caller's mappings)
            index_cache.store(key, cached)

    @property
    def key_frame_indices(self):
        """int64 indices of the keyframes (exact mode), else None."""
        return None if self.frame_index is None else self.frame_index.key_frame_indices

    def _scan(self) -> FrameIndex:
        """The exact index: from the MP4/MOV header where the container allows (a remote file is
        then not read whole), else from one pass over the stream's packets (demux only)."""
        cursor = self._cursor
        index = FrameIndex.from_header(cursor.container, cursor.stream)
        if index is not None:
            return index
        index = FrameIndex.from_packets(cursor.container.demux(cursor.stream), self._tb)
        cursor.seek_to_start()
        return index

    def _set_index(self, index: FrameIndex) -> None:
        self.frame_index = index
        self._cursor.index = index
        meta = self.metadata
        meta.num_frames_from_content = index.num_frames
        if index.num_frames:
            meta.begin_stream_seconds_from_content = index.begin_seconds
            meta.end_stream_seconds_from_content = index.end_seconds

    def _apply_first_frame(self, info: FirstFrameInfo | None) -> None:
        meta = self.metadata
        if info is None:
            self._coded_size = (meta.width or 0, meta.height or 0)
            meta.rotation = None
            return
        info.apply_to(meta)
        self._coded_size = (info.width, info.height)

    def _output_format(self, transforms: TransformRequest | None, output_dtype: str) -> OutputFormat | None:
        """The conversion torchcodec 0.17 would do, or None for plain uint8 RGB of an 8-bit
        4:2:0 source of even size: swscale's unscaled converter, whose pixels are the same
        whatever path torchcodec takes (rotated by the facade). Every other source (more than 8
        bits, 4:2:2/4:4:4, odd sizes), float output and transforms are converted as torchcodec
        converts them, rotation included."""
        meta = self.metadata
        deep = (meta.bit_depth or 8) > 8
        dtype = output_dtype
        if dtype == "auto":
            dtype = "float32" if deep else "uint8"
        width, height = self._coded_size
        plain = meta.pixel_format in _PLAIN_FORMATS and width % 2 == 0 and height % 2 == 0
        if transforms is None and dtype == "uint8" and plain:
            return None
        plan = None if transforms is None else transforms.resolve(meta.height, meta.width)
        self.frames_are_rotated = True
        return OutputFormat(dtype=dtype, plan=plan, rotation=meta.rotation)

    @property
    def frame_pts(self):
        return None if self.frame_index is None else self.frame_index.pts_seconds

    @property
    def frame_durations(self):
        return None if self.frame_index is None else self.frame_index.duration_seconds

    # -- lifecycle -----------------------------------------------------------------------------

    def park(self) -> None:
        """Free the container and its decoder threads, keeping the frame index; the next
        request reopens the source (see :mod:`mediadecode.lifecycle`)."""
        with self._lock:
            cursor = getattr(self, "_cursor", None)
            if cursor is None or not cursor.is_open:
                return
            self._close_decoders()
            self._parked = True

    def close(self) -> None:
        """Close the container and free the decoder; idempotent. Requests then raise."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ failed before the lock existed
            return
        with lock:
            self._parked = False
            self._close_decoders()

    def _close_decoders(self) -> None:
        parallel, self._parallel = self._parallel, None
        if parallel is not None:
            parallel.close()
        cursor = getattr(self, "_cursor", None)
        if cursor is not None:
            cursor.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _ensure_open(self) -> DecodeCursor:
        cursor = self._cursor
        if not cursor.is_open:
            if not self._parked:
                raise ValueError(f"{self._source.name}: the reader is closed")
            cursor.open()
            self._parked = False
        return cursor

    # -- GOP-parallel decoding -----------------------------------------------------------------

    def _parallel_plan(self, cursor: DecodeCursor, targets: Sequence[int]) -> list[tuple[int, int]] | None:
        """Chunks for parallel threads, or None when this cursor should do the whole request:
        one-thread readers, setups that do not allow it, sources that cannot be opened again
        cheaply (a caller's file object; a URL, whose clones would fetch the header and its
        blocks again), and sequential reading (iteration continues this cursor's decode)."""
        if (not self._setup.gop_parallel or self._num_threads == 1 or not self._source.reopenable
                or self.frame_index is None or not cursor.must_seek(targets[0])):
            return None
        workers = min(available_cores(), self._num_threads or available_cores(), MAX_PARALLEL_GOPS)
        return plan_gop_chunks(targets, self.frame_index, workers, self.PARALLEL_MIN_FRAMES)

    def _parallel_decoder(self) -> GopParallelDecoder:
        if self._parallel is None:
            opener = _StreamOpener(self._source, CpuDecoderSetup(1), self._cursor.stream.index)
            index, name = self.frame_index, self._source.name

            def make_cursor() -> DecodeCursor:
                worker = DecodeCursor(opener, source_name=name, index=index, forward_window=1)
                worker.open()
                return worker

            self._parallel = GopParallelDecoder(make_cursor, self._output)
        return self._parallel

    # -- primitives ----------------------------------------------------------------------------

    def get_frames_at(self, indices: Sequence[int], positions=None) -> RawFrames:
        """Frames at sorted, unique indices; ``positions`` (see
        :class:`~mediadecode.engine.OutputBatch`) places them in the caller's order."""
        with self._lock, _ReportedAsDecodingError(self._source.name):
            cursor = self._ensure_open()
            index = self.frame_index
            if index is None:
                return self._approximate_frames_at(cursor, indices, positions)
            targets = [index.pts[i] for i in indices]
            chunks = self._parallel_plan(cursor, targets) if targets else None
            batch = self._output.new_batch(len(targets), positions, concurrent=chunks is not None)
            if chunks is not None:
                self._parallel_decoder().decode(targets, chunks, batch)
            else:
                cursor.decode_exact(targets, batch, self._writer)
            return self._output.finish(batch)

    def _approximate_frames_at(self, cursor: DecodeCursor, indices: Sequence[int], positions) -> RawFrames:
        """Index ``i`` is the frame on screen at ``begin + (i + 0.5) / fps``. A header may count
        frames the stream does not have: when the decode reaches the end of the stream before
        the last index's time has come, that index is past the real end.

        Raises:
            EndOfStreamError: the last index lies past the real end (``num_frames``: the real
                count, the indices whose time falls before the last frame's end).
        """
        fps = self.metadata.average_fps or 1.0  # approximate mode needs a rate (checked at open)
        begin = self.metadata.begin_stream_seconds or 0.0
        seconds = [begin + (i + 0.5) / fps for i in indices]
        batch = self._output.new_batch(len(seconds), positions)
        cursor.decode_played([self._ticks(s) for s in seconds], batch, self._writer)
        if indices and cursor.at_end:
            # The last slot holds the stream's last frame (sorted targets, decoding ran out).
            last = batch.targets(len(indices) - 1)[0]
            end = float((batch.pts[last] + batch.durations[last]) * self._tb)
            count = max(1, math.ceil((end - begin) * fps - 0.5 - 1e-9))
            if indices[-1] >= count:
                raise EndOfStreamError(
                    f"{self._source.name}: frame {indices[-1]} is past the end of the stream: "
                    f"the header counts {self.metadata.num_frames_from_header} frames, but "
                    f"decoding ends at {end:.6f} s, after {count}",
                    num_frames=count,
                )
        return self._output.finish(batch)

    def _ticks(self, seconds: float) -> int:
        return int(math.floor(seconds / self._tb + 1e-6))

    def get_frames_played_at(self, seconds: Sequence[float], positions=None) -> RawFrames:
        """For each sorted, unique time, the frame on screen then (approximate mode)."""
        with self._lock, _ReportedAsDecodingError(self._source.name):
            return self._played_at(self._ensure_open(), seconds, positions)

    def _played_at(self, cursor: DecodeCursor, seconds: Sequence[float], positions) -> RawFrames:
        batch = self._output.new_batch(len(seconds), positions)
        cursor.decode_played([self._ticks(s) for s in seconds], batch, self._writer)
        return self._output.finish(batch)

    def get_frames_played_in_range(self, start_seconds: float, stop_seconds: float) -> RawFrames:
        """The frame on screen at ``start_seconds`` and every frame with pts below
        ``stop_seconds`` (approximate mode)."""
        with self._lock, _ReportedAsDecodingError(self._source.name):
            cursor = self._ensure_open()
            frames = cursor.frames_played_in_range(self._ticks(start_seconds), self._ticks(stop_seconds))
            batch = self._output.new_batch(len(frames))
            for slot, frame in enumerate(frames):
                self._writer.write(frame, batch, slot)
            return self._output.finish(batch)


class FFmpegBackend:
    """FFmpeg through PyAV, on the CPU; the embedded default (priority 100)."""

    name = "ffmpeg"
    priority = 100
    capabilities = Capabilities(
        devices=("cpu",), media_types=("video", "audio"),
        transforms=frozenset({"resize", "crop"}), output_dtypes=("uint8", "float32"),
        frame_mappings=True, ffmpeg_based=True,
    )
    # Stated once, in the capabilities; the class attributes mirror them for the protocol.
    devices = capabilities.devices
    media_types = capabilities.media_types
    install_hint = "pip install av"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import av  # noqa: F401
        except ImportError as exc:
            return f"PyAV is not importable ({exc}); fix: pip install av"
        return None

    def open_video(self, source: Source, *, stream_index, seek_mode, num_threads, device="cpu",
                   transforms=None, output_dtype="uint8",
                   frame_mappings: FrameMappings | None = None):
        return FFmpegVideoReader(
            source, stream_index=stream_index, seek_mode=seek_mode, num_threads=num_threads,
            transforms=transforms, output_dtype=output_dtype, frame_mappings=frame_mappings,
        )

    def open_audio(self, source: Source, *, stream_index, sample_rate, num_channels):
        # Plain PCM WAV without resampling or mixing: the samples straight from the bytes.
        if stream_index in (None, 0):
            wav = WavReader.open_if_plain_wav(source)
            if wav is not None:
                if sample_rate in (None, wav.sample_rate) and num_channels in (None, wav.num_channels):
                    return wav
                wav.close()
        return FFmpegAudioReader(
            source, stream_index=stream_index, sample_rate=sample_rate, num_channels=num_channels
        )

    # Encoding (mediadecode.encoders): PyAV's encoders and muxers, in ffmpeg_encoder.
    encoder_capabilities = FFMPEG_ENCODER_CAPABILITIES

    def open_encoder(self, target, video, audio):
        """A :class:`~mediadecode.backends.ffmpeg_encoder.PyAVStreamEncoder` writing ``target``."""
        return PyAVStreamEncoder(target, video, audio)
