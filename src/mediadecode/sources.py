"""Turn what a user passes as ``source`` into one :class:`Source` object.

Accepted: a path (``str`` or :class:`os.PathLike`), ``bytes``/``bytearray``/``memoryview``, a 1-D
``torch.uint8`` tensor of encoded bytes, or a binary file-like object with ``read`` and ``seek``.
A :class:`Source` pickles as the path or the bytes (a file-like object pickles only if the object
itself does), so decoders can be sent to DataLoader workers and reopened there.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

from .errors import SourceNotFoundError

__all__ = ["Source", "as_source"]


@dataclass(frozen=True)
class Source:
    """One media source, normalised.

    Attributes:
        kind: ``"path"``, ``"bytes"`` or ``"file"``.
        value: the path (``str``), the encoded bytes (``bytes``), or the file-like object.
        name: a short description for messages: the path, ``"<bytes: N bytes>"`` or
            ``"<file-like: TYPE>"``.
    """

    kind: str
    value: Any
    name: str

    def open_binary(self):
        """A fresh, seekable binary file object for the source, positioned at 0.

        For paths this opens the file (the caller closes it); for bytes a :class:`io.BytesIO`;
        for a file-like object, the object itself rewound to 0 (the caller does not close it).
        """
        if self.kind == "path":
            return open(self.value, "rb")
        if self.kind == "bytes":
            return io.BytesIO(self.value)
        self.value.seek(0)
        return self.value

    @property
    def owns_file(self) -> bool:
        """Whether :meth:`open_binary` returns an object the caller must close."""
        return self.kind != "file"


def as_source(source: Any) -> Source:
    """Normalise ``source`` into a :class:`Source`.

    Raises:
        SourceNotFoundError: a path that does not exist (also a ``FileNotFoundError``).
        ValueError: an empty path, or a tensor that is not 1-D ``torch.uint8``.
        TypeError: a type that is none of the accepted ones.
    """
    if isinstance(source, Source):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not path:
            raise ValueError("source is an empty path")
        if "://" in path and not path.startswith("file://"):
            raise ValueError(
                f"{path}: URLs are not supported yet; pass a local path, bytes or a file object"
            )
        if path.startswith("file://"):
            path = path[len("file://"):]
        if not os.path.exists(path):
            raise SourceNotFoundError(f"{path}: no such file")
        if os.path.isdir(path):
            raise SourceNotFoundError(f"{path}: is a directory, not a media file")
        return Source("path", path, path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return Source("bytes", data, f"<bytes: {len(data)} bytes>")
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None
    if torch is not None and isinstance(source, torch.Tensor):
        if source.dtype != torch.uint8 or source.ndim != 1:
            raise ValueError(
                "a tensor source must be a 1-D torch.uint8 tensor of encoded bytes, got "
                f"dtype={source.dtype} shape={tuple(source.shape)}"
            )
        data = source.detach().cpu().contiguous().numpy().tobytes()
        return Source("bytes", data, f"<tensor: {len(data)} bytes>")
    if hasattr(source, "read") and hasattr(source, "seek"):
        return Source("file", source, f"<file-like: {type(source).__name__}>")
    raise TypeError(
        "source must be a path (str or os.PathLike), bytes, a 1-D uint8 tensor or a binary "
        f"file-like object with read() and seek(); got {type(source).__name__}"
    )
