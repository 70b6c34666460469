"""URL sources: ``http://``, ``https://``, ``s3://``, ``gs://``, ``hf://`` and any protocol fsspec knows.

The transport is fsspec's (HTTP through its aiohttp-based ``HTTPFileSystem``, S3 through s3fs, GCS
through gcsfs, the Hugging Face Hub through huggingface_hub...); mediadecode writes no network
client. A URL source is opened as a seekable fsspec file and handed to FFmpeg as a Python file
object, so FFmpeg never opens a network address itself and every byte it reads comes through
range requests of ``block_size`` bytes (:data:`DEFAULT_BLOCK_SIZE`, cache ``"blockcache"`` by
default; both can be changed in ``storage_options``).

What this module adds on top of fsspec:

- defaults for connect/read timeouts (:data:`DEFAULT_TIMEOUT`, changed with ``timeout=``) for
  ``http(s)`` (aiohttp ``ClientTimeout``) and ``s3`` (botocore ``connect_timeout``/``read_timeout``);
- retries with exponential backoff of range requests that fail transiently (HTTP 429/5xx, a
  refused, reset or dropped connection); s3fs and botocore retry S3 requests themselves;
- errors translated into :class:`~mediadecode.errors.RemoteSourceError` and its subclasses, which
  name the URL with credentials redacted (:func:`redact_url`) and the HTTP status;
- a count of the bytes transferred and the range requests made (:class:`ReadStats`, shown by
  ``decoder.stats``), also logged at DEBUG level by the ``mediadecode.remote`` logger when a
  file closes.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from . import lifecycle
from .errors import RemoteNotFoundError, RemoteSourceError, RemoteTimeoutError

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_CACHE_TYPE",
    "DEFAULT_RETRIES",
    "RemoteOptions",
    "ReadStats",
    "RemoteFile",
    "is_url",
    "redact_url",
    "open_remote",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 30.0)
"""(connect, read) timeouts in seconds: connecting (DNS and TCP/TLS) may take up to 10 s, and the
server may stay silent for up to 30 s while a response is read."""

DEFAULT_BLOCK_SIZE = 256 * 1024
"""Bytes fetched by one range request (fsspec ``block_size``): large enough that a demuxer's
32 KiB reads do not each become a request, small enough that one random access transfers a
small fraction of a long file."""

DEFAULT_CACHE_TYPE = "blockcache"
"""fsspec cache of the open file: ``block_size``-aligned blocks kept in an LRU (32 blocks, 8 MiB
at the default block size), so a demuxer that goes back to the header or re-reads a GOP after a
seek does not fetch the same bytes again, and one pass over a file never transfers more than the
file. Measured on a 6.7 MB MP4 (moov at the end) with the test server: ``"readahead"`` fetched
13 % of it for one approximate-mode frame and 113 % for an exact-mode open; ``"blockcache"``
15 % and 100 %."""

DEFAULT_RETRIES = 3
"""Retries of a request that fails transiently; waits 0.25 s, 0.5 s, 1 s... between them."""

_BACKOFF = 0.25
# aiohttp errors of a dropped or refused connection, or a body cut short (and their subclasses).
_TRANSIENT_AIOHTTP = frozenset({
    "ClientConnectionError", "ServerDisconnectedError", "ClientOSError", "ClientPayloadError",
    "ContentLengthError", "TransferEncodingError", "PayloadEncodingError",
})
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# Query parameters whose values are secrets (pre-signed S3/GCS URLs, SAS tokens, API keys).
_SECRET_PARAM = re.compile(
    r"(?:^|[-_.])(?:sig|signature|token|key|apikey|secret|pass|password|passwd|pwd|credential|"
    r"credentials|auth|authorization|policy|session|code)(?:$|[-_.])",
    re.IGNORECASE,
)
REDACTED = "REDACTED"


def is_url(text: str) -> bool:
    """True for ``protocol://...`` (other than ``file://``) and fsspec chained URLs
    (``simplecache::s3://...``)."""
    if "::" in text and "://" in text:
        return True
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() not in ("", "file") and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme) is not None


