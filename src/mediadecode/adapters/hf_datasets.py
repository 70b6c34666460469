"""Hugging Face ``datasets`` features that decode through mediadecode.

``datasets`` 5.x decodes its ``Video`` and ``Audio`` columns only with torchcodec. The
:class:`Video` and :class:`Audio` here are subclasses of ``datasets.Video``/``datasets.Audio``
whose values decode to :class:`HFVideoDecoder`/:class:`HFAudioDecoder`, which are
:class:`mediadecode.VideoDecoder`/:class:`mediadecode.AudioDecoder` (the torchcodec API, on any
mediadecode backend)::

    from mediadecode.adapters.hf_datasets import Video, Audio
    ds = ds.cast_column("video", Video(backend="ffmpeg"))
    ds[0]["video"].get_frames_at([0, 10])          # FrameBatch, uint8 NCHW

How ``datasets`` recognises these decoders: it has no extension point for decoder classes; its
Arrow writer, type inference and numpy/torch/tf/jax formatters test ``isinstance(value,
torchcodec.decoders.VideoDecoder/AudioDecoder)`` (datasets 5.2: ``features/features.py``
``_cast_to_python_objects``, ``formatting/*_formatter.py`` ``_tensorize``), and its
``Video``/``Audio.encode_example`` write such a decoder back as its ``_hf_encoded`` value. Where
torchcodec loads, :class:`HFVideoDecoder`/:class:`HFAudioDecoder` also derive from torchcodec's
decoder classes (mediadecode's methods come first; torchcodec's ``__init__`` never runs, so no
torchcodec decoder is ever opened) and carry that value: every one of those checks then treats
them exactly as ``datasets``' own decoders. Where torchcodec cannot load, ``datasets`` makes none
of those checks (it tests ``"torchcodec" in sys.modules``) and decodes nothing itself;
:data:`RECOGNISED_BY_DATASETS` is False and :data:`NOT_RECOGNISED_REASON` says why.

Nothing in ``datasets`` is patched on import. The stored feature type stays ``"Video"``/
``"Audio"``, so a dataset saved with these features is read by plain ``datasets`` as ordinary
Video/Audio columns. ``datasets`` rebuilds features from saved metadata with the classes in its
feature-type registry: :func:`use_for_datasets` registers these classes there (``datasets``'
``register_feature``), explicitly and reversibly; without it, cast after loading
(:func:`cast_to_mediadecode`). See docs/hf_datasets.md.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any

import av
import datasets
import numpy as np
from datasets.features.features import generate_from_dict, register_feature

from .. import registry
from ..decoders import AudioDecoder as _MDAudioDecoder
from ..decoders import VideoDecoder as _MDVideoDecoder
from .patching import ReplacingPatch

__all__ = [
    "Video",
    "Audio",
    "HFVideoDecoder",
    "HFAudioDecoder",
    "cast_to_mediadecode",
    "use_for_datasets",
    "FeatureRegistration",
    "RECOGNISED_BY_DATASETS",
    "NOT_RECOGNISED_REASON",
]


def _torchcodec_decoder_bases() -> tuple[tuple[type, ...], tuple[type, ...], str | None]:
    """torchcodec's ``(VideoDecoder,)``, ``(AudioDecoder,)`` and None where torchcodec loads;
    ``(), (), reason`` where it does not (not installed, or no FFmpeg libraries it can load)."""
    reason = registry.unavailable_reason("torchcodec")
    if reason is not None:
        return (), (), reason
    from torchcodec.decoders import AudioDecoder, VideoDecoder

    return (VideoDecoder,), (AudioDecoder,), None


_TC_VIDEO_BASES, _TC_AUDIO_BASES, NOT_RECOGNISED_REASON = _torchcodec_decoder_bases()
#: Whether ``datasets`` treats :class:`HFVideoDecoder`/:class:`HFAudioDecoder` as its own decoders
#: (torchcodec loads here); :data:`NOT_RECOGNISED_REASON` says why not when False.
RECOGNISED_BY_DATASETS = NOT_RECOGNISED_REASON is None


def _split(value: str | dict) -> tuple[str | None, bytes | None]:
    if isinstance(value, str):
        return value, None
    path, data = value.get("path"), value.get("bytes")
    if path is None and data is None:
        raise ValueError(f"A media value should have one of 'path' or 'bytes' but both are None in {value}.")
    return path, data


def _source_value(decoder) -> dict[str, Any]:
    """``{"path", "bytes"}`` of what ``decoder`` reads: its path or URL, its bytes, or the whole
    content of its file object (read from 0; the object's position is put back)."""
    source = decoder.source
    if source.kind in ("path", "url"):
        return {"path": source.value, "bytes": None}
    if source.kind == "bytes":
        return {"path": None, "bytes": bytes(source.value)}
    fobj = source.value
    position = fobj.tell()
    try:
        fobj.seek(0)
        data = fobj.read()
    finally:
        fobj.seek(position)
    name = getattr(fobj, "name", None)
    # the file name (no folders, as save_to_disk stores it) tells datasets the format
    return {"path": os.path.basename(name) if isinstance(name, str) else None, "bytes": bytes(data)}


def _wav_value(decoder) -> dict[str, Any]:
    """All of ``decoder``'s samples as 16-bit PCM WAV bytes at its output rate and channel count:
    what ``datasets`` 5.2 stores for an audio decoder it did not make (``encode_torchcodec_audio``,
    torchcodec's ``AudioEncoder`` to ``"wav"``, whose codec is ``pcm_s16le``). Written by FFmpeg
    through PyAV (libswresample converts float to s16, as in torchcodec's encoder)."""
    samples = decoder.get_all_samples()
    data = samples.data.cpu().numpy().astype(np.float32, copy=False)
    channels = data.shape[0]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=samples.sample_rate)
        stream.layout = av.AudioLayout(f"{channels}c")  # FFmpeg's default layout for that count
        if data.shape[1]:
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp", layout=stream.layout.name)
            frame.sample_rate = samples.sample_rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return {"bytes": buffer.getvalue(), "path": None}


