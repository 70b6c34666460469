"""The nvdec backend (NVDEC through PyAV, colour conversion on the GPU).

Without a CUDA device (CI), these tests check what can be checked there: the backend is listed
as unavailable with the reason, choosing it gives a clear error, the CPU-fallback plumbing of the
decoder facade, the reader's refusal of a codec NVDEC cannot decode, and the GPU-batch
conversion code run on CPU tensors (FFmpeg's NV12/P010 frames dressed as CUDA frames) against
FFmpeg's own rgb24.

With a CUDA device, the tests marked ``gpu`` run the conformance kit with ``device="cuda"`` and
compare NVDEC's raw planes with the CPU decoder's, RGB frames with FFmpeg's within the issue's
bound (every value within 2, at least 95 % within 1), random access with B-frames, HEVC (8 and
10 bits), AV1 and VP9, and the CPU-fallback report. ``pytest -m gpu`` runs only those; see
docs/gpu.md.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import types
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import mediadecode as md
from mediadecode import registry
from mediadecode.backends import nvdec
from mediadecode.backends.nvdec import (
    FallbackPolicy,
    NVDECBackend,
    NVDECOutput,
    NVDECVideoReader,
    cuda_unavailable_reason,
)
from mediadecode.engine import FrameTiming
from mediadecode.errors import (
    BackendUnavailableError,
    InvalidMediaError,
    UnsupportedRequestError,
)
from mediadecode.fallback import CpuFallbackStatus
from mediadecode.registry import BackendSpec
from mediadecode.sources import as_source

from conftest import X264_BFRAMES, encode_video, media_path, pyav_reference

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import _nvdec_fake_backend as fake  # noqa: E402

NO_GPU_REASON = cuda_unavailable_reason()
HAVE_GPU = NO_GPU_REASON is None
# On a GPU machine MEDIADECODE_REQUIRE_GPU=1 turns the skips into failures, so that a GPU run
# cannot pass by skipping (docs/gpu.md).
REQUIRE_GPU = os.environ.get("MEDIADECODE_REQUIRE_GPU") == "1"
if REQUIRE_GPU and not HAVE_GPU:
    needs_gpu = pytest.mark.usefixtures("_fail_without_gpu")
else:
    # GPU tests skip with the reason, which starts "no CUDA device" on a machine without one.
    needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason=str(NO_GPU_REASON))


@pytest.fixture
def _fail_without_gpu():
    pytest.fail(f"MEDIADECODE_REQUIRE_GPU=1 but NVDEC is unavailable: {NO_GPU_REASON}")
cpu_only = pytest.mark.skipif(HAVE_GPU, reason="checks the behaviour without a CUDA device")


@pytest.fixture(autouse=True)
def _no_outside_choice(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDIADECODE_BACKEND", raising=False)
    monkeypatch.setenv("MEDIADECODE_CONFIG", str(tmp_path / "no-such-config.toml"))
    registry._reset()
    yield
    registry._reset()


def issue_bound(actual: torch.Tensor, expected: np.ndarray, what: str) -> None:
    """Every value within 2 of FFmpeg's rgb24, at least 95 % within 1 (NHWC tensors)."""
    got = actual.detach().cpu().numpy()
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    worst = int(diff.max()) if diff.size else 0
    within1 = float((diff <= 1).mean()) if diff.size else 1.0
    assert worst <= 2 and within1 >= 0.95, f"{what}: max {worst}, {within1:.2%} within 1"


@pytest.fixture(scope="session")
def ffv1_mkv(generated_video_dir):
    """FFV1 (no NVDEC decoder exists for it), 8-bit 4:2:0, 12 frames."""
    return encode_video(generated_video_dir / "ffv1.mkv", codec="ffv1", width=96, height=64,
                        pix_fmt="yuv420p", num_frames=12)


# -- without a GPU: listing and selection ----------------------------------------------------


