"""A fake backend for tests/test_nvdec.py: it declares ``Capabilities.cpu_fallback`` (its
``open_video`` takes ``allow_cpu_fallback``, as the nvdec backend's does), records what the
decoder facade passed, and decodes with the ffmpeg backend's reader."""

from __future__ import annotations

from mediadecode.capabilities import Capabilities

SEEN: list[bool] = []  # allow_cpu_fallback of each open_video call


class FallbackRecordingBackend:
    name = "fbrecord"
    priority = 1_000  # above ffmpeg: automatic selection picks it first
    devices = ("cpu",)
    media_types = ("video",)
    capabilities = Capabilities(devices=devices, media_types=media_types, cpu_fallback=True)
    install_hint = ""

    @classmethod
    def unavailable_reason(cls):
        return None

    def open_video(self, source, *, stream_index, seek_mode, num_threads, device="cpu",
                   allow_cpu_fallback=False):
        SEEN.append(allow_cpu_fallback)
        from mediadecode.backends.ffmpeg import FFmpegBackend

        return FFmpegBackend().open_video(
            source, stream_index=stream_index, seek_mode=seek_mode, num_threads=num_threads,
            device=device,
        )

    def open_audio(self, source, **kwargs):  # pragma: no cover - video only
        raise NotImplementedError
