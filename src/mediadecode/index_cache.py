"""A cache of exact-mode frame indexes, so reopening a file skips the packet scan.

A DataLoader that builds a decoder per item reopens the same files again and again; with the cache
the second open of a file costs no packet scan. Entries are keyed by the file's real path, inode,
size and modification and change times (nanoseconds) plus the backend's own key (stream index...), so an edited file is
scanned again. The cache lives in memory (per process, least recently used entries dropped past
``max_entries``) and, when a directory is configured, on disk as one JSON file per entry (written
atomically, so concurrent DataLoader workers can share it).

Configure with :func:`configure` or the environment variable ``MEDIADECODE_INDEX_CACHE_DIR``
(read when the first entry is looked up after each :func:`configure` call); ``configure(enabled=False)``
turns the cache off.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from typing import Any

__all__ = ["configure", "clear", "lookup", "store", "file_key", "url_key", "stats"]

_lock = threading.Lock()
_memory: OrderedDict[str, dict] = OrderedDict()
_settings: dict[str, Any] = {"enabled": True, "directory": None, "max_entries": 4096, "env_read": False}
_stats = {"hits": 0, "misses": 0, "disk_hits": 0}


def configure(*, enabled: bool = True, directory: str | os.PathLike | None = None,
              max_entries: int = 4096) -> None:
    """Turn the cache on or off, set the on-disk directory (None: memory only) and the number
    of entries kept in memory.

    Raises:
        ValueError: ``max_entries`` < 1.
    """
    if max_entries < 1:
        raise ValueError(f"max_entries must be >= 1, got {max_entries}")
    with _lock:
        _settings.update(enabled=bool(enabled), max_entries=int(max_entries), env_read=directory is not None)
        _settings["directory"] = os.fspath(directory) if directory is not None else None
        while len(_memory) > max_entries:
            _memory.popitem(last=False)


def clear() -> None:
    """Empty the in-memory cache and reset the counters (files on disk stay)."""
    with _lock:
        _memory.clear()
        _stats.update(hits=0, misses=0, disk_hits=0)


def stats() -> dict[str, int]:
    """``{"hits", "misses", "disk_hits", "entries"}`` since the last :func:`clear`."""
    with _lock:
        return dict(_stats, entries=len(_memory))


def _directory() -> str | None:
    if not _settings["env_read"]:
        _settings["directory"] = os.environ.get("MEDIADECODE_INDEX_CACHE_DIR") or None
        _settings["env_read"] = True
    return _settings["directory"]


def file_key(path: str, *parts: Any) -> str | None:
    """The cache key of a local file and the backend's ``parts``; None if the file is gone."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    raw = json.dumps([real, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, *parts], default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def url_key(url: str, file: Any, *parts: Any) -> str | None:
    """The cache key of a remote object opened as ``file`` (a
    :class:`~mediadecode.remote.RemoteFile`) and the backend's ``parts``: the URL with its
    credentials redacted, the size, and the version the store reports (ETag, modification
    time). None when the store reports no version: such an object is not cached."""
    from .remote import redact_url

    keys = ("ETag", "etag", "LastModified", "last_modified", "mtime", "Last-Modified", "generation", "md5Hash")
    f = getattr(file, "_f", None)
    details = getattr(f, "details", None) or {}
    version = [details.get(k) for k in keys]
    if not any(version) and f is not None:
        try:  # HTTP: opening asked only for the size; the file system's info has the version
            details = f.fs.info(f.path)
            version = [details.get(k) for k in keys]
        except Exception:
            return None
    if not any(version):
        return None
    size = getattr(file, "size", None)
    raw = json.dumps(["url", redact_url(url), size, version, *parts], default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def lookup(key: str | None) -> dict | None:
    """The entry stored under ``key`` (memory first, then disk), or None."""
    if key is None:
        return None
    with _lock:
        if not _settings["enabled"]:
            return None
        entry = _memory.get(key)
        if entry is not None:
            _memory.move_to_end(key)
            _stats["hits"] += 1
            return entry
        directory = _directory()
    if directory:
        try:
            with open(os.path.join(directory, key + ".json"), encoding="utf-8") as f:
                entry = json.load(f)
        except (OSError, ValueError):
            entry = None
        if isinstance(entry, dict):
            with _lock:
                _stats["disk_hits"] += 1
                _stats["hits"] += 1
                _remember(key, entry)
            return entry
    with _lock:
        _stats["misses"] += 1
    return None


def _remember(key: str, entry: dict) -> None:
    _memory[key] = entry
    _memory.move_to_end(key)
    while len(_memory) > _settings["max_entries"]:
        _memory.popitem(last=False)


def store(key: str | None, entry: dict) -> None:
    """Keep ``entry`` (JSON-serialisable) under ``key``; failures to write to disk are ignored
    (the cache is an optimisation, never a reason to fail a decode)."""
    if key is None:
        return
    with _lock:
        if not _settings["enabled"]:
            return
        _remember(key, entry)
        directory = _directory()
    if directory:
        try:
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=".part")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(entry, f)
                os.replace(tmp, os.path.join(directory, key + ".json"))
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError:
            pass
