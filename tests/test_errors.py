"""Every documented error: class, built-in base, message, and no file descriptor left open."""

from __future__ import annotations

import contextlib
import io
import os
import random
from pathlib import Path

import pytest
import torch

import mediadecode
from mediadecode import (
    AudioDecoder,
    BackendUnavailableError,
    DecodingError,
    FrameMappingsError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidMediaError,
    MediaDecodeError,
    NoBackendError,
    OutOfRangeError,
    SourceNotFoundError,
    StreamNotFoundError,
    UnknownBackendError,
    VideoDecoder,
)
from mediadecode import errors as errors_module

av = pytest.importorskip("av")

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
DECODERS = [VideoDecoder, AudioDecoder]


def media(name: str) -> Path:
    path = MEDIA / name
    if not path.is_file():
        pytest.skip(f"media corpus not available: {path} is missing (see shared/media/MANIFEST.md)")
    return path


def _open_fds() -> dict[str, str] | None:
    """Open descriptors of this process and what they point to; None without /proc."""
    fd_dir = "/proc/self/fd"
    if not os.path.isdir(fd_dir):
        return None
    fds = {}
    for name in os.listdir(fd_dir):
        try:
            fds[name] = os.readlink(os.path.join(fd_dir, name))
        except OSError:  # the listing's own descriptor, already closed
            pass
    return fds


@contextlib.contextmanager
def no_fd_leak():
    """Fail if the block leaves a file descriptor open (no garbage collection in between)."""
    before = _open_fds()
    yield
    after = _open_fds()
    if before is None or after is None:
        return
    leaked = {fd: target for fd, target in after.items() if before.get(fd) != target}
    assert not leaked, f"file descriptors left open: {leaked}"


@pytest.fixture
def fd_check():
    if _open_fds() is None:
        pytest.skip("/proc/self/fd is not available on this platform")
    return no_fd_leak


# --------------------------------------------------------------------------------------------
# the hierarchy

ALL_ERRORS = [getattr(errors_module, name) for name in errors_module.__all__]


def test_every_error_is_exported_and_a_runtime_error():
    # 9 + UnsafeMediaError and the three Remote*Error (issue 8), the three encoder errors
    # (issue 15), InvalidArgumentError (issue 14), FrameMappingsError, InvalidArgumentTypeError
    # and OutOfRangeError (issue 13), NotMediaError, OutputTooLargeError and EndOfStreamError
    # (issue 17)
    assert len(ALL_ERRORS) == 23
    for cls in ALL_ERRORS:
        if cls in (InvalidArgumentError, FrameMappingsError, InvalidArgumentTypeError,
                   OutOfRangeError):
            # a bad argument, as every other: never a media error; also the RuntimeError that
            # torchcodec 0.17 raises for some of the same arguments
            assert issubclass(cls, (ValueError, TypeError, IndexError))
            assert not issubclass(cls, MediaDecodeError)
        else:
            assert issubclass(cls, MediaDecodeError), cls
        assert issubclass(cls, RuntimeError), cls
        assert getattr(mediadecode, cls.__name__) is cls
        assert cls.__name__ in mediadecode.__all__


@pytest.mark.parametrize(
    "cls,builtin",
    [
        (SourceNotFoundError, FileNotFoundError),
        (DecodingError, InvalidMediaError),
        (StreamNotFoundError, ValueError),
        (BackendUnavailableError, ImportError),
        (UnknownBackendError, ValueError),
        (NoBackendError, InvalidMediaError),
        (mediadecode.NotMediaError, InvalidMediaError),
        (mediadecode.OutputTooLargeError, MemoryError),
        (mediadecode.EndOfStreamError, IndexError),
    ],
)
def test_documented_also_a_relations(cls, builtin):
    assert issubclass(cls, builtin)
    with pytest.raises(builtin):
        if cls is NoBackendError:
            raise cls("x", {"a": "b"})
        raise cls("x", num_frames=1) if cls is mediadecode.EndOfStreamError else cls("x")


