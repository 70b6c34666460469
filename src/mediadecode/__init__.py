"""mediadecode: decode video and audio into PyTorch tensors, with pluggable backends.

Importing this package imports no backend and loads no native decoder library; the backend
registry is read on first use.
"""

from .cuda_options import get_nvdec_cache_capacity, set_cuda_backend, set_nvdec_cache_capacity
from .decoders import AudioDecoder, SimpleVideoDecoder, VideoDecoder
from .encoders import AudioEncoder, Encoder, VideoEncoder
from .wav import WavDecoder
from .errors import (
    BackendUnavailableError,
    DecodingError,
    EncodingError,
    FrameMappingsError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidEncoderInputError,
    InvalidMediaError,
    MediaDecodeError,
    NoBackendError,
    OutOfRangeError,
    EndOfStreamError,
    NotMediaError,
    OutputTooLargeError,
    RemoteNotFoundError,
    RemoteSourceError,
    RemoteTimeoutError,
    SourceNotFoundError,
    StreamNotFoundError,
    UnknownBackendError,
    UnsafeMediaError,
    UnsupportedEncodingError,
    UnsupportedRequestError,
)
from .capabilities import Capabilities, Tolerance
from .fallback import CpuFallbackStatus
from .frame_index import FrameIndex
from .frames import AudioSamples, Frame, FrameBatch
from .metadata import AudioStreamMetadata, ContainerMetadata, StreamMetadata, VideoStreamMetadata
from .registry import BackendInfo, list_backends
from .selection import use_backend

__version__ = "0.1.0"

__all__ = [
    "VideoDecoder",
    "SimpleVideoDecoder",
    "AudioDecoder",
    "CpuFallbackStatus",
    "FrameIndex",
    "set_cuda_backend",
    "get_nvdec_cache_capacity",
    "set_nvdec_cache_capacity",
    "VideoEncoder",
    "AudioEncoder",
    "Encoder",
    "WavDecoder",
    "Frame",
    "FrameBatch",
    "AudioSamples",
    "VideoStreamMetadata",
    "AudioStreamMetadata",
    "StreamMetadata",
    "ContainerMetadata",
    "list_backends",
    "BackendInfo",
    "Capabilities",
    "Tolerance",
    "use_backend",
    "get_container_metadata",
    "MediaDecodeError",
    "SourceNotFoundError",
    "InvalidMediaError",
    "DecodingError",
    "StreamNotFoundError",
    "BackendUnavailableError",
    "UnknownBackendError",
    "NoBackendError",
    "UnsupportedRequestError",
    "UnsafeMediaError",
    "InvalidArgumentError",
    "RemoteSourceError",
    "RemoteNotFoundError",
    "RemoteTimeoutError",
    "FrameMappingsError",
    "InvalidArgumentTypeError",
    "OutOfRangeError",
    "InvalidEncoderInputError",
    "UnsupportedEncodingError",
    "EncodingError",
    "NotMediaError",
    "OutputTooLargeError",
    "EndOfStreamError",
]


def get_container_metadata(source, *, storage_options=None, timeout=None,
                           allow_playlists: bool = False) -> ContainerMetadata:
    """Metadata of every stream in ``source`` (a path, URL, bytes, tensor or file object), from
    the header, read with the ffmpeg backend. ``storage_options``, ``timeout`` and
    ``allow_playlists`` are as for :class:`VideoDecoder`.

    Raises:
        SourceNotFoundError, InvalidMediaError, UnsafeMediaError, RemoteSourceError: as
        :class:`VideoDecoder`.
    """
    from .pyav import container_metadata, open_container
    from .sources import as_source

    src = as_source(source, storage_options=storage_options, timeout=timeout,
                    allow_playlists=allow_playlists)
    with open_container(src) as media:
        return container_metadata(media.container)