def test_registered_with_its_capabilities():
    row = {b.name: b for b in md.list_backends()}["nvdec"]
    assert row.devices == ("cuda",)
    assert row.media_types == ("video",)
    assert row.target == "mediadecode.backends.nvdec:NVDECBackend"
    assert "nvdec" in registry.BUILTIN_SPECS


@cpu_only
def test_unavailable_without_cuda_and_says_why():
    row = {b.name: b for b in md.list_backends()}["nvdec"]
    assert not row.available
    assert "CUDA" in row.reason


@cpu_only
def test_choosing_nvdec_without_cuda_is_a_clear_error():
    path = media_path("nasa_13013.mp4")
    with pytest.raises(BackendUnavailableError, match="CUDA"):
        md.VideoDecoder(path, device="cuda", backend="nvdec")
    with pytest.raises(BackendUnavailableError, match="CUDA"):
        with md.use_backend("nvdec"):
            md.VideoDecoder(path, device="cuda:0")
    with pytest.raises(BackendUnavailableError, match="CUDA"):
        NVDECBackend().open_video(
            as_source(path), stream_index=None, seek_mode="exact", num_threads=1, device="cuda"
        )


def test_nvdec_decodes_video_on_cuda_only():
    path = media_path("nasa_13013.mp4")
    if HAVE_GPU:
        with pytest.raises(UnsupportedRequestError):
            md.VideoDecoder(path, device="cpu", backend="nvdec")
        with pytest.raises(UnsupportedRequestError):
            md.AudioDecoder(path, backend="nvdec")
    else:
        with pytest.raises(BackendUnavailableError):  # unavailability is reported first
            md.VideoDecoder(path, device="cpu", backend="nvdec")
    with pytest.raises(UnsupportedRequestError, match="video only"):
        NVDECBackend().open_audio(as_source(path), stream_index=None, sample_rate=None,
                                  num_channels=None)


def test_availability_check_never_raises(monkeypatch):
    def broken():
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(torch.cuda, "is_available", broken)
    reason = NVDECBackend.unavailable_reason()
    assert isinstance(reason, str) and "CUDA" in reason and "driver exploded" in reason


@cpu_only
def test_reader_tells_a_missing_device_from_a_broken_file(tmp_path):
    # The file opens without hardware decoding, so the failure is the CUDA device's.
    path = media_path("nasa_13013.mp4")
    with pytest.raises(BackendUnavailableError, match="CUDA device context"):
        NVDECVideoReader(as_source(path), stream_index=None, seek_mode="exact", num_threads=1,
                         device_index=0)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video at all" * 100)
    with pytest.raises(InvalidMediaError) as info:
        NVDECVideoReader(as_source(garbage), stream_index=None, seek_mode="exact",
                         num_threads=1, device_index=0)
    assert not isinstance(info.value, BackendUnavailableError)


# -- CPU fallback: the status object and the facade -----------------------------------------


def test_cpu_fallback_status_reads_like_torchcodecs():
    unknown = CpuFallbackStatus(backend="nvdec")
    assert not unknown and "Unknown" in str(unknown)
    fine = CpuFallbackStatus(status_known=True, backend="nvdec")
    assert not fine and str(fine) == "[nvdec] Fallback status: No fallback required"
    fell = CpuFallbackStatus(status_known=True, is_fallback=True, backend="nvdec",
                             reason="FFmpeg has no NVDEC decoder for codec ffv1")
    assert fell and str(fell).endswith("Falling back due to: FFmpeg has no NVDEC decoder for codec ffv1")
    na = CpuFallbackStatus.not_applicable("ffmpeg")
    assert not na and na.status_known and str(na) == "[CPU] Fallback status: No fallback required"


def test_decoder_cpu_fallback_is_not_applicable_on_cpu_backends():
    decoder = md.VideoDecoder(media_path("nasa_13013.mp4"), backend="ffmpeg")
    status = decoder.cpu_fallback
    assert not status and status.status_known and not status.applicable
    assert status.backend == "ffmpeg"