def test_no_backend_error_keeps_attempts():
    err = NoBackendError("nothing worked", {"a": "reason a", "b": "reason b"})
    assert err.attempts == {"a": "reason a", "b": "reason b"}
    assert str(err) == "nothing worked"
    assert NoBackendError("no attempts").attempts == {}


# --------------------------------------------------------------------------------------------
# unreadable sources


@pytest.fixture
def garbage() -> bytes:
    rng = random.Random(1234)
    data = bytes(rng.getrandbits(8) for _ in range(8192))
    # Make sure it does not start with a known container signature.
    assert not data.startswith((b"RIFF", b"\x1aE\xdf\xa3", b"ID3", b"OggS", b"fLaC"))
    return data


@pytest.mark.parametrize("Decoder", DECODERS)
def test_garbage_bytes(Decoder, garbage, fd_check):
    with fd_check():
        with pytest.raises(InvalidMediaError) as excinfo:
            Decoder(garbage)
    message = str(excinfo.value)
    assert "bytes" in message and str(len(garbage)) in message  # names the source
    assert not isinstance(excinfo.value, (StreamNotFoundError, SourceNotFoundError))


@pytest.mark.parametrize("Decoder", DECODERS)
def test_garbage_tensor(Decoder, garbage, fd_check):
    tensor = torch.frombuffer(bytearray(garbage), dtype=torch.uint8)
    with fd_check():
        with pytest.raises(InvalidMediaError, match=str(len(garbage))):
            Decoder(tensor)


@pytest.mark.parametrize("Decoder", DECODERS)
def test_garbage_file(Decoder, garbage, tmp_path, fd_check):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(garbage)
    with fd_check():
        with pytest.raises(InvalidMediaError) as excinfo:
            Decoder(path)
    assert str(path) in str(excinfo.value)


@pytest.mark.parametrize("Decoder", DECODERS)
def test_garbage_file_object_is_reported_and_left_open(Decoder, garbage, fd_check):
    fobj = io.BytesIO(garbage)
    with fd_check():
        with pytest.raises(InvalidMediaError, match="BytesIO"):
            Decoder(fobj)
    assert not fobj.closed  # the caller owns it


@pytest.mark.parametrize("Decoder", DECODERS)
def test_garbage_real_file_object(Decoder, garbage, tmp_path, fd_check):
    path = tmp_path / "garbage.bin"
    path.write_bytes(garbage)
    with fd_check():
        with open(path, "rb") as fobj:
            with pytest.raises(InvalidMediaError):
                Decoder(fobj)
            assert not fobj.closed


@pytest.mark.parametrize("Decoder", DECODERS)
def test_empty_file(Decoder, tmp_path, fd_check):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with fd_check():
        with pytest.raises(InvalidMediaError) as excinfo:
            Decoder(path)
    assert str(path) in str(excinfo.value)


@pytest.mark.parametrize("Decoder", DECODERS)
def test_empty_bytes(Decoder, fd_check):
    with fd_check():
        with pytest.raises(InvalidMediaError, match="0 bytes"):
            Decoder(b"")


@pytest.mark.parametrize("Decoder", DECODERS)
@pytest.mark.parametrize("suffix", [".mp4", ".wav", ".csv", ".txt"])  # .txt: the tty demuxer
def test_text_file(Decoder, suffix, tmp_path, fd_check):
    path = tmp_path / f"notes{suffix}"
    path.write_text("These are notes, not media.\n" * 200)
    with fd_check():
        with pytest.raises(InvalidMediaError) as excinfo:
            Decoder(path)
    assert str(path) in str(excinfo.value)


@pytest.mark.parametrize("Decoder", DECODERS)
def test_text_bytes(Decoder, fd_check):
    with fd_check():
        with pytest.raises(InvalidMediaError):
            Decoder(b"These are notes, not media.\n" * 200)


@pytest.mark.parametrize("Decoder", DECODERS)
def test_missing_path(Decoder, tmp_path, fd_check):
    path = tmp_path / "does-not-exist.mp4"
    with fd_check():
        with pytest.raises(SourceNotFoundError) as excinfo:
            Decoder(path)
        with pytest.raises(FileNotFoundError):  # what plain Python code catches
            Decoder(str(path))
    assert str(path) in str(excinfo.value)
    assert isinstance(excinfo.value, MediaDecodeError)


