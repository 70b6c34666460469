"""Decoder-side transforms (Resize, CenterCrop, RandomCrop), float32 / "auto" output and
10/12-bit, 4:4:4 and odd-size sources, against torchcodec 0.17's own output and FFmpeg's
(the ffmpeg CLI's filter graph, which torchcodec's CPU conversion is)."""

from __future__ import annotations

import pickle
import shutil
import subprocess

import numpy as np
import pytest
import torch

import mediadecode as md
from mediadecode import registry
from mediadecode.transforms import CenterCrop, RandomCrop, Resize

from conftest import media_path

FFMPEG = shutil.which("ffmpeg")


def _torchcodec():
    reason = registry.unavailable_reason("torchcodec")
    if reason is not None:
        pytest.skip(f"torchcodec cannot load here: {reason}")
    import torchcodec.decoders
    import torchcodec.transforms

    return torchcodec


def _tc_transforms(tc, ours):
    out = []
    for t in ours:
        cls = getattr(tc.transforms, type(t).__name__)
        out.append(cls(t.size))
    return out


# (name, ffmpeg CLI encoder arguments, size) -- tiny clips of each hard format.
HARD = [
    ("h264_high10.mp4", ["-c:v", "libx264", "-profile:v", "high10", "-pix_fmt", "yuv420p10le"], "66x38"),
    ("h264_444_10.mp4", ["-c:v", "libx264", "-profile:v", "high444", "-pix_fmt", "yuv444p10le"], "66x38"),
    ("h264_odd.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv444p"], "67x39"),
    ("hevc_main10_pq.mp4", ["-c:v", "libx265", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p10le",
                            "-color_trc", "smpte2084", "-color_primaries", "bt2020", "-colorspace", "bt2020nc"], "66x38"),
    ("hevc_444_12.mp4", ["-c:v", "libx265", "-x265-params", "log-level=error", "-pix_fmt", "yuv444p12le"], "64x36"),
    ("vp9_p2.webm", ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p10le"], "66x38"),
    ("vp9_p3_444_12.webm", ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv444p12le"], "66x38"),
    ("av1_444_10_hlg.mkv", ["-c:v", "libaom-av1", "-cpu-used", "8", "-pix_fmt", "yuv444p10le",
                            "-color_trc", "arib-std-b67"], "66x38"),
    ("mpeg2_odd.mkv", ["-c:v", "mpeg2video"], "67x39"),
    ("h264_720.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p"], "1280x720"),
]


@pytest.fixture(scope="session")
def hard_media(tmp_path_factory):
    if FFMPEG is None:
        pytest.skip("the ffmpeg CLI is not installed")
    folder = tmp_path_factory.mktemp("hard_media")
    made = {}
    for name, args, size in HARD:
        path = folder / name
        w, h = size.split("x")
        cmd = [FFMPEG, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=128x72:rate=25",
               "-t", "0.4", "-vf", f"scale={w}:{h}", *args, str(path)]
        if subprocess.run(cmd, capture_output=True).returncode == 0:
            made[name] = path
    return made


def _hard(hard_media, name):
    if name not in hard_media:
        pytest.skip(f"the ffmpeg CLI here has no encoder for {name}")
    return str(hard_media[name])


def ffmpeg_cli_frames(path, filters, pix_fmt="rgb24"):
    """Every frame through the ffmpeg CLI's filter graph (what torchcodec's CPU conversion runs)."""
    out = subprocess.run(
        [FFMPEG, "-loglevel", "error", "-i", str(path), "-vsync", "passthrough", "-vf", filters, "-f", "rawvideo",
         "-pix_fmt", pix_fmt, "-"], capture_output=True, check=True,
    ).stdout
    dtype = np.uint16 if pix_fmt == "rgb48le" else np.uint8
    return np.frombuffer(out, dtype)


