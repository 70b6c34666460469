"""Output files for encoders: nothing appears at a destination until an encode has succeeded.

:class:`AtomicOutputFile` writes to a temporary file beside the destination, created on the first
write (so an encode that fails while its streams are set up creates nothing at all), renamed over
the destination by :meth:`~AtomicOutputFile.commit` and removed by
:meth:`~AtomicOutputFile.discard`. :class:`CallerOutputFile` passes writes to a file object that
belongs to the caller, and drops them once the encode is discarded (so a failed encode does not
append FFmpeg's trailer to it).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

__all__ = ["AtomicOutputFile", "CallerOutputFile"]


class AtomicOutputFile:
    """A binary file object for an encoder writing ``dest``.

    Writes go to ``.<name>.<random>.part`` in the destination's directory, opened (exclusively)
    on the first ``write`` or ``seek``. :meth:`commit` closes it and renames it to ``dest``
    (:func:`os.replace`, atomic on POSIX within one file system); :meth:`discard` closes and
    removes it. ``name`` is the destination path, so FFmpeg guesses the container from its
    extension.

    Raises:
        FileNotFoundError: (on creation) the destination's directory does not exist.
        IsADirectoryError: ``dest`` is a directory.
    """

    def __init__(self, dest: str | os.PathLike):
        self.dest = Path(os.fspath(dest))
        if self.dest.is_dir():
            raise IsADirectoryError(f"{self.dest}: is a directory, not a file to write")
        parent = self.dest.parent
        if not parent.is_dir():
            raise FileNotFoundError(f"{self.dest}: the directory {parent} does not exist")
        self.name = str(self.dest)
        self.temp_path = parent / f".{self.dest.name}.{secrets.token_hex(6)}.part"
        self._file: Any = None
        self._done = False

    def _open(self):
        if self._file is None:
            if self._done:
                raise ValueError(f"{self.name}: write after the encode was finished")
            self._file = open(self.temp_path, "xb")
        return self._file

    def write(self, data) -> int:
        return self._open().write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._open().seek(offset, whence)

    def tell(self) -> int:
        return 0 if self._file is None else self._file.tell()

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Close the temporary file (kept until :meth:`commit` or :meth:`discard`)."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()

    def commit(self) -> None:
        """Close and rename the temporary file to the destination (an empty file when nothing
        was written)."""
        self._open()
        self.close()
        self._done = True
        os.replace(self.temp_path, self.dest)

    def discard(self) -> None:
        """Close and remove the temporary file; never raises."""
        self._done = True
        try:
            self.close()
        except OSError:  # pragma: no cover - closing a regular file
            pass
        try:
            os.unlink(self.temp_path)
        except FileNotFoundError:
            pass
        except OSError:  # pragma: no cover
            pass


class CallerOutputFile:
    """A caller's writable, seekable binary file object, seen by an encoder.

    Writes pass through until :meth:`discard`, after which they are dropped. :meth:`commit` and
    :meth:`close` leave the caller's object open: it is the caller's to close.

    Raises:
        TypeError: ``file`` lacks ``write`` or ``seek``.
    """

    def __init__(self, file: Any):
        for method in ("write", "seek"):
            if not callable(getattr(file, method, None)):
                raise TypeError(
                    f"expected a binary file object with write() and seek(), got {type(file).__name__}"
                )
        self.file = file
        self.name = str(getattr(file, "name", "<file object>"))
        self._dropping = False

    def write(self, data) -> int:
        if self._dropping:
            return len(data)
        written = self.file.write(data)
        return len(data) if written is None else written

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._dropping:
            return 0
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        if not self._dropping and callable(getattr(self.file, "flush", None)):
            self.file.flush()

    def close(self) -> None:
        """Does nothing: the caller closes its own object."""

    def commit(self) -> None:
        self.flush()

    def discard(self) -> None:
        self._dropping = True
