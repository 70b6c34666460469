"""The ``nvdec`` backend: NVIDIA's hardware decoder (NVDEC) through PyAV, frames kept on the GPU.

PyAV's wheel bundles an FFmpeg built with NVDEC. The stream is decoded with
``av.codec.hwaccel.HWAccel(device_type="cuda", is_hw_owned=True)``, so decoded frames stay in GPU
memory as NV12 (8-bit) or P010/P016 (10/12-bit) surfaces. Their planes reach torch through
DLPack (``torch.from_dlpack(plane.__dlpack__())``, after synchronising the device: PyAV rejects
the ``stream`` argument that ``torch.from_dlpack(plane)`` would pass), are copied into one batch
tensor per request, and are converted to RGB on the GPU in batched torch operations by
:func:`mediadecode.colour.yuv420_to_rgb`, which reproduces FFmpeg's own CPU conversion
(libswscale) bit for bit; see :mod:`mediadecode.colour`.

Everything else is the ffmpeg backend's engine: :class:`NVDECVideoReader` is
:class:`~mediadecode.backends.ffmpeg.FFmpegVideoReader` composed with :class:`NVDECSetup` (how the
container is opened, with ``hwaccel``, and the CPU fallback) and :class:`NVDECOutput` (the GPU
output stage): the exact-mode packet scan, seeking once per GOP for sorted requests, the
approximate mode, the damaged-packet handling and the frame index cache are shared.

CPU fallback, reported as torchcodec reports it (``VideoDecoder.cpu_fallback``):

- a codec for which FFmpeg has no NVDEC decoder (``is_hwaccel`` is False), or a stream the GPU's
  NVDEC refuses (FFmpeg then hands out software frames: a profile, bit depth or size the GPU
  does not support) is decoded by FFmpeg on the CPU, converted by swscale and copied to the GPU,
  and ``cpu_fallback`` says so with the reason;
- but only when the backend was chosen automatically. With ``backend="nvdec"`` (or
  ``use_backend``, the environment variable, the config file) such a stream raises
  :class:`~mediadecode.errors.UnsupportedRequestError` naming the codec: never a silent fallback.

Known limits: odd-sized frames lose their last chroma row/column in PyAV's DLPack export (it
rounds ``H/2`` and ``W/2`` down); that row/column is repeated, so the last pixel row/column of
such frames may differ from FFmpeg's. Frames whose size differs from the first frame's (a
mid-stream resolution change) or whose GPU layout DLPack cannot export are converted by FFmpeg
(download, then swscale), exactly as the ffmpeg backend does.
"""

from __future__ import annotations

import ctypes
import dataclasses
from contextlib import nullcontext
from typing import Any

import torch

from ..capabilities import Capabilities, Tolerance
from ..colour import matrix_for_colorspace, range_for_frame, yuv420_to_rgb
from ..errors import BackendUnavailableError, InvalidMediaError, UnsupportedRequestError
from ..fallback import CpuFallbackStatus
from ..metadata import VideoStreamMetadata
from ..sources import Source
from ..engine import CpuDecoderSetup, CpuRGBOutput, DecodeCursor, FrameTiming, OutputBatch
from ..metadata import ContainerMetadata
from ..protocol import RawFrames
from ..pyav import (
    FirstFrameInfo,
    MediaHandle,
    container_metadata,
    first_frame_info,
    import_av,
    open_container,
    ticks_to_seconds,
)
from .ffmpeg import FFmpegVideoReader

__all__ = [
    "FallbackPolicy",
    "GPUBatch",
    "NVDECBackend",
    "NVDECOutput",
    "NVDECSetup",
    "NVDECVideoReader",
    "cuda_unavailable_reason",
]

# GPU layouts PyAV's DLPack export handles: sw_format -> (bits per sample, container bits)
_LAYOUTS = {"nv12": (8, 8), "p010le": (10, 16), "p016le": (12, 16)}

# The CPU decoder's pixel format for a GPU layout (what the ffmpeg backend reports).
_CPU_PIXEL_FORMAT = {"nv12": "yuv420p", "p010le": "yuv420p10le", "p016le": "yuv420p12le"}