def test_directory_path(tmp_path, fd_check):
    with fd_check():
        with pytest.raises(SourceNotFoundError, match="directory"):
            VideoDecoder(tmp_path)


def test_corrupted_video_gives_a_clear_error_or_frames(fd_check):
    # MANIFEST: a damaged H.264 file; it must give a clear error or decode what is decodable.
    path = media("corrupted_h264.mp4")
    with fd_check():
        try:
            with VideoDecoder(path) as decoder:
                batch = decoder.get_all_frames()
        except InvalidMediaError as exc:  # DecodingError included
            assert str(path) in str(exc)
        else:
            assert batch.data.dtype == torch.uint8
            assert batch.data.shape[0] == len(batch.pts_seconds)


# --------------------------------------------------------------------------------------------
# streams


@pytest.mark.parametrize(
    "Decoder,stream_index,words",
    [
        (VideoDecoder, 6, ["6", "out of range"]),    # MANIFEST: six streams, 0-5
        (VideoDecoder, 100, ["100"]),
        (VideoDecoder, -1, ["-1"]),
        (VideoDecoder, 1, ["1", "audio"]),          # AAC
        (VideoDecoder, 4, ["4", "audio"]),          # AAC
        (VideoDecoder, 2, ["2", "subtitle"]),       # mov_text
        (AudioDecoder, 6, ["6"]),
        (AudioDecoder, 0, ["0", "video"]),
        (AudioDecoder, 3, ["3", "video"]),
        (AudioDecoder, 5, ["5", "subtitle"]),
    ],
)
def test_bad_stream_index(Decoder, stream_index, words, fd_check):
    path = media("nasa_13013.mp4")
    with fd_check():
        with pytest.raises(StreamNotFoundError) as excinfo:
            Decoder(path, stream_index=stream_index)
    assert isinstance(excinfo.value, ValueError)
    message = str(excinfo.value)
    for word in words:
        assert word in message
    assert str(path) in message


@pytest.mark.parametrize("name", ["sine_mono_s16.wav", "nasa_13013.mp4.audio.mp3"])
def test_audio_only_file_with_video_decoder(name, fd_check):
    path = media(name)
    with fd_check():
        with pytest.raises(StreamNotFoundError, match="video"):
            VideoDecoder(path)


def test_video_only_file_with_audio_decoder(fd_check):
    with fd_check():
        with pytest.raises(StreamNotFoundError, match="audio"):
            AudioDecoder(media("h265_video.mp4"))


def test_stream_index_of_wrong_type(fd_check):
    with fd_check():
        with pytest.raises(TypeError):
            AudioDecoder(media("sine_mono_s16.wav"), stream_index="0")
        with pytest.raises(TypeError):
            VideoDecoder(media("h265_video.mp4"), stream_index=0.0)


# --------------------------------------------------------------------------------------------
# arguments


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dimension_order": "CHW"},
        {"dimension_order": "nchw"},
        {"seek_mode": "fast"},
        {"num_threads": -1},
    ],
)
def test_invalid_video_arguments(kwargs, fd_check):
    path = media("h265_video.mp4")
    with fd_check():
        with pytest.raises(ValueError) as excinfo:
            VideoDecoder(path, **kwargs)
    assert not isinstance(excinfo.value, MediaDecodeError)
    value = next(iter(kwargs.values()))
    assert str(value) in str(excinfo.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"sample_rate": 0}, {"sample_rate": -16000}, {"num_channels": 0}, {"num_channels": -2}],
)
def test_invalid_audio_arguments(kwargs, fd_check):
    path = media("sine_mono_s16.wav")
    with fd_check():
        with pytest.raises(ValueError) as excinfo:
            AudioDecoder(path, **kwargs)
    # InvalidArgumentError: also a RuntimeError, as torchcodec raises for num_channels (issue 13)
    assert isinstance(excinfo.value, RuntimeError)
    name = next(iter(kwargs))
    assert name in str(excinfo.value)


