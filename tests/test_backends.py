"""The decord, torchcodec and example-plugin backends: the conformance kit on each backend,
cross-backend equality on the real media corpus, capability-based selection, fallback and the
errors of explicit choices.

On a developer's machine a backend whose optional package is missing is skipped with the reason;
in CI (``CI`` set) every backend must be available, so a missing install step fails the run.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import mediadecode as md
from mediadecode import registry
from mediadecode.capabilities import Capabilities, Tolerance, capabilities_of
from mediadecode.testing import BackendConformance, assert_frames_close

from conftest import MEDIA_DIR, media_path

IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(autouse=True)
def _no_outside_choice(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDIADECODE_BACKEND", raising=False)
    monkeypatch.setenv("MEDIADECODE_CONFIG", str(tmp_path / "no-config.toml"))
    registry._reset()
    yield
    registry._reset()


def need(name: str) -> None:
    """Skip (fail in CI) when backend ``name`` is not registered or not available here."""
    if name not in registry.registry():
        if IN_CI:
            pytest.fail(f"backend {name!r} is not registered (is its package installed?)")
        pytest.skip(f"backend {name!r} is not registered here")
    reason = registry.unavailable_reason(name)
    if reason is not None:
        if IN_CI:
            pytest.fail(f"backend {name!r} is unavailable in CI: {reason}")
        pytest.skip(f"backend {name!r} is unavailable: {reason}")


# -- the conformance kit on every CPU backend -----------------------------------------------------


class TestFFmpegConformance(BackendConformance):
    backend_name = "ffmpeg"


class TestDecordConformance(BackendConformance):
    backend_name = "decord"
    skip_if_unavailable = not IN_CI


class TestTorchCodecConformance(BackendConformance):
    backend_name = "torchcodec"
    skip_if_unavailable = not IN_CI


class TestExamplePluginConformance(BackendConformance):
    """The example third-party package in examples/, found only through its entry point."""

    backend_name = "example"
    skip_if_unavailable = not IN_CI

    @pytest.fixture(autouse=True)
    def _installed(self):
        need("example")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
class TestTorchCodecCudaConformance(BackendConformance):
    backend_name = "torchcodec"
    device = "cuda"


# -- cross-backend: the real media corpus ----------------------------------------------------------

CORPUS = sorted(p.name for p in MEDIA_DIR.glob("*") if p.suffix != ".md") if MEDIA_DIR.is_dir() else []
VIDEO_FILES = [n for n in CORPUS if not n.endswith((".wav", ".mp3"))]
AUDIO_FILES = [n for n in CORPUS if n.endswith((".wav", ".mp3", ".mkv")) or n == "nasa_13013.mp4"]
CROSS = ["decord", "torchcodec"]


def _tolerance(name: str) -> Tolerance:
    return capabilities_of(registry.get_backend_class(name)).tolerance_for("cpu")


def _open_or_skip(factory, path, name):
    try:
        return factory(path, backend=name)
    except (md.UnsupportedRequestError, md.InvalidMediaError) as exc:
        # A backend may refuse a file, with a clear reason; automatic selection then moves on.
        assert name in str(exc) or str(path) in str(exc)
        pytest.skip(f"{name} does not open {path.name}: {exc}")


@pytest.mark.parametrize("name", CROSS)
@pytest.mark.parametrize("file", VIDEO_FILES or ["<no media>"])
def test_video_frames_and_metadata_match_ffmpeg(name, file):
    need(name)
    path = media_path(file)
    ref = md.VideoDecoder(path, backend="ffmpeg")
    dec = _open_or_skip(md.VideoDecoder, path, name)
    assert dec.backend == name
    n = len(ref)
    a, b = ref.metadata, dec.metadata
    assert len(dec) == b.num_frames == n
    one_frame = 1 / a.average_fps
    assert b.average_fps == pytest.approx(a.average_fps, rel=1e-3)
    assert b.duration_seconds == pytest.approx(a.duration_seconds, abs=one_frame)
    assert b.begin_stream_seconds == pytest.approx(a.begin_stream_seconds, abs=1e-6)
    assert (b.width, b.height) == (a.width, a.height)
    assert (b.rotation or 0) % 360 == (a.rotation or 0) % 360
    assert b.stream_index == a.stream_index
    assert a.codec in b.codec or b.codec in a.codec  # torchcodec names the decoder: libdav1d
    indices = sorted({0, 1, n // 4, n // 2, (3 * n) // 4, n - 2, n - 1} & set(range(n)))
    try:
        got = dec.get_frames_at(indices)
    except md.DecodingError:
        # Only a damaged file may fail, and FFmpeg must find it damaged too.
        with pytest.raises(md.DecodingError):
            ref.get_frames_at(list(range(n)))
        return
    expected = ref.get_frames_at(indices)
    assert_frames_close(got.data, expected.data.permute(0, 2, 3, 1).numpy(), _tolerance(name), f"{name} {file}")
    np.testing.assert_allclose(got.pts_seconds.numpy(), expected.pts_seconds.numpy(), atol=1e-6)


@pytest.mark.parametrize("name", CROSS)
@pytest.mark.parametrize("file", AUDIO_FILES or ["<no media>"])
def test_audio_matches_ffmpeg(name, file):
    need(name)
    path = media_path(file)
    try:
        ref = md.AudioDecoder(path, backend="ffmpeg")
    except md.StreamNotFoundError:
        pytest.skip(f"{file} has no audio stream")
    dec = _open_or_skip(md.AudioDecoder, path, name)
    assert dec.metadata.stream_index == ref.metadata.stream_index
    assert (dec.metadata.sample_rate, dec.metadata.num_channels) == (ref.metadata.sample_rate, ref.metadata.num_channels)
    a, b = ref.get_all_samples(), dec.get_all_samples()
    assert b.pts_seconds == pytest.approx(a.pts_seconds, abs=1e-6)
    assert b.data.shape == a.data.shape
    np.testing.assert_allclose(b.data.numpy(), a.data.numpy(), atol=_tolerance(name).audio_max_abs, rtol=0)
    part_a, part_b = ref.get_samples_played_in_range(0.5, 0.75), dec.get_samples_played_in_range(0.5, 0.75)
    assert part_b.data.shape == part_a.data.shape
    assert part_b.pts_seconds == pytest.approx(part_a.pts_seconds, abs=1e-6)
    offset = round((part_a.pts_seconds - a.pts_seconds) * ref.metadata.sample_rate)
    whole = a.data[:, offset:offset + part_a.data.shape[1]]
    if not torch.allclose(part_a.data, whole, atol=1e-4, rtol=0):
        pytest.skip(f"the ffmpeg backend's seek-based range of {file} differs from its full "
                    "decode (codec preroll after a seek), so it is no reference here")
    atol = max(1e-4, _tolerance(name).audio_max_abs)
    if not torch.allclose(part_b.data, part_a.data, atol=atol, rtol=0):
        # A backend that seeks by container timestamps (torchcodec) lands within half a tick of
        # the sample where the time base is coarser than a sample (Matroska's 1 ms): its range
        # must then be the full decode shifted by at most that.
        tick = round(ref.metadata.sample_rate / 1000)
        shifts = [s for s in range(-tick, tick + 1) if offset + s >= 0 and torch.allclose(
            part_b.data, a.data[:, offset + s:offset + s + part_b.data.shape[1]], atol=atol, rtol=0)]
        assert shifts, f"{name}'s range of {file} is not the full decode, even shifted by <= 1 ms"
        return
    np.testing.assert_allclose(part_b.data.numpy(), part_a.data.numpy(), atol=atol, rtol=0)


@pytest.mark.parametrize("name", CROSS)
def test_cli_frames_same_pictures_as_default(name, tmp_path, monkeypatch):
    """``MEDIADECODE_BACKEND=NAME mediadecode frames FILE`` draws the default's contact sheet."""
    need(name)
    from PIL import Image

    from mediadecode.cli import main

    path = media_path("nasa_13013.mp4")
    assert main(["frames", str(path), "--at", "0,100,389", "-o", str(tmp_path / "default.png")]) == 0
    monkeypatch.setenv("MEDIADECODE_BACKEND", name)
    assert main(["frames", str(path), "--at", "0,100,389", "-o", str(tmp_path / "chosen.png")]) == 0
    first = np.asarray(Image.open(tmp_path / "default.png"))
    second = np.asarray(Image.open(tmp_path / "chosen.png"))
    assert np.array_equal(first, second)
    default = md.VideoDecoder(path).get_frames_at([0, 100, 389])
    monkeypatch.delenv("MEDIADECODE_BACKEND")
    chosen = md.VideoDecoder(path, backend=name)
    assert chosen.backend == name
    assert torch.equal(chosen.get_frames_at([0, 100, 389]).data, default.data)


