"""Explicit, reversible patches of another library: what the adapters' ``use_for_datasets``
return (DESIGN.md: "Explicit and reversible patching only").

- :class:`ReversiblePatch`: a patch installed when it is built; :meth:`~ReversiblePatch.restore`
  or leaving its ``with`` block undoes it.
- :class:`ReplacingPatch`: a :class:`ReversiblePatch` made of values replaced in place (module
  attributes, registry entries), each put back on restore only where ours is still installed,
  so a replacement made after ours is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["ReversiblePatch", "ReplacingPatch"]

P = TypeVar("P", bound="ReversiblePatch")


class ReversiblePatch:
    """Base of a patch that is installed when built. Subclasses define :meth:`restore` and
    :attr:`active`; this class makes the patch a context manager that restores on exit."""

    def restore(self) -> None:
        """Undo the patch; restoring twice does nothing the second time."""
        raise NotImplementedError

    @property
    def active(self) -> bool:
        """Whether the patch is installed."""
        raise NotImplementedError

    def __enter__(self: P) -> P:
        return self

    def __exit__(self, *exc_info) -> None:
        self.restore()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(active={self.active})"


class ReplacingPatch(ReversiblePatch):
    """A :class:`ReversiblePatch` made of values replaced in place: a subclass's ``__init__``
    calls :meth:`replace` or :meth:`replace_attribute` for each value it installs."""

    def __init__(self) -> None:
        self._saved: list[tuple[Callable[[], Any], Callable[[Any], None], Any, Any]] = []

    def replace(self, read: Callable[[], Any], write: Callable[[Any], None], ours: Any) -> None:
        """Install ``ours`` with ``write(ours)``, remembering what ``read()`` returned before."""
        previous = read()
        self._saved.append((read, write, previous, ours))
        write(ours)

    def replace_attribute(self, owner: Any, name: str, ours: Any) -> None:
        """Set ``owner.<name>`` (a module or class attribute) to ``ours``."""
        self.replace(
            lambda: getattr(owner, name, None), lambda value: setattr(owner, name, value), ours
        )

    def restore(self) -> None:
        """Put back what was there before, last replaced first, only where ours is still
        installed."""
        saved, self._saved = self._saved, []
        for read, write, previous, ours in reversed(saved):
            if read() is ours:
                write(previous)

    @property
    def active(self) -> bool:
        """Whether the replacements are installed (until :meth:`restore`)."""
        return bool(self._saved)
