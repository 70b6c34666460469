"""Ray Data reads: sampled clips (or audio windows) from many files, decoded inside the read tasks.

``ray.data.read_videos`` (Ray 2.60) decodes every frame of every file with decord and reads each
whole file into memory. :func:`read_videos` here pushes the sampling into the read tasks: each
task opens its files through mediadecode (local paths, or URLs with range reads through fsspec),
draws clips with a generator seeded from ``(seed, path, epoch)`` and decodes only those frames,
all of a file's clips in one batched call. With ``sampler=None`` it is a drop-in for
``ray.data.read_videos``: same columns (``frame``, ``frame_index``, ``frame_timestamp``), no
decord needed.

Ray is imported when a function of this module is called, never when it is imported; the
datasource classes (:class:`VideoClipDatasource`, :class:`AudioWindowDatasource`, subclasses of
``ray.data.Datasource``) are built on first access. Install with ``pip install
"mediadecode[ray]"``. See ``docs/ray.md``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import numbers
import os
import random
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from . import samplers as _samplers_pkg
from .errors import MediaDecodeError

__all__ = [
    "read_videos",
    "read_audio",
    "derive_seed",
    "list_media_files",
    "VideoClipDatasource",
    "AudioWindowDatasource",
    "VIDEO_EXTENSIONS",
    "AUDIO_EXTENSIONS",
]

logger = logging.getLogger(__name__)

# Ray 2.60's ray.data.read_videos default, so that a folder lists the same files.
VIDEO_EXTENSIONS: tuple[str, ...] = (
    "mp4", "mkv", "mov", "avi", "wmv", "flv", "webm", "m4v", "3gp", "mpeg", "mpg", "ts", "ogv",
    "rm", "rmvb", "vob", "asf", "f4v", "m2ts", "mts", "divx", "xvid", "mxf",
)
AUDIO_EXTENSIONS: tuple[str, ...] = (
    "wav", "flac", "mp3", "m4a", "aac", "ogg", "opus", "wma", "aiff", "aif", "mp4", "mkv", "webm",
)

# Frames decoded per batched call in drop-in mode (bounds the memory of one call).
_DROP_IN_CHUNK = 32

# Built-in samplers by name, and whether they draw at random (take a seed) and take num_clips.
_SAMPLERS: dict[str, tuple[str, bool, bool]] = {
    "random_indices": ("clips_at_random_indices", True, True),
    "regular_indices": ("clips_at_regular_indices", False, True),
    "random_timestamps": ("clips_at_random_timestamps", True, True),
    "regular_timestamps": ("clips_at_regular_timestamps", False, False),
}


def _ray():
    try:
        import ray
        import ray.data
    except ImportError as exc:
        from .errors import BackendUnavailableError

        raise BackendUnavailableError(
            f"mediadecode.ray needs Ray Data ({exc}): pip install \"mediadecode[ray]\""
        ) from exc
    return ray


def derive_seed(seed: int, path: str, epoch: int, purpose: str | None = None) -> int:
    """The seed of one file's draw: the first 63 bits of SHA-256 over ``(seed, path, epoch)``
    (and ``purpose`` when given). The same on every machine and Python process (no ``hash()``
    randomisation), so a read task draws what a local call with the derived seed draws:

    - the clips (or audio windows): ``derive_seed(seed, path, epoch)``;
    - the decoder's transforms (a ``RandomCrop`` location):
      ``derive_seed(seed, path, epoch, purpose="transforms")`` seeds torch's random state while
      the file's decoder is made, a seed of its own so that the crop does not follow the clips.
    """
    raw = f"mediadecode.ray\0{int(seed)}\0{path}\0{int(epoch)}"
    if purpose is not None:
        raw += f"\0{purpose}"
    return int.from_bytes(hashlib.sha256(raw.encode()).digest()[:8], "big") & (2**63 - 1)


# -- listing ---------------------------------------------------------------------------------------


def _strip_open_options(storage_options: dict | None) -> dict:
    kwargs = dict(storage_options or {})
    for key in ("block_size", "cache_type", "cache_options"):
        kwargs.pop(key, None)
    return kwargs


def list_media_files(
    paths: str | os.PathLike | list,
    *,
    file_extensions: list[str] | tuple[str, ...] | None = VIDEO_EXTENSIONS,
    storage_options: dict | None = None,
    ignore_missing_paths: bool = False,
) -> list[str]:
    """Expand ``paths`` (files, folders, URLs; a list may mix them) into media files: folders
    are listed recursively through fsspec (local, ``s3://``, ``gs://``...) and filtered by
    ``file_extensions`` (case-insensitive; None keeps every file); files given by name are kept
    whatever their extension, as Ray does. ``http(s)://`` URLs are taken as files (HTTP has no
    listing). Reads no media. Sorted within each folder.

    Raises:
        SourceNotFoundError: a local path that does not exist (unless ``ignore_missing_paths``).
        RemoteNotFoundError: a URL folder or object that does not exist (same).
        RemoteSourceError: the store refuses the listing.
    """
    from .errors import SourceNotFoundError
    from .remote import is_url, redact_url, translate_error

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    exts = None if file_extensions is None else {e.lower().lstrip(".") for e in file_extensions}

    def keep(name: str) -> bool:
        return exts is None or name.rsplit(".", 1)[-1].lower() in exts

    out: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if not is_url(p):
            local = p[len("file://"):] if p.startswith("file://") else p
            if os.path.isdir(local):
                found = []
                for root, _, files in os.walk(local):
                    found += [os.path.join(root, f) for f in files if keep(f)]
                out += sorted(os.path.abspath(f) for f in found)
            elif os.path.exists(local):
                out.append(os.path.abspath(local))
            elif not ignore_missing_paths:
                raise SourceNotFoundError(f"{local}: no such file or directory")
            continue
        protocol = p.split("::")[-1].split("://", 1)[0].lower()
        if protocol in ("http", "https"):
            out.append(p)
            continue
        from fsspec.core import url_to_fs

        try:
            fs, root = url_to_fs(p, **_strip_open_options(storage_options))
            if fs.isdir(root):
                files = [f for f in fs.find(root) if keep(f)]
                out += sorted(fs.unstrip_protocol(f) for f in files)
            elif fs.exists(root):
                out.append(p)
            elif not ignore_missing_paths:
                raise FileNotFoundError(f"{redact_url(p)}: no such object or folder")
        except Exception as exc:
            if isinstance(exc, FileNotFoundError) and ignore_missing_paths:
                continue
            raise translate_error(exc, p, None, "list") from None
    return out


# -- what one read task does -------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileEntry:
    """One input file: the path or URL a worker opens and the partition values of its path."""

    path: str
    partitions: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _VideoReadOptions:
    """Everything a read task needs to decode one file's clips (pickled into each task)."""

    sampler: Any
    num_clips: int
    num_frames_per_clip: int
    sampler_kwargs: dict
    seed: int
    epoch: int | None
    backend: str | None
    seek_mode: str
    dimension_order: str
    transforms: Any
    storage_options: dict | None
    include_paths: bool
    include_timestamps: bool
    fps: int | None
    index_cache_dir: str | None
    on_error: str
    num_threads: int
    columns: tuple[str, ...] | None = None  # None: every column (no projection pushed down)

    def wants(self, column: str) -> bool:
        return self.columns is None or column in self.columns