def redact_url(url: str) -> str:
    """``url`` with credentials removed: ``user:password@`` becomes ``REDACTED@`` and the values
    of query parameters that look like secrets (``X-Amz-Signature``, ``X-Amz-Credential``,
    ``X-Amz-Security-Token``, ``sig``, ``token``, ``key``, ``password``...) become ``REDACTED``.
    Chained fsspec URLs (``a::b``) are redacted part by part."""
    if "::" in url:
        return "::".join(redact_url(part) for part in url.split("::"))
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0] + ("?" + REDACTED if "?" in url else "")
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, REDACTED if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="/:"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _timeout_pair(timeout: Any) -> tuple[float, float]:
    if timeout is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, bool):
        raise TypeError("timeout must be a number of seconds or a (connect, read) pair")
    if isinstance(timeout, (int, float)):
        pair = (float(timeout), float(timeout))
    else:
        try:
            connect, read = timeout
            pair = (float(connect), float(read))
        except (TypeError, ValueError):
            raise TypeError(
                f"timeout must be a number of seconds or a (connect, read) pair, got {timeout!r}"
            ) from None
    if not all(t > 0 for t in pair):
        raise ValueError(f"timeouts must be positive seconds, got {timeout!r}")
    return pair


@dataclass(frozen=True)
class RemoteOptions:
    """How a URL source is opened. Pickles with the source, so DataLoader workers reopen the
    URL with the same options.

    Attributes:
        storage_options: passed to the fsspec file system (credentials, ``client_kwargs``,
            ``endpoint_url``...), as pandas and ``datasets`` do; the keys ``block_size``,
            ``cache_type`` and ``cache_options`` are passed to ``fs.open`` instead.
        timeout: ``(connect, read)`` seconds (see :data:`DEFAULT_TIMEOUT`).
        timeout_given: whether ``timeout=`` was given (it then overrides a timeout set in
            ``storage_options``; otherwise one set there wins over the default).
        retries: retries of a transiently failing request (:data:`DEFAULT_RETRIES`).
        fs: an fsspec file system instance to open the path with (from an ``fsspec.open()``
            object), or None to build one from the URL and ``storage_options``.
    """

    storage_options: dict = field(default_factory=dict)
    timeout: tuple[float, float] = DEFAULT_TIMEOUT
    timeout_given: bool = False
    retries: int = DEFAULT_RETRIES
    fs: Any = None

    @classmethod
    def make(cls, storage_options=None, timeout=None, retries=None, fs=None) -> "RemoteOptions":
        """Validated options. Raises TypeError/ValueError for a bad argument."""
        if storage_options is None:
            storage_options = {}
        if not isinstance(storage_options, dict):
            raise TypeError(
                f"storage_options must be a dict or None, got {type(storage_options).__name__}"
            )
        if retries is None:
            retries = DEFAULT_RETRIES
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        return cls(dict(storage_options), _timeout_pair(timeout), timeout is not None, retries, fs)


class ReadStats:
    """Counters of one source's remote reads, shared by every file opened from it (the decoder,
    its parallel workers, reopenings).

    ``snapshot()`` gives ``{"bytes_read", "read_calls", "retries", "opens"}``: bytes transferred
    from storage (the sum of the range requests' bodies), range requests made, requests retried,
    files opened. A pickled copy starts at zero.
    """

    __slots__ = ("_lock", "bytes_read", "read_calls", "retries", "opens")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes_read = self.read_calls = self.retries = self.opens = 0

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "bytes_read": self.bytes_read,
                "read_calls": self.read_calls,
                "retries": self.retries,
                "opens": self.opens,
            }

    def __reduce__(self):
        return (ReadStats, ())

    def __repr__(self) -> str:
        return f"ReadStats({self.snapshot()})"


# -- errors ------------------------------------------------------------------------------------


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    if isinstance(status, int) and 100 <= status < 600 and type(exc).__module__.startswith("aiohttp"):
        return status
    response = getattr(exc, "response", None)  # botocore ClientError
    if isinstance(response, dict):
        code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(code, int):
            return code
    return None


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return True
    name = type(exc).__name__
    return name in ("FSTimeoutError", "ReadTimeoutError", "ConnectTimeoutError")


def _is_transient(exc: BaseException) -> bool:
    """A failure worth retrying: HTTP 408/425/429/5xx, or a refused/reset/dropped connection.
    Timeouts are not retried (the caller already waited the full timeout)."""
    for e in _chain(exc):
        if _is_timeout(e):
            return False
        status = _status_of(e)
        if status is not None:
            return status in _TRANSIENT_STATUS
        if isinstance(e, (ConnectionError, EOFError)):
            return True
        if type(e).__module__.startswith("aiohttp") and any(
            c.__name__ in _TRANSIENT_AIOHTTP for c in type(e).__mro__
        ):
            return True
    return False


