"""Fake backends for tests/test_selection.py, registered through real entry points.

Each one serves requests with the ffmpeg backend's readers (so decoding really works) and records
every ``open_*`` call in :data:`CALLS`, so a test can tell which backend served a decoder and which
were tried. They implement the protocol of ``mediadecode/protocol.py``.
"""

from __future__ import annotations

from mediadecode.errors import InvalidMediaError

CALLS: list[tuple[str, str, str]] = []  # (backend name, "video" | "audio", source name)


class FakeBackend:
    name = "fake"
    priority = 10  # below ffmpeg's 100
    devices = ("cpu",)
    media_types = ("video", "audio")
    install_hint = "pip install mediadecode-sel-fake"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def _ffmpeg(self):
        from mediadecode.backends.ffmpeg import FFmpegBackend

        return FFmpegBackend()

    def open_video(self, source, *, stream_index, seek_mode, num_threads, device="cpu"):
        CALLS.append((self.name, "video", source.name))
        return self._ffmpeg().open_video(
            source, stream_index=stream_index, seek_mode=seek_mode, num_threads=num_threads,
            device=device,
        )

    def open_audio(self, source, *, stream_index, sample_rate, num_channels):
        CALLS.append((self.name, "audio", source.name))
        return self._ffmpeg().open_audio(
            source, stream_index=stream_index, sample_rate=sample_rate, num_channels=num_channels
        )


class OtherFakeBackend(FakeBackend):
    """A second working fake, to tell two explicit choices apart."""

    name = "fake2"
    priority = 5


class PickyBackend(FakeBackend):
    """The highest priority, but refuses every source as not its format."""

    name = "picky"
    priority = 10_000

    def open_video(self, source, **kwargs):
        CALLS.append((self.name, "video", source.name))
        raise InvalidMediaError(f"{source.name}: picky handles no such media")

    def open_audio(self, source, **kwargs):
        CALLS.append((self.name, "audio", source.name))
        raise InvalidMediaError(f"{source.name}: picky handles no such media")


class CrashyBackend(FakeBackend):
    """High priority; fails with an unexpected exception (a bug in a plugin)."""

    name = "crashy"
    priority = 5_000

    def open_video(self, source, **kwargs):
        CALLS.append((self.name, "video", source.name))
        raise RuntimeError("crashy exploded")

    def open_audio(self, source, **kwargs):
        CALLS.append((self.name, "audio", source.name))
        raise RuntimeError("crashy exploded")


class MissingDepBackend(FakeBackend):
    """Registered but unusable here: its optional dependency is missing."""

    name = "missingdep"
    priority = 20_000

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return "the 'nonexistent_decoder_lib' package is not installed; fix: pip install nonexistent-decoder-lib"

    def open_video(self, source, **kwargs):  # pragma: no cover - must never be called
        CALLS.append((self.name, "video", source.name))
        raise AssertionError("an unavailable backend was used")

    def open_audio(self, source, **kwargs):  # pragma: no cover - must never be called
        CALLS.append((self.name, "audio", source.name))
        raise AssertionError("an unavailable backend was used")


class AudioOnlyBackend(FakeBackend):
    name = "audioonly"
    priority = 30_000
    media_types = ("audio",)


class CudaOnlyBackend(FakeBackend):
    name = "cudaonly"
    priority = 40_000
    devices = ("cuda",)


class NoAttributesBackend:
    """Lacks the protocol's class attributes."""


class FFmpegBasedFakeBackend(FakeBackend):
    """Declares that it reads containers with FFmpeg (as torchcodec and decord do)."""

    from mediadecode.capabilities import Capabilities

    name = "ffmpegish"
    priority = 20
    capabilities = Capabilities(devices=("cpu",), media_types=("video", "audio"), ffmpeg_based=True)
    del Capabilities


class RawErrorBackend(FakeBackend):
    """High priority; its library fails with its own ValueError subclass (as PyAV does on
    damaged metadata: UnicodeDecodeError)."""

    name = "rawerror"
    priority = 10_000

    def open_video(self, source, **kwargs):
        CALLS.append((self.name, "video", source.name))
        raise UnicodeDecodeError("utf-8", b"\xf6", 0, 1, "invalid start byte")

    def open_audio(self, source, **kwargs):
        CALLS.append((self.name, "audio", source.name))
        raise UnicodeDecodeError("utf-8", b"\xf6", 0, 1, "invalid start byte")