def _sampler_call(options: _VideoReadOptions) -> tuple[Callable, bool, bool]:
    """(sampler function, passes a seed, passes num_clips)."""
    sampler = options.sampler
    if isinstance(sampler, str):
        name, random_draw, takes_num_clips = _SAMPLERS[sampler]
        return getattr(_samplers_pkg, name), random_draw, takes_num_clips
    for name, random_draw, takes_num_clips in _SAMPLERS.values():
        if sampler is getattr(_samplers_pkg, name):
            return sampler, random_draw, takes_num_clips
    return sampler, True, True  # a user's sampler takes the built-ins' random-draw arguments


def _open_video(path: str, options: _VideoReadOptions, epoch: int):
    """The file's decoder. It is made with torch's random state seeded from
    ``derive_seed(seed, path, epoch, purpose="transforms")`` (inside ``torch.random.fork_rng``, so
    the worker's own state is untouched): a ``RandomCrop`` among the transforms, which draws its
    location once when the decoder is made (torchcodec 0.17's rule), crops the same place for a
    given ``(seed, path, epoch)`` on any worker, and elsewhere in the next epoch."""
    import torch

    from .decoders import VideoDecoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(options.seed, path, epoch, purpose="transforms"))
        return VideoDecoder(
            path,
            seek_mode=options.seek_mode,
            dimension_order=options.dimension_order,
            backend=options.backend,
            num_threads=options.num_threads,
            storage_options=options.storage_options,
            transforms=options.transforms,
        )


class _NoDecode:
    """A stand-in decoder for the samplers when the frames are not wanted (the clip column is
    pruned): the sampler's own rules run against the real decoder's length and metadata, and its
    frame requests return empty frames, so nothing is decoded."""

    def __init__(self, decoder):
        self._decoder = decoder

    def __len__(self) -> int:
        return len(self._decoder)

    @property
    def metadata(self):
        return self._decoder.metadata

    def _empty(self, n: int):
        import torch

        from .frames import FrameBatch

        nan = torch.full((n,), math.nan, dtype=torch.float64)
        return FrameBatch(torch.empty((n, 0, 0, 0), dtype=torch.uint8), nan, nan.clone())

    def get_frames_at(self, indices):
        return self._empty(len(list(indices)))

    def get_frames_played_at(self, seconds):
        return self._empty(len(list(seconds)))