def _clean(text: str, url: str, redacted: str) -> str:
    if url and url != redacted:
        text = text.replace(url, redacted)
    return " ".join(text.split())[:300]


def translate_error(exc: BaseException, url: str, options: RemoteOptions | None = None,
                    doing: str = "read") -> RemoteSourceError:
    """The :class:`RemoteSourceError` (or subclass) for ``exc`` raised by fsspec while opening
    or reading ``url``; its message names the redacted URL, the status and the reason."""
    if isinstance(exc, RemoteSourceError):
        return exc
    redacted = redact_url(url)
    chain = list(_chain(exc))
    status = next((s for s in map(_status_of, chain) if s is not None), None)
    if any(_is_timeout(e) for e in chain):
        connect, read = (options.timeout if options is not None else DEFAULT_TIMEOUT)
        return RemoteTimeoutError(
            f"{redacted}: timed out while trying to {doing} it (connect timeout {connect:g} s, "
            f"read timeout {read:g} s; change with timeout=)",
            url=redacted, status=status, reason="timeout",
        )
    # The deepest error usually says most (fsspec wraps HTTP errors in FileNotFoundError).
    detail = None
    for e in reversed(chain):
        if _status_of(e) is not None:
            message = getattr(e, "message", None) or ""
            detail = f"HTTP {_status_of(e)}" + (f" {message}" if message else "")
            break
    if detail is None:
        root = chain[-1]
        detail = f"{type(root).__name__}: {_clean(str(root), url, redacted)}".rstrip(": ")
    if status == 404 or (status is None and isinstance(exc, FileNotFoundError)):
        cls, what = RemoteNotFoundError, "not found"
    elif status in (401, 403) or (status is None and isinstance(exc, PermissionError)):
        cls, what = RemoteSourceError, "access denied"
    else:
        cls, what = RemoteSourceError, f"cannot {doing} it"
    return cls(f"{redacted}: {what} ({detail})", url=redacted, status=status, reason=detail)


def _with_retries(fn, retries: int, stats: ReadStats | None):
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if attempt >= retries or not _is_transient(exc):
                raise
            delay = _BACKOFF * (2 ** attempt)
            attempt += 1
            if stats is not None:
                stats.add(retries=1)
            logger.debug("transient error (%s), retry %d in %.2f s", type(exc).__name__, attempt, delay)
            time.sleep(delay)


# -- opening -----------------------------------------------------------------------------------


def _fs_kwargs(url: str, options: RemoteOptions) -> tuple[dict, dict]:
    """(file-system kwargs, open kwargs) with mediadecode's defaults filled in."""
    kwargs = dict(options.storage_options)
    open_kwargs = {
        "block_size": kwargs.pop("block_size", DEFAULT_BLOCK_SIZE),
        "cache_type": kwargs.pop("cache_type", DEFAULT_CACHE_TYPE),
    }
    if "cache_options" in kwargs:
        open_kwargs["cache_options"] = kwargs.pop("cache_options")
    protocol = url.split("::")[-1].split("://", 1)[0].lower() if "://" in url else ""
    connect, read = options.timeout
    if protocol in ("http", "https"):
        import aiohttp

        client = dict(kwargs.get("client_kwargs") or {})
        if options.timeout_given or "timeout" not in client:
            client["timeout"] = aiohttp.ClientTimeout(
                total=None, connect=connect, sock_connect=connect, sock_read=read
            )
        kwargs["client_kwargs"] = client
    elif protocol in ("s3", "s3a"):
        config = dict(kwargs.get("config_kwargs") or {})
        if options.timeout_given or "connect_timeout" not in config:
            config["connect_timeout"] = connect
        if options.timeout_given or "read_timeout" not in config:
            config["read_timeout"] = read
        config.setdefault("retries", {"max_attempts": options.retries + 1, "mode": "standard"})
        kwargs["config_kwargs"] = config
    return kwargs, open_kwargs


def check_protocol(url: str) -> None:
    """Fail early (no network) for a URL whose protocol fsspec does not know or whose package
    is missing.

    Raises:
        ValueError: unknown protocol. ImportError: fsspec, or the protocol's package (s3fs,
        gcsfs, huggingface_hub...), is not installed; the message names it.
    """
    try:
        import fsspec
    except ImportError:  # pragma: no cover - a dependency of the [remote] extra
        raise ImportError(
            f"{redact_url(url)}: URL sources need fsspec: pip install \"mediadecode[remote]\""
        ) from None
    for part in url.split("::"):
        protocol = part.split("://", 1)[0] if "://" in part else part
        try:
            fsspec.get_filesystem_class(protocol)
        except ValueError:
            raise ValueError(f"{redact_url(url)}: fsspec knows no protocol {protocol!r}") from None
        except ImportError as exc:
            raise ImportError(f"{redact_url(url)}: {exc}") from None