# Pixels per batched conversion call: bounds the int32 intermediates (about 16 bytes a pixel).
_PIXELS_PER_CHUNK = 1 << 25

_NVCUVID_NAMES = ("libnvcuvid.so.1", "libnvcuvid.so", "nvcuvid.dll")


def cuda_unavailable_reason() -> str | None:
    """None when NVDEC decoding can work here; otherwise why not, with what to install.

    Checks, in order: PyAV and its hardware-acceleration module, that PyAV's FFmpeg has the
    ``cuda`` device type, that torch sees a CUDA device, that the NVIDIA driver's video decoding
    library (``libnvcuvid``) loads. Never raises.
    """
    try:
        from av.codec import hwaccel
    except Exception as exc:
        return f"PyAV with hardware decoding is not importable ({exc}); fix: pip install 'av>=14'"
    try:
        devices = list(hwaccel.hwdevices_available())
    except Exception as exc:  # pragma: no cover - defensive
        return f"PyAV cannot list hardware device types: {exc}"
    if "cuda" not in devices:
        return (
            "PyAV's FFmpeg was built without CUDA/NVDEC (hardware device types: "
            f"{', '.join(devices) or 'none'}); fix: pip install av (the PyPI wheels include NVDEC)"
        )
    try:
        if not torch.cuda.is_available():
            if torch.version.cuda is None:
                return (
                    "no CUDA device: this torch build has no CUDA support "
                    "(torch.version.cuda is None); fix: install a CUDA build of torch"
                )
            return (
                "no CUDA device: torch.cuda.is_available() is False (no NVIDIA GPU or driver "
                "visible to this process)"
            )
    except Exception as exc:  # pragma: no cover - defensive
        return f"no CUDA device: torch.cuda.is_available() failed: {exc}"
    errors = []
    for name in _NVCUVID_NAMES:
        try:
            ctypes.CDLL(name)
            return None
        except OSError as exc:
            errors.append(str(exc))
    return (
        "a CUDA device is present but the NVIDIA driver's video decoding library (libnvcuvid) "
        f"cannot be loaded ({errors[0]}); fix: install the full NVIDIA driver (on containers, "
        "NVIDIA_DRIVER_CAPABILITIES must include 'video')"
    )


def _device_index(device: str) -> int:
    """The CUDA device index of ``"cuda"`` (torch's current device) or ``"cuda:N"``.

    Raises:
        ValueError: not a CUDA device, or an index with no device behind it.
    """
    dev = torch.device(device)
    if dev.type != "cuda":
        raise ValueError(f"the nvdec backend decodes on CUDA devices, not {device!r}")
    index = torch.cuda.current_device() if dev.index is None else dev.index
    count = torch.cuda.device_count()
    if not 0 <= index < count:
        raise ValueError(f"device {device!r}: this machine has {count} CUDA device(s)")
    return index


class GPUBatch:
    """The frames of one request, gathered as GPU planes before one batched conversion.

    Attributes:
        n: number of output slots.
        y, uv: device tensors ``(n, H, W)`` and ``(n, ceil(H/2), ceil(W/2), 2)`` (uint8 for NV12,
            uint16 for P010/P016), allocated at the first GPU frame.
        tags: per slot, ``(matrix, color_range, bit_depth)`` of a GPU frame; None otherwise.
        rgb: slot -> ``uint8`` ``(H, W, 3)`` CPU tensor for frames FFmpeg converted (software
            frames of a fallback, a size change, a layout DLPack cannot export).
    """

    __slots__ = ("n", "y", "uv", "tags", "rgb")

    def __init__(self, n: int):
        self.n = n
        self.y: torch.Tensor | None = None
        self.uv: torch.Tensor | None = None
        self.tags: list[tuple[str, str, int] | None] = [None] * n
        self.rgb: dict[int, torch.Tensor] = {}