def _target_block_bytes() -> int:
    from ray.data import DataContext

    target = DataContext.get_current().target_max_block_size
    return int(target) if target else 128 * 1024 * 1024


def _rows_per_block(row_bytes: int) -> int:
    return max(1, _target_block_bytes() // max(1, row_bytes))


def _constant_columns(entry: _FileEntry, n: int, options) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    if options.include_paths and options.wants("path"):
        cols["path"] = np.array([entry.path] * n, dtype=object)
    for key, value in entry.partitions.items():
        if options.wants(key):
            cols[key] = np.array([value] * n, dtype=object)
    return cols


def _clip_blocks(entry: _FileEntry, options: _VideoReadOptions, epoch: int):
    """The blocks of one file in sampler mode: one row per clip."""
    from ray.data.block import BlockAccessor

    fn, random_draw, takes_num_clips = _sampler_call(options)
    kwargs = dict(options.sampler_kwargs)
    kwargs["num_frames_per_clip"] = options.num_frames_per_clip
    if takes_num_clips:
        kwargs["num_clips"] = options.num_clips
    if random_draw:
        kwargs["seed"] = derive_seed(options.seed, entry.path, epoch)
    want_clip = options.wants("clip")
    want_pts = options.wants("pts_seconds")
    if not want_clip and not want_pts and takes_num_clips:
        num_clips, clips, pts = options.num_clips, None, None  # nothing to open
    else:
        with _open_video(entry.path, options, epoch) as decoder:
            batch = fn(decoder if (want_clip or want_pts) else _NoDecode(decoder), **kwargs)
        num_clips = batch.data.shape[0]
        clips = batch.data.numpy() if want_clip else None
        pts = batch.pts_seconds.numpy() if want_pts else None
    row_bytes = clips[0].nbytes if clips is not None and num_clips else 64
    step = _rows_per_block(row_bytes)
    for lo in range(0, num_clips, step):
        hi = min(num_clips, lo + step)
        cols: dict[str, np.ndarray] = {}
        if clips is not None:
            cols["clip"] = clips[lo:hi]
        if pts is not None:
            cols["pts_seconds"] = pts[lo:hi]
        if options.wants("clip_index"):
            cols["clip_index"] = np.arange(lo, hi, dtype=np.int64)
        cols.update(_constant_columns(entry, hi - lo, options))
        yield BlockAccessor.batch_to_block(cols)


def _frame_blocks(entry: _FileEntry, options: _VideoReadOptions, epoch: int):
    """The blocks of one file in drop-in mode: one row per frame, ray.data.read_videos's
    columns (``frame`` (H, W, 3) uint8, ``frame_index``, ``frame_timestamp`` [start, end]
    float32 seconds when ``include_timestamps``)."""
    from ray.data.block import BlockAccessor

    want_frame = options.wants("frame")
    want_ts = options.include_timestamps and options.wants("frame_timestamp")
    with _open_video(entry.path, options, epoch) as decoder:
        n = len(decoder)
        stride = 1
        fps = decoder.metadata.average_fps
        if options.fps is not None and fps:
            stride = max(1, round(fps / options.fps))  # ray.data.read_videos's stride rule
        indices = list(range(0, n, stride))
        meta = decoder.metadata
        row_bytes = max(1, int(meta.width or 1) * int(meta.height or 1) * 3)
        step = min(_DROP_IN_CHUNK, _rows_per_block(row_bytes)) if want_frame else max(1, len(indices))
        for lo in range(0, len(indices), step):
            chunk = indices[lo:lo + step]
            cols: dict[str, np.ndarray] = {}
            if want_frame or want_ts:
                batch = decoder.get_frames_at(chunk)
                if want_frame:
                    cols["frame"] = batch.data.numpy()
                if want_ts:
                    start = batch.pts_seconds.numpy()
                    end = start + batch.duration_seconds.numpy()
                    cols["frame_timestamp"] = np.stack([start, end], axis=1).astype(np.float32)
            if options.wants("frame_index"):
                cols["frame_index"] = np.asarray(chunk, dtype=np.int64)
            cols.update(_constant_columns(entry, len(chunk), options))
            yield BlockAccessor.batch_to_block(cols)


def _read_files(entries: list[_FileEntry], options, epoch: int, file_blocks):
    """A read task's body: each file's blocks; a file that fails raises its error (which names
    the file), or with ``on_error="skip"`` is logged and skipped, with a count per task."""
    from . import index_cache

    if options.index_cache_dir is not None:
        index_cache.configure(directory=options.index_cache_dir)
    skipped = 0
    for entry in entries:
        try:
            # Materialise the file's blocks before yielding any: a file that fails half-way
            # must give all of its rows or none.
            blocks = list(file_blocks(entry, options, epoch))
        except MediaDecodeError as exc:
            if options.on_error != "skip":
                raise
            skipped += 1
            logger.warning("mediadecode.ray: skipped %s (%d skipped in this task): %s",
                           entry.path, skipped, exc)
            continue
        yield from blocks
    if skipped:
        logger.warning("mediadecode.ray: %d of %d files skipped in this read task", skipped, len(entries))


# -- the datasources -----------------------------------------------------------------------------


def _split(items: list, parts: int) -> list[list]:
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    out, lo = [], 0
    for k in range(parts):
        hi = lo + size + (1 if k < extra else 0)
        out.append(items[lo:hi])
        lo = hi
    return out


def _partition_values(path: str, partitioning) -> dict:
    if partitioning is None:
        return {}
    from ray.data.datasource import PathPartitionParser

    from .remote import is_url

    bare = path.split("::")[-1]
    if is_url(bare):
        bare = bare.split("://", 1)[1]  # Ray parses paths without their protocol
    return dict(PathPartitionParser(partitioning)(bare))


class _Base:
    """What both datasources share: files, partitioning, shuffling, the epoch count, column
    pruning and the size estimate (mixed into a ``ray.data.Datasource`` subclass)."""

    _row_columns: tuple[str, ...] = ()

    def _setup(self, files: list[str], *, partitioning, shuffle, options) -> None:
        if shuffle not in (None, "files"):
            raise ValueError(f"shuffle must be None or 'files', got {shuffle!r}")
        self._entries = [_FileEntry(f, _partition_values(f, partitioning)) for f in files]
        self._shuffle = shuffle
        self._options = options
        self._projection_map = None
        # Shared by the copies Ray makes (apply_projection): executions planned so far, and the
        # estimate of one row's bytes.
        self._state = {"executions": 0, "row_bytes": None, "rows_per_file": None}

    def supports_projection_pushdown(self) -> bool:
        return True

    def _columns(self) -> tuple[str, ...] | None:
        cols = self._get_data_columns()
        return None if cols is None else tuple(cols)

    def _epoch(self, data_context) -> int:
        if self._options.epoch is not None:
            return self._options.epoch
        # Ray calls get_read_tasks with a data context once per execution (when it plans the
        # read), and without one while it only inspects the plan: count the former.
        if data_context is None:
            return self._state["executions"]
        epoch = self._state["executions"]
        self._state["executions"] += 1
        return epoch

    # Set by each datasource: the stream type its estimate reads, and
    # (stream metadata, options) -> (bytes of one row, rows per file), None when unknown.
    _media_type: str
    _rows_estimate: Callable[[Any, Any], tuple[int, int | None] | None]

    def _estimate(self) -> tuple[int | None, int | None]:
        """(bytes of one row, rows per file), worked out once from the first file's header."""
        state = self._state
        if state["row_bytes"] is None and self._entries:
            first = self._entries[0].path
            stream = _header_metadata(first, self._options.storage_options, self._media_type)
            rows = None if stream is None else self._rows_estimate(stream, self._options)
            if rows is not None:
                state["row_bytes"], state["rows_per_file"] = rows
        return state["row_bytes"], state["rows_per_file"]

    def estimate_inmemory_data_size(self) -> int | None:
        row_bytes, rows_per_file = self._estimate()
        if row_bytes is None or rows_per_file is None:
            return None
        return int(row_bytes * rows_per_file * len(self._entries))

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context=None) -> list:
        """One read task per group of files; opens no media (the size per row comes from the
        estimate, made once from the first file's header)."""
        from ray.data.block import BlockMetadata
        from ray.data.datasource import ReadTask

        entries = list(self._entries)
        if not entries:
            return []
        epoch = self._epoch(data_context)
        if self._shuffle == "files":
            random.Random(derive_seed(self._options.seed, "shuffle", epoch)).shuffle(entries)
        options = replace(self._options, columns=self._columns())
        row_bytes = self._state["row_bytes"]
        rows_per_file = self._state["rows_per_file"]
        file_blocks = self._file_blocks
        tasks = []
        for group in _split(entries, parallelism):
            num_rows = rows_per_file * len(group) if rows_per_file is not None else None
            size = int(row_bytes * num_rows) if row_bytes is not None and num_rows is not None else None
            meta = BlockMetadata(num_rows=num_rows, size_bytes=size,
                                 input_files=[e.path for e in group], exec_stats=None)

            def read_fn(group=group):
                return _read_files(group, options, epoch, file_blocks)

            tasks.append(ReadTask(read_fn, meta, per_task_row_limit=per_task_row_limit))
        return tasks