# -- capabilities, selection, fallback and errors --------------------------------------------------


def test_list_backends_rows_carry_capabilities():
    rows = {r.name: r for r in md.list_backends()}
    for name in ("ffmpeg", "decord", "torchcodec"):
        row = rows[name]
        assert isinstance(row.capabilities, Capabilities)
        assert row.capabilities.devices == row.devices
        assert row.capabilities.media_types == row.media_types
    assert rows["decord"].capabilities.seek_modes == ("exact",)
    assert rows["decord"].capabilities.any_stream is False
    assert "cuda" in rows["torchcodec"].capabilities.devices
    assert rows["ffmpeg"].priority > rows["torchcodec"].priority > rows["decord"].priority


def test_cli_backends_shows_capabilities(capsys):
    from mediadecode.cli import main

    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    for name in ("ffmpeg", "decord", "torchcodec"):
        assert name in out
    assert "capabilities:" in out and "seek exact" in out


def test_capabilities_validation():
    with pytest.raises(ValueError):
        Capabilities(media_types=("smell",))
    with pytest.raises(ValueError):
        Capabilities(source_kinds=("url",))
    caps = Capabilities(devices=("cpu", "cuda"), tolerance={"cuda": Tolerance(max_abs=3)})
    assert caps.tolerance_for("cuda:1") == Tolerance(max_abs=3)
    assert caps.tolerance_for("cpu") == Tolerance()
    hash(caps)
    assert "cannot open a file-like object" in Capabilities(source_kinds=("path",)).cannot_serve(
        media_type="video", source_kind="file")


