"""Hugging Face ``datasets`` features that decode through mediadecode.

``datasets`` 5.x decodes its ``Video`` and ``Audio`` columns only with torchcodec. The
:class:`Video` and :class:`Audio` here are subclasses of ``datasets.Video``/``datasets.Audio``
whose values decode to :class:`mediadecode.VideoDecoder`/:class:`mediadecode.AudioDecoder` (the
torchcodec API, on any mediadecode backend)::

    from mediadecode.adapters.hf_datasets import Video, Audio
    ds = ds.cast_column("video", Video(backend="ffmpeg"))
    ds[0]["video"].get_frames_at([0, 10])          # FrameBatch, uint8 NCHW

Nothing in ``datasets`` is patched. The stored feature type stays ``"Video"``/``"Audio"`` (the
``_type`` written to the dataset's metadata), so a dataset saved with these features is read by
anyone with plain ``datasets`` as ordinary Video/Audio columns; the extra field (``backend``) is
ignored there. ``datasets`` itself rebuilds features from that metadata with its own classes, so
after ``load_from_disk``/``load_dataset`` cast again (:func:`cast_to_mediadecode` does it for
every Video/Audio column at once).

``with_format("torch")``: ``datasets``' torch formatter passes torchcodec decoders through
untouched but tries to turn any other object into a tensor, which fails on a decoder. Format only
the other columns and keep the media columns as decoders::

    ds.with_format("torch", columns=["label"], output_all_columns=True)

``map`` with a function that reads a media column: ``datasets`` writes the columns the function
read back into the new table and can write only torchcodec's decoders, so pass
``input_columns=[...]``, return ``feature.encode_example(decoder)`` for the column, or
``remove_columns`` it. See docs/hf_datasets.md for every operation that was checked.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import datasets
import numpy as np

from ..decoders import AudioDecoder as _MDAudioDecoder
from ..decoders import VideoDecoder as _MDVideoDecoder

__all__ = ["Video", "Audio", "HFVideoDecoder", "HFAudioDecoder", "cast_to_mediadecode"]


def _encoded_of(decoder) -> dict[str, Any]:
    """The ``{"path", "bytes"}`` a decoder was made from (datasets' stored form)."""
    encoded = getattr(decoder, "_hf_encoded", None)
    if encoded is not None:
        return dict(encoded)
    source = decoder.source
    if source.kind == "path":
        return {"path": source.value, "bytes": None}
    if source.kind == "bytes":
        return {"path": None, "bytes": source.value}
    raise ValueError(
        f"{source.name}: a decoder over a file-like object cannot be stored in a dataset; "
        "pass its path or its bytes"
    )


def _split(value: str | dict) -> tuple[str | None, bytes | None]:
    if isinstance(value, str):
        return value, None
    path, data = value.get("path"), value.get("bytes")
    if path is None and data is None:
        raise ValueError(f"A media value should have one of 'path' or 'bytes' but both are None in {value}.")
    return path, data


class _HFState:
    """Keeps the dataset value a decoder came from across pickling (DataLoader workers)."""

    _hf_encoded: dict[str, Any]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()  # type: ignore[misc]
        state["hf_encoded"] = getattr(self, "_hf_encoded", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        self._hf_encoded = state.get("hf_encoded")

    @property
    def metadata(self):
        """The stream metadata, with ``path`` set to the dataset value's path (as ``datasets``
        sets it on torchcodec decoders)."""
        meta = super().metadata  # type: ignore[misc]
        encoded = getattr(self, "_hf_encoded", None) or {}
        meta.path = encoded.get("path")
        return meta


class HFVideoDecoder(_HFState, _MDVideoDecoder):
    """The :class:`mediadecode.VideoDecoder` that :class:`Video` returns: the same API, plus the
    dataset value it came from (so that ``map`` can write it back)."""


class HFAudioDecoder(_HFState, _MDAudioDecoder):
    """The :class:`mediadecode.AudioDecoder` that :class:`Audio` returns, with the dict access of
    ``datasets``' own audio decoder: ``decoder["array"]`` (float32 numpy samples, channels
    averaged to mono as ``datasets`` does) and ``decoder["sampling_rate"]`` (output rate, Hz)."""

    def __getitem__(self, key: str):
        if key == "array":
            y = self.get_all_samples().data.cpu().numpy()
            return np.mean(y, axis=tuple(range(y.ndim - 1))) if y.ndim > 1 else y
        if key == "sampling_rate":
            self._r  # noqa: B018 - opens the source if needed
            return self._sample_rate
        if key == "path":
            return (getattr(self, "_hf_encoded", None) or {}).get("path")
        raise KeyError(key)


@dataclass
class Video(datasets.Video):
    """``datasets.Video`` whose values decode to :class:`HFVideoDecoder` (a
    :class:`mediadecode.VideoDecoder`).

    Args (besides ``datasets.Video``'s ``decode``, ``stream_index``, ``dimension_order``,
    ``num_ffmpeg_threads`` (default 1, as ``datasets``), ``device``, ``seek_mode``):
        backend: mediadecode backend name (``"ffmpeg"``, ``"torchcodec"``, ``"decord"``...); None
            follows mediadecode's selection rules when each value is decoded.

    Values: a path, ``{"path": ..., "bytes": ...}`` (bytes win when present), or a decoder
    (returned as is). A remote path (``https://``, ``hf://``, ``s3://``...) is passed to
    :class:`mediadecode.VideoDecoder` as is, which reads what mediadecode's sources support.

    Raises (when a value is decoded): what :class:`mediadecode.VideoDecoder` raises
    (``SourceNotFoundError``, ``InvalidMediaError``...); ``RuntimeError`` when ``decode=False``;
    ``ValueError`` for a value with neither path nor bytes.
    """

    backend: str | None = None
    dtype: ClassVar[str] = "mediadecode.VideoDecoder"

    def encode_example(self, value: Any) -> dict[str, Any]:
        """As ``datasets.Video.encode_example``, and a mediadecode decoder encodes as the path or
        bytes it reads."""
        if isinstance(value, _MDVideoDecoder):
            return _encoded_of(value)
        return super().encode_example(value)

    def decode_example(self, value: str | dict, token_per_repo_id: dict | None = None) -> HFVideoDecoder:
        """Open ``value`` as an :class:`HFVideoDecoder`. ``token_per_repo_id`` is accepted for
        ``datasets``' signature; remote credentials are mediadecode's sources' business."""
        if not self.decode:
            raise RuntimeError("Decoding is disabled for this feature. Please use Video(decode=True) instead.")
        if not isinstance(value, (dict, str)):
            return value  # decoding is idempotent, as in datasets
        path, data = _split(value)
        source: Any = data if data is not None else path
        decoder = HFVideoDecoder(
            source,
            stream_index=self.stream_index,
            dimension_order=self.dimension_order,
            num_ffmpeg_threads=self.num_ffmpeg_threads,
            device=self.device,
            seek_mode=self.seek_mode,
            backend=self.backend,
        )
        decoder._hf_encoded = {"path": path, "bytes": data}
        return decoder


@dataclass
class Audio(datasets.Audio):
    """``datasets.Audio`` whose values decode to :class:`HFAudioDecoder` (a
    :class:`mediadecode.AudioDecoder`).

    Args (besides ``datasets.Audio``'s ``decode`` and ``stream_index``):
        sampling_rate: output sample rate in Hz (resampled by FFmpeg's libswresample); None keeps
            the stream's.
        num_channels: output channel count (1 mixes down to mono); None keeps the stream's.
        backend: mediadecode backend name; None follows mediadecode's selection rules.

    Values: as :class:`Video`. Encoding ``{"array", "sampling_rate"}`` values is left to
    ``datasets`` (it writes WAV with torchcodec's encoder).

    Raises (when a value is decoded): what :class:`mediadecode.AudioDecoder` raises;
    ``RuntimeError`` when ``decode=False``.
    """

    backend: str | None = None
    dtype: ClassVar[str] = "mediadecode.AudioDecoder"

    def encode_example(self, value: Any) -> dict[str, Any]:
        """As ``datasets.Audio.encode_example`` (paths and bytes need no torchcodec here), and a
        mediadecode decoder encodes as the path or bytes it reads."""
        if isinstance(value, _MDAudioDecoder):
            return _encoded_of(value)
        if isinstance(value, str):
            return {"bytes": None, "path": value}
        if isinstance(value, os.PathLike):
            return {"bytes": None, "path": os.path.abspath(os.fspath(value))}
        if isinstance(value, (bytes, bytearray)):
            return {"bytes": bytes(value), "path": None}
        if isinstance(value, dict) and "array" not in value and not str(value.get("path") or "").endswith("pcm"):
            if value.get("path") is not None and os.path.isfile(value["path"]):
                return {"bytes": None, "path": value["path"]}
            if value.get("bytes") is not None or value.get("path") is not None:
                return {"bytes": value.get("bytes"), "path": value.get("path")}
        return super().encode_example(value)

    def decode_example(self, value: dict | str, token_per_repo_id: dict | None = None) -> HFAudioDecoder:
        """Open ``value`` as an :class:`HFAudioDecoder` (see :meth:`Video.decode_example`)."""
        if not self.decode:
            raise RuntimeError("Decoding is disabled for this feature. Please use Audio(decode=True) instead.")
        if not isinstance(value, (dict, str)):
            return value
        path, data = _split(value)
        source: Any = data if data is not None else path
        decoder = HFAudioDecoder(
            source,
            stream_index=self.stream_index,
            sample_rate=self.sampling_rate,
            num_channels=self.num_channels,
            backend=self.backend,
        )
        decoder._hf_encoded = {"path": path, "bytes": data}
        return decoder


def cast_to_mediadecode(dataset, *, backend: str | None = None, **options):
    """Cast every top-level ``datasets.Video``/``datasets.Audio`` column of ``dataset`` (a
    ``Dataset``, ``IterableDataset`` or ``DatasetDict``) to :class:`Video`/:class:`Audio`,
    keeping each column's settings (``decode``, ``stream_index``, ``sampling_rate``...) and
    setting ``backend`` and any other given option that the feature has.

    Use it after ``load_from_disk``/``load_dataset``, which rebuild plain ``datasets`` features.
    Returns the cast dataset (the storage is unchanged: same Arrow type).
    """
    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        return type(dataset)({k: cast_to_mediadecode(v, backend=backend, **options) for k, v in dataset.items()})
    features = dataset.features
    if features is None:
        raise ValueError("the dataset's features are unknown; cast it with ds.cast(features) first")
    for name, feature in features.items():
        target = Video if isinstance(feature, datasets.Video) else Audio if isinstance(feature, datasets.Audio) else None
        if target is None:
            continue
        fields = {f.name for f in dataclasses.fields(target) if f.init}
        kwargs = {f: getattr(feature, f) for f in fields if hasattr(feature, f)}
        kwargs["backend"] = backend
        kwargs.update({k: v for k, v in options.items() if k in fields})
        dataset = dataset.cast_column(name, target(**kwargs))
    return dataset

