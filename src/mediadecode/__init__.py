"""mediadecode: decode video and audio into PyTorch tensors, with pluggable backends.

Importing this package imports no backend and loads no native decoder library; the backend
registry is read on first use.
"""

from .decoders import AudioDecoder, VideoDecoder
from .errors import (
    BackendUnavailableError,
    DecodingError,
    EndOfStreamError,
    InvalidMediaError,
    MediaDecodeError,
    NoBackendError,
    NotMediaError,
    OutputTooLargeError,
    RemoteNotFoundError,
    RemoteSourceError,
    RemoteTimeoutError,
    SourceNotFoundError,
    StreamNotFoundError,
    UnknownBackendError,
    UnsafeMediaError,
    UnsupportedRequestError,
)
from .capabilities import Capabilities, Tolerance
from .frames import AudioSamples, Frame, FrameBatch
from .metadata import AudioStreamMetadata, ContainerMetadata, StreamMetadata, VideoStreamMetadata
from .registry import BackendInfo, list_backends
from .selection import use_backend

__version__ = "0.1.0"

__all__ = [
    "VideoDecoder",
    "AudioDecoder",
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
    "RemoteSourceError",
    "RemoteNotFoundError",
    "RemoteTimeoutError",
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