@pytest.mark.parametrize("Decoder", DECODERS)
@pytest.mark.parametrize("source", [42, 4.2, None, object(), ["a.mp4"]])
def test_wrong_source_type(Decoder, source, fd_check):
    with fd_check():
        with pytest.raises(TypeError, match="source"):
            Decoder(source)


def test_bad_tensor_source(fd_check):
    with fd_check():
        with pytest.raises(ValueError, match="uint8"):
            VideoDecoder(torch.zeros(16, dtype=torch.float32))
        with pytest.raises(ValueError, match="uint8"):
            AudioDecoder(torch.zeros((4, 4), dtype=torch.uint8))


def test_unknown_backend_name(fd_check):
    with fd_check():
        with pytest.raises(UnknownBackendError) as excinfo:
            VideoDecoder(media("h265_video.mp4"), backend="no-such-backend")
    assert isinstance(excinfo.value, ValueError)
    assert "no-such-backend" in str(excinfo.value) and "ffmpeg" in str(excinfo.value)


# --------------------------------------------------------------------------------------------
# indices


@pytest.fixture(scope="module")
def h265_frame_count() -> int:
    path = media("h265_video.mp4")
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_out_of_range_frame_index(h265_frame_count, fd_check):
    n = h265_frame_count
    path = media("h265_video.mp4")
    with fd_check():
        with VideoDecoder(path) as decoder:
            assert len(decoder) == n
            decoder[n - 1]
            decoder[-n]
            for call in (
                lambda: decoder[n],
                lambda: decoder[-n - 1],
                lambda: decoder.get_frame_at(n),
                lambda: decoder.get_frame_at(-n - 1),
                lambda: decoder.get_frames_at([0, n]),
            ):
                with pytest.raises(IndexError) as excinfo:
                    call()
                # OutOfRangeError: an IndexError that is also a RuntimeError, which torchcodec
                # raises for times outside the stream (issue 13); never a media error
                assert isinstance(excinfo.value, RuntimeError)
                assert not isinstance(excinfo.value, MediaDecodeError)
                assert str(n) in str(excinfo.value) and str(path) in str(excinfo.value)
            # The decoder still works after the errors.
            assert decoder.get_frame_at(0).data.dtype == torch.uint8


# --------------------------------------------------------------------------------------------
# closed decoders


def test_closed_video_decoder_raises_value_error(fd_check):
    path = media("h265_video.mp4")
    with fd_check():
        decoder = VideoDecoder(path)
        decoder[0]
        decoder.close()
    for call in (
        lambda: decoder[0],
        lambda: decoder.get_frame_at(0),
        lambda: decoder.get_frames_at([0]),
        lambda: len(decoder),
        lambda: list(decoder),
        lambda: decoder.get_frame_played_at(0.0),
        lambda: decoder.get_frames_played_in_range(0.0, 0.5),
        lambda: decoder.get_all_frames(),
    ):
        with pytest.raises(ValueError, match="closed"):
            call()
    decoder.close()  # idempotent


def test_closed_audio_decoder_raises_value_error(fd_check):
    path = media("sine_mono_s16.wav")
    with fd_check():
        with AudioDecoder(path) as decoder:
            decoder.get_samples_played_in_range(0.0, 0.1)
    with pytest.raises(ValueError, match="closed"):
        decoder.get_all_samples()
    with pytest.raises(ValueError, match="closed"):
        decoder.get_samples_played_in_range(0.0, 1.0)
    decoder.close()


def test_open_decoder_holds_and_close_releases_descriptors(fd_check):
    # The counterpart of the no-leak checks above: opening a path does hold a descriptor (so the
    # checks can see one), and close() gives it back.
    path = Path(os.path.realpath(media("sine_mono_s16.wav")))  # /proc shows resolved paths
    before = _open_fds()
    decoder = AudioDecoder(path)
    decoder.get_all_samples()
    during = _open_fds()
    assert any(target == str(path) for target in during.values())
    decoder.close()
    after = _open_fds()
    assert not any(target == str(path) for target in after.values())
    assert {fd: t for fd, t in after.items() if before.get(fd) != t} == {}