def open_remote(url: str, options: RemoteOptions, stats: ReadStats | None = None) -> "RemoteFile":
    """Open ``url`` for reading as a seekable :class:`RemoteFile` (the caller closes it).

    Raises:
        RemoteNotFoundError: 404 / no such object. RemoteTimeoutError: no answer in time.
        RemoteSourceError: another HTTP status (403...) or network failure, or a server that
        gives no size (range reads need it).
    """
    stats = stats if stats is not None else ReadStats()
    fs_kwargs, open_kwargs = _fs_kwargs(url, options)

    def do_open():
        if options.fs is not None:
            fs = options.fs
            path = fs._strip_protocol(url)
        else:
            from fsspec.core import url_to_fs

            fs, path = url_to_fs(url, **fs_kwargs)
        # A fork child keeps the file systems it inherits alive for good: freeing one there runs
        # its finalizer, which closes the parent's pooled connections through event-loop state
        # the child shares with the parent (the epoll set), and the parent then waits on those
        # connections until its read timeout.
        lifecycle.keep_alive_in_children(fs)
        return fs.open(path, "rb", **open_kwargs)

    try:
        f = _with_retries(do_open, options.retries, stats)
    except Exception as exc:
        raise translate_error(exc, url, options, "open") from None
    seekable = not callable(getattr(f, "seekable", None)) or f.seekable()
    size = getattr(f, "size", None)
    if size is None and seekable:  # e.g. fsspec's local files: ask the file itself
        try:
            size = f.seek(0, io.SEEK_END)
            f.seek(0)
            f.size = size
        except Exception:
            size = None
    if size is None or not seekable:
        try:
            f.close()
        finally:
            raise RemoteSourceError(
                f"{redact_url(url)}: the server gives no size or does not allow seeking; "
                "random access needs a server that answers HEAD with Content-Length and honours "
                "Range requests",
                url=redact_url(url),
            )
    stats.add(opens=1)
    return RemoteFile(f, url, options, stats)


class RemoteFile(io.RawIOBase):
    """A read-only, seekable file over an fsspec file: counts the bytes its range requests
    transfer, retries transient failures, and raises :class:`RemoteSourceError` subclasses
    naming the redacted URL. Handed to FFmpeg (PyAV) as a Python file object; it has no
    ``name``, so FFmpeg never learns the URL."""

    def __init__(self, f, url: str, options: RemoteOptions, stats: ReadStats):
        super().__init__()
        self._f = f
        self._url = url
        self._options = options
        self.stats = stats
        self.size = int(f.size)
        self._counted_by_fetcher = False
        cache = getattr(f, "cache", None)
        fetcher = getattr(cache, "fetcher", None)
        if callable(fetcher):
            cache.fetcher = self._wrap_fetcher(fetcher)
            self._counted_by_fetcher = True

    def _wrap_fetcher(self, fetch):
        stats, retries = self.stats, self._options.retries

        def fetcher(start, end):
            data = _with_retries(lambda: fetch(start, end), retries, stats)
            stats.add(bytes_read=len(data), read_calls=1)
            return data

        return fetcher

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed file")
        pos = self._f.tell()
        if size is None or size < 0:
            size = self.size - pos
        size = min(size, self.size - pos)
        if size <= 0:
            return b""

        def once():
            self._f.seek(pos)
            return self._f.read(size)

        try:
            data = once() if self._counted_by_fetcher else _with_retries(once, self._options.retries, self.stats)
        except Exception as exc:
            raise translate_error(exc, self._url, self._options) from None
        if not self._counted_by_fetcher:
            self.stats.add(bytes_read=len(data), read_calls=1)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        n = len(data)
        memoryview(buffer).cast("B")[:n] = data
        return n

    def readall(self) -> bytes:
        return self.read(-1)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._f.tell() + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._f.seek(pos)
        return pos

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        if not self.closed:
            try:
                self._f.close()
            except Exception:  # pragma: no cover - closing must not raise
                pass
            logger.debug("%s: closed; %s", redact_url(self._url), self.stats.snapshot())
        super().close()
