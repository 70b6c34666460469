"""Backend registry: every backend is found through the ``mediadecode.backends`` entry-point group.

Our own backends are registered through that group in mediadecode's ``pyproject.toml``, exactly as a
third-party package registers its own::

    [project.entry-points."mediadecode.backends"]
    mybackend = "my_package.backend:MyBackend"

The group is read once, on the first lookup (never at import). A plugin whose entry point cannot be
loaded produces a :class:`RuntimeWarning` and shows up in :func:`list_backends` as unavailable with
the reason; it never breaks mediadecode. A built-in table backs up the entry points so that a source
checkout without installed metadata still finds the ffmpeg backend.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, Mapping

from .capabilities import Capabilities, capabilities_of
from .errors import BackendUnavailableError, UnknownBackendError

__all__ = ["BackendSpec", "BackendInfo", "CachedAvailability", "list_backends", "get_backend_class", "registry"]

GROUP = "mediadecode.backends"


class CachedAvailability:
    """For backend classes whose availability check is costly (it imports a library, loads
    shared libraries): :meth:`unavailable_reason` runs the class's ``check_availability()`` once
    per process and keeps the answer."""

    _reason: str | None = None
    _checked = False

    @classmethod
    def check_availability(cls) -> str | None:  # pragma: no cover - overridden
        """None when usable here; otherwise why not, with the fix. Must not raise."""
        return None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if not cls._checked:
            cls._reason = cls.check_availability()
            cls._checked = True
        return cls._reason


@dataclass(frozen=True)
class BackendSpec:
    """Where a backend lives: ``target`` is ``"package.module:Class"``.

    Attributes:
        name: the selection name.
        target: dotted path of the backend class.
        install_hint: the command that installs what it needs.
        distribution: the installed distribution that registered it (None for the built-in
            table).
    """

    name: str
    target: str
    install_hint: str = ""
    distribution: str | None = None


@dataclass(frozen=True)
class BackendInfo:
    """One row of :func:`list_backends`.

    Attributes:
        name: the selection name.
        available: True when it can be used here.
        reason: why it is unavailable, with the fix (empty when available).
        devices: device types it decodes on (``("cpu",)``...).
        priority: automatic-selection priority, higher first.
        media_types: ``("video", "audio")`` or a subset.
        target: ``"package.module:Class"``.
        distribution: the distribution that registered it.
        capabilities: its :class:`~mediadecode.capabilities.Capabilities` (devices, media types,
            source kinds, seek modes, codecs, pixel tolerance...), or None when its class could
            not be loaded.
    """

    name: str
    available: bool
    reason: str
    devices: tuple[str, ...] = ()
    priority: int = 0
    media_types: tuple[str, ...] = ()
    target: str = ""
    distribution: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    capabilities: Capabilities | None = None


BUILTIN_SPECS: dict[str, BackendSpec] = {
    "ffmpeg": BackendSpec(
        "ffmpeg", "mediadecode.backends.ffmpeg:FFmpegBackend", "pip install av"
    ),
    "decord": BackendSpec(
        "decord", "mediadecode.backends.decord:DecordBackend", 'pip install "mediadecode[decord]"'
    ),
    "torchcodec": BackendSpec(
        "torchcodec",
        "mediadecode.backends.torchcodec:TorchCodecBackend",
        'pip install "mediadecode[torchcodec]" (and FFmpeg\'s shared libraries: '
        "apt-get install ffmpeg, or conda install -c conda-forge ffmpeg)",
    ),
    "nvdec": BackendSpec(
        "nvdec",
        "mediadecode.backends.nvdec:NVDECBackend",
        "an NVIDIA GPU and driver, a CUDA build of torch, and pip install av (NVDEC included)",
    ),
    "nvenc": BackendSpec(
        "nvenc",
        "mediadecode.backends.nvenc:NVENCBackend",
        "an NVIDIA GPU and driver, a CUDA build of torch, and a PyAV whose FFmpeg has NVENC",
    ),
}

_lock = threading.RLock()
_specs: dict[str, BackendSpec] | None = None
_classes: dict[str, type] = {}
_load_errors: dict[str, str] = {}


def _scan() -> dict[str, BackendSpec]:
    global _specs
    with _lock:
        if _specs is not None:
            return _specs
        specs = dict(BUILTIN_SPECS)
        try:
            eps = entry_points(group=GROUP)
        except Exception as exc:  # pragma: no cover - broken environment metadata
            warnings.warn(f"mediadecode: could not read entry points: {exc}", RuntimeWarning)
            eps = ()  # type: ignore[assignment]
        for ep in eps:
            dist = getattr(getattr(ep, "dist", None), "name", None)
            builtin = BUILTIN_SPECS.get(ep.name)
            if builtin is not None and ep.value != builtin.target:
                warnings.warn(
                    f"mediadecode: entry point {ep.name!r} from {dist} tries to replace the "
                    f"built-in backend of that name; ignored",
                    RuntimeWarning,
                )
                continue
            hint = builtin.install_hint if builtin else (f"pip install {dist}" if dist else "")
            specs[ep.name] = BackendSpec(ep.name, ep.value, hint, dist)
        _specs = specs
        return specs


def registry() -> Mapping[str, BackendSpec]:
    """A read-only view of the registered backends, by name."""
    return MappingProxyType(_scan())


def _reset() -> None:
    """Forget the scan (tests use this after registering entry points)."""
    global _specs
    with _lock:
        _specs = None
        _classes.clear()
        _load_errors.clear()


def get_backend_class(name: str) -> type:
    """The backend class registered as ``name``, importing it on first use.

    Raises:
        UnknownBackendError: nothing is registered under ``name`` (lists the known names).
        BackendUnavailableError: its module cannot be imported (message has the reason).
    """
    specs = _scan()
    if name not in specs:
        known = ", ".join(sorted(specs)) or "none"
        raise UnknownBackendError(f"unknown backend {name!r}; registered backends: {known}")
    with _lock:
        if name in _classes:
            return _classes[name]
        if name in _load_errors:
            raise BackendUnavailableError(_load_errors[name])
        spec = specs[name]
        try:
            module_name, _, attr = spec.target.partition(":")
            obj: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as exc:
            message = (
                f"backend {name!r} ({spec.target}) could not be loaded: "
                f"{type(exc).__name__}: {exc}"
            )
            if spec.install_hint:
                message += f"; try: {spec.install_hint}"
            _load_errors[name] = message
            if spec.distribution is not None:
                warnings.warn(f"mediadecode: {message}", RuntimeWarning, stacklevel=3)
            raise BackendUnavailableError(message) from exc
        for attr_name in ("name", "priority", "devices", "media_types"):
            if not hasattr(obj, attr_name):
                message = f"backend {name!r} ({spec.target}) lacks the attribute {attr_name!r}"
                _load_errors[name] = message
                warnings.warn(f"mediadecode: {message}", RuntimeWarning, stacklevel=3)
                raise BackendUnavailableError(message)
        _classes[name] = obj
        return obj


def unavailable_reason(name: str) -> str | None:
    """None when backend ``name`` can be used here, else the reason (with the fix).

    Raises:
        UnknownBackendError: nothing is registered under ``name``.
    """
    try:
        cls = get_backend_class(name)
    except BackendUnavailableError as exc:
        return str(exc)
    try:
        return cls.unavailable_reason()  # type: ignore[attr-defined]
    except Exception as exc:  # a plugin's check must not break listing
        return f"availability check failed: {type(exc).__name__}: {exc}"


def _capabilities(cls) -> Capabilities | None:
    if cls is None:
        return None
    try:
        return capabilities_of(cls)
    except Exception as exc:  # a plugin's malformed declaration must not break listing
        warnings.warn(f"mediadecode: {cls!r} declares invalid capabilities: {exc}", RuntimeWarning)
        return None


def list_backends() -> list[BackendInfo]:
    """One :class:`BackendInfo` per registered backend, highest priority first.

    Nothing is raised for a broken or unavailable backend: it is listed with ``available=False``
    and the ``reason`` (including the pip command that fixes it).
    """
    rows = []
    for name, spec in _scan().items():
        reason = unavailable_reason(name)
        cls = _classes.get(name)
        rows.append(
            BackendInfo(
                name=name,
                available=reason is None,
                reason=reason or "",
                devices=tuple(getattr(cls, "devices", ())),
                priority=int(getattr(cls, "priority", 0)),
                media_types=tuple(getattr(cls, "media_types", ())),
                target=spec.target,
                distribution=spec.distribution,
                capabilities=_capabilities(cls),
            )
        )
    rows.sort(key=lambda r: (-r.priority, r.name))
    return rows