def test_decoder_cpu_fallback_passes_the_readers_status_through():
    decoder = md.VideoDecoder(media_path("nasa_13013.mp4"), backend="ffmpeg")
    reported = CpuFallbackStatus(status_known=True, is_fallback=True, backend="x", reason="why")
    decoder._r.cpu_fallback = reported
    assert decoder.cpu_fallback is reported


@pytest.fixture
def recording_backend(monkeypatch):
    monkeypatch.setitem(
        registry.BUILTIN_SPECS, "fbrecord",
        BackendSpec("fbrecord", "_nvdec_fake_backend:FallbackRecordingBackend"),
    )
    registry._reset()
    fake.SEEN.clear()
    yield fake.SEEN
    fake.SEEN.clear()


def test_fallback_is_allowed_only_for_an_automatic_choice(recording_backend):
    path = media_path("nasa_13013.mp4")
    auto = md.VideoDecoder(path)
    assert auto.backend == "fbrecord" and recording_backend == [True]
    md.VideoDecoder(path, backend="fbrecord")
    with md.use_backend("fbrecord"):
        md.VideoDecoder(path)
    assert recording_backend == [True, False, False]
    # A decoder reopened after pickling names its backend, but keeps the first choice's
    # permission; one chosen explicitly keeps the refusal.
    revived = pickle.loads(pickle.dumps(auto))
    len(revived)
    explicit = pickle.loads(pickle.dumps(md.VideoDecoder(path, backend="fbrecord")))
    len(explicit)
    assert recording_backend == [True, False, False, True, False, False]


def test_backends_without_the_keyword_do_not_get_it():
    # The ffmpeg backend's open_video has no allow_cpu_fallback parameter and still opens.
    assert md.VideoDecoder(media_path("nasa_13013.mp4"), backend="ffmpeg").backend == "ffmpeg"


# -- a codec NVDEC cannot decode (FFV1): refused, or decoded on the CPU and reported ----------


def test_explicit_nvdec_refuses_a_codec_without_nvdec(ffv1_mkv):
    # FFmpeg has no NVDEC decoder for FFV1, so no CUDA device is touched: this runs anywhere.
    with pytest.raises(UnsupportedRequestError, match="ffv1") as info:
        NVDECVideoReader(as_source(ffv1_mkv.path), stream_index=None, seek_mode="exact",
                         num_threads=1, device_index=0, allow_cpu_fallback=False)
    assert "cpu_fallback" in str(info.value)


@pytest.mark.parametrize("kind", ["path", "bytes", "file"])
def test_automatic_nvdec_decodes_it_on_the_cpu_and_reports_it(ffv1_mkv, kind):
    source = {"path": lambda p: p, "bytes": lambda p: p.read_bytes(),
              "file": lambda p: open(p, "rb")}[kind](ffv1_mkv.path)
    reader = NVDECVideoReader(as_source(source), stream_index=None, seek_mode="exact",
                              num_threads=1, device_index=0, allow_cpu_fallback=True)
    try:
        assert reader.cpu_fallback and "ffv1" in str(reader.cpu_fallback)
        assert reader.metadata.pixel_format == "yuv420p"
        assert reader.metadata.num_frames == ffv1_mkv.num_frames
        if not HAVE_GPU:
            reader.device = torch.device("cpu")  # where the frames would be uploaded
            reader._output.device = reader.device
        ref = pyav_reference(ffv1_mkv.path)
        data, pts, _ = reader.get_frames_at([0, 5, 11])
        assert data.device == reader.device
        assert np.array_equal(data.cpu().numpy(), ref.frames[[0, 5, 11]])
        assert np.allclose(pts.numpy(), ref.times[[0, 5, 11]])
    finally:
        reader.close()
        if kind == "file":
            source.close()


# -- the GPU-batch conversion, run on CPU tensors ----------------------------------------------