def _header_metadata(path: str, storage_options, media_type: str):
    """The first stream of ``media_type`` of ``path`` from its header (no decoding); None when
    the header cannot be read (the estimate is then unknown, the read tasks report the error)."""
    from . import get_container_metadata

    try:
        meta = get_container_metadata(path, storage_options=storage_options)
    except Exception as exc:  # an estimate never fails a read
        logger.debug("mediadecode.ray: no size estimate from %s: %s", path, exc)
        return None
    best = meta.best_video_stream_index if media_type == "video" else meta.best_audio_stream_index
    return None if best is None else meta.streams[best]


def _video_rows(stream, o: _VideoReadOptions) -> tuple[int, int | None] | None:
    """(bytes of one row, rows per file) for files like the one whose video header is
    ``stream`` (frames after ``o.transforms``); None without a frame size."""
    if not (stream.width and stream.height):
        return None
    frame = _output_pixels(o.transforms, int(stream.height), int(stream.width)) * 3
    if o.sampler is None:
        frames = stream.num_frames_from_header
        if frames and o.fps and stream.average_fps_from_header:
            frames = math.ceil(frames / max(1, round(stream.average_fps_from_header / o.fps)))
        return frame, frames or None
    _, _, takes_num_clips = _sampler_call(o)
    return frame * o.num_frames_per_clip, o.num_clips if takes_num_clips else None