class FallbackPolicy:
    """Whether frames NVDEC cannot decode may be decoded on the CPU, and what happened: the
    :class:`~mediadecode.fallback.CpuFallbackStatus` a reader reports.

    Args:
        source_name: for messages.
        allow: decode on the CPU what NVDEC cannot (an automatic backend choice); False raises
            :class:`UnsupportedRequestError` instead (the user named nvdec).
    """

    def __init__(self, source_name: str, allow: bool):
        self.source_name = source_name
        self.allow = allow
        self.status = CpuFallbackStatus(backend="nvdec")
        self.codec_description = "codec unknown"

    def decoded_on_gpu(self) -> None:
        self.status = CpuFallbackStatus(status_known=True, backend="nvdec")

    def fall_back(self, reason: str) -> None:
        """Record a CPU fallback, or refuse it when NVDEC was asked for explicitly.

        Raises:
            UnsupportedRequestError: fallback not allowed (names the codec and the reason).
        """
        if not self.allow:
            raise UnsupportedRequestError(
                f"{self.source_name}: NVDEC cannot decode this stream ({self.codec_description}): "
                f"{reason}; decode it with device='cpu', or let mediadecode choose the backend "
                "for device='cuda' (it then decodes on the CPU and reports it in "
                "decoder.cpu_fallback)"
            )
        self.status = CpuFallbackStatus(
            status_known=True, is_fallback=True, backend="nvdec", reason=reason
        )


