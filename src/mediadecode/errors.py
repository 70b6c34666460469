"""The exception hierarchy of mediadecode.

Every error that mediadecode raises about media, sources or backends derives from
:class:`MediaDecodeError`. It is a :class:`RuntimeError`, so code written for torchcodec (which
raises ``RuntimeError`` for unreadable media) keeps catching it. Several classes also derive from
the built-in class a Python user expects, so both ``except MediaDecodeError`` and the usual
``except FileNotFoundError`` / ``except ValueError`` / ``except ImportError`` work:

==============================  =======================================  ==========================
class                           raised when                              also a
==============================  =======================================  ==========================
``SourceNotFoundError``         a path names no file                     ``FileNotFoundError``
``InvalidMediaError``           the bytes are not media FFmpeg can read  (``MediaDecodeError``)
``DecodingError``               a packet fails to decode mid-stream      ``InvalidMediaError``
``StreamNotFoundError``         no stream of the kind asked for / bad    ``ValueError``
                                ``stream_index``
``BackendUnavailableError``     a backend's optional dependency is       ``ImportError``
                                missing (message has the pip command)
``UnknownBackendError``         a backend name nobody registered         ``ValueError``
``NoBackendError``              no backend could open the source; lists  ``InvalidMediaError``
                                every backend tried and why
``UnsupportedRequestError``     the backend cannot serve this request    ``ValueError``
                                (a source kind, seek mode, device,
                                stream or channel count it lacks)
``InvalidArgumentError``        a bad sample_rate or num_channels        ``ValueError`` and
                                (an argument: not a MediaDecodeError)    ``RuntimeError``
``UnsafeMediaError``            a playlist-type format (HLS, concat...)  ``UnsupportedRequestError``
                                refused without ``allow_playlists=True``
``RemoteSourceError``           a URL source fails: HTTP status, network ``OSError``
                                error; ``.url`` (redacted), ``.status``
``RemoteNotFoundError``         a URL source answers 404 / no such key   ``SourceNotFoundError``
``RemoteTimeoutError``          a URL source does not answer in time     ``TimeoutError``
``InvalidEncoderInputError``    frames or samples to encode of the wrong ``ValueError``
                                dtype, shape or size, empty, non-finite;
                                a frame or sample rate <= 0
``UnsupportedEncodingError``    an unknown codec, container format or    ``UnsupportedRequestError``
                                pixel format; a codec that container
                                cannot hold; encoder options FFmpeg
                                refuses
``EncodingError``               FFmpeg fails while encoding or writing   (``MediaDecodeError``)
``FrameMappingsError``          ``custom_frame_mappings`` that do not    ``InvalidArgumentError``
                                fit the stream (another stream's pts)
``InvalidArgumentTypeError``    an argument of the wrong type (a float   ``TypeError`` and
                                frame index)                             ``RuntimeError``
``OutOfRangeError``             a frame index or time outside the        ``IndexError`` and
                                stream                                   ``RuntimeError``
``NotMediaError``               FFmpeg's probe finds no format it can    ``InvalidMediaError``
                                read: no FFmpeg-based backend is tried
``OutputTooLargeError``         a request's output would exceed the      ``MemoryError``
                                output limit (``MEDIADECODE_MAX_OUTPUT_
                                BYTES``); says how to raise it
``EndOfStreamError``            an index the header promised lies past   ``IndexError``
                                the real end of the stream (approximate
                                mode); ``.num_frames`` is the real count
==============================  =======================================  ==========================

Bad arguments are not media errors and never ``MediaDecodeError``: bad indices and times raise
:class:`OutOfRangeError` (an :class:`IndexError`), bad values :class:`ValueError` or
:class:`InvalidArgumentError`, wrong types :class:`TypeError` or
:class:`InvalidArgumentTypeError`. The three named classes are also ``RuntimeError``:
torchcodec 0.17 raises ``RuntimeError`` from its C++ checks for several of these arguments (a
negative step or fps, a float index, a time outside the stream in ``get_frames_played_at``), so
code written for torchcodec keeps catching them, and code that catches the Python class works
too.
"""

from __future__ import annotations

__all__ = [
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
    "InvalidEncoderInputError",
    "UnsupportedEncodingError",
    "EncodingError",
    "FrameMappingsError",
    "InvalidArgumentTypeError",
    "OutOfRangeError",
    "NotMediaError",
    "OutputTooLargeError",
    "EndOfStreamError",
]