def _output_pixels(transforms, height: int, width: int) -> int:
    """Pixels of one output frame of a ``height x width`` stream after ``transforms`` (for the
    size estimate; rotation does not change the count). The input size when the transforms
    cannot be resolved against it (the read tasks then raise the error)."""
    if transforms is None:
        return height * width
    import torch

    from .transforms import TransformRequest

    try:
        with torch.random.fork_rng(devices=[]):  # a RandomCrop draw here must not move the driver's state
            out_h, out_w = TransformRequest(transforms).resolve(height, width).output_size
    except (TypeError, ValueError):
        return height * width
    return out_h * out_w


def _video_file_blocks(entry, options, epoch):
    if options.sampler is None:
        return _frame_blocks(entry, options, epoch)
    return _clip_blocks(entry, options, epoch)


_CLASSES: dict[str, type] = {}


def _classes() -> dict[str, type]:
    if _CLASSES:
        return _CLASSES
    ray = _ray()

    class VideoClipDatasource(_Base, ray.data.Datasource):
        """A ``ray.data.Datasource`` of sampled video clips (or, with ``sampler=None``, of every
        frame, with ``ray.data.read_videos``'s columns). Built by :func:`read_videos`, which
        documents the arguments; use it directly with ``ray.data.read_datasource``."""

        def __init__(self, files: list[str], options: _VideoReadOptions, *, partitioning=None,
                     shuffle=None):
            ray.data.Datasource.__init__(self)
            self._setup(files, partitioning=partitioning, shuffle=shuffle, options=options)

        def get_name(self) -> str:
            return "MediadecodeVideos" if self._options.sampler is None else "MediadecodeVideoClips"

        _media_type = "video"
        _rows_estimate = staticmethod(_video_rows)
        _file_blocks = staticmethod(_video_file_blocks)

    class AudioWindowDatasource(_Base, ray.data.Datasource):
        """A ``ray.data.Datasource`` of audio: one row per file, or ``num_windows`` windows of
        ``window_seconds`` per file drawn at random. Built by :func:`read_audio`."""

        def __init__(self, files: list[str], options: _AudioReadOptions, *, partitioning=None,
                     shuffle=None):
            ray.data.Datasource.__init__(self)
            self._setup(files, partitioning=partitioning, shuffle=shuffle, options=options)

        def get_name(self) -> str:
            return "MediadecodeAudio"

        _media_type = "audio"
        _rows_estimate = staticmethod(_audio_rows)
        _file_blocks = staticmethod(_audio_file_blocks)

    VideoClipDatasource.__module__ = AudioWindowDatasource.__module__ = __name__
    _CLASSES.update(VideoClipDatasource=VideoClipDatasource, AudioWindowDatasource=AudioWindowDatasource)
    return _CLASSES


def __getattr__(name: str):
    if name in ("VideoClipDatasource", "AudioWindowDatasource"):
        return _classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- audio -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AudioReadOptions:
    window_seconds: float | None
    num_windows: int
    seed: int
    epoch: int | None
    sample_rate: int | None
    num_channels: int | None
    backend: str | None
    storage_options: dict | None
    include_paths: bool
    index_cache_dir: str | None
    on_error: str
    columns: tuple[str, ...] | None = None

    def wants(self, column: str) -> bool:
        return self.columns is None or column in self.columns


