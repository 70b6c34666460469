"""The facade: :class:`VideoDecoder` and :class:`AudioDecoder`.

Their public surface mirrors torchcodec 0.17's ``torchcodec.decoders.VideoDecoder`` and
``AudioDecoder`` (names, arguments, return types, error classes), on any backend. This module owns
everything every backend must do the same way: argument checks, negative indices, slices, bounds
errors, the seconds-to-index rules of exact mode, de-duplication and sorting of batched requests,
rotation, dimension order, empty requests, pickling and reopening in DataLoader workers.

Where torchcodec 0.17 has a rough edge we do the right thing and say so:

- ``get_frames_at([])`` and ``get_frames_played_at([])`` return an empty :class:`FrameBatch`;
- ``get_frames_in_range(start, stop)`` with ``start > stop`` (after negative indices are resolved)
  raises :class:`ValueError` instead of returning an empty batch;
- ``get_frame_played_at`` and ``get_frames_played_at`` both raise :class:`IndexError` for a time
  outside ``[begin_stream_seconds, end_stream_seconds)``;
- argument errors are :mod:`mediadecode.errors` classes that are both the Python class
  (``IndexError``, ``ValueError``, ``TypeError``) and ``RuntimeError``, which torchcodec raises
  from its C++ checks for several of them, so either ``except`` catches them; messages name the
  source;
- decoders have ``close()`` and work as context managers; they pickle as ``(source, options)``.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import lifecycle, limits, selection
from .capabilities import capabilities_of
from .cuda_options import get_nvdec_cache_capacity, set_cuda_backend, set_nvdec_cache_capacity
from .engine.output import allocate_frames
from .errors import (
    EndOfStreamError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    OutOfRangeError,
    UnsupportedRequestError,
)
from .fallback import CpuFallbackStatus
from .frame_index import FrameIndex, read_ffprobe_json
from .frames import AudioSamples, Frame, FrameBatch, empty_pts
from .metadata import AudioStreamMetadata, VideoStreamMetadata
from .sources import Source, as_source
from .wav import WavDecoder
from .shaping import FrameShaper, backend_output_keywords
from .transforms import TransformRequest

__all__ = [
    "VideoDecoder",
    "SimpleVideoDecoder",
    "AudioDecoder",
    "CpuFallbackStatus",
    "VideoStreamMetadata",
    "AudioStreamMetadata",
    "set_cuda_backend",
    "get_nvdec_cache_capacity",
    "set_nvdec_cache_capacity",
    "WavDecoder",
]

_ITER_CHUNK = 8
# How many times one request may learn a smaller frame count (EndOfStreamError) and retry.
_END_RETRIES = 3


def _device_str(device: Any) -> str:
    if device is None:
        # torchcodec 0.17: None means the current default device
        return str(torch.get_default_device())
    if isinstance(device, torch.device):
        return str(device)
    if isinstance(device, str):
        torch.device(device)  # validates the spelling, raises RuntimeError on nonsense
        return device
    raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")


def _limit_option(value: Any) -> int | None:
    """Validate ``max_output_bytes=`` (bytes; 0: no limit; None: the environment's or default)."""
    limits.max_output_bytes(value)  # raises ValueError on a bad value
    return value


def _default_num_threads() -> int:
    # Inside a DataLoader worker the workers already use the cores: one thread each.
    try:
        from torch.utils.data import get_worker_info

        if get_worker_info() is not None:
            return 1
    except Exception:  # pragma: no cover
        pass
    return 0


def _output_options(transforms: Any, output_dtype: Any) -> dict[str, Any]:
    """``transforms=`` and ``output_dtype=`` as decoder options (torchcodec 0.17's checks)."""
    names = {torch.uint8: "uint8", torch.float32: "float32"}
    if isinstance(output_dtype, str) and output_dtype == "auto":
        dtype = "auto"
    elif isinstance(output_dtype, torch.dtype) and output_dtype in names:
        dtype = names[output_dtype]
    else:
        raise ValueError(
            f"Invalid output_dtype ({output_dtype}). "
            "Supported values are torch.uint8, torch.float32, and 'auto'."
        )
    request = None if transforms is None else TransformRequest(transforms)
    if request is not None and not request.transforms:
        request = None
    return {"transforms": request, "output_dtype": dtype}


class _Decoder:
    """Shared lifecycle: backend choice, lazy (re)opening, pickling, fork safety, closing."""

    _media_type = ""
    _metadata: Any  # the reader's stream metadata, set when the source is opened

    def __init__(self, source: Any, options: dict[str, Any]):
        self._source: Source = as_source(source)
        self._options = options
        self._lock = threading.RLock()
        self._reader = None
        self._pid = os.getpid()
        self._closed = False
        self.backend: str | None = None
        self._open()

    # -- opening -------------------------------------------------------------------------------

    def _open_with(self, backend_obj) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _open(self) -> None:
        device = self._options.get("device", "cpu")
        plan = selection.plan_backends(
            self._media_type,
            device,
            self._options.get("backend"),
            source_kind=self._source.kind,
            seek_mode=self._options.get("seek_mode"),
            frame_mappings=self._options.get("frame_mappings") is not None,
        )
        # Whether the first open chose the backend automatically: a decoder reopened after
        # pickling names its backend explicitly, but keeps what the first choice allowed.
        self._options.setdefault("auto_selected", plan.choice.allows_cpu_fallback)
        reader, name = selection.open_first(
            plan, self._source.name, lambda name, backend: self._open_with(backend)
        )
        self._reader = reader
        self.backend = name
        self._pid = os.getpid()
        self._options["backend"] = name  # reopen with the same backend after pickling

    @property
    def _r(self):
        """The open reader; reopened lazily after unpickling or in a forked child."""
        if self._closed:
            raise ValueError(f"{self._source.name}: the decoder is closed")
        if self._reader is None or self._pid != os.getpid():
            stale, self._reader = self._reader, None
            if self._pid != os.getpid():
                # Forked child. The inherited reader shares the parent's file offset, and closing
                # it (or letting it be freed) hangs: FFmpeg would join decoder threads that exist
                # only in the parent. Keep it referenced, unused, for the life of this process.
                # A lock held by another parent thread at fork time stays held here: replace it.
                lifecycle.abandon(stale)
                self._lock = threading.RLock()
            self._open()
        return self._reader

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the underlying files and free native resources. Idempotent.

        After ``close()`` every decoding method raises :class:`ValueError`.
        """
        if self._pid != os.getpid():  # forked child: never close the parent's reader (see _r)
            self._closed = True
            reader, self._reader = self._reader, None
            lifecycle.abandon(reader)
            return
        with self._lock:
            self._closed = True
            reader, self._reader = self._reader, None
            if reader is not None:
                reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        # A decoder dropped in a forked child must not free the reader it inherited (see _r).
        try:
            if self._reader is not None and self._pid != os.getpid():
                lifecycle.abandon(self._reader)
        except Exception:
            pass

    def __getstate__(self) -> dict[str, Any]:
        return {
            "source": self._source,
            "options": dict(self._options),
            "backend": self.backend,
            "closed": self._closed,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._source = state["source"]
        self._options = state["options"]
        self.backend = state["backend"]
        self._lock = threading.RLock()
        self._reader = None
        self._pid = os.getpid()
        self._closed = state.get("closed", False)
        self._after_unpickle()

    def _after_unpickle(self) -> None:
        """Restore subclass state after unpickling; the source reopens on first use."""

    @property
    def stream_index(self) -> int:
        """The stream decoded: the one asked for, or FFmpeg's best stream of the media type."""
        self._r  # noqa: B018
        return self._metadata.stream_index

    def __repr__(self) -> str:
        meta = getattr(self, "_metadata", None)
        index = meta.stream_index if meta is not None else self._options.get("stream_index")
        return (
            f"{type(self).__name__}({self._source.name!r}, stream_index={index}, "
            f"backend={self.backend!r})"
        )

    def _check_output(self, nbytes: float, what: str) -> None:
        """Refuse a request whose output would exceed the output limit (mediadecode.limits)."""
        limits.check_output_bytes(nbytes, what=what, source_name=self._source.name,
                                  limit=self._options.get("max_output_bytes"))

    @property
    def source(self) -> Source:
        """The normalised :class:`~mediadecode.sources.Source` this decoder reads."""
        return self._source

    @property
    def stats(self) -> dict[str, int | None]:
        """Remote read counters of a URL source (see ``docs/remote.md``): ``bytes_read``
        (bytes transferred from storage), ``read_calls`` (range requests), ``retries``,
        ``opens`` (files opened), summed over this decoder's life in this process; every value
        is None for local paths, bytes and file objects."""
        return self._source.stats


def _as_index(value: Any, name: str = "frame index") -> int:
    """An int from an ``int``, a NumPy integer or an integer 0-d tensor (as torchcodec 0.17
    accepts them); bools are refused."""
    if isinstance(value, bool) or (isinstance(value, Tensor) and value.dtype == torch.bool):
        raise InvalidArgumentTypeError(f"{name} must be an int, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise InvalidArgumentTypeError(f"{name} must be an int, got {type(value).__name__}") from None


def _as_seconds(value: Any, name: str = "seconds") -> float:
    """A float from a real number or a one-element tensor (as torchcodec 0.17 accepts them)."""
    if isinstance(value, Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        return float(value)
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise InvalidArgumentTypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def _as_index_list(indices: Any) -> list[int]:
    if isinstance(indices, Tensor):
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise InvalidArgumentTypeError(f"indices must be integers, got a tensor of {indices.dtype}")
        return [int(i) for i in indices.reshape(-1).tolist()]
    if isinstance(indices, (str, bytes)) or not isinstance(indices, (Sequence, Iterator)) and not hasattr(indices, "__array__"):
        raise InvalidArgumentTypeError(f"indices must be a sequence of ints or a tensor, got {type(indices).__name__}")
    out = []
    for i in list(indices):
        if isinstance(i, bool):
            raise InvalidArgumentTypeError("indices must be integers, got a bool")
        try:
            out.append(operator.index(i))
        except TypeError:
            raise InvalidArgumentTypeError(f"indices must be integers, got {type(i).__name__}") from None
    return out


def _as_seconds_list(seconds: Any) -> list[float]:
    if isinstance(seconds, Tensor):
        return [float(s) for s in seconds.reshape(-1).tolist()]
    if isinstance(seconds, (str, bytes)):
        raise InvalidArgumentTypeError("seconds must be a sequence of numbers or a tensor")
    return [_as_seconds(s) for s in list(seconds)]


def _key_frame_indices(reader) -> Tensor | None:
    """A reader's keyframe indices: its own (an optional reader attribute of the protocol), else
    its exact frame index's; None when it knows neither."""
    keys = getattr(reader, "key_frame_indices", None)
    if keys is None and getattr(reader, "frame_index", None) is not None:
        keys = reader.frame_index.key_frame_indices
    return keys


class VideoDecoder(_Decoder):
    """Decode frames of one video stream into ``torch.uint8`` RGB tensors.

    The public surface is torchcodec 0.17's ``VideoDecoder``; the backend is pluggable.

    Args:
        source: a path (``str`` or ``os.PathLike``), a URL (``http(s)://``, ``s3://``, any
            fsspec protocol; read with range requests, see ``docs/remote.md``), ``bytes``, a 1-D
            ``torch.uint8`` tensor of encoded bytes, or a binary file-like object with ``read``
            and ``seek``.
        stream_index: absolute index of the video stream; None picks FFmpeg's best video stream.
        dimension_order: ``"NCHW"`` (default; frames ``(3, H, W)``) or ``"NHWC"`` (``(H, W, 3)``).
        num_threads: decoding threads. None (default): 1 inside a DataLoader worker, otherwise 0,
            which lets FFmpeg pick from the core count. ``num_ffmpeg_threads`` (torchcodec's
            spelling) is accepted as an alias.
        device: ``"cpu"``, or a CUDA device for GPU backends; None (default) means torch's
            default device, ``torch.get_default_device()``, as in torchcodec 0.17.
        seek_mode: ``"exact"`` (default) scans the packets once at open (no decoding) so that
            frame ``i`` is always the i-th frame in presentation order and ``num_frames`` is exact;
            ``"approximate"`` trusts the header (frame count, rate, duration) and maps index ``i``
            to the frame on screen at ``begin + (i + 0.5) / average_fps``: faster to open, may be
            off on variable-frame-rate media.
        backend: backend name (see :func:`mediadecode.list_backends`); None follows the selection
            rules (``use_backend()``, ``MEDIADECODE_BACKEND``, the config file, then automatic).
        storage_options: for a URL, options of its fsspec file system (credentials,
            ``client_kwargs``...; ``block_size``/``cache_type`` for the file), as in pandas and
            ``datasets``; ignored for local sources.
        timeout: for a URL, seconds or ``(connect, read)`` seconds (default 10 s, 30 s).
        allow_playlists: let FFmpeg open playlist-type formats (HLS, ffconcat, image-sequence
            patterns...) that make it open other files; False (default) refuses them with
            :class:`~mediadecode.errors.UnsafeMediaError`. Only for trusted local files.
        transforms: a sequence of ``Resize`` / ``CenterCrop`` / ``RandomCrop`` from
            :mod:`mediadecode.transforms`, ``torchcodec.transforms`` or
            ``torchvision.transforms.v2``, applied in order after the rotation, as torchcodec
            0.17's ``transforms=`` (a ``RandomCrop`` location is drawn once, here). Backends that
            declare ``Capabilities.transforms`` apply them inside their conversion (the ffmpeg
            backend: FFmpeg's, with torchcodec's pixels); otherwise this facade applies them with
            torch (``docs/transforms.md`` states the tolerance).
        output_dtype: ``torch.uint8`` (default, 0-255), ``torch.float32`` (values in [0, 1];
            FFmpeg's 16-bit RGB over 65535, so 10/12-bit sources keep their precision) or
            ``"auto"`` (float32 when the stream has more than 8 bits per sample, else uint8),
            as torchcodec 0.17.
        custom_frame_mappings: ffprobe's frame list as JSON, torchcodec 0.17's argument: a path,
            JSON text (``str`` or ``bytes``) or a file object holding
            ``{"frames": [{"pts": ..., "duration": ..., "key_frame": 0|1}, ...]}``
            (``pkt_pts``/``pkt_duration`` also accepted), pts and durations in the stream's time
            base. It is the exact-mode index: no scan at open. Make it with
            ``mediadecode index VIDEO > frames.json`` or ``ffprobe -v error -i VIDEO
            -select_streams v:0 -show_frames -show_entries frame=pts,duration,pkt_duration,key_frame
            -of json``. Backends that cannot take it (decord) are skipped. Malformed JSON raises
            ``ValueError``; mappings whose first frame is not the stream's raise
            :class:`~mediadecode.errors.FrameMappingsError` (a ``RuntimeError``).
        max_output_bytes: the most bytes one request may return (0: no limit; None: the
            ``MEDIADECODE_MAX_OUTPUT_BYTES`` environment variable, else half the memory; see
            :mod:`mediadecode.limits`). A request above it raises
            :class:`~mediadecode.errors.OutputTooLargeError` before decoding.

    Approximate mode and lying headers: a header frame count above what the header's duration
    and rate allow, or above one frame per byte of the file, is not believed (``num_frames`` is
    bounded, ``num_frames_from_header`` keeps the header's word); when a decode finds the real
    end of the stream earlier still, ``len()`` and ``metadata.num_frames`` shrink to the real
    count, iteration, slices and ranges stop there, and an index past it raises
    :class:`IndexError`.

    Attributes:
        metadata (VideoStreamMetadata): the stream's metadata; ``width``/``height`` are those of
            the source frames after rotation, before ``transforms``.
        stream_index (int): the stream decoded.
        backend (str): the backend that serves this decoder.

    Rotation: frames come out rotated by ``metadata.rotation`` (the display matrix), as players
    show them and as torchcodec >= 0.11 does, on every backend.

    Raises:
        SourceNotFoundError: a path that does not exist.
        InvalidMediaError: the source is not readable media (names the source and FFmpeg's reason).
        StreamNotFoundError: no video stream, or ``stream_index`` is out of range or not video.
        BackendUnavailableError: the chosen backend cannot be used here (with the fix).
        UnsupportedRequestError: the backend chosen explicitly cannot serve this request (a
            source kind, seek mode, device or stream it lacks); a ``ValueError``.
        NoBackendError: in automatic selection, every backend tried failed (lists each and why).
        UnknownBackendError: ``backend`` names no registered backend.
        UnsafeMediaError: a playlist-type format (HLS, concat...) without ``allow_playlists``.
        RemoteSourceError: a URL that cannot be read, naming the redacted URL and the HTTP
            status; ``RemoteNotFoundError`` (404, also ``FileNotFoundError``) and
            ``RemoteTimeoutError`` (also ``TimeoutError``) are subclasses. Raised at open or
            by any later read.
        NotMediaError: FFmpeg's probe finds no media (an ``InvalidMediaError``).
        OutputTooLargeError: (any request) the output would exceed ``max_output_bytes``; a
            ``MemoryError``.
        DecodingError: (any request) the frames asked for do not decode.
        ValueError, TypeError: invalid arguments.
    """

    _media_type = "video"

    def __init__(
        self,
        source: Any,
        *,
        stream_index: int | None = None,
        dimension_order: str = "NCHW",
        num_threads: int | None = None,
        device: str | torch.device | None = None,
        seek_mode: str = "exact",
        backend: str | None = None,
        num_ffmpeg_threads: int | None = None,
        storage_options: dict | None = None,
        timeout: float | tuple[float, float] | None = None,
        allow_playlists: bool = False,
        transforms: Sequence[Any] | None = None,
        output_dtype: torch.dtype | str = torch.uint8,
        custom_frame_mappings: Any = None,
        max_output_bytes: int | None = None,
    ):
        if dimension_order not in ("NCHW", "NHWC"):
            raise ValueError(
                f"Invalid dimension order ({dimension_order!r}); supported values are NCHW, NHWC"
            )
        if seek_mode not in ("exact", "approximate"):
            raise ValueError(
                f"Invalid seek mode ({seek_mode!r}); supported values are exact, approximate"
            )
        if num_threads is not None and num_ffmpeg_threads is not None and num_threads != num_ffmpeg_threads:
            raise ValueError("num_threads and num_ffmpeg_threads disagree; pass only one")
        threads = num_threads if num_threads is not None else num_ffmpeg_threads
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
            raise ValueError(f"num_threads must be an int >= 0 or None, got {threads!r}")
        if stream_index is not None and (isinstance(stream_index, bool) or not isinstance(stream_index, int)):
            raise InvalidArgumentTypeError(f"stream_index must be an int or None, got {type(stream_index).__name__}")
        options = {
            "stream_index": stream_index,
            "dimension_order": dimension_order,
            "num_threads": threads,
            "device": _device_str(device),
            "seek_mode": seek_mode,
            "backend": backend,
            "max_output_bytes": _limit_option(max_output_bytes),
        }
        options.update(_output_options(transforms, output_dtype))  # transforms, output_dtype
        # custom_frame_mappings: read and checked here, before anything opens (as torchcodec)
        if custom_frame_mappings is not None:
            if seek_mode == "approximate":
                raise ValueError(
                    "custom_frame_mappings is incompatible with seek_mode='approximate'; leave "
                    "seek_mode unspecified (or 'exact') to use the custom frame mappings."
                )
            options["frame_mappings"] = read_ffprobe_json(custom_frame_mappings)
        source = as_source(source, storage_options=storage_options, timeout=timeout,
                           allow_playlists=allow_playlists)
        super().__init__(source, options)

    def _open_with(self, backend_obj):
        o = self._options
        threads = o["num_threads"] if o["num_threads"] is not None else _default_num_threads()
        extra = {}
        if capabilities_of(type(backend_obj)).cpu_fallback:
            # A GPU backend may decode on the CPU what its hardware cannot (reported by
            # decoder.cpu_fallback) only when it was chosen automatically, never when asked for.
            extra["allow_cpu_fallback"] = bool(o.get("auto_selected", False))
        extra.update(backend_output_keywords(capabilities_of(type(backend_obj)),
                                             o.get("transforms"), o.get("output_dtype", "uint8")))
        if o.get("frame_mappings") is not None:  # only backends declaring frame_mappings get here
            extra["frame_mappings"] = o["frame_mappings"]
        reader = backend_obj.open_video(
            self._source,
            stream_index=o["stream_index"],
            seek_mode=o["seek_mode"],
            num_threads=threads,
            device=o["device"],
            **extra,
        )
        self._set_reader_info(reader)
        o = self._options
        self._shaper = FrameShaper.for_stream(
            reader.metadata, capabilities_of(type(backend_obj)),
            frames_are_rotated=bool(getattr(reader, "frames_are_rotated", False)),
            transforms=o.get("transforms"), output_dtype=o.get("output_dtype", "uint8"),
            dimension_order=o["dimension_order"], device=o.get("device", "cpu"),
        )
        return reader

    def _set_reader_info(self, reader) -> None:
        meta = reader.metadata
        self._metadata = meta
        self._num_frames = int(meta.num_frames or 0)
        self._begin = float(meta.begin_stream_seconds or 0.0)
        end = meta.end_stream_seconds
        self._end = float(end) if end is not None else math.inf
        # Optional reader attributes of the protocol (mediadecode.protocol.VideoStreamReader).
        self._fills_positions = bool(getattr(reader, "fills_positions", False))

    @property
    def transforms(self) -> tuple:
        """The decoder's transforms as :mod:`mediadecode.transforms` objects (empty: none)."""
        request = self._options.get("transforms")
        return () if request is None else request.transforms

    @property
    def metadata(self) -> VideoStreamMetadata:
        """The stream's :class:`~mediadecode.metadata.VideoStreamMetadata` (opens the source if a
        pickled decoder has not opened it yet)."""
        self._r  # noqa: B018
        return self._metadata

    @property
    def frame_index(self) -> FrameIndex | None:
        """The exact-mode :class:`~mediadecode.frame_index.FrameIndex` of the stream (every
        frame's pts and duration in stream ticks, keyframes), or None in approximate mode and on
        backends that keep no tick index (torchcodec without ``custom_frame_mappings``)."""
        return getattr(self._r, "frame_index", None)

    @property
    def key_frame_indices(self) -> Tensor:
        """int64 ``(num_keyframes,)``: the indices (presentation order) of the stream's
        keyframes, as torchcodec 0.17's ``VideoDecoder._get_key_frame_indices()``; from the
        exact-mode index (the scan or ``custom_frame_mappings``) or the backend's own library.

        Raises:
            UnsupportedRequestError: approximate mode, or a backend that does not know its
                keyframes; a ``RuntimeError`` as torchcodec raises without a scan (and a
                ``ValueError``: the request is what has to change).
        """
        keys = _key_frame_indices(self._r)
        if keys is None:
            raise UnsupportedRequestError(
                f"{self._source.name}: the keyframes are known only in seek_mode='exact' "
                f"(backend {self.backend!r}, seek_mode={self._options.get('seek_mode')!r})"
            )
        return keys.clone()

    def _get_key_frame_indices(self) -> Tensor:
        """torchcodec 0.17's spelling of :attr:`key_frame_indices`."""
        return self.key_frame_indices

    @property
    def cpu_fallback(self) -> CpuFallbackStatus:
        """Whether a GPU decoder fell back to decoding on the CPU, as torchcodec's
        ``VideoDecoder.cpu_fallback``: ``bool(status)`` is True after a fallback, ``str(status)``
        says why. The backend's reader provides it (``reader.cpu_fallback``); for a backend that
        decodes on the CPU anyway it is torchcodec's CPU status, ``"[CPU] Fallback status: No fallback
        required"`` (``bool`` False)."""
        status = getattr(self._r, "cpu_fallback", None)
        if status is None:
            return CpuFallbackStatus.not_applicable(self.backend or "")
        return status

    # -- output shaping ------------------------------------------------------------------------

    def _finish(self, data: Tensor) -> Tensor:
        return self._shaper.apply(data)

    def _empty(self) -> FrameBatch:
        self._r  # noqa: B018
        return FrameBatch(self._shaper.empty(), empty_pts(), empty_pts())

    def _batch_for(self, fetch, keys: list) -> FrameBatch:
        """Fetch unique sorted keys once, in the requested order: a reader that declares
        ``fills_positions`` writes each frame to every position asking for it; otherwise the
        unique frames are gathered back into that order."""
        if not keys:
            return self._empty()
        self._check_frames(len(keys))
        unique = sorted(set(keys))
        if unique == keys:
            with self._lock:
                data, pts, dur = fetch(unique)
            return FrameBatch(data=self._finish(data), pts_seconds=pts, duration_seconds=dur)
        where = {k: n for n, k in enumerate(unique)}
        order = [where[k] for k in keys]
        if self._fills_positions:
            # no second, gathered copy of the batch
            positions: list[list[int]] = [[] for _ in unique]
            for pos, u in enumerate(order):
                positions[u].append(pos)
            with self._lock:
                data, pts, dur = fetch(unique, positions=positions)
            return FrameBatch(data=self._finish(data), pts_seconds=pts, duration_seconds=dur)
        with self._lock:
            data, pts, dur = fetch(unique)
        if data.device.type == "cpu" and data.is_contiguous():
            # numpy's take copies whole frames; torch's uint8 gather is ~10x slower here
            gathered = allocate_frames((len(order), *data.shape[1:]), data.dtype)
            data = torch.from_numpy(np.take(data.numpy(), order, axis=0, out=gathered))
        else:
            data = data[torch.tensor(order, dtype=torch.long, device=data.device)]
        order_t = torch.tensor(order, dtype=torch.long)
        return FrameBatch(data=self._finish(data), pts_seconds=pts[order_t], duration_seconds=dur[order_t])

    def _check_frames(self, count: int) -> None:
        h, w = int(self._metadata.height or 0), int(self._metadata.width or 0)
        self._check_output(limits.video_bytes(count, h, w), f"a request of {count} frames of {w}x{h}")

    def check_output_size(self, num_frames: int) -> None:
        """Check that a request for ``num_frames`` frames would stay within the output limit
        (``max_output_bytes``, see :mod:`mediadecode.limits`), before building it: for code
        that turns arguments into long requests, such as the clip samplers. Every request
        checks itself anyway.

        Raises:
            OutputTooLargeError: ``num_frames`` frames of this stream's size exceed the limit.
        """
        self._r  # noqa: B018
        self._check_frames(num_frames)

    def _learn_num_frames(self, exc: EndOfStreamError) -> None:
        """The backend found the real end before the header's count: believe it from now on."""
        if not 0 <= exc.num_frames < self._num_frames:
            raise exc  # a count that does not shrink: retrying could loop
        self._num_frames = exc.num_frames
        self._metadata.num_frames = exc.num_frames

    # -- index access --------------------------------------------------------------------------

    def __len__(self) -> int:
        self._r  # noqa: B018
        return self._num_frames

    def _check_index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise OutOfRangeError(
                f"frame index {index} is out of bounds for {self._source.name}, "
                f"which has {n} frames"
            )
        return index + n if index < 0 else index

    def _frames_at(self, indices: list[int]) -> FrameBatch:
        """Frames at explicit indices (negatives count from the end)."""
        return self._frames_for(lambda: [self._check_index(i) for i in indices])

    def _frames_for(self, resolve) -> FrameBatch:
        """Frames at the indices ``resolve()`` gives against the current frame count. When the
        backend finds the real end of the stream before the header's count
        (:class:`EndOfStreamError`, approximate mode), the count shrinks to the real one and the
        request is resolved again: ranges and slices clip there, an explicit index past it raises
        :class:`IndexError`, a negative index counts from the real end."""
        reader = self._r
        for attempt in range(_END_RETRIES + 1):
            keys = resolve()
            try:
                return self._batch_for(reader.get_frames_at, keys)
            except EndOfStreamError as exc:
                if attempt == _END_RETRIES:
                    raise
                self._learn_num_frames(exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def __getitem__(self, key: int | slice) -> Tensor:
        """``decoder[i]``: frame ``i`` as a tensor (negative counts from the end);
        ``decoder[a:b:s]``: the frames of that slice as a 4-D tensor (Python slice semantics,
        including negative steps).

        Raises:
            IndexError: ``i`` out of range.
            TypeError: ``key`` is neither an int nor a slice.
        """
        if isinstance(key, slice):
            return self._frames_for(lambda: list(range(*key.indices(len(self))))).data
        if isinstance(key, bool) or (isinstance(key, Tensor) and key.dtype == torch.bool):
            raise InvalidArgumentTypeError("frame index must be an int or a slice, not bool")
        try:
            index = operator.index(key)
        except TypeError:
            raise InvalidArgumentTypeError(
                f"Unsupported key type: {type(key).__name__}; use an int or a slice"
            ) from None
        return self._frames_at([index]).data[0]

    def __iter__(self) -> Iterator[Tensor]:
        """Yield every frame as a tensor, in order, decoding a few frames at a time; stops at the
        real end of the stream when it comes before the header's count (approximate mode)."""
        start = 0
        while start < len(self):
            batch = self._frames_for(lambda: list(range(start, min(len(self), start + _ITER_CHUNK))))
            yield from batch.data
            start += _ITER_CHUNK

    def get_frame_at(self, index: int) -> Frame:
        """Frame ``index`` (negative counts from the end) with its pts and duration.

        Raises:
            IndexError: ``index`` is out of range.
        """
        batch = self._frames_at([_as_index(index)])
        return Frame(batch.data[0], float(batch.pts_seconds[0]), float(batch.duration_seconds[0]))

    def get_frames_at(self, indices: Sequence[int] | Tensor) -> FrameBatch:
        """Frames at ``indices`` (any order, duplicates and negatives allowed), in that order.

        Each distinct frame is decoded once; the backend receives the indices sorted.

        Returns:
            FrameBatch with ``data`` ``(N, 3, H, W)`` (or NHWC) uint8 and float64 ``(N,)`` pts and
            durations in seconds; ``N == 0`` for an empty list.

        Raises:
            IndexError: an index out of range.
            TypeError: non-integer indices.
        """
        return self._frames_at(_as_index_list(indices))

    def get_frames_in_range(self, start: int, stop: int, step: int = 1) -> FrameBatch:
        """Frames ``start, start + step, ...`` below ``stop`` (indices, ``stop`` excluded).

        Negative ``start``/``stop`` count from the end and values past the end are clipped, as
        with a Python slice.

        Raises:
            ValueError: ``step <= 0``, or ``start > stop`` once negatives are resolved (torchcodec
                returns an empty batch there; a reversed range is almost always a bug).
        """
        start, stop, step = (_as_index(v, name) for name, v in
                             (("start", start), ("stop", stop), ("step", step)))
        if step <= 0:
            raise InvalidArgumentError(f"step must be positive, got {step} ({self._source.name})")
        n = len(self)
        lo, hi, _ = slice(start, stop, step).indices(n)
        if lo > hi:
            raise InvalidArgumentError(
                f"Invalid range: start ({start}) is after stop ({stop}) for "
                f"{self._source.name}, which has {n} frames"
            )
        return self._frames_for(lambda: list(range(*slice(start, stop, step).indices(len(self)))))

    # -- time access ---------------------------------------------------------------------------

    def _check_time(self, seconds: float) -> float:
        seconds = _as_seconds(seconds)
        if not (self._begin <= seconds < self._end):
            raise OutOfRangeError(
                f"Invalid pts in seconds: {seconds}. It must be greater than or equal to "
                f"{self._begin} and less than {self._end} ({self._source.name})."
            )
        return float(seconds)

    def _index_played_at(self, seconds: float) -> int:
        if not self._num_frames:
            raise IndexError(f"{self._source.name}: the video stream has no frames")
        pts = self._r.frame_pts
        index = int(torch.searchsorted(pts, torch.tensor([seconds], dtype=torch.float64), right=True)[0]) - 1
        return min(max(index, 0), self._num_frames - 1)

    def _frames_played_at(self, seconds: list[float]) -> FrameBatch:
        seconds = [self._check_time(s) for s in seconds]
        reader = self._r
        if reader.frame_pts is not None:
            return self._batch_for(reader.get_frames_at, [self._index_played_at(s) for s in seconds])
        return self._batch_for(reader.get_frames_played_at, seconds)

    def get_frame_played_at(self, seconds: float) -> Frame:
        """The frame on screen at ``seconds``: the last frame whose pts is <= ``seconds``.

        Raises:
            IndexError: ``seconds`` is outside ``[begin_stream_seconds, end_stream_seconds)``.
        """
        batch = self._frames_played_at([seconds])
        return Frame(batch.data[0], float(batch.pts_seconds[0]), float(batch.duration_seconds[0]))

    def get_frames_played_at(self, seconds: Sequence[float] | Tensor) -> FrameBatch:
        """The frames on screen at each of ``seconds`` (any order, duplicates allowed).

        Raises:
            IndexError: a time outside ``[begin_stream_seconds, end_stream_seconds)`` (the same
                class as :meth:`get_frame_played_at`, unlike torchcodec 0.17).
        """
        return self._frames_played_at(_as_seconds_list(seconds))

    def get_frames_played_in_range(
        self, start_seconds: float, stop_seconds: float, fps: float | None = None
    ) -> FrameBatch:
        """Frames on screen during ``[start_seconds, stop_seconds)``.

        Without ``fps``: the frame on screen at ``start_seconds`` (the last frame whose pts is <=
        it), then every frame whose pts is below ``stop_seconds``; empty when start equals stop.
        This is what torchcodec 0.17 returns (its docstring says "pts inside the range", but
        its code includes the frame already on screen at the start, and so do we).
        With ``fps``: ``round((stop - start) * fps)`` output times ``start + k / fps``, each the
        frame on screen at that time (frames repeated or dropped as needed); as in torchcodec,
        ``pts_seconds`` are those output times and ``duration_seconds`` is ``1 / fps``.

        Raises:
            ValueError: ``start_seconds > stop_seconds``, ``start_seconds`` outside
                ``[begin, end)`` or ``stop_seconds > end`` (as torchcodec), or ``fps <= 0``.
        """
        start_seconds = _as_seconds(start_seconds, "start_seconds")
        stop_seconds = _as_seconds(stop_seconds, "stop_seconds")
        if fps is not None:
            fps = _as_seconds(fps, "fps")
        name = self._source.name
        if not start_seconds <= stop_seconds:
            raise InvalidArgumentError(
                f"Invalid start seconds: {start_seconds}. It must be less than or equal to "
                f"stop seconds ({stop_seconds}) ({name})."
            )
        self._r  # noqa: B018
        if not self._begin <= start_seconds < self._end:
            raise InvalidArgumentError(
                f"Invalid start seconds: {start_seconds}. It must be greater than or equal to "
                f"{self._begin} and less than {self._end} ({name})."
            )
        if not stop_seconds <= self._end:
            raise InvalidArgumentError(
                f"Invalid stop seconds: {stop_seconds}. It must be less than or equal to "
                f"{self._end} ({name})."
            )
        if fps is not None:
            if not fps > 0:
                raise InvalidArgumentError(f"fps must be positive, got {fps} ({name})")
            # round((stop - start) * fps) output frames, as torchcodec 0.17 (all times < stop)
            count = max(0, math.floor((stop_seconds - start_seconds) * fps + 0.5))
            self._check_frames(count)
            times = [start_seconds + k * (1.0 / fps) for k in range(count)]
            batch = self._frames_played_at(times)
            batch.pts_seconds = torch.tensor(times, dtype=torch.float64)
            batch.duration_seconds = torch.full((len(times),), 1.0 / fps, dtype=torch.float64)
            return batch
        if start_seconds == stop_seconds:
            return self._empty()
        reader = self._r
        if reader.frame_pts is not None:
            lo = self._index_played_at(float(start_seconds))
            stop = torch.tensor([stop_seconds], dtype=torch.float64)
            hi = int(torch.searchsorted(reader.frame_pts, stop)[0])
            return self._frames_at(list(range(lo, max(lo, hi))))
        rate = self._metadata.average_fps
        if rate and math.isfinite(rate):
            # at most every frame counted, and no more than the rate allows in the range
            self._check_frames(min(self._num_frames, math.ceil((stop_seconds - start_seconds) * rate) + 1))
        with self._lock:
            data, pts, dur = reader.get_frames_played_in_range(start_seconds, stop_seconds)
        return FrameBatch(self._finish(data), pts, dur)

    def get_all_frames(self, fps: float | None = None) -> FrameBatch:
        """Every frame of the stream (or, with ``fps``, resampled to that rate)."""
        self._r  # noqa: B018
        if fps is None and self._r.frame_pts is not None:
            return self._frames_at(list(range(self._num_frames)))
        return self.get_frames_played_in_range(self._begin, self._end, fps=fps)



SimpleVideoDecoder = VideoDecoder
"""torchcodec 0.17's ``torchcodec.decoders.SimpleVideoDecoder``: the same class as
:class:`VideoDecoder` (an alias kept from torchcodec's early releases)."""


class AudioDecoder(_Decoder):
    """Decode one audio stream into ``float32`` samples in [-1, 1].

    The public surface is torchcodec 0.17's ``AudioDecoder``. Sample format conversion,
    resampling and channel mixing are done by the backend's own library (FFmpeg's libswresample for
    the ffmpeg backend), never by hand-written DSP.

    Args:
        source: a path, ``bytes``, a 1-D ``torch.uint8`` tensor or a binary file-like object; any
            file with an audio stream (video files too).
        stream_index: absolute index of the audio stream; None picks FFmpeg's best audio stream.
        sample_rate: output sample rate in Hz; None keeps the stream's.
        num_channels: output channel count (1 mixes down to mono); None keeps the stream's.
        backend: backend name; None follows the selection rules.
        storage_options, timeout, allow_playlists, max_output_bytes: as for
            :class:`VideoDecoder` (a range's output is estimated from the header's duration).

    Attributes:
        metadata (AudioStreamMetadata): the stream's own metadata (its native rate and channels).
        stream_index (int): the stream decoded.
        backend (str): the backend that serves this decoder.

    Raises:
        SourceNotFoundError, InvalidMediaError, StreamNotFoundError, BackendUnavailableError:
            as for :class:`VideoDecoder`.
        InvalidArgumentError: ``sample_rate`` or ``num_channels`` not a positive int (a
            ``ValueError``, and a ``RuntimeError`` as torchcodec 0.17 raises).
    """

    _media_type = "audio"

    def __init__(
        self,
        source: Any,
        *,
        stream_index: int | None = None,
        sample_rate: int | None = None,
        num_channels: int | None = None,
        backend: str | None = None,
        storage_options: dict | None = None,
        timeout: float | tuple[float, float] | None = None,
        allow_playlists: bool = False,
        max_output_bytes: int | None = None,
    ):
        for name, v in (("sample_rate", sample_rate), ("num_channels", num_channels)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0):
                # torchcodec 0.17 raises RuntimeError here: InvalidArgumentError is both.
                raise InvalidArgumentError(f"{name} must be a positive int or None, got {v!r}")
        if stream_index is not None and (isinstance(stream_index, bool) or not isinstance(stream_index, int)):
            raise InvalidArgumentTypeError(f"stream_index must be an int or None, got {type(stream_index).__name__}")
        options = {
            "stream_index": stream_index,
            "sample_rate": None if sample_rate is None else int(sample_rate),
            "num_channels": None if num_channels is None else int(num_channels),
            "backend": backend,
            "device": "cpu",
            "max_output_bytes": _limit_option(max_output_bytes),
        }
        source = as_source(source, storage_options=storage_options, timeout=timeout,
                           allow_playlists=allow_playlists)
        super().__init__(source, options)

    def _open_with(self, backend_obj):
        o = self._options
        reader = backend_obj.open_audio(
            self._source,
            stream_index=o["stream_index"],
            sample_rate=o["sample_rate"],
            num_channels=o["num_channels"],
        )
        self._metadata = reader.metadata
        self._sample_rate = int(reader.sample_rate)
        self._num_channels = int(reader.num_channels)
        return reader

    @property
    def metadata(self) -> AudioStreamMetadata:
        """The stream's :class:`~mediadecode.metadata.AudioStreamMetadata` (its native rate and
        channels; opens the source if a pickled decoder has not opened it yet)."""
        self._r  # noqa: B018
        return self._metadata

    def _check_audio(self, start: float, stop: float | None) -> None:
        """Refuse a range whose float32 output would exceed the output limit, estimated from the
        header's duration (a range of unknown length passes)."""
        meta = self._metadata
        end = None
        if meta.duration_seconds is not None:
            end = (meta.begin_stream_seconds or 0.0) + meta.duration_seconds
        if stop is not None:
            end = stop if end is None else min(stop, end)
        if end is None:
            return
        seconds = end - max(start, meta.begin_stream_seconds or 0.0)
        self._check_output(
            limits.audio_bytes(seconds, self._sample_rate, self._num_channels),
            f"{seconds:.1f} s of {self._num_channels}-channel float32 audio at {self._sample_rate} Hz",
        )

    def get_all_samples(self) -> AudioSamples:
        """All samples of the stream (see :meth:`get_samples_played_in_range`)."""
        return self.get_samples_played_in_range()

    def get_samples_played_in_range(
        self, start_seconds: float = 0.0, stop_seconds: float | None = None
    ) -> AudioSamples:
        """Samples in ``[start_seconds, stop_seconds)``; ``stop_seconds=None`` means to the end.

        Returns:
            AudioSamples with ``data`` ``(num_channels, num_samples)`` float32 in [-1, 1] at the
            output sample rate, ``pts_seconds`` the time of its first sample (``start_seconds``
            when the stream covers it), ``duration_seconds = num_samples / sample_rate``. A range
            that holds no samples gives ``num_samples == 0``.

        Raises:
            ValueError: ``start_seconds > stop_seconds``, or a NaN or infinite ``start_seconds``.
            A ``start_seconds`` before the stream starts is clamped to it; ``stop_seconds=inf``
            means to the end.
        """
        if not isinstance(start_seconds, numbers.Real) or not math.isfinite(start_seconds):
            raise InvalidArgumentError(
                f"start_seconds must be a finite number, got {start_seconds!r} ({self._source.name})"
            )
        if stop_seconds is not None:
            if not isinstance(stop_seconds, numbers.Real) or math.isnan(stop_seconds):
                raise InvalidArgumentError(
                    f"stop_seconds must be a number or None, got {stop_seconds!r} "
                    f"({self._source.name})"
                )
            if not start_seconds <= stop_seconds:
                raise InvalidArgumentError(
                    f"Invalid start seconds: {start_seconds}. It must be less than or equal to "
                    f"stop seconds ({stop_seconds}) ({self._source.name})."
                )
            if math.isinf(stop_seconds):
                stop_seconds = None  # +inf: to the end (the sample offset of inf is undefined)
        reader = self._r
        self._check_audio(float(start_seconds), stop_seconds)
        with self._lock:
            data, first_pts = reader.get_samples_played_in_range(float(start_seconds), stop_seconds)
        rate = self._sample_rate
        if getattr(reader, "returns_exact_range", False):
            # The reader applied the sample grid itself (mediadecode.sample_grid).
            pts = float(first_pts)
        else:
            # Readers that return whole frames from the one holding start_seconds: trimmed with
            # torchcodec 0.17's rule, on the grid of the first frame returned.
            def offset_of(seconds: float) -> int:
                return math.floor((seconds - first_pts) * rate + 0.5)

            if first_pts < start_seconds:
                begin = offset_of(start_seconds)
                pts = float(start_seconds)
            else:
                begin, pts = 0, float(first_pts)
            end = data.shape[1] if stop_seconds is None else min(data.shape[1], offset_of(stop_seconds))
            data = data[:, begin:max(begin, end)]
        return AudioSamples(
            data=data, pts_seconds=pts, duration_seconds=data.shape[1] / rate, sample_rate=rate
        )