class MediaDecodeError(RuntimeError):
    """Base class of every mediadecode error about media, sources and backends."""


class SourceNotFoundError(MediaDecodeError, FileNotFoundError):
    """The source path does not exist (also a :class:`FileNotFoundError`)."""


class InvalidMediaError(MediaDecodeError):
    """The source cannot be read as media: garbage, empty, truncated or unsupported.

    The message names the source and gives FFmpeg's (or the backend's) reason.
    """


class DecodingError(InvalidMediaError):
    """Decoding failed part-way through a stream that opened (corrupt packets)."""


class StreamNotFoundError(MediaDecodeError, ValueError):
    """The requested stream does not exist or is not of the requested media type.

    Raised for an out-of-range ``stream_index``, a ``stream_index`` that points at an audio stream
    when a video stream was asked for (or the reverse), and a file with no stream of that type
    (for example an audio-only file opened with :class:`~mediadecode.VideoDecoder`).
    """


class BackendUnavailableError(MediaDecodeError, ImportError):
    """A backend cannot be used here; the message says why and how to fix it (a pip command)."""


class UnknownBackendError(MediaDecodeError, ValueError):
    """No backend is registered under the requested name; the message lists the known names."""


class NoBackendError(InvalidMediaError):
    """No backend could open the source.

    Attributes:
        attempts: each backend tried, in order, mapped to why it failed.
        skipped: each backend not tried because its capabilities cannot serve the request
            (a file-like source, a seek mode...), mapped to the reason.
    """

    def __init__(
        self,
        message: str,
        attempts: dict[str, str] | None = None,
        skipped: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.attempts: dict[str, str] = dict(attempts or {})
        self.skipped: dict[str, str] = dict(skipped or {})


class UnsupportedRequestError(MediaDecodeError, ValueError):
    """The backend cannot serve this request: a capability it lacks (a source kind, a seek mode,
    a device, a ``stream_index`` other than the stream it picks itself, a channel count it cannot
    mix to, a codec). The message names the backend and the reason.

    Automatic selection skips such a backend and tries the next one; a backend chosen explicitly
    raises this (also a :class:`ValueError`, as the request is what has to change).
    """


class UnsafeMediaError(UnsupportedRequestError):
    """The source is in a format that makes FFmpeg open other resources named inside it (an
    HLS playlist, an ffconcat list, an SDP description, a DASH manifest...), and the caller did
    not opt in with ``allow_playlists=True``. Refused before any reference is followed; the
    message names the source and the format. Never handed over to another backend.
    See ``docs/remote.md`` for the threat model.
    """


class InvalidArgumentError(ValueError, RuntimeError):
    """A bad argument value where torchcodec 0.17 raises ``RuntimeError`` (``AudioDecoder``'s
    ``sample_rate`` and ``num_channels``): both a :class:`ValueError` and a ``RuntimeError``.
    Like every bad argument, not a :class:`MediaDecodeError` (which is about media)."""


class RemoteSourceError(MediaDecodeError, OSError):
    """A URL source (``http://``, ``s3://``, any fsspec URL) could not be read: an HTTP error
    status (403, 5xx after the retries...), a refused or reset connection, a truncated body.

    Attributes:
        url: the URL with credentials redacted (``user:password@`` and signature/token query
            parameters replaced by ``REDACTED``).
        status: the HTTP status code when there was one (403, 404, 503...), else None.
        reason: the underlying error in a few words.
    """

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None,
                 reason: str | None = None):
        super().__init__(message)
        self.url = url
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self):
        return (_rebuild_remote_error, (type(self), str(self), self.url, self.status, self.reason))


def _rebuild_remote_error(cls, message, url, status, reason):
    return cls(message, url=url, status=status, reason=reason)


class RemoteNotFoundError(RemoteSourceError, SourceNotFoundError):
    """The URL names nothing (HTTP 404, no such S3 key); also a :class:`FileNotFoundError`."""


class RemoteTimeoutError(RemoteSourceError, TimeoutError):
    """The server did not connect or send data within the timeout (``timeout=``); also a
    :class:`TimeoutError`."""


class InvalidEncoderInputError(MediaDecodeError, ValueError):
    """Frames or samples given to an encoder cannot be encoded: wrong dtype, number of
    dimensions or channels, an empty tensor, NaN or infinite values, a frame size the pixel
    format cannot hold (odd width with 4:2:0 chroma), or a frame rate or sample rate that is not
    a finite number > 0. Raised before anything is written (also a :class:`ValueError`, as
    torchcodec raises for the same inputs)."""


