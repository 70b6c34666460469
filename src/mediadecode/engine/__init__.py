"""The decoding engine shared by the PyAV-based backends (ffmpeg, nvdec), as small stages.

- :mod:`~mediadecode.engine.cursor`: :class:`DecodeCursor`, one open decoder and its position
  (seek, skip non-reference frames, reach a target); the only owner of the decode position.
- :mod:`~mediadecode.engine.output`: the output stage (:class:`OutputStage`): decoded frames into
  tensors; :class:`CpuRGBOutput` here, the GPU stage in the nvdec backend.
- :mod:`~mediadecode.engine.gop_plan`: :func:`plan_gop_chunks`, the pure GOP planner, and
  :mod:`~mediadecode.engine.parallel`, which runs its plans in threads.
- :mod:`~mediadecode.engine.setup`: :class:`DecoderSetup`, how a reader opens and configures its
  decoder and picks its output stage (CPU here, NVDEC in the nvdec backend).
- ``audio_input``, ``audio_clock``, ``audio_convert``, ``audio_cursor``: the parts of the ffmpeg
  backend's audio reader (:class:`mediadecode.backends.ffmpeg_audio.FFmpegAudioReader`).

The frame index is :class:`mediadecode.frame_index.FrameIndex`; the reader that composes these
stages is :class:`mediadecode.backends.ffmpeg.FFmpegVideoReader`.
"""

from .cursor import DecodeCursor
from .gop_plan import plan_gop_chunks
from .output import CpuRGBOutput, FrameTiming, FrameWriter, OutputBatch, OutputFormat, OutputStage
from .parallel import GopParallelDecoder
from .setup import CpuDecoderSetup, DecoderSetup

__all__ = [
    "CpuDecoderSetup",
    "CpuRGBOutput",
    "DecodeCursor",
    "DecoderSetup",
    "FrameTiming",
    "FrameWriter",
    "GopParallelDecoder",
    "OutputBatch",
    "OutputFormat",
    "OutputStage",
    "plan_gop_chunks",
]