class FakeCudaFrame:
    """FFmpeg's NV12/P010 software frame dressed as a CUDA frame (format ``cuda``,
    ``sw_format``): its planes export through DLPack as a GPU frame's do."""

    def __init__(self, frame: av.VideoFrame, sw_format: str, colorspace=None, color_range=None):
        self._sw = frame.reformat(format=sw_format)
        self.format = types.SimpleNamespace(name="cuda")
        self.sw_format = self._sw.format
        self.planes = self._sw.planes
        self.width, self.height = frame.width, frame.height
        self.colorspace = frame.colorspace if colorspace is None else colorspace
        self.color_range = frame.color_range if color_range is None else color_range
        self.pts, self.duration = frame.pts, frame.duration


def cpu_reader(width: int, height: int) -> NVDECOutput:
    """The nvdec backend's GPU output stage, with the CPU as its device."""
    policy = FallbackPolicy("fake", allow=False)
    policy.decoded_on_gpu()
    timing = FrameTiming(Fraction(1, 1000), None, None)
    return NVDECOutput((width, height), timing, torch.device("cpu"), policy)


def run_batch(reader, frames) -> torch.Tensor:
    batch = reader.new_batch(len(frames))
    writer = reader.writer()
    for slot, frame in enumerate(frames):
        if frame.pts is None:  # a reformatted frame keeps no pts
            frame.pts = slot
        writer.write(frame, batch, slot)
    data, pts, dur = reader.finish(batch)
    assert data.dtype == torch.uint8 and pts.dtype == torch.float64 and dur.dtype == torch.float64
    return data


@pytest.mark.parametrize("name", ["bt601_full_range.mp4", "bt601_limited_range.mp4",
                                  "bt709_full_range.mp4", "h265_video.mp4"])
def test_gpu_batch_path_matches_ffmpeg_on_cpu_tensors(name):
    with av.open(str(media_path(name))) as container:
        frames = [f for _, f in zip(range(5), container.decode(video=0))]
    reader = cpu_reader(frames[0].width, frames[0].height)
    data = run_batch(reader, [FakeCudaFrame(f, "nv12") for f in frames])
    expected = np.stack([f.to_ndarray(format="rgb24") for f in frames])
    issue_bound(data, expected, name)


def test_gpu_batch_path_p010():
    rgb = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frames = [
        av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            format="yuv420p10le", dst_colorspace=cs, dst_color_range=rng)
        for cs, rng in ((1, 1), (1, 2), (9, 1))
    ]
    data = run_batch(cpu_reader(64, 48), [FakeCudaFrame(f, "p010le") for f in frames])
    issue_bound(data, np.stack([f.to_ndarray(format="rgb24") for f in frames]), "p010")


def test_gpu_batch_path_groups_tags_and_chunks(monkeypatch):
    # One request mixing colour tags, converted in chunks of one frame: each frame still gets
    # its own matrix and range.
    with av.open(str(media_path("bt601_limited_range.mp4"))) as container:
        frame = next(container.decode(video=0))
    tags = [(6, 1), (1, 1), (1, 1), (6, 2), (2, 1)]
    fakes = [FakeCudaFrame(frame, "nv12", cs, rng) for cs, rng in tags]
    expected = []
    for cs, rng in tags:
        tagged = frame.reformat(format="yuv420p")
        tagged.colorspace, tagged.color_range = cs, rng
        expected.append(tagged.to_ndarray(format="rgb24"))
    expected = np.stack(expected)
    issue_bound(run_batch(cpu_reader(320, 240), fakes), expected, "mixed tags")
    monkeypatch.setattr(nvdec, "_PIXELS_PER_CHUNK", 1)
    issue_bound(run_batch(cpu_reader(320, 240), fakes), expected, "chunks of one frame")


def test_gpu_batch_path_hands_odd_frames_to_ffmpeg():
    # A frame of another size (a mid-stream resolution change) and a software frame are
    # converted by FFmpeg, scaled to the first size, as the ffmpeg backend does.
    with av.open(str(media_path("bt709_full_range.mp4"))) as container:
        frames = [f for _, f in zip(range(2), container.decode(video=0))]
    small = frames[1].reformat(width=640, height=360)
    reader = cpu_reader(1280, 720)
    reader.policy.allow = True
    data = run_batch(reader, [FakeCudaFrame(frames[0], "nv12"), small, FakeCudaFrame(frames[1], "nv12")])
    assert reader.policy.status  # the software frame was reported
    expected = np.stack([f.to_ndarray(format="rgb24") for f in frames])
    issue_bound(data[[0, 2]], expected, "NVDEC frames around it")
    scaled = small.reformat(width=1280, height=720, format="rgb24", threads=1).to_ndarray()
    assert np.array_equal(data[1].numpy(), scaled)