class UnsupportedEncodingError(UnsupportedRequestError):
    """The encoding asked for cannot be done: an unknown codec, container format or pixel
    format, a codec the container cannot hold (H.264 in WebM...), an audio codec for a video
    stream, encoder options FFmpeg refuses (a preset x264 does not know), or no encoder backend
    for the device. The message names the codec or format and gives FFmpeg's reason. Raised
    before anything is written to the destination."""


class EncodingError(MediaDecodeError):
    """FFmpeg failed while encoding or writing (a full disk, a file object whose ``write``
    raised...). The destination is left as it was: a path is never partly written."""


class FrameMappingsError(InvalidArgumentError):
    """``custom_frame_mappings`` that parse but do not fit the stream: their timestamps are not
    the stream's (another stream, another time base, another file). Raised at open, naming the
    source; a ``RuntimeError`` as torchcodec 0.17 raises when it decodes with such mappings (it
    finds out only at the frame it cannot reach), and a ``ValueError``. Malformed JSON is a
    plain :class:`ValueError`, as in torchcodec."""


class InvalidArgumentTypeError(TypeError, RuntimeError):
    """An argument of the wrong type (a float frame index...): a :class:`TypeError`, and the
    ``RuntimeError`` torchcodec 0.17 raises from C++ for some of them. Like every bad argument,
    not a :class:`MediaDecodeError`."""


class OutOfRangeError(IndexError, RuntimeError):
    """A frame index or a time outside the stream; the message names the source and the valid
    range. An :class:`IndexError`, as torchcodec raises for indices and
    ``get_frame_played_at``, and a ``RuntimeError``, as it raises in ``get_frames_played_at``.
    Like every bad argument, not a :class:`MediaDecodeError`."""
class NotMediaError(InvalidMediaError):
    """FFmpeg's format probe recognises no media in the source (garbage, a text file, an empty or
    truncated header): ``av.open`` answered "invalid data", or only a non-media demuxer matched.

    Every backend declared ``Capabilities.ffmpeg_based`` probes with FFmpeg too, so automatic
    selection tries none of them after this error (only backends not built on FFmpeg). A file
    that opens but holds a codec one FFmpeg build lacks is not this error.
    """


class OutputTooLargeError(MediaDecodeError, MemoryError):
    """A request's output would be larger than the output limit (see :mod:`mediadecode.limits`):
    refused before anything is allocated. Also a :class:`MemoryError`.

    The message names the source, the request's estimated size and the limit, and how to raise
    it (``MEDIADECODE_MAX_OUTPUT_BYTES``, or the ``max_output_bytes=`` argument).

    Attributes:
        requested_bytes: the estimated output size in bytes.
        limit_bytes: the limit in force.
    """

    def __init__(self, message: str, *, requested_bytes: int = 0, limit_bytes: int = 0):
        super().__init__(message)
        self.requested_bytes = requested_bytes
        self.limit_bytes = limit_bytes

    def __reduce__(self):
        return (_rebuild_too_large, (type(self), str(self), self.requested_bytes, self.limit_bytes))


def _rebuild_too_large(cls, message, requested_bytes, limit_bytes):
    return cls(message, requested_bytes=requested_bytes, limit_bytes=limit_bytes)


class EndOfStreamError(MediaDecodeError, IndexError):
    """A frame index lies past the real end of the stream although the header counted it
    (``seek_mode="approximate"`` trusts the header's frame count): raised by a backend when a
    decode at that index reached the end of the stream first. Also an :class:`IndexError`.

    :class:`~mediadecode.VideoDecoder` catches it, learns the real count (``len(decoder)`` and
    ``metadata.num_frames`` shrink to it), ends iteration and clips ranges and slices there, and
    raises a plain :class:`IndexError` for an index past the real end.

    Attributes:
        num_frames: the number of frames the stream really has, as the decode found it.
    """

    def __init__(self, message: str, *, num_frames: int):
        super().__init__(message)
        self.num_frames = num_frames

    def __reduce__(self):
        return (_rebuild_end_of_stream, (type(self), str(self), self.num_frames))


def _rebuild_end_of_stream(cls, message, num_frames):
    return cls(message, num_frames=num_frames)