def _audio_file_blocks(entry: _FileEntry, options: _AudioReadOptions, epoch: int):
    """One row per window: ``audio`` (num_channels, num_samples) float32, ``pts_seconds`` of its
    first sample, ``sample_rate``, ``window_index``."""
    import torch
    from ray.data.block import BlockAccessor

    from .decoders import AudioDecoder

    want_audio = options.wants("audio")
    want_pts = options.wants("pts_seconds")
    with AudioDecoder(entry.path, sample_rate=options.sample_rate, num_channels=options.num_channels,
                      backend=options.backend, storage_options=options.storage_options) as decoder:
        meta = decoder.metadata
        rate = options.sample_rate or meta.sample_rate
        if options.window_seconds is None:
            starts: list[float | None] = [None]
        else:
            begin = float(meta.begin_stream_seconds or 0.0)
            duration = meta.duration_seconds
            if duration is None:
                raise MediaDecodeError(f"{entry.path}: the header gives no duration to draw windows from")
            last = max(begin, begin + float(duration) - options.window_seconds)
            gen = torch.Generator().manual_seed(derive_seed(options.seed, entry.path, epoch))
            draws = torch.rand(options.num_windows, dtype=torch.float64, generator=gen)
            starts = (begin + draws * (last - begin)).tolist()
        audio, pts = [], []
        for start in starts:
            if not (want_audio or want_pts):
                audio.append(None)
                pts.append(math.nan)
                continue
            if start is None:
                samples = decoder.get_all_samples()
            else:
                samples = decoder.get_samples_played_in_range(start, start + options.window_seconds)
            audio.append(samples.data.numpy())
            pts.append(samples.pts_seconds)
    n = len(starts)
    cols: dict[str, Any] = {}
    if want_audio:
        shapes = {a.shape for a in audio}
        cols["audio"] = np.stack(audio) if len(shapes) == 1 else _object_array(audio)
    if want_pts:
        cols["pts_seconds"] = np.asarray(pts, dtype=np.float64)
    if options.wants("sample_rate"):
        cols["sample_rate"] = np.full(n, int(rate), dtype=np.int64)
    if options.wants("window_index"):
        cols["window_index"] = np.arange(n, dtype=np.int64)
    cols.update(_constant_columns(entry, n, options))
    yield BlockAccessor.batch_to_block(cols)


def _object_array(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for k, item in enumerate(items):
        out[k] = item
    return out


def _audio_rows(stream, o: "_AudioReadOptions") -> tuple[int, int] | None:
    """(bytes of one row, rows per file) for files like the one whose audio header is
    ``stream``; None without a rate, channel count or duration."""
    if not (stream.sample_rate and stream.num_channels):
        return None
    rate = o.sample_rate or stream.sample_rate
    channels = o.num_channels or stream.num_channels
    seconds = o.window_seconds if o.window_seconds is not None else stream.duration_seconds
    if not seconds:
        return None
    return int(rate * channels * 4 * seconds), 1 if o.window_seconds is None else o.num_windows


# -- public entry points -----------------------------------------------------------------------------


def _check_common(seed, epoch, on_error) -> int:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0):
        raise ValueError(f"epoch must be an int >= 0 or None, got {epoch!r}")
    if seed is None:
        return random.SystemRandom().randrange(2**63)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    return int(seed)


def _read(ray, datasource, *, concurrency, override_num_blocks, num_cpus, num_gpus, ray_remote_args):
    kwargs: dict[str, Any] = {}
    if num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    if num_gpus is not None:
        kwargs["num_gpus"] = num_gpus
    return ray.data.read_datasource(
        datasource,
        concurrency=concurrency,
        override_num_blocks=override_num_blocks,
        ray_remote_args=ray_remote_args,
        **kwargs,
    )