class NVDECOutput:
    """The GPU output stage: NVDEC surfaces copied into one batch through DLPack, converted to
    RGB on the device in batched torch operations (:func:`mediadecode.colour.yuv420_to_rgb`,
    bit-exact with swscale). Frames NVDEC did not decode (software frames, a size change, a
    layout DLPack cannot export) are converted by FFmpeg, as the ffmpeg backend does.

    Args:
        coded_size: ``(width, height)`` of the output frames.
        timing: how a frame's duration is found.
        device: the CUDA device (the CPU in tests of the conversion).
        policy: reports (or refuses) software frames met mid-stream.
    """

    def __init__(self, coded_size: tuple[int, int], timing: FrameTiming, device: torch.device,
                 policy: FallbackPolicy):
        self.coded_size = coded_size
        self.timing = timing
        self.device = device
        self.policy = policy
        self._cpu = CpuRGBOutput(coded_size, timing)
        # DLPack views of FFmpeg's GPU frames whose copies may still run; released after the
        # next device synchronisation, so FFmpeg cannot reuse a surface that is being read.
        self._held: list[tuple[torch.Tensor, torch.Tensor]] = []

    def new_batch(self, num_slots: int, positions=None, *, concurrent: bool = False) -> OutputBatch:
        # Frames live in a GPU batch until finish: each slot is one output position.
        if positions is not None:
            raise ValueError("the NVDEC output stage does not place duplicates (fills_positions is False)")
        return OutputBatch(GPUBatch(num_slots), num_slots)

    def writer(self) -> "NVDECWriter":
        return NVDECWriter(self)

    def synchronize(self) -> None:
        """Wait for all work on the device (FFmpeg's and torch's streams)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def release(self) -> None:
        """Wait for pending copies and drop the views of FFmpeg's surfaces (before closing)."""
        if self._held:
            try:
                self.synchronize()
            except Exception:  # pragma: no cover - closing must not raise
                pass
            self._held.clear()

    def hold(self, y: torch.Tensor, uv: torch.Tensor) -> None:
        # PyAV's DLPack export takes no CUDA stream: wait for FFmpeg's copy of the surface
        # (this also completes the copies of the frames held before).
        self.synchronize()
        self._held.clear()
        self._held.append((y, uv))

    def flush_planes(self, out: GPUBatch) -> None:
        """Convert the GPU frames gathered so far into ``out.rgb`` (a layout change mid-request)."""
        data = self.convert_planes(out)
        for slot, tag in enumerate(out.tags):
            if tag is not None:
                out.rgb[slot] = data[slot]
                out.tags[slot] = None

    def convert_planes(self, out: GPUBatch) -> torch.Tensor:
        """RGB ``(n, H, W, 3)`` uint8 on the device for the slots holding GPU planes, converted
        in chunks of consecutive slots with the same colour tags."""
        width, height = self.coded_size
        data = torch.empty((out.n, height, width, 3), dtype=torch.uint8, device=self.device)
        if out.y is None:
            return data
        chunk = max(1, _PIXELS_PER_CHUNK // max(1, width * height))
        on_device = torch.cuda.device(self.device) if self.device.type == "cuda" else nullcontext()
        with on_device:
            start = 0
            while start < out.n:
                tag = out.tags[start]
                if tag is None:
                    start += 1
                    continue
                stop = start + 1
                while stop < out.n and stop - start < chunk and out.tags[stop] == tag:
                    stop += 1
                matrix, color_range, bits = tag
                y, uv = out.y[start:stop], out.uv[start:stop]
                container_bits = y.element_size() * 8
                if container_bits > 8:  # P010/P016: samples in the high bits of 16-bit words
                    shift = container_bits - bits
                    y = (y.view(torch.int16).to(torch.int32) & 0xFFFF) >> shift
                    uv = (uv.view(torch.int16).to(torch.int32) & 0xFFFF) >> shift
                yuv420_to_rgb(
                    y, uv[..., 0], uv[..., 1], matrix=matrix, color_range=color_range,
                    bit_depth=bits, out=data[start:stop],
                )
                start = stop
        return data

    def finish(self, batch: OutputBatch) -> RawFrames:
        tb = self.timing.time_base
        data = self.convert_planes(batch.data)
        for slot, rgb in batch.data.rgb.items():
            data[slot].copy_(rgb, non_blocking=False)
        return data, ticks_to_seconds(batch.pts, tb), ticks_to_seconds(batch.durations, tb)


class NVDECWriter:
    """Copies one decoded frame's planes into a :class:`GPUBatch` slot."""

    def __init__(self, stage: NVDECOutput):
        self._stage = stage
        self._cpu = stage._cpu.writer()

    def write(self, frame: Any, batch: OutputBatch, slot: int) -> None:
        stage = self._stage
        out: GPUBatch = batch.data
        batch.pts[slot] = frame.pts
        batch.durations[slot] = stage.timing.duration(frame)
        width, height = stage.coded_size
        layout = None
        if frame.format.name == "cuda":
            sw = frame.sw_format.name if frame.sw_format is not None else ""
            if sw in _LAYOUTS and (frame.width, frame.height) == (width, height):
                layout = (sw, *_LAYOUTS[sw])
        elif not stage.policy.status:
            # NVDEC handed out a software frame mid-stream (it re-initialised and refused)
            stage.policy.fall_back(
                "the GPU's NVDEC stopped decoding this stream mid-way (FFmpeg decoded the rest "
                "on the CPU)"
            )
        if layout is None:
            # FFmpeg converts it (downloading a GPU frame first), exactly as the ffmpeg backend
            out.rgb[slot] = torch.from_numpy(self._cpu.rgb(frame))
            return
        planes = frame.planes
        y = torch.from_dlpack(planes[0].__dlpack__())
        uv = torch.from_dlpack(planes[1].__dlpack__())
        stage.hold(y, uv)
        ch, cw = (height + 1) // 2, (width + 1) // 2
        if out.y is None or out.y.dtype != y.dtype:
            if out.y is not None:  # a layout change inside one request: keep what is there
                stage.flush_planes(out)
            out.y = torch.empty((out.n, height, width), dtype=y.dtype, device=stage.device)
            out.uv = torch.empty((out.n, ch, cw, 2), dtype=uv.dtype, device=stage.device)
        out.y[slot].copy_(y[:height, :width])
        uv = uv[:ch, :cw]
        h2, w2 = uv.shape[:2]
        target = out.uv[slot]
        target[:h2, :w2].copy_(uv)
        if w2 < cw:  # odd width: DLPack rounded W/2 down; repeat the last column
            target[:h2, w2:].copy_(uv[:, -1:].expand(h2, cw - w2, 2))
        if h2 < ch:  # odd height: repeat the last row
            target[h2:].copy_(target[h2 - 1 : h2].expand(ch - h2, cw, 2))
        out.tags[slot] = (
            matrix_for_colorspace(frame.colorspace),
            range_for_frame(frame.color_range),
            layout[1],
        )


class NVDECSetup:
    """The :class:`~mediadecode.engine.DecoderSetup` of NVDEC: containers opened with
    ``hwaccel`` (CUDA, frames kept on the GPU), one FFmpeg thread per decoder, the first frame
    decoded to find out whether NVDEC really decodes the stream, and a CPU fallback (FFmpeg's
    threads, swscale, then a copy to the device) when it does not and the policy allows it.

    Args:
        source: the source (for messages and the plain header read).
        device_index: the CUDA device.
        num_threads: FFmpeg threads of a CPU fallback.
        policy: the fallback policy and status.
    """

    gop_parallel = False  # one hardware decoder per stream; NVDEC runs in parallel on its own
    skip_nonref = False  # not yet checked on a GPU

    def __init__(self, source: Source, device_index: int, num_threads: int, policy: FallbackPolicy):
        self.source = source
        self.device_index = device_index
        self.device = torch.device("cuda", device_index)
        self.num_threads = num_threads
        self.policy = policy
        self.use_hwaccel = True  # open containers with NVDEC (False after a fallback)
        self.on_gpu = False  # the selected stream is decoded by NVDEC
        self.threaded = False
        self.plain_metadata: ContainerMetadata | None = None  # header read without hwaccel
        self.layout: tuple[str, int, int] | None = None  # (sw_format, bits, container bits)
        self._cpu = CpuDecoderSetup(num_threads)
        self._stream_index = 0

    def open(self, source: Source) -> MediaHandle:
        """Open the source with NVDEC attached (or plainly, after a fallback).

        The first time, the header is also read without hardware decoding: PyAV reports a
        hardware-decoded stream's pixel format as ``cuda``, and this reading keeps the real one
        (and tells a broken file, InvalidMediaError, from a CUDA device that cannot be opened,
        BackendUnavailableError).
        """
        if not self.use_hwaccel:
            return open_container(source)
        if self.plain_metadata is None:
            with open_container(source) as media:
                self.plain_metadata = container_metadata(media.container)
        av = import_av()
        from av.codec.hwaccel import HWAccel

        hwaccel = HWAccel(
            device_type="cuda",
            device=str(self.device_index),
            allow_software_fallback=True,  # software frames are detected and reported
            is_hw_owned=True,  # frames stay in GPU memory
        )
        try:
            return open_container(source, hwaccel=hwaccel)
        except InvalidMediaError as exc:
            raise BackendUnavailableError(
                f"{source.name}: cannot create the CUDA device context for NVDEC on "
                f"cuda:{self.device_index}: {exc.__cause__ or exc}"
            ) from exc
        except av.FFmpegError as exc:  # pragma: no cover - open_container wraps these
            raise BackendUnavailableError(
                f"cannot create the CUDA device context for NVDEC on cuda:{self.device_index}: {exc}"
            ) from exc

    def _describe(self, stream: Any) -> str:
        cc = stream.codec_context
        parts = [f"codec {cc.name}"]
        profile = getattr(cc, "profile", None)
        if profile:
            parts.append(f"profile {profile}")
        meta = self.plain_metadata.streams[stream.index] if self.plain_metadata is not None else None
        if isinstance(meta, VideoStreamMetadata):
            if meta.pixel_format:
                parts.append(f"pixel format {meta.pixel_format}")
            if meta.width and meta.height:
                parts.append(f"{meta.width}x{meta.height}")
        return ", ".join(parts)

    def configure(self, stream: Any) -> None:
        """Decide between NVDEC and a CPU fallback for this stream (again after a reopen)."""
        self.policy.codec_description = self._describe(stream)
        self._stream_index = stream.index
        if self.use_hwaccel and not stream.codec_context.is_hwaccel:
            self.policy.fall_back(
                f"FFmpeg has no NVDEC decoder for codec {stream.codec_context.name}"
            )
            self.use_hwaccel = False
        if not self.use_hwaccel:
            self.on_gpu = False
            self._cpu.configure(stream)  # CPU decoding: FFmpeg's frame threads
            self.threaded = self._cpu.threaded
            return
        self.on_gpu = True
        # NVDEC decodes whole frames on the GPU: one FFmpeg thread (no frame threads, which
        # would hold more surfaces in flight).
        stream.codec_context.thread_count = 1

    def probe(self, cursor: DecodeCursor) -> None:
        """Decode the first frame: a software frame means that NVDEC refused the stream; then
        decode on the CPU from a plain container (or refuse, per the policy)."""
        if not self.on_gpu:
            return
        frame = cursor.first_frame()
        if frame is None:
            return  # nothing decodes: the engine reports that where it matters
        if frame.format.name == "cuda":
            sw = frame.sw_format.name if frame.sw_format is not None else ""
            if sw in _LAYOUTS:
                self.layout = (sw, *_LAYOUTS[sw])
            self.policy.decoded_on_gpu()
            return
        self.policy.fall_back(
            "the GPU's NVDEC does not support this stream (FFmpeg decoded it on the CPU)"
        )
        self.use_hwaccel = False
        cursor.close()
        cursor.open()

    def cpu_pixel_format(self, stream_index: int) -> str | None:
        """The pixel format the CPU decoder gives the stream (the header's, read without
        hardware decoding; else the one matching the GPU layout)."""
        meta = self.plain_metadata.streams[stream_index] if self.plain_metadata else None
        if isinstance(meta, VideoStreamMetadata) and meta.pixel_format and meta.pixel_format != "cuda":
            return meta.pixel_format
        return _CPU_PIXEL_FORMAT.get(self.layout[0]) if self.layout else None

    def first_frame_info(self, frame: Any) -> FirstFrameInfo:
        info = first_frame_info(frame)
        if info.pixel_format == "cuda":
            info = dataclasses.replace(info, pixel_format=self.cpu_pixel_format(self._stream_index))
        return info

    def fix_metadata(self, container_meta: ContainerMetadata, stream_meta: VideoStreamMetadata) -> None:
        """PyAV reports hardware-decoded streams' pixel format as ``cuda``: use the header's."""
        if self.plain_metadata is None:
            return
        for mine, plain in zip(container_meta.streams, self.plain_metadata.streams):
            if isinstance(mine, VideoStreamMetadata) and mine.pixel_format == "cuda":
                if mine is stream_meta:
                    mine.pixel_format = self.cpu_pixel_format(mine.stream_index)
                else:
                    mine.pixel_format = getattr(plain, "pixel_format", None)

    def output_stage(self, coded_size: tuple[int, int], timing: FrameTiming, fmt=None):
        # fmt is always None here: the nvdec backend declares no native transforms or float
        # output (the facade applies them on the device).
        if not self.on_gpu:  # decoded on the CPU (fallback): swscale, then upload
            return CpuRGBOutput(coded_size, timing, device=self.device)
        return NVDECOutput(coded_size, timing, self.device, self.policy)



class NVDECVideoReader(FFmpegVideoReader):
    """A video stream decoded by NVDEC; frames come back as CUDA tensors. The ffmpeg backend's
    reader with the :class:`NVDECSetup`.

    Args:
        source: the source to open.
        stream_index: the video stream (None: FFmpeg's best).
        seek_mode: ``"exact"`` or ``"approximate"`` (as the ffmpeg backend).
        num_threads: FFmpeg decoding threads, used only if decoding falls back to the CPU.
        device_index: the CUDA device.
        allow_cpu_fallback: decode on the CPU what NVDEC cannot (and report it in
            :attr:`cpu_fallback`); False raises :class:`UnsupportedRequestError` instead.

    Attributes:
        cpu_fallback (CpuFallbackStatus): whether frames are decoded on the CPU, and why.
        device (torch.device): where frames are returned.

    Raises:
        UnsupportedRequestError: NVDEC cannot decode the stream and ``allow_cpu_fallback`` is
            False (the message names the codec and the reason).
        BackendUnavailableError: the CUDA device context for NVDEC cannot be created.
        InvalidMediaError, StreamNotFoundError: as the ffmpeg backend.
    """

    fills_positions = False  # frames live in a GPU batch until the output stage finishes

    def __init__(self, source: Source, *, stream_index: int | None, seek_mode: str,
                 num_threads: int, device_index: int, allow_cpu_fallback: bool = False):
        self._policy = FallbackPolicy(source.name, allow_cpu_fallback)
        setup = NVDECSetup(source, device_index, num_threads, self._policy)
        self.device = setup.device
        super().__init__(source, stream_index=stream_index, seek_mode=seek_mode,
                         num_threads=num_threads, setup=setup)

    @property
    def cpu_fallback(self) -> CpuFallbackStatus:
        return self._policy.status

    def close(self) -> None:
        """Wait for pending GPU copies, then close the container; idempotent."""
        output = getattr(self, "_output", None)
        if isinstance(output, NVDECOutput):
            output.release()
        super().close()


class NVDECBackend:
    """NVDEC through PyAV's FFmpeg on CUDA devices, RGB conversion on the GPU (priority 60).

    ``priority`` 60 puts it ahead of torchcodec (50) for ``device="cuda"`` until the GPU
    benchmark (``benchmarks/gpu_decode.py``, docs/gpu.md) has measured which is faster; it does
    not decode on the CPU device, so the ffmpeg backend (100) is unaffected.
    """

    name = "nvdec"
    priority = 60
    install_hint = (
        "an NVIDIA GPU and driver, a CUDA build of torch, and PyAV's wheel (pip install av), "
        "whose FFmpeg includes NVDEC"
    )
    capabilities = Capabilities(
        devices=("cuda",),
        media_types=("video",),
        codecs=None,
        # The bound against FFmpeg's rgb24: every value within 2, at least 95 % within
        # 1 (so a mean of at most 1.05); on the CPU the conversion is bit-exact on the test
        # files, and odd-sized frames may differ in their last row/column (see module doc).
        tolerance={"cuda": Tolerance(max_abs=2, mean_abs=1.05)},
        notes="NVDEC via PyAV (FFmpeg hwaccel), swscale-exact colour conversion in torch on the GPU",
        cpu_fallback=True,
        ffmpeg_based=True,
    )
    # Stated once, in the capabilities; the class attributes mirror them for the protocol.
    devices = capabilities.devices
    media_types = capabilities.media_types

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when NVDEC can be used here; otherwise the reason (see
        :func:`cuda_unavailable_reason`). Never raises."""
        try:
            return cuda_unavailable_reason()
        except Exception as exc:  # pragma: no cover - the check itself must not break listing
            return f"the CUDA availability check failed: {type(exc).__name__}: {exc}"

    def open_video(
        self,
        source: Source,
        *,
        stream_index: int | None,
        seek_mode: str,
        num_threads: int,
        device: str = "cuda",
        allow_cpu_fallback: bool = False,
    ) -> NVDECVideoReader:
        """Open the video stream of ``source`` for decoding on ``device`` (``"cuda"``,
        ``"cuda:N"``).

        Args:
            allow_cpu_fallback: decode on the CPU what NVDEC cannot, reporting it in
                ``reader.cpu_fallback``; the decoder facade passes True only when it chose this
                backend automatically.

        Raises:
            BackendUnavailableError: no usable CUDA device / NVDEC here (the reason says why).
            ValueError: ``device`` is not a CUDA device of this machine.
            UnsupportedRequestError: NVDEC cannot decode the stream and no fallback is allowed.
            InvalidMediaError, StreamNotFoundError: as the ffmpeg backend.
        """
        reason = self.unavailable_reason()
        if reason is not None:
            raise BackendUnavailableError(f"backend 'nvdec' is unavailable: {reason}")
        index = _device_index(device)
        return NVDECVideoReader(
            source,
            stream_index=stream_index,
            seek_mode=seek_mode,
            num_threads=num_threads,
            device_index=index,
            allow_cpu_fallback=allow_cpu_fallback,
        )

    def open_audio(self, source: Source, *, stream_index, sample_rate, num_channels):
        """nvdec decodes video only.

        Raises:
            UnsupportedRequestError: always.
        """
        raise UnsupportedRequestError("the nvdec backend decodes video only; use device='cpu' for audio")
