"""Which backend encodes: the rules of decoding (:mod:`mediadecode.selection`), for encoders.

The first of these that is set chooses: the ``backend=`` argument, ``mediadecode.use_backend()``,
``MEDIADECODE_BACKEND``, the config file; otherwise every registered backend that declares
``encoder_capabilities`` (:class:`~mediadecode.encoding_protocol.EncoderCapabilities`), is
available and can take the streams and the frames' device, highest priority first. An explicit
choice is never substituted: a backend that does not encode, or not these streams, raises
:class:`~mediadecode.errors.UnsupportedEncodingError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from . import registry
from .encoding_protocol import EncoderCapabilities
from .errors import UnsupportedEncodingError
from .selection import Choice, current_backend_choice, explicit_backend_class, loadable_backends

__all__ = ["EncoderPlan", "encoder_capabilities_of", "plan_encoders"]


def encoder_capabilities_of(cls) -> EncoderCapabilities | None:
    """The class's declared :class:`EncoderCapabilities`, None when it does not encode."""
    caps = getattr(cls, "encoder_capabilities", None)
    return caps if isinstance(caps, EncoderCapabilities) else None


@dataclass(frozen=True)
class EncoderPlan:
    """The backends to try for one encode, in order.

    Attributes:
        names: backend names, in order (one for an explicit choice).
        choice: how the choice was made.
        skipped: in automatic mode, backends left out and why (name -> reason).
    """

    names: list[str]
    choice: Choice
    skipped: dict[str, str]


def plan_encoders(media_types: Sequence[str], device: str, backend: str | None = None) -> EncoderPlan:
    """Which backends to try for streams of ``media_types`` with frames on ``device``.

    Raises:
        UnknownBackendError: an explicit name that is not registered.
        BackendUnavailableError: an explicit backend that cannot be used here (with the fix).
        UnsupportedEncodingError: an explicit backend that does not encode these streams, or in
            automatic mode no available backend that does (every reason listed).
    """
    choice = current_backend_choice(backend)
    if choice.name is not None:
        name = choice.name
        caps = encoder_capabilities_of(explicit_backend_class(choice))
        if caps is None:
            raise UnsupportedEncodingError(f"backend {name!r} (from {choice.origin}) does not encode")
        why = caps.cannot_serve(media_types=media_types, device=device)
        if why is not None:
            raise UnsupportedEncodingError(f"backend {name!r} (from {choice.origin}) {why}")
        return EncoderPlan([name], choice, {})

    ranked = []
    skipped: dict[str, str] = {}
    for name, cls in loadable_backends(skipped):
        caps = encoder_capabilities_of(cls)
        if caps is None:
            continue  # a decode-only backend: not a candidate, not worth a line
        why = caps.cannot_serve(media_types=media_types, device=device)
        if why is not None:
            skipped[name] = why
            continue
        ranked.append((-int(getattr(cls, "priority", 0)), name))
    names = []
    for _, name in sorted(ranked):
        reason = registry.unavailable_reason(name)
        if reason is not None:
            skipped[name] = reason
            continue
        names.append(name)
    if not names:
        detail = "; ".join(f"{n}: {why}" for n, why in skipped.items()) or "none registered"
        raise UnsupportedEncodingError(
            f"no available backend encodes {' and '.join(media_types) or 'streams'} on {device!r} ({detail})"
        )
    return EncoderPlan(names, choice, skipped)