TRANSFORM_SETS = {
    "resize": [Resize((30, 40))],
    "resize+center": [Resize((40, 60)), CenterCrop((32, 32))],
    "center": [CenterCrop((21, 33))],
    "center+resize": [CenterCrop((30, 50)), Resize((17, 23))],
}


@pytest.mark.parametrize("name", [h[0] for h in HARD])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("tset", list(TRANSFORM_SETS))
def test_transforms_equal_torchcodec(hard_media, name, dtype, tset):
    tc = _torchcodec()
    path = _hard(hard_media, name)
    ours_t = TRANSFORM_SETS[tset]
    theirs = tc.decoders.VideoDecoder(path, transforms=_tc_transforms(tc, ours_t), output_dtype=dtype)
    ours = md.VideoDecoder(path, transforms=ours_t, output_dtype=dtype, backend="ffmpeg")
    indices = [0, 3, 1, 3]
    a, b = ours.get_frames_at(indices).data, theirs.get_frames_at(indices).data
    assert a.dtype == b.dtype == dtype and a.shape == b.shape
    # torchcodec's filter graph path, run by another FFmpeg build: bit-identical
    assert torch.equal(a, b)
    assert ours.metadata.width == theirs.metadata.width and ours.metadata.height == theirs.metadata.height


@pytest.mark.parametrize("name", [h[0] for h in HARD])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, "auto"])
def test_plain_and_float_output_equal_torchcodec(hard_media, name, dtype):
    """No transforms: every hard format, uint8, float32 and "auto", through every access path."""
    tc = _torchcodec()
    path = _hard(hard_media, name)
    theirs = tc.decoders.VideoDecoder(path, output_dtype=dtype)
    ours = md.VideoDecoder(path, output_dtype=dtype, backend="ffmpeg")
    n = len(theirs)
    assert len(ours) == n
    b = theirs.get_frames_in_range(0, n).data
    assert torch.equal(ours.get_frames_in_range(0, n).data, b)
    assert torch.equal(torch.stack(list(ours)), b)
    assert torch.equal(ours[1:n:2], b[1:n:2])
    assert torch.equal(ours.get_frames_at([n - 1, 0, n - 1]).data, b[[n - 1, 0, n - 1]])
    times = [float(t) for t in theirs.get_frames_in_range(0, n).pts_seconds[[2, 0]]]
    assert torch.equal(ours.get_frames_played_at(times).data, theirs.get_frames_played_at(times).data)
    approx = md.VideoDecoder(path, output_dtype=dtype, backend="ffmpeg", seek_mode="approximate")
    assert torch.equal(approx[0], b[0])


def test_swscale_path_within_a_level_of_torchcodec(hard_media):
    """A lone Resize between widths that are multiples of 32 takes swscale (two passes), as in
    torchcodec; FFmpeg's versions differ in the bilinear RGB scaler's rounding (PyAV's wheel vs
    the system FFmpeg torchcodec links), so this path is held to a stated tolerance."""
    tc = _torchcodec()
    path = _hard(hard_media, "h264_720.mp4")
    a = md.VideoDecoder(path, transforms=[Resize((224, 224))]).get_frames_at([0, 5]).data.int()
    b = tc.decoders.VideoDecoder(path, transforms=[tc.transforms.Resize((224, 224))]).get_frames_at([0, 5]).data.int()
    assert a.shape == b.shape == (2, 3, 224, 224)
    assert (a - b).abs().max() <= 2 and (a - b).abs().float().mean() < 0.1


@pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg CLI is not installed")
@pytest.mark.parametrize("name", ["hevc_main10_pq.mp4", "vp9_p3_444_12.webm"])
def test_float32_is_ffmpeg_rgb48_over_65535(hard_media, name):
    """float32 keeps the 16-bit conversion: FFmpeg's rgb48 (ffmpeg CLI) / 65535, no 8-bit step."""
    path = _hard(hard_media, name)
    dec = md.VideoDecoder(path, output_dtype=torch.float32, dimension_order="NHWC",
                          transforms=[Resize((20, 30)), CenterCrop((16, 16))])
    ref = ffmpeg_cli_frames(path, "format=rgb48,scale=30:20:flags=bilinear,crop=16:16:exact=1", "rgb48le")
    ref = torch.from_numpy(ref.astype(np.float32).reshape(-1, 16, 16, 3)) / 65535.0
    ours = dec.get_frames_in_range(0, len(dec)).data
    assert torch.equal(ours, ref)
    if dec.metadata.bit_depth > 8:  # more than 256 levels survive
        assert len(torch.unique(ours)) > 256 or len(torch.unique(ours * 255 % 1)) > 1


def test_metadata_reports_bit_depth_and_transfer(hard_media):
    meta = md.VideoDecoder(_hard(hard_media, "hevc_main10_pq.mp4")).metadata
    assert meta.bit_depth == 10 and meta.color_transfer_characteristic == "smpte2084"
    assert md.VideoDecoder(_hard(hard_media, "hevc_444_12.mp4")).metadata.bit_depth == 12
    assert md.VideoDecoder(_hard(hard_media, "mpeg2_odd.mkv")).metadata.bit_depth == 8


def test_auto_dtype_follows_bit_depth(hard_media):
    assert md.VideoDecoder(_hard(hard_media, "vp9_p2.webm"), output_dtype="auto")[0].dtype == torch.float32
    assert md.VideoDecoder(_hard(hard_media, "mpeg2_odd.mkv"), output_dtype="auto")[0].dtype == torch.uint8


def test_rotation_first_then_transforms_metadata_keeps_source_size():
    path = media_path("nasa_13013_rotated.mp4")
    plain = md.VideoDecoder(path)
    dec = md.VideoDecoder(path, transforms=[CenterCrop((100, 50))])
    assert (dec.metadata.height, dec.metadata.width) == (plain.metadata.height, plain.metadata.width)
    assert dec[0].shape == (3, 100, 50)
    tc = _torchcodec()
    theirs = tc.decoders.VideoDecoder(path, transforms=[tc.transforms.CenterCrop((100, 50))])
    assert torch.equal(dec.get_frames_at([0, 7]).data, theirs.get_frames_at([0, 7]).data)
    # the crop of the rotated frame, as torchvision's CenterCrop would cut it
    full = plain[0]
    top, left = (full.shape[1] - 100) // 2, (full.shape[2] - 50) // 2
    assert torch.equal(dec[0], full[:, top:top + 100, left:left + 50])


def test_random_crop_drawn_once_where_torchcodec_draws_it(tmp_path):
    tc = _torchcodec()
    path = media_path("nasa_13013.mp4")
    torch.manual_seed(7)
    ours = md.VideoDecoder(path, transforms=[RandomCrop((64, 80))])
    torch.manual_seed(7)
    theirs = tc.decoders.VideoDecoder(path, transforms=[tc.transforms.RandomCrop((64, 80))])
    a = ours.get_frames_at([0, 30]).data
    assert torch.equal(a, theirs.get_frames_at([0, 30]).data)
    # the same place for every frame, after pickling, and on another backend
    clone = pickle.loads(pickle.dumps(ours))
    torch.manual_seed(99)
    assert torch.equal(clone.get_frames_at([0, 30]).data, a)


def test_torchvision_v2_objects_converted_and_checked():
    v2 = pytest.importorskip("torchvision.transforms.v2")
    path = media_path("nasa_13013.mp4")
    a = md.VideoDecoder(path, transforms=[v2.Resize((100, 120)), v2.CenterCrop(64)])[0]
    b = md.VideoDecoder(path, transforms=[Resize((100, 120)), CenterCrop((64, 64))])[0]
    assert torch.equal(a, b)
    for bad in (v2.Resize((10, 10), interpolation=v2.InterpolationMode.NEAREST),
                v2.Resize((10, 10), antialias=False), v2.Resize(10),
                v2.RandomCrop(10, padding=2), v2.RandomHorizontalFlip()):
        with pytest.raises(ValueError):
            md.VideoDecoder(path, transforms=[bad])
    with pytest.raises(ValueError):
        Resize((10,))
    with pytest.raises(ValueError, match="greater than its input"):
        md.VideoDecoder(path, transforms=[CenterCrop((5000, 10))])
    with pytest.raises(ValueError, match="output_dtype"):
        md.VideoDecoder(path, output_dtype=torch.float16)