def read_videos(
    paths: str | os.PathLike | list,
    *,
    sampler: str | Callable | None = None,
    num_clips: int = 1,
    num_frames_per_clip: int = 1,
    sampler_kwargs: dict | None = None,
    seed: int | None = None,
    epoch: int | None = None,
    backend: str | None = None,
    seek_mode: str = "exact",
    dimension_order: str = "NHWC",
    transforms: Any = None,
    storage_options: dict | None = None,
    index_cache_dir: str | os.PathLike | None = None,
    include_paths: bool = False,
    include_timestamps: bool = False,
    fps: int | None = None,
    on_error: str = "raise",
    partitioning: Any = None,
    shuffle: str | None = None,
    file_extensions: list[str] | None = list(VIDEO_EXTENSIONS),
    ignore_missing_paths: bool = False,
    override_num_blocks: int | None = None,
    concurrency: int | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    ray_remote_args: dict | None = None,
):
    """A ``ray.data.Dataset`` of sampled clips from video files, decoded inside the read tasks.

    With a ``sampler``, each row is one clip:

    - ``clip``: ``(num_frames_per_clip, H, W, 3)`` ``uint8`` RGB (``(F, 3, H, W)`` with
      ``dimension_order="NCHW"``), a Ray tensor column (variable-shaped when files differ in
      size);
    - ``pts_seconds``: ``(num_frames_per_clip,)`` float64, each frame's presentation time;
    - ``clip_index``: int64, the clip's position in its file's draw;
    - ``path`` (with ``include_paths=True``) and the ``partitioning`` keys, as strings.

    With ``sampler=None`` (default) each row is one frame with ``ray.data.read_videos``'s (Ray
    2.60) columns: ``frame`` ``(H, W, 3)`` uint8, ``frame_index`` int64, and with
    ``include_timestamps=True`` ``frame_timestamp``, ``[start, end]`` float32 seconds (decord's
    ``get_frame_timestamp``); ``fps=`` keeps every ``max(1, round(average_fps / fps))``-th frame,
    as Ray does. Frames are decoded a few at a time, not the whole file at once.

    Args:
        paths: a file, a folder (listed recursively, see :func:`list_media_files`), a URL
            (``s3://bucket/folder``, ``http(s)://host/file.mp4``...) or a list of them.
        sampler: ``"random_indices"``, ``"regular_indices"``, ``"random_timestamps"``,
            ``"regular_timestamps"``, one of the functions of :mod:`mediadecode.samplers`, or a
            callable with their signature (it is given ``num_clips``, ``num_frames_per_clip``,
            ``seed`` and ``sampler_kwargs``); None: every frame (drop-in mode).
        num_clips, num_frames_per_clip: clips per file and frames per clip (for
            ``"regular_timestamps"`` the clip count follows ``seconds_between_clip_starts`` in
            ``sampler_kwargs``).
        sampler_kwargs: further sampler arguments (``num_indices_between_frames``,
            ``sampling_range_start``, ``policy``...).
        seed: the seed of the draws (an int); each file's draw uses
            ``derive_seed(seed, path, epoch)``. None: a random seed chosen now.
        epoch: None (default): a new draw each time the dataset is executed (epoch 0, 1, ...
            counted in this driver process); an int: the same draw on every execution.
        backend, seek_mode, dimension_order: as for :class:`~mediadecode.VideoDecoder`.
        transforms: the decoder's ``transforms=`` (``Resize`` / ``CenterCrop`` / ``RandomCrop``
            of :mod:`mediadecode.transforms`, torchcodec 0.17 or ``torchvision.transforms.v2``),
            applied while decoding: the ``clip`` (or ``frame``) column has the transformed size.
            A ``RandomCrop`` location is drawn once per file and epoch, as torchcodec draws it
            once per decoder (every clip of the file in that epoch is cropped at the same
            place), from torch's random state seeded with ``derive_seed(seed, path, epoch,
            purpose="transforms")``: the same crop for a fixed ``(seed, path, epoch)`` on any
            worker, a new one in the next epoch. Checked here (ValueError/TypeError).
        storage_options: fsspec options for URLs (credentials, ``endpoint_url``, ``block_size``),
            used to list folders on the driver and to read files on the workers.
        index_cache_dir: a folder every read task uses as :mod:`mediadecode.index_cache`
            directory (a shared file system: the exact-mode index of each file is built once).
        include_paths: add the ``path`` column.
        include_timestamps, fps: drop-in mode only, as ``ray.data.read_videos``.
        on_error: ``"raise"`` (default): a file that cannot be read fails the read with its
            :class:`~mediadecode.errors.MediaDecodeError` (which names the file); ``"skip"``:
            the file gives no rows, and a warning names it with the count of files skipped in
            its read task. Other errors (bad arguments) always raise.
        partitioning, shuffle, file_extensions, ignore_missing_paths, override_num_blocks,
        concurrency, num_cpus, num_gpus, ray_remote_args: as ``ray.data.read_videos``
            (``partitioning`` a ``ray.data.datasource.Partitioning``; ``shuffle`` None or
            ``"files"``, a new file order each epoch).

    Returns:
        ray.data.Dataset

    Raises:
        BackendUnavailableError: Ray Data is not installed (``pip install "mediadecode[ray]"``).
        SourceNotFoundError, RemoteNotFoundError: a path or URL that does not exist (unless
            ``ignore_missing_paths``), raised here while listing; a file that disappears later,
            a 404, or a damaged file raises its error when the dataset is read (Ray wraps it in
            a ``RayTaskError`` that is also an instance of it).
        ValueError, TypeError: invalid arguments.
    """
    ray = _ray()
    seed = _check_common(seed, epoch, on_error)
    if sampler is not None and isinstance(sampler, str) and sampler not in _SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(_SAMPLERS)}")
    if sampler is not None and not isinstance(sampler, str) and not callable(sampler):
        raise TypeError(f"sampler must be a name, a callable or None, got {type(sampler).__name__}")
    for name, value in (("num_clips", num_clips), ("num_frames_per_clip", num_frames_per_clip)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, int) or fps <= 0):
        raise ValueError(f"fps must be a positive int, got {fps!r}")
    if seek_mode not in ("exact", "approximate"):
        raise ValueError(f"Invalid seek mode ({seek_mode!r}); supported values are exact, approximate")
    if dimension_order not in ("NCHW", "NHWC"):
        raise ValueError(f"Invalid dimension order ({dimension_order!r}); supported values are NCHW, NHWC")
    if transforms is not None:
        from .transforms import TransformRequest

        TransformRequest(transforms)  # unsupported transforms raise here, not in every read task
    files = list_media_files(paths, file_extensions=file_extensions, storage_options=storage_options,
                             ignore_missing_paths=ignore_missing_paths)
    options = _VideoReadOptions(
        sampler=sampler, num_clips=int(num_clips), num_frames_per_clip=int(num_frames_per_clip),
        sampler_kwargs=dict(sampler_kwargs or {}), seed=seed, epoch=epoch, backend=backend,
        seek_mode=seek_mode, dimension_order=dimension_order, transforms=transforms,
        storage_options=storage_options,
        index_cache_dir=None if index_cache_dir is None else os.fspath(index_cache_dir),
        include_paths=bool(include_paths), include_timestamps=bool(include_timestamps), fps=fps,
        on_error=on_error, num_threads=max(1, int(num_cpus or 1)),
    )
    datasource = _classes()["VideoClipDatasource"](files, options, partitioning=partitioning,
                                                   shuffle=shuffle)
    return _read(ray, datasource, concurrency=concurrency, override_num_blocks=override_num_blocks,
                 num_cpus=num_cpus, num_gpus=num_gpus, ray_remote_args=ray_remote_args)


