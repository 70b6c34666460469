"""torchaudio's audio loading contract, served by mediadecode.

torchaudio 2.9+ kept only ``load``/``save``; its ``load`` decodes the whole file with torchcodec and
then slices, always returns float32, and ``info``, the backend dispatcher (``backend=``,
``list_audio_backends``) and integer output are gone. This module gives back torchaudio
2.1-2.8's contract on any mediadecode backend:

- :func:`load` -- ``(waveform, sample_rate)``; ``frame_offset``/``num_frames`` seek and decode only
  that range; ``normalize=False`` returns integer PCM WAV in its native integer dtype;
- :func:`info` -- an :class:`AudioMetaData` (sample_rate, num_frames, num_channels,
  bits_per_sample, encoding), as the FFmpeg backend of torchaudio 2.1 reported it;
- :func:`list_audio_backends` -- the mediadecode backends that decode audio here;
- :func:`use_for_datasets` -- make torchaudio's datasets (YESNO, LIBRISPEECH, SPEECHCOMMANDS,
  LJSPEECH, VCTK...) load through :func:`load`, explicitly and reversibly.

Importing this module imports neither torchaudio nor any backend and changes nothing.

Decisions where torchaudio 2.1-2.8 is silent or where it differed between its backends:

- Bad ``frame_offset``/``num_frames`` raise :class:`ValueError` (torchaudio raised RuntimeError).
- A ``frame_offset`` at or past the end returns an empty ``(num_channels, 0)`` waveform
  (torchaudio's FFmpeg backend raised "Failed to decode audio.").
- ``frame_offset`` counts samples from the first decoded sample, as torchaudio's ``atrim`` filter
  did. Where the stream's timestamps mark every sample boundary (WAV, FLAC, MP3, MP4/M4A...),
  :func:`load` seeks to the range. Where they are coarser than a sample (Matroska/WebM store
  milliseconds), a seek cannot land on an exact sample count, so :func:`load` decodes from the
  start up to the end of the range (never past it) and counts samples.
- ``normalize=False`` gives the native integer dtype only for linear integer PCM in WAV (uint8,
  int16, int32; 24-bit PCM comes as int32 with the samples in the high bits, as FFmpeg and
  libsndfile return it), as torchaudio documented; every other input is float32.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, BinaryIO

import numpy as np
import torch

from .. import registry, selection
from ..decoders import AudioDecoder
from ..errors import DecodingError, InvalidMediaError, StreamNotFoundError, UnsupportedRequestError
from ..sources import Source, as_source
from .patching import ReplacingPatch

__all__ = [
    "AudioMetaData",
    "load",
    "info",
    "list_audio_backends",
    "save",
    "use_for_datasets",
    "DatasetsPatch",
    "worker_init_fn",
]

# Containers whose linear integer PCM torchaudio returned as integers with normalize=False.
_WAV_FORMATS = {"wav", "w64"}
_INT_PCM = re.compile(r"^pcm_[su]\d+")
# FFmpeg sample formats (planar ones without their "p") -> numpy dtypes.
_NUMPY_DTYPES = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "s64": np.int64, "flt": np.float32, "dbl": np.float64}


@dataclass
class AudioMetaData:
    """What :func:`info` returns; the fields of torchaudio 2.1's ``AudioMetaData``.

    Attributes:
        sample_rate (int): samples per second per channel, in Hz.
        num_frames (int): samples per channel in the stream.
        num_channels (int): channel count.
        bits_per_sample (int): bits of one sample for PCM codecs (from the codec name, e.g. 16
            for ``pcm_s16le``; 8 for A-law/mu-law), the decoded sample size for other lossless
            codecs (FLAC), 0 for lossy codecs (MP3, AAC, Vorbis, Opus).
        encoding (str): ``"PCM_S"``, ``"PCM_U"``, ``"PCM_F"``, ``"ULAW"``, ``"ALAW"``, or FFmpeg's
            codec name in upper case (``"FLAC"``, ``"MP3"``, ``"VORBIS"``, ``"OPUS"``, ``"AAC"``...),
            as torchaudio 2.1's FFmpeg backend reported it.
    """

    sample_rate: int
    num_frames: int
    num_channels: int
    bits_per_sample: int
    encoding: str


# -- helpers -----------------------------------------------------------------------------------


def _check_range(frame_offset: int, num_frames: int) -> None:
    for name, v in (("frame_offset", frame_offset), ("num_frames", num_frames)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if frame_offset < 0:
        raise ValueError(f"Invalid argument: frame_offset must be non-negative. Found: {frame_offset}")
    if num_frames == 0 or num_frames < -1:
        raise ValueError(f"Invalid argument: num_frames must be -1 or greater than 0. Found: {num_frames}")


def _require_ffmpeg(backend: str | None, what: str) -> None:
    """Raise if the backend chosen by the selection rules is one other than ``ffmpeg``."""
    choice = selection.current_backend_choice(backend)
    if choice.name is not None and choice.name != "ffmpeg":
        raise UnsupportedRequestError(
            f"backend {choice.name!r} (from {choice.origin}) cannot {what}; only the 'ffmpeg' "
            "backend can (pass backend='ffmpeg' or None)"
        )


def _open(source: Source, format: str | None):
    """A :class:`~mediadecode.pyav.MediaHandle` opened by FFmpeg, with ``format`` as the demuxer."""
    from ..pyav import open_container

    demuxer = "ogg" if format == "vorbis" else format  # as torchaudio 2.1 did
    return open_container(source, format=demuxer)


def _audio_stream(container, source: Source):
    stream = container.streams.best("audio")
    if stream is None:
        have = ", ".join(f"{s.index}:{s.type}" for s in container.streams) or "none"
        raise StreamNotFoundError(f"{source.name}: no audio stream (streams: {have})")
    if stream.codec_context is None:  # a damaged header naming a codec FFmpeg cannot decode
        raise InvalidMediaError(f"{source.name}: audio stream {stream.index} has no decoder in this FFmpeg")
    return stream


@contextlib.contextmanager
def _opened_audio(source: Source, format: str | None) -> Iterator[tuple[Any, Any]]:
    """``(container, audio stream)`` of ``source`` opened by FFmpeg; an FFmpeg error inside the
    block becomes a :class:`DecodingError` naming the file, and the file is closed on exit."""
    import av

    media = _open(source, format)
    try:
        yield media.container, _audio_stream(media.container, source)
    except av.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise DecodingError(f"{source.name}: audio decoding failed: {reason}") from exc
    finally:
        media.close()


def _sample_exact(time_base: Fraction | None, sample_rate: int) -> bool:
    """Whether timestamps in ``time_base`` can mark every sample boundary (1/sr is a multiple)."""
    if time_base is None or not sample_rate:
        return False
    step = Fraction(1, sample_rate) / time_base
    return step.denominator == 1


def _is_integer_wav(container, stream) -> bool:
    fmt = container.format.name if container.format is not None else ""
    names = set(fmt.split(","))
    codec = stream.codec_context.codec.canonical_name
    return bool(names & _WAV_FORMATS) and bool(_INT_PCM.match(codec))


def _probe(source: Source, format: str | None) -> dict[str, Any]:
    media = _open(source, format)
    container = media.container
    try:
        stream = _audio_stream(container, source)
        return {
            "integer_wav": _is_integer_wav(container, stream),
            "sample_exact": _sample_exact(stream.time_base, stream.codec_context.sample_rate),
        }
    finally:
        media.close()


def _shape(data: torch.Tensor, channels_first: bool) -> torch.Tensor:
    """``data`` is ``(num_channels, num_frames)``."""
    return data if channels_first else data.T.contiguous()


# -- load ----------------------------------------------------------------------------------------


def _load_with_decoder(
    source: Source, frame_offset: int, num_frames: int, backend: str | None, sample_exact: bool
) -> tuple[torch.Tensor, int]:
    """Float32 through the facade (any backend that decodes audio)."""
    with AudioDecoder(source, backend=backend) as decoder:
        meta = decoder.metadata
        sr = int(meta.sample_rate)
        if frame_offset == 0 and num_frames == -1:
            return decoder.get_all_samples().data, sr
        begin = float(meta.begin_stream_seconds or 0.0)
        end = None if num_frames == -1 else frame_offset + num_frames
        if sample_exact:
            start_s = begin + frame_offset / sr
            stop_s = None if end is None else begin + end / sr
            data = decoder.get_samples_played_in_range(start_s, stop_s).data
        else:
            # Count samples from the first one: decode from the start, stop after the range
            # (a margin covers timestamps rounded to the container's coarser time base).
            stop_s = None if end is None else begin + end / sr + 0.05
            data = decoder.get_samples_played_in_range(begin, stop_s).data[:, frame_offset:]
        if num_frames > 0:
            data = data[:, :num_frames]
        return data.contiguous(), sr


def _frame_array(frame, channels: int) -> np.ndarray:
    """A decoded frame as ``(samples, channels)`` in its own sample format."""
    arr = frame.to_ndarray()
    if frame.format.is_planar:
        return arr.T
    return arr.reshape(-1, channels)


def _load_with_pyav(
    source: Source, frame_offset: int, num_frames: int, native: bool, format: str | None
) -> tuple[torch.Tensor, int]:
    """Decode with FFmpeg through PyAV: the native sample format (``native``) or float32 converted
    by libswresample. Seeks when timestamps are sample-exact, else counts from the start."""
    import av

    end = None if num_frames == -1 else frame_offset + num_frames
    for from_start in (False, True):
        with _opened_audio(source, format) as (container, stream):
            cc = stream.codec_context
            sr = int(cc.sample_rate)
            channels = int(cc.layout.nb_channels or cc.channels or 1)
            sample_format = cc.format.name if cc.format is not None else "flt"
            tb = stream.time_base
            begin_ticks = stream.start_time or 0
            seeked = False
            if not from_start and frame_offset > 0 and _sample_exact(tb, sr):
                pcm = cc.codec.canonical_name.startswith("pcm_")
                preroll = 0.0 if pcm else max(0.1, 4 * (cc.frame_size or 1024) / sr)
                seek_s = float(begin_ticks * tb) + frame_offset / sr - preroll
                if seek_s > float(begin_ticks * tb):
                    container.seek(int(math.floor(seek_s / tb)), stream=stream, backward=True)
                    seeked = True
            resampler = None if native else av.AudioResampler(format="flt", rate=sr)
            chunks: list[np.ndarray] = []
            first_pos: int | None = None
            pos: int | None = None
            for frame in container.decode(stream):
                if seeked and frame.pts is not None:
                    fpos = round((frame.pts - begin_ticks) * tb * sr)
                else:
                    fpos = pos if pos is not None else 0
                pos = fpos + frame.samples
                if pos <= frame_offset:
                    continue
                if end is not None and fpos >= end:
                    break
                if first_pos is None:
                    first_pos = fpos
                if resampler is None:
                    chunks.append(_frame_array(frame, channels))
                else:
                    chunks.extend(_frame_array(o, channels) for o in resampler.resample(frame))
            if resampler is not None and first_pos is not None:
                chunks.extend(_frame_array(o, channels) for o in resampler.resample(None))
        if first_pos is not None and first_pos > frame_offset and not from_start:
            continue  # the seek landed after the range: count from the start instead
        break
    if not chunks:
        dtype = _NUMPY_DTYPES.get(sample_format.rstrip("p"), np.float32) if native else np.float32
        return torch.from_numpy(np.empty((channels, 0), dtype=dtype)), sr
    data = np.concatenate(chunks, axis=0)
    lo = frame_offset - (first_pos or 0)
    data = data[lo:] if end is None else data[lo : lo + num_frames]
    return torch.from_numpy(np.ascontiguousarray(data.T)), sr


def load(
    uri: str | BinaryIO | Any,
    frame_offset: int = 0,
    num_frames: int = -1,
    normalize: bool = True,
    channels_first: bool = True,
    format: str | None = None,
    buffer_size: int = 4096,
    backend: str | None = None,
) -> tuple[torch.Tensor, int]:
    """Load audio as torchaudio 2.1-2.8's ``torchaudio.load`` did.

    Args:
        uri: a path (``str`` or ``os.PathLike``), a binary file-like object with ``read`` and
            ``seek`` (read from its start), ``bytes`` or a 1-D ``torch.uint8`` tensor of encoded
            bytes. Any file with an audio stream (FFmpeg's best one is read).
        frame_offset: samples (per channel) to skip from the first decoded sample.
        num_frames: samples (per channel) to read; -1 reads to the end. Fewer come back when the
            stream ends first.
        normalize: True (default): float32 in [-1, 1]. False: linear integer PCM in a WAV file
            comes back in its native dtype (``torch.uint8``, ``torch.int16``, ``torch.int32``), as
            torchaudio's FFmpeg and soundfile backends returned it; other inputs are float32.
        channels_first: True: ``(num_channels, num_frames)``; False: ``(num_frames, num_channels)``.
        format: FFmpeg demuxer name to use instead of probing (``"wav"``, ``"mp3"``, ``"ogg"``;
            ``"vorbis"`` means ``"ogg"``, as in torchaudio); decoded with the ``ffmpeg`` backend.
        buffer_size: accepted for compatibility; unused.
        backend: a mediadecode backend name (see :func:`list_audio_backends`); None follows
            mediadecode's selection rules (``use_backend()``, ``MEDIADECODE_BACKEND``, config,
            automatic). ``normalize=False`` on integer WAV and ``format=`` need FFmpeg.

    Returns:
        ``(waveform, sample_rate)``: the waveform tensor as above and the stream's own sample
        rate in Hz (``int``).

    ``frame_offset``/``num_frames`` decode only the range: the decoder seeks to it (with a few
    packets of pre-roll for compressed codecs) where timestamps are sample-exact, and otherwise
    decodes from the start up to the end of the range; it never decodes the whole file for a range.

    Raises:
        ValueError: ``frame_offset < 0``, or ``num_frames`` 0 or below -1.
        TypeError: non-integer ``frame_offset``/``num_frames``, or an unsupported ``uri`` type.
        SourceNotFoundError: the path does not exist (also a ``FileNotFoundError``).
        InvalidMediaError: FFmpeg cannot read the source (names it and gives the reason).
        StreamNotFoundError: the source has no audio stream.
        UnsupportedRequestError: ``normalize=False`` on integer WAV, or ``format=``, with a
            backend other than ``ffmpeg`` chosen explicitly.
        BackendUnavailableError, UnknownBackendError, NoBackendError: as
            :class:`mediadecode.AudioDecoder`.
    """
    del buffer_size
    _check_range(frame_offset, num_frames)
    source = as_source(uri)
    ranged = frame_offset > 0 or num_frames > 0
    if format is not None:
        _require_ffmpeg(backend, f"decode with a format hint ({format!r})")
        native = not normalize and _probe(source, format)["integer_wav"]
        data, sr = _load_with_pyav(source, frame_offset, num_frames, native, format)
        return _shape(data, channels_first), sr
    probe = _probe(source, None) if (ranged or not normalize) else None
    if probe is not None and not normalize and probe["integer_wav"]:
        _require_ffmpeg(backend, "return native integer samples (normalize=False)")
        data, sr = _load_with_pyav(source, frame_offset, num_frames, True, None)
        return _shape(data, channels_first), sr
    exact = bool(probe and probe["sample_exact"])
    data, sr = _load_with_decoder(source, frame_offset, num_frames, backend, exact)
    return _shape(data, channels_first), sr


# -- info ----------------------------------------------------------------------------------------


def _map_encoding(codec: str) -> str:
    name = codec.upper()
    for dst in ("PCM_S", "PCM_U", "PCM_F"):
        if dst in name:
            return dst
    return {"PCM_MULAW": "ULAW", "PCM_ALAW": "ALAW"}.get(name, name)


def _bits_per_sample(codec, stream_format) -> int:
    name = codec.canonical_name.upper()
    m = re.search(r"PCM_\w(\d+)\w*", name)
    if m:
        return int(m.group(1))
    if name in ("PCM_ALAW", "PCM_MULAW"):
        return 8
    if getattr(codec, "lossless", False) and stream_format is not None:
        return int(stream_format.bits)
    return 0


def info(
    uri: str | BinaryIO | Any,
    format: str | None = None,
    buffer_size: int = 4096,
    backend: str | None = None,
) -> AudioMetaData:
    """Metadata of the best audio stream, as torchaudio 2.1's ``torchaudio.info``.

    Read with FFmpeg (the ``ffmpeg`` backend), like :func:`mediadecode.get_container_metadata`.
    ``num_frames`` is exact: from the stream duration for PCM codecs, otherwise by decoding the
    stream and counting samples (what torchaudio's FFmpeg backend did when the header has no count).

    Args:
        uri: a path, a binary file-like object, ``bytes`` or a 1-D uint8 tensor.
        format: FFmpeg demuxer name to use instead of probing (``"vorbis"`` means ``"ogg"``).
        buffer_size: accepted for compatibility; unused.
        backend: None or ``"ffmpeg"``.

    Returns:
        :class:`AudioMetaData`.

    Raises:
        SourceNotFoundError, InvalidMediaError, StreamNotFoundError: as :func:`load`.
        UnsupportedRequestError: ``backend`` names another backend.
    """
    del buffer_size
    if backend is not None:
        _require_ffmpeg(backend, "read audio metadata for info()")
    source = as_source(uri)
    with _opened_audio(source, format) as (container, stream):
        cc = stream.codec_context
        sr = int(cc.sample_rate)
        channels = int(cc.layout.nb_channels or cc.channels or 0)
        codec = cc.codec
        pcm = codec.canonical_name.startswith("pcm_")
        sample_format = cc.format
        if pcm and stream.duration is not None and _sample_exact(stream.time_base, sr):
            num_frames = int(round(stream.duration * stream.time_base * sr))
        else:
            num_frames = 0
            for frame in container.decode(stream):
                num_frames += frame.samples
                sample_format = sample_format or frame.format
        return AudioMetaData(
            sample_rate=sr,
            num_frames=num_frames,
            num_channels=channels,
            bits_per_sample=_bits_per_sample(codec, sample_format),
            encoding=_map_encoding(codec.canonical_name),
        )


def list_audio_backends() -> list[str]:
    """Names of the mediadecode backends that are available here and decode audio, highest
    priority first (e.g. ``["ffmpeg", "torchcodec", "decord"]``); torchaudio 2.1's function of
    the same name listed its own (``"ffmpeg"``, ``"sox"``, ``"soundfile"``)."""
    infos = [b for b in registry.list_backends() if b.available and "audio" in b.media_types]
    infos.sort(key=lambda b: -b.priority)
    return [b.name for b in infos]


# -- torchaudio's datasets -----------------------------------------------------------------------


def _make_dataset_load(default_backend: str | None):
    def load_via_mediadecode(
        uri,
        frame_offset: int = 0,
        num_frames: int = -1,
        normalize: bool = True,
        channels_first: bool = True,
        format: str | None = None,
        buffer_size: int = 4096,
        backend: str | None = None,
    ):
        return load(
            uri,
            frame_offset,
            num_frames,
            normalize,
            channels_first,
            format,
            buffer_size,
            backend if backend is not None else default_backend,
        )

    load_via_mediadecode.__doc__ = (
        "torchaudio.load replaced by mediadecode.adapters.torchaudio.use_for_datasets("
        f"backend={default_backend!r}); see mediadecode.adapters.torchaudio.load."
    )
    load_via_mediadecode.mediadecode_backend = default_backend  # type: ignore[attr-defined]
    return load_via_mediadecode


class DatasetsPatch(ReplacingPatch):
    """The replacement installed by :func:`use_for_datasets`; undo it with :meth:`restore` or by
    leaving the ``with`` block. Idempotent: restoring twice does nothing the second time."""

    def __init__(self, backend: str | None):
        import torchaudio  # imports torchaudio.datasets too

        super().__init__()
        if backend is not None:
            registry.get_backend_class(backend)  # UnknownBackendError now, not in a worker
        self.backend = backend
        self.load = _make_dataset_load(backend)
        original = torchaudio.load
        targets = [torchaudio]
        # A module that bound ``load`` by name (``from torchaudio import load``) keeps its own
        # reference: replace it there too.
        for name, module in list(sys.modules.items()):
            if name.startswith("torchaudio.datasets") and getattr(module, "load", None) is original:
                targets.append(module)
        for module in targets:
            self.replace_attribute(module, "load", self.load)

    def __repr__(self) -> str:
        return f"DatasetsPatch(backend={self.backend!r}, active={self.active})"


def use_for_datasets(backend: str | None = None) -> DatasetsPatch:
    """Make ``torchaudio.load`` -- and so torchaudio's datasets (YESNO, LIBRISPEECH,
    SPEECHCOMMANDS, LJSPEECH, VCTK, ...), which call it at run time -- load through
    :func:`load` with ``backend``.

    torchaudio has no hook for this, so the module attribute ``torchaudio.load`` (and any
    ``torchaudio.datasets`` module that imported ``load`` by name) is replaced, explicitly and
    reversibly, never on import::

        with use_for_datasets(backend="ffmpeg"):
            for waveform, sample_rate, labels in torchaudio.datasets.YESNO(root):
                ...

        patch = use_for_datasets()   # or as a plain call
        ...
        patch.restore()

    ``DataLoader`` workers started with ``fork`` (Linux's default) inherit the replacement.
    Workers started with ``spawn`` or ``forkserver`` import torchaudio afresh: pass
    ``worker_init_fn=worker_init_fn(backend)`` to the DataLoader to install it there too.

    Args:
        backend: mediadecode backend name for every load; None follows mediadecode's selection
            rules at each call. A ``backend=`` given to ``torchaudio.load`` itself wins.

    Returns:
        :class:`DatasetsPatch`, already installed; a context manager that restores on exit.

    Raises:
        ImportError: torchaudio is not installed.
        UnknownBackendError: ``backend`` is not a registered backend.
    """
    return DatasetsPatch(backend)


class worker_init_fn:  # noqa: N801 - used like a function
    """A picklable DataLoader ``worker_init_fn`` that installs :func:`use_for_datasets` in each
    worker (needed for ``spawn``/``forkserver`` workers); the replacement lasts for the worker's
    life. ``worker_init_fn(backend, then=f)`` also calls ``f(worker_id)`` afterwards."""

    def __init__(self, backend: str | None = None, then=None):
        self.backend = backend
        self.then = then

    def __call__(self, worker_id: int) -> None:
        import torchaudio

        if getattr(torchaudio.load, "__name__", "") != "load_via_mediadecode":
            use_for_datasets(self.backend)
        if self.then is not None:
            self.then(worker_id)


# -- save ------------------------------------------------------------------------------------------

_SAVE_DTYPES = (torch.uint8, torch.int16, torch.int32, torch.float32, torch.float64)


def _wav_encoder(encoding: str | None, bits_per_sample: int | None) -> str:
    """torchaudio 2.1-2.8's choice of WAV encoder (its FFmpeg backend, little-endian)."""
    if bits_per_sample not in (None, 8, 16, 24, 32, 64):
        raise ValueError(f"Invalid bits_per_sample {bits_per_sample} for WAV encoding.")
    if not encoding:
        if not bits_per_sample:
            return "pcm_s16le"
        return "pcm_u8" if bits_per_sample == 8 else f"pcm_s{bits_per_sample}le"
    if encoding == "PCM_S":
        bits = bits_per_sample or 16
        if bits == 8:
            raise ValueError("For WAV signed PCM, 8-bit encoding is not supported.")
        return f"pcm_s{bits}le"
    if encoding == "PCM_U":
        if bits_per_sample in (None, 8):
            return "pcm_u8"
        raise ValueError("For WAV unsigned PCM, only 8-bit encoding is supported.")
    if encoding == "PCM_F":
        bits = bits_per_sample or 32
        if bits in (32, 64):
            return f"pcm_f{bits}le"
        raise ValueError("For WAV float PCM, only 32- and 64-bit encodings are supported.")
    if encoding in ("ULAW", "ALAW"):
        if bits_per_sample in (None, 8):
            return "pcm_mulaw" if encoding == "ULAW" else "pcm_alaw"
        raise ValueError(f"For WAV PCM {'mu' if encoding == 'ULAW' else 'A'}-law, only 8-bit encoding is supported.")
    raise ValueError(f"WAV encoding {encoding} is not supported.")


def _flac_sample_format(bits_per_sample: int | None) -> str:
    if bits_per_sample in (None, 16):
        return "s16"
    if bits_per_sample == 24:
        return "s32"
    raise ValueError(f"FLAC only supports bits_per_sample values of 16 and 24 ({bits_per_sample} specified).")


def _compression_settings(compression, codec_kind: str) -> tuple[int | None, dict[str, Any]]:
    """``(bit_rate, extra encoder options)`` for ``compression``: an object with torchaudio's
    ``CodecConfig`` fields (``bit_rate``, ``compression_level``, ``qscale``, ``gop_size``,
    ``max_b_frames``), or a number with libsox's meaning (MP3: bit rate in kb/s; FLAC:
    compression level 0-8; Vorbis: quality -1 to 10)."""
    if compression is None:
        return None, {}
    if isinstance(compression, bool):
        raise TypeError("compression must be a number or a CodecConfig, not a bool")
    if isinstance(compression, (int, float)):
        if codec_kind == "mp3":
            return int(round(float(compression) * 1000)), {}
        if codec_kind == "flac":
            return None, {"compression_level": int(compression)}
        if codec_kind == "vorbis":
            return None, {"flags": "+qscale", "global_quality": str(int(round(float(compression) * 118)))}
        raise ValueError(f"a numeric compression is not defined for this format ({codec_kind})")
    bit_rate = getattr(compression, "bit_rate", -1)
    options: dict[str, Any] = {}
    level = getattr(compression, "compression_level", -1)
    if level is not None and level != -1:
        options["compression_level"] = int(level)
    qscale = getattr(compression, "qscale", None)
    if qscale is not None:
        options.update({"flags": "+qscale", "global_quality": str(int(round(float(qscale) * 118)))})
    for name, option in (("gop_size", "g"), ("max_b_frames", "bf")):
        value = getattr(compression, name, -1)
        if value is not None and value != -1:
            options[option] = int(value)
    return (None if bit_rate in (None, -1) else int(bit_rate)), options


def save(
    uri,
    src: torch.Tensor,
    sample_rate: int,
    channels_first: bool = True,
    format: str | None = None,
    encoding: str | None = None,
    bits_per_sample: int | None = None,
    buffer_size: int = 4096,
    backend: str | None = None,
    compression: Any = None,
) -> None:
    """Save audio to a file or file object, as torchaudio 2.1-2.8's ``torchaudio.save`` (its FFmpeg
    backend) did; encoded by :class:`mediadecode.encoders.Encoder`.

    Args:
        uri: a path (``str`` or ``os.PathLike``), or a writable, seekable binary file object
            (then ``format`` is required). A path appears only when the save succeeded.
        src: 2-D tensor, ``(channels, time)`` when ``channels_first`` else ``(time, channels)``;
            ``float32``/``float64`` in [-1, 1], or ``int16``/``int32``/``uint8`` full-scale PCM.
            FFmpeg's libswresample converts it to the encoder's sample format.
        sample_rate: in Hz.
        format: overrides the extension: ``"wav"`` (``"amb"``), ``"flac"``, ``"mp3"``,
            ``"ogg"``/``"vorbis"`` (Ogg Vorbis), ``"opus"``, or any FFmpeg muxer.
        encoding: WAV only: ``"PCM_S"``, ``"PCM_U"``, ``"PCM_F"``, ``"ULAW"``, ``"ALAW"``.
        bits_per_sample: WAV: 8 (unsigned), 16, 24, 32 (signed) or 32/64 (``"PCM_F"``); FLAC: 16
            or 24. Default: 16-bit signed PCM.
        buffer_size: accepted for compatibility (PyAV sizes its own I/O buffer).
        backend: a mediadecode backend that encodes (``"ffmpeg"``...); None: the selection rules.
        compression: a ``torchaudio.io.CodecConfig`` (or any object with its fields), or a number
            with libsox's meaning: MP3 bit rate in kb/s, FLAC compression level, Vorbis quality.

    Raises:
        ValueError: an unsupported ``encoding``/``bits_per_sample`` combination (torchaudio's
            messages); :class:`~mediadecode.errors.InvalidEncoderInputError` (a ``ValueError``
            and a ``RuntimeError``) for a ``src`` that is not 2-D, of another dtype, empty or
            non-finite, or a file object without ``format``;
            :class:`~mediadecode.errors.UnsupportedEncodingError` for an unknown format or a
            sample rate the encoder lacks (MP3, Opus).
    """
    import os

    from ..encoders import Encoder
    from ..errors import InvalidEncoderInputError

    to_object = hasattr(uri, "write")
    ext = None
    if to_object:
        if format is None:
            raise InvalidEncoderInputError("'format' is required when saving to file object.")
    else:
        tokens = os.path.normpath(os.fspath(uri)).split(".")[1:]
        ext = tokens[-1].lower() if tokens else None
    if not isinstance(src, torch.Tensor) or src.ndim != 2:
        raise InvalidEncoderInputError(
            f"src must be a 2-D tensor, got {getattr(src, 'shape', type(src).__name__)}"
        )
    if src.dtype not in _SAVE_DTYPES:
        raise InvalidEncoderInputError(
            f"src must be uint8, int16, int32, float32 or float64, got {src.dtype}"
        )

    def is_(spec: str) -> bool:
        return format == spec or (format is None and ext == spec)

    muxer, codec, sample_format, kind = format, None, None, None
    if is_("wav") or is_("amb"):
        muxer, codec = "wav", _wav_encoder(encoding, bits_per_sample)
    elif is_("vorbis") or is_("ogg"):
        # Ogg Vorbis, with FFmpeg's own Vorbis encoder (PyAV's FFmpeg has no libvorbis)
        muxer, codec, kind = "ogg", "vorbis", "vorbis"
        _flac_sample_format(bits_per_sample)
    elif is_("flac"):
        sample_format, kind = _flac_sample_format(bits_per_sample), "flac"
    elif is_("mp3"):
        kind = "mp3"
    bit_rate, options = _compression_settings(compression, kind or (muxer or ext or ""))
    data = src if channels_first else src.t()
    encoder = Encoder(backend=backend)
    stream = encoder.add_audio(
        sample_rate=sample_rate, num_channels=data.shape[0], bit_rate=bit_rate, codec=codec,
        sample_format=sample_format, extra_options=options or None,
    )
    if to_object:
        encoder.open_file_like(uri, format=muxer)
    else:
        encoder.open_file(uri, format=muxer)
    with encoder:
        stream.add_samples(data.contiguous())