def test_gpu_batch_path_refuses_a_software_frame_when_asked_for_nvdec():
    with av.open(str(media_path("nasa_13013.mp4"))) as container:
        frame = next(container.decode(video=0))
    reader = cpu_reader(frame.width, frame.height)
    batch = reader.new_batch(1)
    with pytest.raises(UnsupportedRequestError, match="NVDEC"):
        reader.writer().write(frame, batch, 0)


def test_gpu_batch_path_odd_sizes_repeat_the_last_chroma_sample():
    # PyAV's DLPack export rounds H/2 and W/2 down: the last chroma row/column is repeated,
    # which only touches the last rows/columns of the picture.
    rgb = av.VideoFrame.from_ndarray(
        np.random.default_rng(5).integers(0, 256, (45, 67, 3), dtype=np.uint8), format="rgb24")
    frame = rgb.reformat(format="yuv420p")
    data = run_batch(cpu_reader(67, 45), [FakeCudaFrame(frame, "nv12")])
    expected = frame.to_ndarray(format="rgb24")
    issue_bound(data[0, :-3, :-3], expected[:-3, :-3], "all but the last 3 rows/columns")


def test_empty_request_on_the_reader():
    reader = cpu_reader(64, 48)
    data, pts, dur = reader.finish(reader.new_batch(0))
    assert data.shape == (0, 48, 64, 3) and data.device == reader.device and len(pts) == 0


# -- the benchmark script ------------------------------------------------------------------------


def test_benchmark_script_parses_arguments_without_a_gpu():
    script = REPO / "benchmarks" / "gpu_decode.py"
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "frames/s" in done.stdout and "--write-doc" in done.stdout