def read_audio(
    paths: str | os.PathLike | list,
    *,
    window_seconds: float | None = None,
    num_windows: int = 1,
    seed: int | None = None,
    epoch: int | None = None,
    sample_rate: int | None = None,
    num_channels: int | None = None,
    backend: str | None = None,
    storage_options: dict | None = None,
    index_cache_dir: str | os.PathLike | None = None,
    include_paths: bool = False,
    on_error: str = "raise",
    partitioning: Any = None,
    shuffle: str | None = None,
    file_extensions: list[str] | None = list(AUDIO_EXTENSIONS),
    ignore_missing_paths: bool = False,
    override_num_blocks: int | None = None,
    concurrency: int | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    ray_remote_args: dict | None = None,
):
    """A ``ray.data.Dataset`` of audio decoded inside the read tasks, one row per window:

    - ``audio``: ``(num_channels, num_samples)`` float32 in [-1, 1] (a variable-shaped tensor
      column when lengths differ);
    - ``pts_seconds``: float64, the time of the window's first sample;
    - ``sample_rate``: int64 (the output rate); ``window_index``: int64;
    - ``path`` (``include_paths=True``) and the ``partitioning`` keys.

    Without ``window_seconds`` each file is one row holding all its samples
    (:meth:`~mediadecode.AudioDecoder.get_all_samples`). With it, each file gives
    ``num_windows`` windows of ``window_seconds`` whose starts are drawn uniformly so that each
    window fits in the stream: with ``begin``/``duration`` the stream's
    ``begin_stream_seconds``/``duration_seconds`` and ``last = max(begin, begin + duration -
    window_seconds)``, the starts are ``begin + u * (last - begin)`` for ``u =
    torch.rand(num_windows, dtype=torch.float64, generator=torch.Generator().manual_seed(
    derive_seed(seed, path, epoch)))`` (a file shorter than a window gives shorter windows).
    Each window is :meth:`~mediadecode.AudioDecoder.get_samples_played_in_range` ``(start,
    start + window_seconds)``, so a local decoder call with those starts gives the same rows.

    The other arguments are those of :func:`read_videos`; ``sample_rate``/``num_channels`` are
    as for :class:`~mediadecode.AudioDecoder`.

    Raises:
        As :func:`read_videos`; ValueError for a non-positive ``window_seconds`` or
        ``num_windows``.
    """
    ray = _ray()
    seed = _check_common(seed, epoch, on_error)
    if window_seconds is not None and not (isinstance(window_seconds, numbers.Real) and window_seconds > 0):
        raise ValueError(f"window_seconds must be a positive number or None, got {window_seconds!r}")
    if isinstance(num_windows, bool) or not isinstance(num_windows, numbers.Integral) or num_windows <= 0:
        raise ValueError(f"num_windows must be a positive int, got {num_windows!r}")
    files = list_media_files(paths, file_extensions=file_extensions, storage_options=storage_options,
                             ignore_missing_paths=ignore_missing_paths)
    options = _AudioReadOptions(
        window_seconds=None if window_seconds is None else float(window_seconds),
        num_windows=int(num_windows), seed=seed, epoch=epoch, sample_rate=sample_rate,
        num_channels=num_channels, backend=backend, storage_options=storage_options,
        include_paths=bool(include_paths),
        index_cache_dir=None if index_cache_dir is None else os.fspath(index_cache_dir),
        on_error=on_error,
    )
    datasource = _classes()["AudioWindowDatasource"](files, options, partitioning=partitioning,
                                                     shuffle=shuffle)
    return _read(ray, datasource, concurrency=concurrency, override_num_blocks=override_num_blocks,
                 num_cpus=num_cpus, num_gpus=num_gpus, ray_remote_args=ray_remote_args)