class _DatasetValue:
    """The dataset value (``{"path", "bytes"}``) a decoder was opened from, kept across pickling
    (DataLoader workers) and exposed under the attribute ``datasets`` reads off its own decoders."""

    _hf_value: dict[str, Any] | None = None

    def __init__(self, source: Any, *, dataset_value: dict[str, Any] | None = None, **options: Any):
        self._hf_value = None if dataset_value is None else dict(dataset_value)
        super().__init__(source, **options)  # type: ignore[call-arg]

    @property
    def dataset_value(self) -> dict[str, Any] | None:
        """``{"path", "bytes"}`` this decoder was opened from by :class:`Video`/:class:`Audio`;
        None for a decoder built directly."""
        return None if self._hf_value is None else dict(self._hf_value)

    @property
    def _hf_encoded(self) -> dict[str, Any]:
        # The attribute datasets 5.2 reads to write one of its decoders back (features/video.py
        # encode_torchcodec_video, features/audio.py encode_torchcodec_audio); absent (hasattr
        # False) on a decoder built directly, as on a torchcodec decoder datasets did not make.
        if self._hf_value is None:
            raise AttributeError("_hf_encoded")
        return dict(self._hf_value)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()  # type: ignore[misc]
        state["dataset_value"] = self._hf_value
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self._hf_value = state.pop("dataset_value", None)
        super().__setstate__(state)  # type: ignore[misc]

    @property
    def metadata(self):
        """The stream metadata, with ``path`` set to the dataset value's path (as ``datasets``
        sets it on its decoders)."""
        meta = super().metadata  # type: ignore[misc]
        if self._hf_value is not None:
            meta.path = self._hf_value.get("path")
        return meta


class _NotAnArray:
    """Where ``datasets`` cannot recognise our decoders (torchcodec does not load), its Arrow
    writer and formatters call ``__array__`` on any object that has one, before trying the
    sequence protocol that would decode every frame into one array: fail there, saying what
    to do instead."""

    def __array__(self, *args: Any, **kwargs: Any):
        raise TypeError(
            f"{type(self).__name__} is not an array, and datasets recognises decoders only "
            f"through torchcodec, which cannot load here ({NOT_RECOGNISED_REASON}). Keep media "
            "columns out of formatting (with_format(fmt, columns=[...], output_all_columns=True)) "
            "and out of what map writes back (input_columns=[...], remove_columns=[...], or "
            "return feature.encode_example(decoder)); see docs/hf_datasets.md"
        )


_FALLBACK_BASES: tuple[type, ...] = () if RECOGNISED_BY_DATASETS else (_NotAnArray,)


