"""Turn what a user passes as ``source`` into one :class:`Source` object.

Accepted: a path (``str`` or :class:`os.PathLike`), a URL (``http://``, ``https://``, ``s3://``,
``gs://``, ``hf://``, any protocol fsspec knows, also chained ``simplecache::s3://...``), an
``fsspec.open()`` object or an fsspec file, ``bytes``/``bytearray``/``memoryview``, a 1-D
``torch.uint8`` tensor of encoded bytes, or a binary file-like object with ``read`` and ``seek``.
A :class:`Source` pickles as the path, the URL and its options, or the bytes (a file-like object
pickles only if the object itself does), so decoders can be sent to DataLoader workers and
reopened there. See ``docs/remote.md`` for URL sources.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import SourceNotFoundError
from .remote import ReadStats, RemoteOptions, check_protocol, is_url, open_remote, redact_url

__all__ = ["Source", "as_source"]


@dataclass(frozen=True)
class Source:
    """One media source, normalised.

    Attributes:
        kind: ``"path"``, ``"bytes"``, ``"file"`` or ``"url"``.
        value: the path (``str``), the encoded bytes (``bytes``), the file-like object, or the
            URL (``str``, with its credentials if it holds any).
        name: a short description for messages: the path, ``"<bytes: N bytes>"``,
            ``"<file-like: TYPE>"``, or the URL with credentials redacted.
        remote: for a URL, how it is opened (:class:`~mediadecode.remote.RemoteOptions`).
        allow_playlists: whether FFmpeg may open playlist-type formats (HLS, concat...) that
            name other files; False by default (see ``docs/remote.md``).
    """

    kind: str
    value: Any = field(repr=False)  # a URL may hold credentials: ``name`` is the redacted form
    name: str
    remote: RemoteOptions | None = field(default=None, compare=False, repr=False)
    allow_playlists: bool = False
    _read_stats: ReadStats = field(default_factory=ReadStats, compare=False, repr=False)

    def open_binary(self):
        """A fresh, seekable binary file object for the source, positioned at 0.

        For paths this opens the file (the caller closes it); for bytes a :class:`io.BytesIO`;
        for a URL a new :class:`~mediadecode.remote.RemoteFile` (range reads through fsspec,
        counted in :attr:`stats`; the caller closes it); for a file-like object, the object
        itself rewound to 0 (the caller does not close it).

        Raises:
            RemoteSourceError: (URLs) the URL cannot be opened: its subclasses
                RemoteNotFoundError (404) and RemoteTimeoutError, or another HTTP status.
        """
        if self.kind == "path":
            return open(self.value, "rb")
        if self.kind == "bytes":
            return io.BytesIO(self.value)
        if self.kind == "url":
            return open_remote(self.value, self.remote or RemoteOptions(), self._read_stats)
        self.value.seek(0)
        return self.value

    @property
    def owns_file(self) -> bool:
        """Whether :meth:`open_binary` returns an object the caller must close."""
        return self.kind != "file"

    @property
    def local_path(self) -> str | None:
        """The local file's path, which FFmpeg may open itself; None for other sources."""
        return self.value if self.kind == "path" else None

    @property
    def is_remote(self) -> bool:
        """Whether the bytes come over a network (a URL read through fsspec)."""
        return self.kind == "url"

    @property
    def reopenable(self) -> bool:
        """Whether a second, independent open is cheap: a local path or bytes. A caller's file
        object cannot be opened twice; a URL could, but each open fetches its header again."""
        return self.kind in ("path", "bytes")

    def ffmpeg_input(self) -> tuple[Any, Any]:
        """What to hand ``av.open``, and the file object to close after the container (None when
        there is none to close): a local path goes to FFmpeg's own ``file`` protocol, every
        other source as a Python file object (:meth:`open_binary`).

        Raises:
            RemoteSourceError: as :meth:`open_binary`.
        """
        if self.kind == "path":
            return "file:" + self.value, None
        fileobj = self.open_binary()
        return fileobj, (fileobj if self.owns_file else None)

    def cache_key(self, fileobj: Any, *parts: Any) -> str | None:
        """The :mod:`~mediadecode.index_cache` key of this source and the backend's ``parts``
        (kind of index, version, stream index), or None when it cannot be cached: bytes and
        file objects have no identity, and a URL whose store reports no version is not cached.
        ``fileobj`` is the file a URL was opened as (its size and version are read from it)."""
        from . import index_cache

        if self.kind == "path":
            return index_cache.file_key(self.value, *parts)
        if self.kind == "url":
            return index_cache.url_key(self.value, fileobj, *parts)
        return None

    @property
    def stats(self) -> dict[str, int | None]:
        """Remote read counters: ``bytes_read`` (bytes transferred from storage), ``read_calls``
        (range requests), ``retries`` (requests retried), ``opens`` (files opened), summed over
        every file opened from this source in this process. None for sources that are not
        URLs (FFmpeg reads local files itself)."""
        if self.kind != "url":
            return {"bytes_read": None, "read_calls": None, "retries": None, "opens": None}
        counts: dict[str, int | None] = dict(self._read_stats.snapshot())
        return counts