def test_torchcodec_objects_accepted():
    tc = _torchcodec()
    path = media_path("nasa_13013.mp4")
    a = md.VideoDecoder(path, transforms=[tc.transforms.Resize((50, 70))])[0]
    assert torch.equal(a, md.VideoDecoder(path, transforms=[Resize((50, 70))])[0])


@pytest.mark.parametrize("backend", ["example", "decord", "torchcodec"])
def test_other_backends_apply_transforms(backend):
    """The example plugin (written before transforms existed) gets the facade's torch path,
    decord resizes in its own scaler, torchcodec applies them itself: each within the stated
    tolerance of the ffmpeg backend (docs/transforms.md)."""
    reason = registry.unavailable_reason(backend) if backend in registry.registry() else "not registered"
    if reason is not None:
        pytest.skip(f"backend {backend!r} unavailable: {reason}")
    path = media_path("flipping_a_pancake.mkv")
    ts = [Resize((120, 200)), CenterCrop((112, 112))]
    ref = md.VideoDecoder(path, transforms=ts, backend="ffmpeg").get_frames_at([0, 10, 0]).data.int()
    got = md.VideoDecoder(path, transforms=ts, backend=backend).get_frames_at([0, 10, 0]).data
    assert got.shape == ref.shape and got.dtype == torch.uint8
    diff = (got.int() - ref).abs().float()
    if backend == "torchcodec":
        assert diff.max() == 0
    else:
        assert diff.mean() < 2.0
    f32 = md.VideoDecoder(path, transforms=ts, backend=backend, output_dtype=torch.float32)[0]
    assert f32.dtype == torch.float32 and 0 <= float(f32.min()) and float(f32.max()) <= 1


def test_cli_frames_resize_and_crop(tmp_path, capsys):
    from PIL import Image

    from mediadecode.cli import main

    path = media_path("nasa_13013.mp4")  # 480x270: --resize 224 gives 224x398, then 224x224
    out = tmp_path / "sheet.png"
    assert main(["frames", str(path), "--at", "0,10", "--resize", "224", "--crop", "224", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Resize(size=(224, 398))" in text and "tensor (3, 224, 224)" in text
    sheet = np.asarray(Image.open(out).convert("RGB"))
    # the first tile is the decoder's frame 0 with the same transforms, pixel for pixel
    frame = md.VideoDecoder(path, transforms=[Resize((224, 398)), CenterCrop((224, 224))])[0]
    tile = frame.permute(1, 2, 0).numpy()
    found = any(
        np.array_equal(sheet[y:y + 224, x:x + 224], tile)
        for y in range(0, 16) for x in range(0, 16)
    )
    assert found


def test_torchcodec_backend_refuses_transforms_on_cuda_up_front(monkeypatch):
    """torchcodec 0.17 transforms on the CPU only (its CUDA decoder fails inside torchcodec):
    the backend refuses the request before opening anything, so automatic selection can hand
    over (checked with torch told that a GPU is there)."""
    from mediadecode.backends.torchcodec import TorchCodecBackend
    from mediadecode.sources import as_source
    from mediadecode.transforms import TransformRequest

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(md.UnsupportedRequestError, match="CPU only"):
        TorchCodecBackend().open_video(
            as_source(media_path("nasa_13013.mp4")), stream_index=None, seek_mode="exact",
            num_threads=1, device="cuda", transforms=TransformRequest([Resize((64, 64))]),
        )
