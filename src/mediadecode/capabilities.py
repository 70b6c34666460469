"""What a backend can do: :class:`Capabilities`, declared by each backend class.

A backend class sets ``capabilities = Capabilities(...)``. Selection reads it *before* opening
anything: in automatic mode a backend whose capabilities cannot serve the request (a file-like
source for a backend that only takes paths, ``seek_mode="approximate"`` for one that only has an
exact index, a CUDA device for a CPU backend...) is skipped, with the reason recorded; chosen
explicitly, it raises :class:`~mediadecode.errors.UnsupportedRequestError` (a ``ValueError``)
naming the backend and the reason. What can only be known once the file is open (its codec, a
``stream_index`` the backend cannot select) is checked by the backend in ``open_*``, which raises
:class:`~mediadecode.errors.UnsupportedRequestError` or
:class:`~mediadecode.errors.InvalidMediaError` so that automatic selection hands over to the next
backend.

A backend class without a ``capabilities`` attribute (written before it existed) gets one built
from its ``devices`` and ``media_types`` with every other field at its default; see
:func:`capabilities_of`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Capabilities", "Tolerance", "capabilities_of", "SOURCE_KINDS", "SEEK_MODES"]

SOURCE_KINDS = ("path", "bytes", "file")
"""Source kinds (:attr:`mediadecode.sources.Source.kind`) a backend declares: a local path;
encoded bytes (``bytes`` or a 1-D ``uint8`` tensor); a binary file-like object with ``read`` and
``seek``. A fourth kind, ``"url"`` (http, s3, any fsspec URL), reaches a backend as a seekable
file object (:meth:`mediadecode.sources.Source.open_binary`); whether a backend takes it is
:attr:`Capabilities.remote`."""

SEEK_MODES = ("exact", "approximate")


@dataclass(frozen=True)
class Tolerance:
    """How far a backend's output may be from FFmpeg's: frames from FFmpeg's own ``rgb24``
    conversion (PyAV ``frame.to_ndarray(format="rgb24")``), audio from the ffmpeg backend's
    samples (PyAV and libswresample).

    Attributes:
        max_abs: largest allowed absolute difference of any channel value (0-255).
        mean_abs: largest allowed mean absolute difference over a frame.
        audio_max_abs: largest allowed absolute difference of any float32 audio sample; a
            backend built on another FFmpeg version may differ by float rounding in lossy
            decoders (AAC, Opus: about 1e-7).

    ``Tolerance()`` (all 0) means bit-identical, as for CPU decoding with FFmpeg's swscale.
    """

    max_abs: int = 0
    mean_abs: float = 0.0
    audio_max_abs: float = 0.0

    def __post_init__(self) -> None:
        if self.max_abs < 0 or self.mean_abs < 0 or self.audio_max_abs < 0:
            raise ValueError(f"tolerances must be >= 0, got {self}")


def _tuple(value, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    try:
        out = tuple(value)
    except TypeError:
        raise TypeError(f"Capabilities.{name} must be a sequence of str, got {value!r}") from None
    if not all(isinstance(v, str) for v in out):
        raise TypeError(f"Capabilities.{name} must be a sequence of str, got {value!r}")
    return out


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared on its class as ``capabilities = Capabilities(...)``.

    Attributes:
        devices: device types it decodes on (``"cpu"``, ``"cuda"``).
        media_types: subset of ``("video", "audio")``.
        source_kinds: subset of :data:`SOURCE_KINDS` it can open: ``"path"``, ``"bytes"``
            (also 1-D ``uint8`` tensors), ``"file"`` (file-like objects).
        seek_modes: subset of ``("exact", "approximate")``.
        codecs: FFmpeg names of the video and audio codecs it decodes, or None when that is not
            knowable without opening a file (a backend built on some FFmpeg decodes whatever that
            FFmpeg build has). When set, selection uses it only for display; the backend itself
            refuses other codecs in ``open_*``.
        any_stream: True when ``stream_index`` may name any stream of the media type; False when
            the backend only decodes the stream it picks itself (it then refuses a
            ``stream_index`` that is not that one, in ``open_*``).
        audio_num_channels: ``"any"`` when ``num_channels=`` may ask for any channel count;
            ``"mono-or-native"`` when only 1 (mix down) or the stream's own count work.
        remote: True when it can read a URL source (``http://``, ``s3://``, any fsspec URL)
            through the seekable file object ``source.open_binary()`` returns, reading only the
            bytes it needs; None (default) means ``"file" in source_kinds``. A backend that
            takes file objects but reads them whole (decord) declares False.
        tolerance: :class:`Tolerance` of its frames against FFmpeg's ``rgb24`` conversion, per
            device type; a device not listed is bit-exact. Accepts a mapping
            ``{"cuda": Tolerance(...)}`` or a single :class:`Tolerance` for every device; stored
            as a tuple of ``(device, Tolerance)`` pairs so that the object stays hashable.
        notes: one line for ``mediadecode backends`` (what it is built on, known limits).
        cpu_fallback: a GPU backend whose ``open_video`` takes ``allow_cpu_fallback``: it may
            decode on the CPU what its hardware cannot (reported in the reader's
            ``cpu_fallback``); the decoder passes True only when it chose the backend
            automatically.
        frame_mappings: its ``open_video`` takes ``frame_mappings`` (a
            :class:`~mediadecode.frame_index.FrameMappings`, torchcodec 0.17's
            ``custom_frame_mappings``) and uses it as the exact-mode index instead of scanning;
            backends that cannot are skipped (automatic) or refuse (explicit) such requests.
        transforms: kinds of decoder transform (``"resize"``, ``"crop"``; see
            :mod:`mediadecode.transforms`) the backend applies itself. When not empty,
            ``open_video`` takes ``transforms=`` (a :class:`~mediadecode.transforms.TransformRequest`
            or None); the backend calls ``transforms.resolve(height, width)`` with its rotated
            frame size, applies ``plan.split(transforms)[0]`` (the leading steps of these
            kinds) after the rotation, and its reader sets ``frames_are_rotated = True``; the
            facade applies the rest with torch. Empty (default): ``open_video`` gets no
            ``transforms=`` and the facade applies every step after decoding and rotating.
        output_dtypes: frame dtypes the backend returns itself (``"uint8"``, ``"float32"``).
            With ``"float32"``, ``open_video`` takes ``output_dtype=`` (``"uint8"``,
            ``"float32"`` or ``"auto"``, torchcodec 0.17's meaning) and returns frames of the
            resolved dtype; otherwise the facade converts its uint8 frames (``/ 255``).
        ffmpeg_based: it reads containers with FFmpeg's demuxers (any FFmpeg build: PyAV's,
            the system's, decord's). Once one backend has found a source not to be media
            (:class:`~mediadecode.errors.NotMediaError`: FFmpeg's format probe recognises
            nothing), automatic selection tries no other FFmpeg-based backend on it, nor
            imports one; backends built on other libraries are still tried.

    Raises:
        ValueError: an unknown media type, source kind or seek mode.
        TypeError: a field of the wrong type.
    """

    devices: tuple[str, ...] = ("cpu",)
    media_types: tuple[str, ...] = ("video", "audio")
    source_kinds: tuple[str, ...] = SOURCE_KINDS
    seek_modes: tuple[str, ...] = SEEK_MODES
    codecs: frozenset[str] | None = None
    any_stream: bool = True
    audio_num_channels: str = "any"
    remote: bool | None = None
    # A mapping or one Tolerance is accepted and stored as a tuple of (device, Tolerance) pairs.
    tolerance: tuple[tuple[str, Tolerance], ...] | Mapping[str, Tolerance] | Tolerance = field(default=())
    notes: str = ""
    cpu_fallback: bool = False
    frame_mappings: bool = False
    transforms: frozenset[str] = frozenset()
    output_dtypes: tuple[str, ...] = ("uint8",)
    ffmpeg_based: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "transforms", frozenset(_tuple(self.transforms, "transforms")))
        if not self.transforms <= {"resize", "crop"}:
            raise ValueError(f"Capabilities.transforms: unknown {sorted(self.transforms - {'resize', 'crop'})}")
        set_(self, "output_dtypes", _tuple(self.output_dtypes, "output_dtypes"))
        if not set(self.output_dtypes) <= {"uint8", "float32"} or "uint8" not in self.output_dtypes:
            raise ValueError(f"Capabilities.output_dtypes must hold 'uint8' and may hold 'float32', got {self.output_dtypes}")
        set_(self, "devices", _tuple(self.devices, "devices"))
        set_(self, "media_types", _tuple(self.media_types, "media_types"))
        set_(self, "source_kinds", _tuple(self.source_kinds, "source_kinds"))
        set_(self, "seek_modes", _tuple(self.seek_modes, "seek_modes"))
        for name, allowed in (
            ("media_types", ("video", "audio")),
            ("source_kinds", SOURCE_KINDS),
            ("seek_modes", SEEK_MODES),
        ):
            bad = [v for v in getattr(self, name) if v not in allowed]
            if bad:
                raise ValueError(f"Capabilities.{name}: unknown {bad}; allowed: {allowed}")
        if self.remote is None:
            set_(self, "remote", "file" in self.source_kinds)
        elif not isinstance(self.remote, bool):
            raise TypeError(f"Capabilities.remote must be a bool or None, got {self.remote!r}")
        elif self.remote and "file" not in self.source_kinds:
            raise ValueError("Capabilities.remote=True needs 'file' in source_kinds")
        if self.codecs is not None:
            set_(self, "codecs", frozenset(self.codecs))
        if self.audio_num_channels not in ("any", "mono-or-native"):
            raise ValueError(
                "Capabilities.audio_num_channels must be 'any' or 'mono-or-native', "
                f"got {self.audio_num_channels!r}"
            )
        tol: Any = self.tolerance
        if isinstance(tol, Tolerance):
            tol = tuple((d, tol) for d in self.devices)
        elif isinstance(tol, Mapping):
            tol = tuple(sorted(tol.items()))
        else:
            tol = tuple(tuple(pair) for pair in tol)
        for pair in tol:
            if len(pair) != 2 or not isinstance(pair[1], Tolerance):
                raise TypeError(f"Capabilities.tolerance: expected (device, Tolerance), got {pair!r}")
        set_(self, "tolerance", tol)

    @property
    def tolerance_pairs(self) -> tuple[tuple[str, Tolerance], ...]:
        """:attr:`tolerance` as stored: ``(device type, Tolerance)`` pairs."""
        return self.tolerance  # type: ignore[return-value]  # normalised in __post_init__

    def tolerance_for(self, device: str) -> Tolerance:
        """The :class:`Tolerance` declared for ``device`` (``"cuda:0"`` counts as ``"cuda"``);
        bit-exact when none is declared."""
        device_type = device.split(":", 1)[0]
        for name, tol in self.tolerance_pairs:
            if name == device_type:
                return tol
        return Tolerance()

    def cannot_serve(
        self,
        *,
        media_type: str,
        device: str = "cpu",
        source_kind: str | None = None,
        seek_mode: str | None = None,
        frame_mappings: bool = False,
    ) -> str | None:
        """None when a request with these properties is within the capabilities, otherwise
        the reason in a few words (``"does not decode video"``...). ``None`` arguments are not
        checked."""
        device_type = device.split(":", 1)[0]
        if media_type not in self.media_types:
            return f"does not decode {media_type}; it decodes {', '.join(self.media_types) or 'nothing'}"
        if device_type not in self.devices:
            return f"does not decode on {device!r}; its devices: {', '.join(self.devices)}"
        if source_kind == "url":
            if not self.remote:
                how = (
                    "it reads file objects whole" if "file" in self.source_kinds
                    else f"it opens {', '.join(self.source_kinds)} sources"
                )
                return f"cannot read a URL source with range reads ({how})"
        elif source_kind is not None and source_kind not in self.source_kinds:
            what = {"path": "a path", "bytes": "bytes", "file": "a file-like object"}.get(
                source_kind, source_kind
            )
            return (
                f"cannot open {what}; it opens {', '.join(self.source_kinds)} sources"
            )
        if media_type == "video" and seek_mode is not None and seek_mode not in self.seek_modes:
            return (
                f"has no seek_mode={seek_mode!r}; its seek modes: {', '.join(self.seek_modes)}"
            )
        if media_type == "video" and frame_mappings and not self.frame_mappings:
            return "cannot take custom_frame_mappings (it builds its own frame index)"
        return None

    def summary(self) -> str:
        """A one-line description, as ``mediadecode backends`` prints it."""
        parts = [
            f"sources {'/'.join(self.source_kinds + (('url',) if self.remote else ()))}",
            f"seek {'/'.join(self.seek_modes)}",
            "codecs " + ("(its FFmpeg's)" if self.codecs is None else ",".join(sorted(self.codecs))),
        ]
        if not self.any_stream:
            parts.append("best stream only")
        if self.frame_mappings:
            parts.append("custom frame mappings")
        if self.audio_num_channels != "any" and "audio" in self.media_types:
            parts.append("audio channels: mono or native")
        tols = [
            f"{d} max {t.max_abs}/mean {t.mean_abs:g}" + (f", audio {t.audio_max_abs:g}" if t.audio_max_abs else "")
            for d, t in self.tolerance_pairs if t != Tolerance()
        ]
        if self.transforms:
            parts.append("transforms " + "/".join(sorted(self.transforms)))
        if "float32" in self.output_dtypes:
            parts.append("float32 output")
        parts.append("pixels vs FFmpeg: " + ("; ".join(tols) if tols else "exact"))
        return ", ".join(parts)


def capabilities_of(cls) -> Capabilities:
    """The :class:`Capabilities` of a backend class: its ``capabilities`` attribute, or one
    built from its ``devices`` and ``media_types`` (defaults for everything else)."""
    caps = getattr(cls, "capabilities", None)
    if isinstance(caps, Capabilities):
        return caps
    return Capabilities(
        devices=tuple(getattr(cls, "devices", ("cpu",))),
        media_types=tuple(getattr(cls, "media_types", ("video", "audio"))),
    )