class HFVideoDecoder(_DatasetValue, *_FALLBACK_BASES, _MDVideoDecoder, *_TC_VIDEO_BASES):
    """The :class:`mediadecode.VideoDecoder` that :class:`Video` returns: the same API and
    behaviour, plus :attr:`dataset_value` (so that ``map`` and ``Dataset.from_list`` write it
    back as ``{"path", "bytes"}``). Where torchcodec loads it is also an instance of
    ``torchcodec.decoders.VideoDecoder``, only so that ``datasets`` recognises it; every method
    is mediadecode's. Where torchcodec cannot load, ``np.asarray(decoder)`` (which ``datasets``
    calls on objects it does not recognise) raises ``TypeError`` instead of decoding every
    frame."""


class HFAudioDecoder(_DatasetValue, *_FALLBACK_BASES, _MDAudioDecoder, *_TC_AUDIO_BASES):
    """The :class:`mediadecode.AudioDecoder` that :class:`Audio` returns (see
    :class:`HFVideoDecoder`), with the dict access of ``datasets``' own audio decoder:
    ``decoder["array"]`` (float32 numpy samples, channels averaged to mono as ``datasets``
    does), ``decoder["sampling_rate"]`` (output rate in Hz), and ``decoder["path"]`` (the
    dataset value's path; ``datasets``' own has ``metadata.path`` only).

    Raises:
        TypeError: another key (as ``datasets``' own decoder).
    """

    def __getitem__(self, key: str):
        if key == "array":
            y = self.get_all_samples().data.cpu().numpy()
            return np.mean(y, axis=tuple(range(y.ndim - 1))) if y.ndim > 1 else y
        if key == "sampling_rate":
            # as datasets' own decoder: the rate of what decoding returns
            return self.get_samples_played_in_range(0, 0).sample_rate
        if key == "path":
            return None if self._hf_value is None else self._hf_value.get("path")
        raise TypeError(f"{type(self).__name__} supports only the keys 'array', 'sampling_rate' and 'path', not {key!r}")


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

    def encode_example(self, value: Any) -> dict[str, Any]:
        """As ``datasets.Video.encode_example``; a mediadecode decoder is stored as the dataset
        value it was opened from, else as what it reads: its path or URL, its bytes, or the
        content of its file object (``datasets`` 5.2 raises ``NotImplementedError`` for a
        decoder it did not make). A decoder's own options (``stream_index``...) are not stored:
        the feature's apply when the value is decoded again."""
        if isinstance(value, _MDVideoDecoder):
            encoded = value.dataset_value if isinstance(value, HFVideoDecoder) else None
            return encoded if encoded is not None else _source_value(value)
        return super().encode_example(value)

    def decode_example(self, value: str | dict, token_per_repo_id: dict | None = None) -> HFVideoDecoder:
        """Open ``value`` as an :class:`HFVideoDecoder`. ``token_per_repo_id`` is accepted for
        ``datasets``' signature; remote credentials are mediadecode's sources' business."""
        if not self.decode:
            raise RuntimeError("Decoding is disabled for this feature. Please use Video(decode=True) instead.")
        if not isinstance(value, (dict, str)):
            return value  # decoding is idempotent, as in datasets
        path, data = _split(value)
        return HFVideoDecoder(
            data if data is not None else path,
            dataset_value={"path": path, "bytes": data},
            stream_index=self.stream_index,
            dimension_order=self.dimension_order,
            num_ffmpeg_threads=self.num_ffmpeg_threads,
            device=self.device,
            seek_mode=self.seek_mode,
            backend=self.backend,
        )