@cpu_only
def test_benchmark_script_says_why_it_cannot_run(tmp_path):
    script = REPO / "benchmarks" / "gpu_decode.py"
    done = subprocess.run([sys.executable, str(script), "--work-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "CUDA" in done.stderr


# ==============================================================================================
# On a GPU
# ==============================================================================================

try:  # the conformance kit, when this checkout has it
    from mediadecode.testing import BackendConformance
except Exception:  # pragma: no cover - a checkout without the kit
    BackendConformance = None

if BackendConformance is not None:

    @pytest.mark.gpu
    class TestNVDECConformance(BackendConformance):
        """The conformance kit with ``device="cuda"``; skipped with the reason without CUDA."""

        backend_name = "nvdec"
        device = "cuda"
        skip_if_unavailable = not REQUIRE_GPU


NVDEC_FILES = [
    "bt601_full_range.mp4", "bt601_limited_range.mp4", "bt709_full_range.mp4",  # H.264
    "nasa_13013.mp4",  # H.264, several streams
    "h265_video.mp4",  # HEVC
    "av1_video.mkv",  # AV1
    "testsrc2_vp9.webm",  # VP9
    "video_90.mov",  # display-matrix rotation
]


def nvdec_frames(path, limit=None):
    """(CUDA frames, their Y and UV planes on the CPU) decoded by NVDEC through PyAV."""
    from av.codec.hwaccel import HWAccel

    hw = HWAccel(device_type="cuda", device="0", allow_software_fallback=True, is_hw_owned=True)
    planes = []
    with av.open(str(path), hwaccel=hw) as container:
        for frame in container.decode(video=0):
            if frame.format.name != "cuda":
                pytest.skip(f"this GPU's NVDEC does not decode {Path(path).name} "
                            f"({container.streams.video[0].codec_context.name})")
            torch.cuda.synchronize()
            y = torch.from_dlpack(frame.planes[0].__dlpack__()).cpu()
            uv = torch.from_dlpack(frame.planes[1].__dlpack__()).cpu()
            planes.append((frame.sw_format.name, y, uv))
            if limit is not None and len(planes) >= limit:
                break
    return planes


@pytest.mark.parametrize("name", NVDEC_FILES)
@pytest.mark.gpu
@needs_gpu
def test_gpu_raw_planes_equal_the_cpu_decoders(name):
    path = media_path(name)
    gpu_planes = nvdec_frames(path)
    with av.open(str(path)) as container:
        cpu_frames = list(container.decode(video=0))
    assert len(gpu_planes) == len(cpu_frames)
    for k, ((sw, y, uv), frame) in enumerate(zip(gpu_planes, cpu_frames)):
        assert sw == "nv12", f"{name}: NVDEC gave {sw}"
        py, pu, pv = (np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width]
                      for p in frame.planes)
        assert np.array_equal(y.numpy(), py), f"{name} frame {k}: Y differs"
        h2, w2 = uv.shape[:2]
        assert np.array_equal(uv[..., 0].numpy(), pu[:h2, :w2]), f"{name} frame {k}: U differs"
        assert np.array_equal(uv[..., 1].numpy(), pv[:h2, :w2]), f"{name} frame {k}: V differs"


@pytest.mark.parametrize("name", NVDEC_FILES)
@pytest.mark.gpu
@needs_gpu
def test_gpu_every_frame_matches_ffmpeg(name):
    path = media_path(name)
    nvdec_frames(path, limit=1)  # skips when this GPU cannot decode the codec
    ref = pyav_reference(path)
    decoder = md.VideoDecoder(path, device="cuda", backend="nvdec", dimension_order="NHWC")
    assert not decoder.cpu_fallback and decoder.cpu_fallback.status_known
    batch = decoder.get_frames_in_range(0, len(decoder))
    assert batch.data.device.type == "cuda"
    issue_bound(batch.data, ref.frames, name)
    assert np.allclose(batch.pts_seconds.numpy(), ref.times)


# NVDEC's smallest pictures: 48x16 for H.264, 144x144 for HEVC, 128x128 for VP9 and AV1; the
# generated clips are larger than that.
GPU_CLIPS = {
    "h264_bframes_320.mp4": ("libx264", "yuv420p", X264_BFRAMES),
    "h264_bframes_320.mkv": ("libx264", "yuv420p", X264_BFRAMES),
    "hevc_bframes_320.mp4": ("libx265", "yuv420p",
                             {"x265-params": "log-level=error:keyint=12:min-keyint=12:bframes=3:scenecut=0"}),
    "vp9_320.webm": ("libvpx-vp9", "yuv420p",
                     {"g": "12", "deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}),
}


@pytest.fixture(scope="session")
def gpu_clip(generated_video_dir):
    made = {}

    def get(name):
        if name not in made:
            codec, pix_fmt, options = GPU_CLIPS[name]
            made[name] = encode_video(generated_video_dir / name, codec=codec, width=320,
                                      height=240, pix_fmt=pix_fmt, num_frames=48, options=options)
        return made[name]

    return get


@pytest.mark.parametrize("seek_mode", ["exact", "approximate"])
@pytest.mark.parametrize("name", sorted(GPU_CLIPS))
@pytest.mark.gpu
@needs_gpu
def test_gpu_random_access_with_b_frames(name, seek_mode, gpu_clip):
    made = gpu_clip(name)
    nvdec_frames(made.path, limit=1)  # skips when this GPU cannot decode the codec
    ref = pyav_reference(made.path)
    decoder = md.VideoDecoder(made.path, device="cuda", backend="nvdec", seek_mode=seek_mode,
                              dimension_order="NHWC")
    rng = np.random.default_rng(7)
    for _ in range(4):
        indices = rng.integers(0, len(ref), size=10).tolist()
        batch = decoder.get_frames_at(indices)
        issue_bound(batch.data, ref.frames[indices], f"{name} {indices}")
    for i in (len(ref) - 1, 0, len(ref) // 2):
        issue_bound(decoder[i][None], ref.frames[[i]], f"{name} [{i}]")


@pytest.mark.parametrize("name", ["h265_video.mp4", "av1_video.mkv", "testsrc2_vp9.webm"])
@pytest.mark.gpu
@needs_gpu
def test_gpu_random_access_hevc_av1_vp9(name):
    path = media_path(name)
    nvdec_frames(path, limit=1)
    ref = pyav_reference(path)
    decoder = md.VideoDecoder(path, device="cuda", backend="nvdec", dimension_order="NHWC")
    indices = np.random.default_rng(11).permutation(len(ref))[:10].tolist()
    issue_bound(decoder.get_frames_at(indices).data, ref.frames[indices], name)
    times = sorted(float(t) for t in ref.times[indices])
    played = decoder.get_frames_played_at(times)
    issue_bound(played.data, ref.frames[sorted(indices)], f"{name} played_at")


@pytest.mark.gpu
@needs_gpu
def test_gpu_ten_bit_hevc(generated_video_dir):
    made = encode_video(generated_video_dir / "hevc10.mkv", codec="libx265", width=320,
                        height=240, pix_fmt="yuv420p10le", num_frames=12,
                        options={"x265-params": "log-level=error:keyint=6"})
    gpu_planes = nvdec_frames(made.path, limit=1)
    assert gpu_planes[0][0] in ("p010le", "p016le")
    ref = pyav_reference(made.path)
    decoder = md.VideoDecoder(made.path, device="cuda", backend="nvdec", dimension_order="NHWC")
    assert decoder.metadata.pixel_format == "yuv420p10le"
    issue_bound(decoder.get_frames_at(list(range(len(ref)))).data, ref.frames, "HEVC 10-bit")


@pytest.mark.gpu
@needs_gpu
def test_gpu_odd_sized_vp9(generated_video_dir):
    made = encode_video(generated_video_dir / "odd_vp9.webm", codec="libvpx-vp9", width=259,
                        height=147, pix_fmt="yuv420p", num_frames=8,
                        options={"deadline": "realtime", "cpu-used": "8"})
    nvdec_frames(made.path, limit=1)
    ref = pyav_reference(made.path)
    data = md.VideoDecoder(made.path, device="cuda", backend="nvdec",
                           dimension_order="NHWC")[0:len(ref)]
    # the last chroma row/column is repeated (PyAV's DLPack export rounds H/2, W/2 down)
    issue_bound(data[:, :-3, :-3], ref.frames[:, :-3, :-3], "odd-sized VP9 interior")


@pytest.mark.gpu
@needs_gpu
def test_gpu_fallback_is_reported_or_refused(ffv1_mkv):
    with pytest.raises(UnsupportedRequestError, match="ffv1"):
        md.VideoDecoder(ffv1_mkv.path, device="cuda", backend="nvdec")
    reader = NVDECBackend().open_video(as_source(ffv1_mkv.path), stream_index=None,
                                       seek_mode="exact", num_threads=0, device="cuda",
                                       allow_cpu_fallback=True)
    assert reader.cpu_fallback and "ffv1" in str(reader.cpu_fallback)
    data, _, _ = reader.get_frames_at(list(range(ffv1_mkv.num_frames)))
    assert data.device.type == "cuda"
    assert np.array_equal(data.cpu().numpy(), pyav_reference(ffv1_mkv.path).frames)
    reader.close()


@pytest.mark.gpu
@needs_gpu
def test_gpu_devices_and_empty_requests():
    path = media_path("nasa_13013.mp4")
    decoder = md.VideoDecoder(path, device="cuda:0", backend="nvdec")
    assert decoder[0].device == torch.device("cuda", 0)
    empty = decoder.get_frames_at([])
    assert empty.data.shape[0] == 0 and empty.data.device.type == "cuda"
    with pytest.raises(ValueError, match="CUDA device"):
        md.VideoDecoder(path, device=f"cuda:{torch.cuda.device_count()}", backend="nvdec")