def test_automatic_selection_falls_back_when_decord_refuses(monkeypatch):
    """Real backends: with decord first, files it cannot serve go to the next backend."""
    need("decord")
    from mediadecode.backends.decord import DecordBackend

    monkeypatch.setattr(DecordBackend, "priority", 10_000)
    registry._reset()
    ok = md.VideoDecoder(media_path("nasa_13013.mp4"))
    assert ok.backend == "decord"
    # open-GOP HEVC: decord's seeks would return neighbouring frames, so it refuses the file
    hevc = md.VideoDecoder(media_path("h265_video.mp4"))
    assert hevc.backend == "ffmpeg"
    # decord decodes only the first audio stream; FFmpeg's best one here is stream 4
    audio = md.AudioDecoder(media_path("nasa_13013.mp4"))
    assert audio.backend == "ffmpeg" and audio.metadata.stream_index == 4
    # decord has no approximate mode: skipped before anything is opened
    approx = md.VideoDecoder(media_path("nasa_13013.mp4"), seek_mode="approximate")
    assert approx.backend == "ffmpeg"


def test_explicit_backend_is_never_substituted():
    need("decord")
    with pytest.raises(md.UnsupportedRequestError, match="'decord'.*wrong frames") as excinfo:
        md.VideoDecoder(media_path("h265_video.mp4"), backend="decord")
    assert isinstance(excinfo.value, ValueError)
    with pytest.raises(md.UnsupportedRequestError, match="'decord'.*first audio stream"):
        md.AudioDecoder(media_path("nasa_13013.mp4"), backend="decord")
    with pytest.raises(md.UnsupportedRequestError, match="'decord'.*seek_mode='approximate'"):
        md.VideoDecoder(media_path("nasa_13013.mp4"), backend="decord", seek_mode="approximate")
    with pytest.raises(md.UnsupportedRequestError, match="'decord'.*num_channels=3"):
        md.AudioDecoder(media_path("sine_mono_s16.wav"), backend="decord", num_channels=3)


