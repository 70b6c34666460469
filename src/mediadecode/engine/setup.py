"""How a reader opens its stream and where its frames go: :class:`DecoderSetup`.

The one part that differs between decoding on the CPU and on a GPU. The ffmpeg backend's reader
uses :class:`CpuDecoderSetup`; the nvdec backend passes its own setup (hardware decoding, CPU
fallback, GPU output stage) to the same reader.
"""

from __future__ import annotations

from typing import Any, Protocol


from ..metadata import ContainerMetadata, VideoStreamMetadata
from ..pyav import FirstFrameInfo, MediaHandle, first_frame_info, open_container
from ..sources import Source
from .cursor import DecodeCursor
from .output import CpuRGBOutput, FrameTiming, OutputFormat, OutputStage

__all__ = ["DecoderSetup", "CpuDecoderSetup"]


class DecoderSetup(Protocol):
    """What a video reader asks of the decoder it runs.

    Attributes:
        threaded: the decoder runs FFmpeg threads (the reader then parks before ``fork``).
        gop_parallel: a request spanning several GOPs may be decoded by extra single-threaded
            decoders in parallel threads.
        skip_nonref: exact requests may let FFmpeg skip unrequested non-reference frames.
    """

    threaded: bool
    gop_parallel: bool
    skip_nonref: bool

    def open(self, source: Source) -> MediaHandle:
        """Open the container (with hardware decoding attached, for a GPU setup)."""
        ...

    def configure(self, stream: Any) -> None:
        """Configure the stream's decoder (threads) before the first packet is sent."""
        ...

    def probe(self, cursor: DecodeCursor) -> None:
        """After the first open: check the decoder on real frames (a GPU setup may fall back
        to the CPU here, reopening the cursor)."""
        ...

    def first_frame_info(self, frame: Any) -> FirstFrameInfo:
        """The rotation, size, pixel format and colour tags of the first decoded frame."""
        ...

    def fix_metadata(self, container_metadata: ContainerMetadata, stream_metadata: VideoStreamMetadata) -> None:
        """Correct what the container reports under this decoder (a GPU pixel format)."""
        ...

    def output_stage(self, coded_size: tuple[int, int], timing: FrameTiming,
                     fmt: OutputFormat | None = None) -> OutputStage:
        """Where decoded frames go; ``fmt`` (dtype, transforms, rotation) is only passed by
        readers whose backend declares those capabilities."""
        ...


class CpuDecoderSetup:
    """FFmpeg's software decoders with ``num_threads`` threads (0: FFmpeg's automatic count;
    frame threading plus slice threading where it helps), RGB output by swscale.

    ``num_threads=1`` really means one thread: PyAV's default is slice threading with the
    automatic count, whose threads a fork child would block on when freeing the decoder.
    """

    gop_parallel = True
    skip_nonref = True

    def __init__(self, num_threads: int):
        self.num_threads = num_threads
        self.threaded = num_threads != 1

    def open(self, source: Source) -> MediaHandle:
        return open_container(source)

    def configure(self, stream: Any) -> None:
        cc = stream.codec_context
        if self.num_threads == 1:
            cc.thread_count = 1
        else:
            cc.thread_type = "AUTO"
            cc.thread_count = self.num_threads

    def probe(self, cursor: DecodeCursor) -> None:
        return None

    def first_frame_info(self, frame: Any) -> FirstFrameInfo:
        return first_frame_info(frame)

    def fix_metadata(self, container_metadata, stream_metadata) -> None:
        return None

    def output_stage(self, coded_size: tuple[int, int], timing: FrameTiming,
                     fmt: OutputFormat | None = None) -> OutputStage:
        return CpuRGBOutput(coded_size, timing, fmt=fmt)