def _fsspec_source(source: Any, remote: dict, allow_playlists: bool) -> Source | None:
    """A URL :class:`Source` for an ``fsspec.open()`` object or an fsspec file; None for
    anything else."""
    fsspec = sys.modules.get("fsspec")
    if fsspec is None:
        return None
    from fsspec.core import OpenFile
    from fsspec.spec import AbstractBufferedFile

    if isinstance(source, OpenFile):
        if source.compression:
            return None  # a compressed stream is not seekable: treated as a plain file object
        fs, path = source.fs, source.path
    elif isinstance(source, AbstractBufferedFile) and "r" in getattr(source, "mode", "rb"):
        fs, path = source.fs, source.path
    else:
        return None
    url = fs.unstrip_protocol(path)
    options = RemoteOptions.make(fs=fs, **remote)
    return Source("url", url, redact_url(url), options, allow_playlists)


def as_source(
    source: Any,
    *,
    storage_options: dict | None = None,
    timeout: float | tuple[float, float] | None = None,
    retries: int | None = None,
    allow_playlists: bool = False,
) -> Source:
    """Normalise ``source`` into a :class:`Source`. Opens nothing (no network access).

    Args:
        source: a path, URL, fsspec object, bytes, tensor or file-like object (module doc).
        storage_options: for URLs, options of the fsspec file system (credentials,
            ``client_kwargs``, ``endpoint_url``...), plus ``block_size``/``cache_type``/
            ``cache_options`` for opening the file; ignored for other sources, as in
            ``datasets``.
        timeout: for URLs, seconds or ``(connect, read)`` seconds; default
            :data:`mediadecode.remote.DEFAULT_TIMEOUT` (10 s, 30 s).
        retries: for URLs, retries of transiently failing requests (default 3).
        allow_playlists: let FFmpeg open playlist-type formats (HLS, concat...) that name other
            files; only for trusted local files (``docs/remote.md``).

    Raises:
        SourceNotFoundError: a path that does not exist (also a ``FileNotFoundError``).
        ValueError: an empty path, a URL with a protocol fsspec does not know, a tensor that is
            not 1-D ``torch.uint8``, bad ``timeout``/``retries``.
        ImportError: a URL whose fsspec implementation is not installed (names the package).
        TypeError: a type that is none of the accepted ones.
    """
    allow_playlists = bool(allow_playlists)
    remote = {"storage_options": storage_options, "timeout": timeout, "retries": retries}
    if isinstance(source, Source):
        changes: dict[str, Any] = {}
        if allow_playlists and not source.allow_playlists:
            changes["allow_playlists"] = True
        if source.kind == "url" and any(v is not None for v in remote.values()):
            old = source.remote or RemoteOptions()
            changes["remote"] = RemoteOptions.make(
                storage_options if storage_options is not None else old.storage_options,
                timeout if timeout is not None else (old.timeout if old.timeout_given else None),
                retries if retries is not None else old.retries,
                old.fs,
            )
        return replace(source, **changes) if changes else source
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not path:
            raise ValueError("source is an empty path")
        if is_url(path):
            options = RemoteOptions.make(**remote)
            check_protocol(path)
            return Source("url", path, redact_url(path), options, allow_playlists)
        if path.startswith("file://"):
            path = path[len("file://"):]
        if not os.path.exists(path):
            raise SourceNotFoundError(f"{path}: no such file")
        if os.path.isdir(path):
            raise SourceNotFoundError(f"{path}: is a directory, not a media file")
        return Source("path", path, path, allow_playlists=allow_playlists)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return Source("bytes", data, f"<bytes: {len(data)} bytes>", allow_playlists=allow_playlists)
    import torch  # a dependency

    if isinstance(source, torch.Tensor):
        if source.dtype != torch.uint8 or source.ndim != 1:
            raise ValueError(
                "a tensor source must be a 1-D torch.uint8 tensor of encoded bytes, got "
                f"dtype={source.dtype} shape={tuple(source.shape)}"
            )
        data = source.detach().cpu().contiguous().numpy().tobytes()
        return Source("bytes", data, f"<tensor: {len(data)} bytes>", allow_playlists=allow_playlists)
    fs_source = _fsspec_source(source, remote, allow_playlists)
    if fs_source is not None:
        return fs_source
    if hasattr(source, "read") and hasattr(source, "seek"):
        return Source("file", source, f"<file-like: {type(source).__name__}>",
                      allow_playlists=allow_playlists)
    raise TypeError(
        "source must be a path (str or os.PathLike), a URL, bytes, a 1-D uint8 tensor or a "
        f"binary file-like object with read() and seek(); got {type(source).__name__}"
    )
