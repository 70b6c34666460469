"""Choosing a backend.

The backend that opens a source is chosen by the first of these that is set:

1. the ``backend=`` argument of the decoder;
2. :func:`use_backend` (a :mod:`contextvars` value, so it is per thread and per asyncio task);
3. the ``MEDIADECODE_BACKEND`` environment variable, read at each call;
4. the config file: ``$MEDIADECODE_CONFIG``, else ``~/.config/mediadecode/config.toml``
   (``$XDG_CONFIG_HOME`` is honoured), a TOML file with ``backend = "NAME"``;
5. automatic choice: available backends that decode the media type on the device, by priority.

With 1-4 (an explicit choice) exactly that backend is used: if it is unavailable the error says
why and how to fix it, and if its capabilities cannot serve the request (a source kind, seek mode
or device it lacks) :class:`~mediadecode.errors.UnsupportedRequestError` names it and the reason;
nothing is substituted silently. With 5, backends whose capabilities cannot serve the request are
skipped, and a backend that fails to open the source hands over to the next; if all fail,
:class:`~mediadecode.errors.NoBackendError` lists each one tried and its reason.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from . import registry
from .capabilities import capabilities_of
from .errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidMediaError,
    MediaDecodeError,
    NoBackendError,
    NotMediaError,
    StreamNotFoundError,
    UnknownBackendError,
    UnsafeMediaError,
    UnsupportedRequestError,
)

T = TypeVar("T")

__all__ = [
    "use_backend",
    "current_backend_choice",
    "explicit_backend_class",
    "loadable_backends",
    "plan_backends",
    "open_first",
    "Plan",
    "config_path",
]

ENV_VAR = "MEDIADECODE_BACKEND"
CONFIG_ENV_VAR = "MEDIADECODE_CONFIG"

_context_backend: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mediadecode_backend", default=None
)
# A choice that applies to CUDA requests only (torchcodec's set_cuda_backend).
_context_cuda_backend: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mediadecode_cuda_backend", default=None
)


@contextlib.contextmanager
def use_backend(name: str, *, device_type: str | None = None) -> Iterator[str]:
    """Use backend ``name`` for decoders created inside the ``with`` block.

    The choice lives in a :class:`contextvars.ContextVar`: it applies to this thread or asyncio
    task only, nests, and is restored on exit even if the block raises. A ``backend=`` argument
    still wins over it.

    Args:
        name: a registered backend.
        device_type: ``"cuda"`` to make the choice for decoders on CUDA devices only (CPU
            decoders inside the block choose as if it were absent; it wins over a plain
            ``use_backend`` for CUDA ones). None (default): every decoder.

    Raises:
        UnknownBackendError: ``name`` is not registered (checked on entry).
        TypeError: ``name`` is not a string.
        ValueError: ``device_type`` is neither None nor ``"cuda"``.
    """
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a str, got {type(name).__name__}")
    if device_type not in (None, "cuda"):
        raise ValueError(f"device_type must be None or 'cuda', got {device_type!r}")
    if name not in registry.registry():
        known = ", ".join(sorted(registry.registry()))
        raise UnknownBackendError(f"unknown backend {name!r}; registered backends: {known}")
    var = _context_backend if device_type is None else _context_cuda_backend
    token = var.set(name)
    try:
        yield name
    finally:
        var.reset(token)


def config_path() -> Path:
    """The config file consulted: ``$MEDIADECODE_CONFIG`` or the XDG default."""
    explicit = os.environ.get(CONFIG_ENV_VAR)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "mediadecode" / "config.toml"


def _config_backend() -> tuple[str | None, str]:
    path = config_path()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return None, str(path)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read mediadecode config: {exc}") from exc
    value = data.get("backend")
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{path}: 'backend' must be a string, got {value!r}")
    return value or None, str(path)


@dataclass(frozen=True)
class Choice:
    """A resolved choice: ``name`` None means automatic; ``origin`` says where it came from.

    ``cuda_only``: the choice came from ``use_backend(..., device_type="cuda")`` (torchcodec's
    ``set_cuda_backend``), which picks the GPU decoder as torchcodec's does, CPU fallback
    included."""

    name: str | None
    origin: str
    cuda_only: bool = False

    @property
    def allows_cpu_fallback(self) -> bool:
        """Whether a GPU backend may decode on the CPU what its hardware cannot: in automatic
        selection and under a CUDA-only choice, never when the user named the backend."""
        return self.name is None or self.cuda_only


def current_backend_choice(backend: str | None = None, *, device: str | None = None) -> Choice:
    """Which backend the rules above pick right now (None name: automatic); ``device`` is the
    request's (a ``use_backend(..., device_type="cuda")`` choice applies to CUDA ones only).

    Raises:
        ValueError: the config file is malformed.
    """
    if backend is not None:
        if not isinstance(backend, str):
            raise TypeError(f"backend must be a str or None, got {type(backend).__name__}")
        return Choice(backend, "the backend= argument")
    cuda_ctx = _context_cuda_backend.get()
    if cuda_ctx is not None and device is not None and str(device).split(":", 1)[0] == "cuda":
        return Choice(cuda_ctx, "mediadecode.use_backend(device_type='cuda')", cuda_only=True)
    ctx = _context_backend.get()
    if ctx is not None:
        return Choice(ctx, "mediadecode.use_backend()")
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Choice(env, f"the {ENV_VAR} environment variable")
    cfg, path = _config_backend()
    if cfg is not None:
        return Choice(cfg, f"the config file {path}")
    return Choice(None, "automatic selection")


def explicit_backend_class(choice: Choice) -> type:
    """The class of the backend an explicit ``choice`` (``choice.name`` not None) names, once it
    is known to be registered and usable here; what it can serve is the caller's to check.

    Raises:
        UnknownBackendError: the name is not registered (the message lists those that are).
        BackendUnavailableError: the backend cannot be used here (the message says why and
            how to fix it).
    """
    name = choice.name
    if name not in registry.registry():
        known = ", ".join(sorted(registry.registry()))
        raise UnknownBackendError(
            f"unknown backend {name!r} (from {choice.origin}); registered backends: {known}"
        )
    reason = registry.unavailable_reason(name)
    if reason is not None:
        raise BackendUnavailableError(
            f"backend {name!r} (from {choice.origin}) is unavailable: {reason}"
        )
    return registry.get_backend_class(name)


def loadable_backends(unloadable: dict[str, str]) -> Iterator[tuple[str, type]]:
    """``(name, class)`` of each registered backend, in registration order; a backend whose
    class cannot be loaded here is recorded in ``unloadable`` (name -> reason, with the fix)
    instead, as the iteration reaches it."""
    for name in registry.registry():
        try:
            cls = registry.get_backend_class(name)
        except BackendUnavailableError as exc:
            unloadable[name] = str(exc)
            continue
        yield name, cls


@dataclass(frozen=True)
class Plan:
    """The backends to try for one request, in order.

    Attributes:
        names: backend names to try, in order (one name for an explicit choice).
        choice: how the choice was made (:class:`Choice`).
        skipped: in automatic mode, available backends left out because their capabilities
            cannot serve the request (name -> reason).
        unavailable: in automatic mode, registered backends that cannot be used here
            (name -> reason, with the fix).
    """

    names: list[str]
    choice: Choice
    skipped: dict[str, str]
    unavailable: dict[str, str]


def plan_backends(
    media_type: str,
    device: str,
    backend: str | None = None,
    *,
    source_kind: str | None = None,
    seek_mode: str | None = None,
    frame_mappings: bool = False,
) -> Plan:
    """Which backends to try for a request, in order, and why others are left out.

    ``source_kind`` (``"path"``, ``"bytes"``, ``"file"``, ``"url"``) and ``seek_mode`` are
    checked against each backend's :class:`~mediadecode.capabilities.Capabilities` when given
    (a ``"url"`` needs ``Capabilities.remote``: backends that read file objects whole are
    skipped), and so is ``frame_mappings`` (custom frame mappings need
    ``Capabilities.frame_mappings``).

    Raises:
        UnknownBackendError: an explicit name that is not registered.
        BackendUnavailableError: an explicit backend that cannot be used here (with the fix), or
            in automatic mode no available backend for this media type and device.
        UnsupportedRequestError: an explicit backend whose capabilities cannot serve the request
            (also a ``ValueError``; the message names the backend and the reason), or in
            automatic mode no available backend whose capabilities can.
    """
    choice = current_backend_choice(backend, device=device)
    request: dict[str, Any] = dict(media_type=media_type, device=device, source_kind=source_kind,
                                   seek_mode=seek_mode, frame_mappings=frame_mappings)
    if choice.name is not None:
        name = choice.name
        cls = explicit_backend_class(choice)
        why = capabilities_of(cls).cannot_serve(**request)
        if why is not None:
            raise UnsupportedRequestError(f"backend {name!r} (from {choice.origin}) {why}")
        return Plan([name], choice, {}, {})

    names: list[str] = []
    skipped: dict[str, str] = {}
    unavailable: dict[str, str] = {}
    basic: dict[str, str] = {}  # wrong media type or device
    # Highest priority first. Availability is checked (which imports the backend's library, up
    # to a second for some) only until the first backend that can serve; the ones after it are
    # fallbacks, checked by the decoder only if it comes to trying them.
    ranked = [
        (-int(getattr(cls, "priority", 0)), name, cls) for name, cls in loadable_backends(unavailable)
    ]
    ranked.sort(key=lambda r: r[:2])
    for _, name, cls in ranked:
        if not names:
            reason = registry.unavailable_reason(name)
            if reason is not None:
                unavailable[name] = reason
                continue
        try:
            caps = capabilities_of(cls)
        except Exception as exc:  # a plugin's malformed declaration: not usable
            unavailable[name] = f"invalid capabilities: {exc}"
            continue
        why = caps.cannot_serve(media_type=media_type, device=device)
        if why is not None:
            basic[name] = why
            continue
        why = caps.cannot_serve(**request)
        if why is not None:
            skipped[name] = why
            continue
        names.append(name)
    if not names:
        if skipped:
            detail = "; ".join(f"{n} {why}" for n, why in skipped.items())
            raise UnsupportedRequestError(
                f"no available backend can serve this {media_type} request ({detail})"
            )
        detail = "; ".join(f"{n}: {why}" for n, why in unavailable.items()) or "none registered"
        raise BackendUnavailableError(
            f"no available backend decodes {media_type} on {device!r} ({detail})"
        )
    return Plan(names, choice, skipped, unavailable)


def open_first(plan: Plan, source_name: str, open_with: Callable[[str, Any], T]) -> tuple[T, str]:
    """Open with the plan's backends in order; returns ``(what open_with returned, backend name)``.

    ``open_with(name, backend_object)`` opens the source with one backend. The decisions after an
    open fails live here, beside the ones before it:

    - a source refused for safety (:class:`UnsafeMediaError`) is never handed to another backend
      (one with its own FFmpeg would follow the playlist's references);
    - a wrong request (:class:`StreamNotFoundError`, ``TypeError``, ``ValueError``) is raised at
      once: no backend would serve it;
    - a backend that cannot serve the request (:class:`UnsupportedRequestError`), cannot read the
      source (:class:`InvalidMediaError`), is unavailable, or fails otherwise hands over to the
      next in automatic selection; an explicit choice raises instead, never substituted;
    - a source that an FFmpeg-based backend found not to be media (:class:`NotMediaError`:
      FFmpeg's format probe recognises nothing) is not handed to another FFmpeg-based backend
      (``Capabilities.ffmpeg_based``), whose probe would say the same: those are listed in the
      error as not tried, without importing them.

    Raises:
        NoBackendError: automatic selection, and every backend tried failed (lists each and why,
            and the ones the plan skipped).
        UnsupportedRequestError: an explicit backend cannot serve the request (names it and where
            the choice came from).
        UnsafeMediaError, StreamNotFoundError, InvalidMediaError, BackendUnavailableError, ...:
            as raised by the backend when no hand-over applies.
    """
    names, choice = plan.names, plan.choice
    explicit = choice.name is not None
    attempts: dict[str, str] = {}
    last_exc: BaseException | None = None
    not_media: str | None = None  # the FFmpeg-based backend whose probe found no media
    for name in names:
        cls = registry.get_backend_class(name)
        if not_media is not None and capabilities_of(cls).ffmpeg_based:
            attempts[name] = f"not tried: FFmpeg's probe in {not_media!r} found no media"
            continue
        if name != names[0]:  # fallbacks' availability was not checked by the plan
            reason = registry.unavailable_reason(name)
            if reason is not None:
                attempts[name] = f"unavailable: {reason}"
                continue
        try:
            return open_with(name, cls()), name
        except UnsafeMediaError:
            raise
        except UnsupportedRequestError as exc:
            if explicit:
                raise UnsupportedRequestError(
                    f"backend {name!r} (from {choice.origin}) cannot serve this request: {exc}"
                ) from exc
            if len(names) == 1:
                raise
            attempts[name] = f"cannot serve this request: {exc}"
            last_exc = exc
        except (StreamNotFoundError, TypeError, ValueError) as exc:
            if (isinstance(exc, (MediaDecodeError, InvalidArgumentError, InvalidArgumentTypeError))
                    or type(exc) in (TypeError, ValueError)):
                raise  # our own verdict on the request (a bad argument, wrong mappings)
            # A library's own ValueError subclass (PyAV's errors, UnicodeDecodeError on
            # damaged metadata) is about the bytes, not the request: as any other failure.
            if explicit:
                raise
            attempts[name] = f"{type(exc).__name__}: {exc}"
            last_exc = exc
        except (InvalidMediaError, BackendUnavailableError) as exc:
            if explicit or len(names) == 1:
                raise
            attempts[name] = str(exc)
            last_exc = exc
            if isinstance(exc, NotMediaError) and capabilities_of(cls).ffmpeg_based:
                not_media = name
        except MediaDecodeError:
            raise
        except Exception as exc:
            if explicit:
                raise
            attempts[name] = f"{type(exc).__name__}: {exc}"
            last_exc = exc
    lines = "; ".join(f"{n}: {why}" for n, why in attempts.items())
    if plan.skipped:
        lines += "; not tried: " + "; ".join(f"{n} {why}" for n, why in plan.skipped.items())
    raise NoBackendError(
        f"{source_name}: no backend could open it ({lines})", attempts, plan.skipped
    ) from last_exc
