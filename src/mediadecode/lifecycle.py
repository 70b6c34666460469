"""Process lifecycle: native resources across ``fork``, and closing what FFmpeg holds.

One place for what every backend and the remote layer need around processes:

- **Parking before fork.** Objects that own FFmpeg decoder threads register with
  :func:`park_before_fork`; before a ``fork`` each one's ``park()`` frees its container and
  threads (keeping what it can rebuild from, such as the frame index). A child that frees a decoder
  whose frame threads exist only in the parent blocks for ever inside ``avcodec_free_context``.
  For the same reason the hook runs the cycle collector first: PyAV containers left unreachable
  in reference cycles (dropped without ``close()``) are freed in the parent, where their decoder
  threads exist, instead of by the child's first collection.
- **Keeping inherited objects alive in the child.** Objects whose finalizer must never run in a
  fork child (decord readers, whose C++ destructor aborts there; fsspec file systems, whose
  finalizer would close the parent's pooled connections through the event-loop state both share)
  register with :func:`keep_alive_in_children`; a child holds them for its whole life.
  :func:`abandon` does the same for one object that a child finds it inherited.
- **Closing.** :func:`close_media` closes a PyAV container, then the file object it reads, and
  never raises. It first lets the container's decoders finish their work with the GIL released
  (:func:`idle_decoders`): freeing a decoder joins FFmpeg's frame threads while the freeing
  thread holds the GIL, and a frame thread that logs through PyAV's Python log callback (installed
  by ``av.logging.set_level``, as torchvision 0.19-0.21 do on import) waits for that GIL, so the
  two would wait for each other for ever.

The ``fork`` hooks are registered on first use, never at import.
"""

from __future__ import annotations

import gc
import os
import threading
import weakref
from typing import Any

__all__ = ["park_before_fork", "keep_alive_in_children", "abandon", "idle_decoders", "close_media"]

_lock = threading.Lock()
_parkable: "weakref.WeakSet[Any]" = weakref.WeakSet()
_keep_in_child: "weakref.WeakSet[Any]" = weakref.WeakSet()
# What a fork child inherited and must never free: held here for the life of the process.
_abandoned: list[Any] = []
_hooks_installed = False


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed or not hasattr(os, "register_at_fork"):
        return
    with _lock:
        if _hooks_installed:
            return
        os.register_at_fork(before=_park_all, after_in_child=_keep_all)
        _hooks_installed = True


def _park_all() -> None:
    gc.collect()
    for obj in list(_parkable):
        try:
            obj.park()
        except Exception:  # pragma: no cover - a failed park must not block the fork
            pass


def _keep_all() -> None:
    _abandoned.extend(_keep_in_child)


def park_before_fork(obj: Any) -> None:
    """Call ``obj.park()`` before every later ``fork`` of this process while ``obj`` is alive
    (held weakly). ``park()`` must free the native resources a child could not free, and let
    the object reopen them on next use."""
    _install_hooks()
    _parkable.add(obj)


def keep_alive_in_children(obj: Any) -> None:
    """Never let a fork child free ``obj`` (held weakly in this process, strongly in children
    forked while it is alive)."""
    _install_hooks()
    _keep_in_child.add(obj)


def abandon(obj: Any) -> None:
    """Keep ``obj`` referenced, unused, for the life of this process: for an object a fork
    child inherited and must neither use nor free."""
    if obj is not None:
        _abandoned.append(obj)


def idle_decoders(container: Any) -> None:
    """Wait, with the GIL released, until no FFmpeg thread of ``container``'s open decoders is
    working; never raises. Call it before dropping the last reference to a decoder by any other
    way than :func:`close_media` (which calls it).

    Why: ``avcodec_free_context`` (PyAV's ``CodecContext.__dealloc__``, run by
    ``container.close()`` or by the garbage collector, always with the GIL held) first waits for
    each frame thread to finish the packet it is decoding, then joins it. A frame thread may log
    while it decodes; with a PyAV log level set, or any log callback that calls into Python, the
    message waits for the GIL, and the free never returns. ``avcodec_flush_buffers``, which PyAV
    calls with the GIL released, does the same waiting (and libdav1d's flush waits for its own
    workers), so after it the free joins idle threads, which exit without logging. Nothing about
    the log setting is touched: whatever callback is installed, by PyAV or anyone else, keeps
    working, in every thread.

    The decoders' buffered frames are dropped: call it only on decoders about to be freed, or
    about to be sought (a seek flushes them anyway). Encoders are left alone; drain them with
    ``encode(None)`` before closing, which runs with the GIL released too.
    """
    try:
        streams = list(container.streams)
    except Exception:  # closed, or not a container: nothing of ours is running
        return
    for stream in streams:
        try:
            codec_context = stream.codec_context
            if codec_context is not None and codec_context.is_open and codec_context.is_decoder:
                codec_context.flush_buffers()
        except Exception:  # pragma: no cover - freeing must go on
            pass


def close_media(container: Any, fileobj: Any = None) -> None:
    """Close a PyAV ``container`` (None: nothing), then ``fileobj`` (None: nothing); never
    raises and never blocks on FFmpeg's threads, whatever PyAV log level or Python logging
    handler is set (see :func:`idle_decoders`). The file object is closed after the container,
    whose demuxer may still read it."""
    if container is not None:
        idle_decoders(container)
        try:
            container.close()
        except Exception:  # pragma: no cover - closing must not raise
            pass
    if fileobj is not None:
        try:
            fileobj.close()
        except Exception:  # pragma: no cover
            pass