@dataclass
class Audio(datasets.Audio):
    """``datasets.Audio`` whose values decode to :class:`HFAudioDecoder` (a
    :class:`mediadecode.AudioDecoder`).

    Args (besides ``datasets.Audio``'s ``decode`` and ``stream_index``):
        sampling_rate: output sample rate in Hz (resampled by the backend: FFmpeg's
            libswresample for ``"ffmpeg"``); None keeps the stream's.
        num_channels: output channel count (1 mixes down to mono); None keeps the stream's.
        backend: mediadecode backend name; None follows mediadecode's selection rules.

    Values: as :class:`Video`. Encoding ``{"array", "sampling_rate"}`` values is left to
    ``datasets`` (it writes WAV with torchcodec's encoder).

    Raises (when a value is decoded): what :class:`mediadecode.AudioDecoder` raises (with
    ``backend="decord"``, ``UnsupportedRequestError`` for a ``num_channels`` other than 1 or
    the stream's own: decord mixes only to mono); ``RuntimeError`` when ``decode=False``.
    """

    backend: str | None = None

    def encode_example(self, value: Any) -> dict[str, Any]:
        """As ``datasets.Audio.encode_example`` (paths and bytes need no torchcodec here). A
        mediadecode decoder is stored as the dataset value it was opened from; any other one
        (built directly, on a path, bytes or file object, with any ``sample_rate``/
        ``num_channels``) as WAV bytes of all its samples, as ``datasets`` 5.2 stores a
        torchcodec decoder it did not make: 16-bit PCM at the decoder's output rate and
        channel count, so it decodes back at that rate."""
        if isinstance(value, _MDAudioDecoder):
            encoded = value.dataset_value if isinstance(value, HFAudioDecoder) else None
            return encoded if encoded is not None else _wav_value(value)
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
        return HFAudioDecoder(
            data if data is not None else path,
            dataset_value={"path": path, "bytes": data},
            stream_index=self.stream_index,
            sample_rate=self.sampling_rate,
            num_channels=self.num_channels,
            backend=self.backend,
        )


def cast_to_mediadecode(dataset, *, backend: str | None = None, **options):
    """Cast every top-level ``datasets.Video``/``datasets.Audio`` column of ``dataset`` (a
    ``Dataset``, ``IterableDataset`` or ``DatasetDict``) to :class:`Video`/:class:`Audio`,
    keeping each column's settings (``decode``, ``stream_index``, ``sampling_rate``...) and
    setting ``backend`` and any other given option that the feature has.

    Use it after ``load_from_disk``/``load_dataset``, which rebuild plain ``datasets`` features
    (unless :func:`use_for_datasets` is active). Returns the cast dataset (the storage is
    unchanged: same Arrow type).

    Raises:
        ValueError: the dataset's features are unknown (an ``IterableDataset`` without them).
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


def _registered(feature_type: str) -> type:
    """The class ``datasets`` rebuilds a stored ``{"_type": feature_type}`` with."""
    return type(generate_from_dict({"_type": feature_type}))


def _register(feature_cls: type, feature_type: str) -> None:
    # register_feature logs "Overwriting feature type" on every call (here that is the purpose)
    # and warns that it is experimental in datasets 5.2 (docs/hf_datasets.md says so once).
    logger = logging.getLogger("datasets.features.features")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*register_feature.* is experimental")
            register_feature(feature_cls, feature_type)
    finally:
        logger.setLevel(level)


class FeatureRegistration(ReplacingPatch):
    """What :func:`use_for_datasets` installed: :class:`Video`/:class:`Audio` registered as the
    classes ``datasets`` rebuilds stored ``"Video"``/``"Audio"`` features with. Undo it with
    :meth:`restore` or by leaving the ``with`` block; restoring twice does nothing the second
    time."""

    def __init__(self) -> None:
        super().__init__()
        for feature_type, ours in (("Video", Video), ("Audio", Audio)):
            self.replace(
                functools.partial(_registered, feature_type),
                functools.partial(_register, feature_type=feature_type),
                ours,
            )


def use_for_datasets() -> FeatureRegistration:
    """Make ``datasets`` rebuild stored ``Video``/``Audio`` features as :class:`Video`/
    :class:`Audio` (with the stored ``backend``, None for a dataset saved with plain
    ``datasets``): ``load_from_disk``, ``load_dataset`` of a dataset whose features are stored
    (``dataset_info``, Parquet/Arrow metadata), ``Dataset.from_file`` and ``Features.from_dict``
    then decode through mediadecode without a cast.

    It uses ``datasets``' own ``register_feature`` (the registry it looks ``_type`` up in),
    explicitly and reversibly, never on import::

        with use_for_datasets():
            ds = datasets.load_from_disk("saved")   # ds.features["video"]: Video

        registration = use_for_datasets()           # or as a plain call
        ...
        registration.restore()

    Features built in code are not affected: ``datasets.Video()`` is still ``datasets``' own,
    and so are the features the folder builders (``videofolder``, ``audiofolder``) create when
    they first scan the files; cast those (:func:`cast_to_mediadecode`). ``DataLoader`` workers
    started with ``fork`` inherit the registration; decoding there needs none (the features are
    pickled with the dataset).

    Returns:
        :class:`FeatureRegistration`, already installed; a context manager that restores on
        exit.
    """
    return FeatureRegistration()