def test_example_plugin_source_kinds_gate_selection(monkeypatch, tmp_path):
    need("example")
    from mediadecode_example.backend import ExampleBackend

    path = media_path("nasa_13013.mp4")
    with pytest.raises(md.UnsupportedRequestError, match="'example'.*file-like"):
        md.VideoDecoder(open(path, "rb"), backend="example")
    monkeypatch.setattr(ExampleBackend, "priority", 10_000)
    registry._reset()
    assert md.VideoDecoder(path).backend == "example"
    assert md.VideoDecoder(path.read_bytes()).backend != "example"  # skipped, not tried


def test_nothing_can_decode_lists_every_backend(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 16)
    tried = [
        r.name for r in md.list_backends()
        if r.available and r.capabilities.cannot_serve(media_type="video", source_kind="path", seek_mode="exact") is None
    ]
    with pytest.raises(md.NoBackendError) as excinfo:
        md.VideoDecoder(garbage)
    err = excinfo.value
    # every available backend is listed, in order; any other entry says why it was not tried: a
    # fallback found unavailable only when its turn came (torchcodec without FFmpeg's shared
    # libraries), or an FFmpeg-based fallback skipped once FFmpeg's probe found no media (never
    # imported, so its availability is not known)
    assert [n for n in err.attempts if n in tried] == tried
    assert all(n in tried or why.startswith(("unavailable:", "not tried:"))
               for n, why in err.attempts.items()), err.attempts
    assert len(tried) >= 2 or not IN_CI
    for name in tried:
        assert f"{name}:" in str(err)
    assert str(garbage) in str(err)


@pytest.mark.parametrize("how", ["core-without-ffmpeg", "import-fails"])
def test_torchcodec_without_ffmpeg_libraries_is_listed_with_the_fix(monkeypatch, how):
    """torchcodec installed but FFmpeg's shared libraries missing: listed unavailable with the
    fix; importing mediadecode and listing do not crash. torchcodec 0.17 imports without them and
    says so in ``torchcodec.ffmpeg_major_version`` (None); older releases fail at import. The
    real case (no system FFmpeg) is run by ``tools/without-system-ffmpeg`` on the whole suite."""
    pytest.importorskip("torchcodec")
    from mediadecode.backends import torchcodec as tc_backend

    if how == "import-fails":
        def broken():
            raise RuntimeError("Could not load libtorchcodec. Likely causes: FFmpeg is not properly installed")

        monkeypatch.setattr(tc_backend, "_decoders", broken)
    else:
        import torchcodec

        monkeypatch.setattr(torchcodec, "ffmpeg_major_version", None)
    # both are restored at teardown, so the real check result comes back
    monkeypatch.setattr(tc_backend.TorchCodecBackend, "_checked", False)
    monkeypatch.setattr(tc_backend.TorchCodecBackend, "_reason", None)
    row = next(r for r in md.list_backends() if r.name == "torchcodec")
    assert row.available is False
    assert "FFmpeg's shared libraries" in row.reason
    assert "apt-get install ffmpeg" in row.reason and "conda" in row.reason
    with pytest.raises(md.BackendUnavailableError, match="apt-get install ffmpeg"):
        md.VideoDecoder(media_path("nasa_13013.mp4"), backend="torchcodec")
    assert md.VideoDecoder(media_path("nasa_13013.mp4")).backend == "ffmpeg"


def test_import_does_not_touch_optional_backends():
    import subprocess
    import sys

    code = (
        "import sys, mediadecode\n"
        "assert not {'torchcodec', 'decord'} & set(sys.modules), sorted(sys.modules)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
