"""mediadecode.ray on a local Ray (2 CPUs): clips equal a local sampler call with the same
derived seed, seeds and epochs, remote reads over HTTP and moto's S3 (a first exact read fetches
only the header and the clips' GOPs), column pruning, the drop-in columns of
ray.data.read_videos, Ray's read options, damaged files, transforms (RandomCrop seeded per file
and epoch), read_audio's windows against a local AudioDecoder and FFmpeg, and the worked example
of docs/ray.md run as written against moto's S3."""

from __future__ import annotations

import os
import re
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray Data is not installed (pip install 'mediadecode[ray]')")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'mediadecode[ray]')")

import torch  # noqa: E402

import mediadecode as md  # noqa: E402
from mediadecode.ray import derive_seed, read_audio, read_videos  # noqa: E402
from mediadecode.samplers import clips_at_random_indices, clips_at_regular_indices  # noqa: E402
from mediadecode.transforms import CenterCrop, RandomCrop, Resize  # noqa: E402

from _remote_servers import MediaHTTPServer, moto_s3_server  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """A local Ray with 2 CPUs. Ray 2.60 turns token auth on and writes ~/.ray/auth_token: HOME
    points at a temporary folder for the Ray processes and is restored afterwards."""
    home = tmp_path_factory.mktemp("ray_home")
    saved = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield ray
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = saved


@pytest.fixture(scope="module")
def folder(tmp_path_factory, generated_video):
    """Three generated videos of different sizes (H.264 with B-frames, odd-sized 4:4:4, VFR)."""
    d = tmp_path_factory.mktemp("ray_videos")
    for name in ("h264_bframes.mp4", "odd_67x45.mp4", "vfr.mp4"):
        shutil.copy(generated_video(name).path, d / name)
    return d


def local_clips(path, seed, epoch, **kwargs):
    with md.VideoDecoder(str(path), dimension_order="NHWC") as dec:
        return clips_at_random_indices(dec, seed=derive_seed(seed, str(path), epoch), **kwargs)


def by_file(rows, key="clip_index"):
    out: dict[str, list] = {}
    for row in sorted(rows, key=lambda r: (r["path"], r[key])):
        out.setdefault(row["path"], []).append(row)
    return out


def assert_rows_equal_local(rows, seed, epoch, names, **kwargs):
    files = by_file(rows)
    assert sorted(os.path.basename(p) for p in files) == sorted(names)
    for path, clips in files.items():
        ref = local_clips(path, seed, epoch, **kwargs)
        assert [r["clip_index"] for r in clips] == list(range(kwargs["num_clips"]))
        for k, row in enumerate(clips):
            assert row["clip"].dtype == np.uint8
            assert np.array_equal(row["clip"], ref.data[k].numpy()), (path, k)
            assert np.array_equal(row["pts_seconds"], ref.pts_seconds[k].numpy())


ARGS = dict(num_clips=2, num_frames_per_clip=3)


def test_clips_equal_a_local_sampler_call_and_epochs_draw_anew(ray_local, folder):
    names = ["h264_bframes.mp4", "odd_67x45.mp4", "vfr.mp4"]
    ds = read_videos(folder, sampler="random_indices", seed=7, include_paths=True, **ARGS)
    first = ds.take_all()
    assert set(first[0]) == {"clip", "pts_seconds", "clip_index", "path"}
    assert first[0]["clip"].shape[:1] == (3,) and first[0]["clip"].shape[-1] == 3
    assert_rows_equal_local(first, 7, 0, names, **ARGS)
    second = ds.take_all()  # the next execution is the next epoch: a new draw
    assert_rows_equal_local(second, 7, 1, names, **ARGS)
    assert any(not np.array_equal(a["pts_seconds"], b["pts_seconds"])
               for a, b in zip(sorted(first, key=lambda r: (r["path"], r["clip_index"])),
                               sorted(second, key=lambda r: (r["path"], r["clip_index"]))))
    # A new dataset with the same seed draws the same clips; a fixed epoch draws them each time.
    again = read_videos(folder, sampler="random_indices", seed=7, include_paths=True, **ARGS)
    assert_rows_equal_local(again.take_all(), 7, 0, names, **ARGS)
    fixed = read_videos(folder, sampler="random_indices", seed=7, epoch=3, include_paths=True, **ARGS)
    assert_rows_equal_local(fixed.take_all(), 7, 3, names, **ARGS)
    assert_rows_equal_local(fixed.take_all(), 7, 3, names, **ARGS)


@pytest.fixture(scope="module")
def http(folder):
    files = {p.name: p for p in folder.iterdir()}
    server = MediaHTTPServer(files).start()
    yield server
    server.stop()


def test_http_reads_count_bytes_and_404(ray_local, http, folder):
    urls = [http.url(f"media/{n}") for n in ("h264_bframes.mp4", "vfr.mp4")]
    http.reset_counts()
    ds = read_videos(urls, sampler="random_indices", seed=1, include_paths=True, **ARGS)
    rows = ds.take_all()
    total = sum((folder / n).stat().st_size for n in ("h264_bframes.mp4", "vfr.mp4"))
    assert 0 < http.bytes_served <= 2 * total  # the header estimate and each task's open
    for path, clips in by_file(rows).items():
        ref = local_clips(folder / path.rsplit("/", 1)[1], 1, 0, **ARGS)
        # the URL is what the seed is derived from
        ref_url = None
        with md.VideoDecoder(path, dimension_order="NHWC") as dec:
            ref_url = clips_at_random_indices(dec, seed=derive_seed(1, path, 0), **ARGS)
        for k, row in enumerate(clips):
            assert np.array_equal(row["clip"], ref_url.data[k].numpy())
        assert ref.data.shape == ref_url.data.shape
    missing = read_videos([http.url("media/missing.mp4")], sampler="random_indices", **ARGS)
    with pytest.raises(md.RemoteNotFoundError, match="missing.mp4"):
        missing.take_all()


def test_column_pruning_decodes_nothing(ray_local, http):
    urls = [http.url(f"media/{n}") for n in ("h264_bframes.mp4", "vfr.mp4", "odd_67x45.mp4")]
    http.reset_counts()
    md.get_container_metadata(urls[0])  # what the size estimate reads: the first file's header
    header_only = http.bytes_served
    http.reset_counts()
    ds = read_videos(urls, sampler="random_indices", seed=0, include_paths=True, **ARGS)
    rows = ds.select_columns(["clip_index", "path"]).take_all()
    assert sorted((r["path"], r["clip_index"]) for r in rows) == sorted(
        (u, k) for u in urls for k in range(ARGS["num_clips"]))
    assert set(rows[0]) == {"clip_index", "path"}
    assert http.bytes_served <= header_only  # no task opened a file


def test_s3_folder(ray_local, folder):
    pytest.importorskip("s3fs")
    boto3 = pytest.importorskip("boto3")
    server, endpoint = moto_s3_server()
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket="videos")
        for p in folder.iterdir():
            client.upload_file(str(p), "videos", f"train/{p.name}")
        options = {"key": "testing", "secret": "testing",
                   "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
        ds = read_videos("s3://videos/train", sampler="random_indices", seed=5, include_paths=True,
                         storage_options=options, **ARGS)
        rows = ds.take_all()
        files = by_file(rows)
        assert sorted(files) == sorted(f"s3://videos/train/{p.name}" for p in folder.iterdir())
        for path, clips in files.items():
            ref = local_clips(folder / path.rsplit("/", 1)[1], 5, 0, **ARGS)
            with md.VideoDecoder(path, dimension_order="NHWC", storage_options=options) as dec:
                ref = clips_at_random_indices(dec, seed=derive_seed(5, path, 0), **ARGS)
            for k, row in enumerate(clips):
                assert np.array_equal(row["clip"], ref.data[k].numpy())
        with pytest.raises(md.RemoteNotFoundError):
            read_videos("s3://videos/nothing-here", sampler="random_indices", storage_options=options)
    finally:
        server.stop()


def test_drop_in_matches_ray_read_videos(ray_local, folder):
    pytest.importorskip("decord", reason="ray.data.read_videos needs decord")
    path = str(folder / "h264_bframes.mp4")
    theirs = ray.data.read_videos(path, include_timestamps=True).take_all()
    ours = read_videos(path, include_timestamps=True).take_all()
    assert set(ours[0]) == set(theirs[0]) == {"frame", "frame_index", "frame_timestamp"}
    theirs.sort(key=lambda r: r["frame_index"])
    ours.sort(key=lambda r: r["frame_index"])
    assert [r["frame_index"] for r in ours] == [r["frame_index"] for r in theirs]
    from conftest import pyav_reference

    ref = pyav_reference(path)
    for a, b in zip(ours, theirs):
        # Ray documents (H, W, 3) uint8; decord2 3.4 (the maintained decord fork installed
        # here) hands Ray (H, W, 4) frames whose pixels are not FFmpeg's RGB, so pixels are
        # checked against FFmpeg's own decode (PyAV, rgb24) instead.
        assert a["frame"].shape == ref.frames[0].shape == (b["frame"].shape[0], b["frame"].shape[1], 3)
        assert a["frame"].dtype == b["frame"].dtype == np.uint8
        assert np.array_equal(a["frame"], ref.frames[a["frame_index"]])
        assert a["frame_timestamp"].dtype == b["frame_timestamp"].dtype
        assert np.allclose(a["frame_timestamp"], b["frame_timestamp"], atol=1e-3)
    # fps= keeps the same stride as Ray's
    theirs5 = ray.data.read_videos(path, fps=5).take_all()
    ours5 = read_videos(path, fps=5).take_all()
    assert sorted(r["frame_index"] for r in ours5) == sorted(r["frame_index"] for r in theirs5)


def test_ray_read_options(ray_local, tmp_path, folder):
    root = tmp_path / "parts"
    for label, name in (("cat", "h264_bframes.mp4"), ("dog", "vfr.mp4"), ("dog", "odd_67x45.mp4")):
        (root / f"label={label}").mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / name, root / f"label={label}" / name)
    from ray.data.datasource import Partitioning

    ds = read_videos(root, sampler="random_indices", seed=2, include_paths=True,
                     partitioning=Partitioning("hive"), override_num_blocks=3, **ARGS)
    rows = ds.take_all()
    assert {(os.path.basename(r["path"]), r["label"]) for r in rows} == {
        ("h264_bframes.mp4", "cat"), ("vfr.mp4", "dog"), ("odd_67x45.mp4", "dog")}
    assert ds.materialize().num_blocks() >= 3  # one read task per file
    one = read_videos(root, sampler="random_indices", seed=2, override_num_blocks=1, **ARGS)
    assert one.count() == 6
    assert "path" not in one.take(1)[0]


def test_damaged_file_raises_naming_it_or_is_skipped(ray_local, tmp_path, folder):
    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copy(folder / "vfr.mp4", d / "good.mp4")
    (d / "damaged.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    ds = read_videos(d, sampler="random_indices", seed=0, **ARGS)
    with pytest.raises(md.InvalidMediaError, match="damaged.mp4"):
        ds.take_all()
    skipped = read_videos(d, sampler="random_indices", seed=0, include_paths=True, on_error="skip", **ARGS)
    rows = skipped.take_all()
    assert {os.path.basename(r["path"]) for r in rows} == {"good.mp4"}
    assert len(rows) == ARGS["num_clips"]


# -- transforms ------------------------------------------------------------------------------------

NAMES = ["h264_bframes.mp4", "odd_67x45.mp4", "vfr.mp4"]


def test_resize_and_center_crop_equal_a_local_decoder_with_the_same_transforms(ray_local, folder):
    transforms = [Resize((40, 56)), CenterCrop((32, 48))]
    ds = read_videos(folder, sampler="random_indices", seed=3, epoch=0, include_paths=True,
                     transforms=transforms, **ARGS)
    files = by_file(ds.take_all())
    assert sorted(os.path.basename(p) for p in files) == sorted(NAMES)
    for path, clips in files.items():
        with md.VideoDecoder(path, dimension_order="NHWC", transforms=transforms) as dec:
            ref = clips_at_random_indices(dec, seed=derive_seed(3, path, 0), **ARGS)
        assert ref.data.shape[1:] == (3, 32, 48, 3)
        for k, row in enumerate(clips):
            assert row["clip"].shape == (3, 32, 48, 3)
            assert np.array_equal(row["clip"], ref.data[k].numpy()), (path, k)
    # torchvision v2's objects are taken as the decoder takes them.
    v2 = pytest.importorskip("torchvision.transforms.v2")
    path = str(folder / "vfr.mp4")
    tv = [v2.Resize((40, 56)), v2.CenterCrop((32, 48))]
    rows = read_videos(path, sampler="random_indices", seed=3, epoch=0, transforms=tv, **ARGS).take_all()
    with md.VideoDecoder(path, dimension_order="NHWC", transforms=tv) as dec:
        ref = clips_at_random_indices(dec, seed=derive_seed(3, path, 0), **ARGS)
    for row in rows:
        assert np.array_equal(row["clip"], ref.data[row["clip_index"]].numpy())
    with pytest.raises(ValueError):  # an unsupported transform fails on the driver
        read_videos(path, sampler="random_indices", transforms=[v2.RandomHorizontalFlip()])


def local_random_crop(path, seed, epoch, size):
    """What a read task decodes for ``path``: the decoder made with torch seeded from
    derive_seed(seed, path, epoch, purpose="transforms") (RandomCrop draws when it is made)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, path, epoch, purpose="transforms"))
        dec = md.VideoDecoder(path, dimension_order="NHWC", transforms=[RandomCrop(size)])
    with dec:
        return clips_at_regular_indices(dec, **ARGS)


def test_random_crop_is_drawn_per_seed_path_and_epoch(ray_local, folder):
    # regular_indices draws no clips at random: only the crop location can change per epoch.
    size = (24, 32)
    ds = read_videos(folder, sampler="regular_indices", seed=9, include_paths=True,
                     transforms=[RandomCrop(size)], **ARGS)
    epochs = [by_file(ds.take_all()), by_file(ds.take_all())]
    moved = []
    for path in epochs[0]:
        refs = [local_random_crop(path, 9, epoch, size) for epoch in (0, 1)]
        for epoch, files in enumerate(epochs):
            for k, row in enumerate(files[path]):
                assert row["clip"].shape == (3, 24, 32, 3)
                assert np.array_equal(row["clip"], refs[epoch].data[k].numpy()), (path, epoch, k)
        moved.append(not torch.equal(refs[0].data, refs[1].data))
    assert any(moved)  # a new crop in the next epoch
    # A fixed epoch crops at the same place on every execution, whatever the workers' state.
    fixed = read_videos(folder, sampler="regular_indices", seed=9, epoch=1, include_paths=True,
                        transforms=[RandomCrop(size)], **ARGS)
    for _ in range(2):
        for path, clips in by_file(fixed.take_all()).items():
            ref = local_random_crop(path, 9, 1, size)
            assert all(np.array_equal(r["clip"], ref.data[k].numpy()) for k, r in enumerate(clips))


# -- exact mode over HTTP reads the header, not the whole file -------------------------------------


def test_first_exact_read_over_http_fetches_a_small_fraction_of_each_mp4(ray_local, tmp_path):
    from conftest import X264_BFRAMES, encode_video

    # 10 GOPs, about 3.5 MB each (fsspec fetches 256 KiB blocks: small files would be a few
    # blocks); names used by no other test, so no worker has their index in memory.
    paths = {}
    for name, codec_args in (("gops_a.mp4", {}), ("gops_b.mov", {"bf": "0"})):
        paths[name] = encode_video(tmp_path / name, codec="libx264", width=320, height=240,
                                   pix_fmt="yuv420p", num_frames=240, rate=Fraction(24),
                                   options={**X264_BFRAMES, "g": "24", "crf": "6", **codec_args}).path
    server = MediaHTTPServer(paths).start()
    try:
        urls = [server.url(f"media/{n}") for n in paths]
        server.reset_counts()
        ds = read_videos(urls, sampler="random_indices", num_clips=1, num_frames_per_clip=2,
                         seed=0, epoch=0, include_paths=True, seek_mode="exact")
        rows = ds.take_all()
        for name, path in paths.items():
            size = path.stat().st_size
            # The header read of the size estimate (first file), the task's open (header index)
            # and one clip's GOPs; a packet scan would read the whole file.
            assert 0 < server.bytes_by_name[name] <= 0.4 * size, (name, server.bytes_by_name[name], size)
        for row in rows:
            with md.VideoDecoder(str(paths[row["path"].rsplit("/", 1)[1]]), dimension_order="NHWC") as dec:
                ref = clips_at_random_indices(dec, seed=derive_seed(0, row["path"], 0),
                                              num_clips=1, num_frames_per_clip=2)
            assert np.array_equal(row["clip"], ref.data[0].numpy())
            assert np.array_equal(row["pts_seconds"], ref.pts_seconds[0].numpy())
    finally:
        server.stop()


# -- read_audio ------------------------------------------------------------------------------------


def _encode_tone(path: Path, codec: str, rate: int, layout: str, seconds: float, fmt: str | None = None) -> Path:
    """Sine tones (one frequency per channel) encoded with PyAV."""
    import av

    channels = 2 if layout == "stereo" else 1
    total = int(rate * seconds)
    t = np.arange(total) / rate
    tones = np.stack([0.4 * np.sin(2 * np.pi * (330 + 220 * c) * t) for c in range(channels)])
    pcm = np.round(tones * 32767).astype(np.int16)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        for start in range(0, total, 1024):
            part = np.ascontiguousarray(pcm[:, start:start + 1024])
            frame = av.AudioFrame.from_ndarray(part, format="s16p", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("ray_audio")
    _encode_tone(d / "stereo.wav", "pcm_s16le", 16000, "stereo", 1.5)
    _encode_tone(d / "mono.flac", "flac", 22050, "mono", 2.0)
    return d


def ffmpeg_samples(path) -> tuple[np.ndarray, int]:
    """The whole stream decoded by FFmpeg (PyAV), as float32 planar ``(channels, samples)``."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=stream.rate)
        parts = [f.to_ndarray() for frame in c.decode(stream) for f in resampler.resample(frame)]
        return np.concatenate(parts, axis=1), stream.rate


def local_windows(path, seed, epoch, window_seconds, num_windows):
    """read_audio's documented draw, done with a local AudioDecoder."""
    with md.AudioDecoder(str(path)) as dec:
        meta = dec.metadata
        begin = float(meta.begin_stream_seconds or 0.0)
        last = max(begin, begin + float(meta.duration_seconds) - window_seconds)
        gen = torch.Generator().manual_seed(derive_seed(seed, str(path), epoch))
        starts = begin + torch.rand(num_windows, dtype=torch.float64, generator=gen) * (last - begin)
        return [dec.get_samples_played_in_range(s, s + window_seconds) for s in starts.tolist()]


def assert_windows_equal_local(rows, seed, epoch, window_seconds, num_windows):
    files = by_file(rows, key="window_index")
    for path, windows in files.items():
        assert [r["window_index"] for r in windows] == list(range(num_windows))
        ref = local_windows(path, seed, epoch, window_seconds, num_windows)
        full, rate = ffmpeg_samples(path)
        for row, expected in zip(windows, ref):
            audio = np.asarray(row["audio"])
            assert audio.dtype == np.float32
            assert np.array_equal(audio, expected.data.numpy()), (path, row["window_index"])
            assert row["pts_seconds"] == expected.pts_seconds
            assert row["sample_rate"] == expected.sample_rate == rate
            # and what FFmpeg decodes at that time: window_seconds of samples from the pts
            first = round(row["pts_seconds"] * rate)
            assert abs(audio.shape[1] - window_seconds * rate) <= 1
            assert np.array_equal(audio, full[:, first:first + audio.shape[1]])
    return files


def test_audio_windows_equal_a_local_decoder_call_and_epochs_draw_anew(ray_local, audio_folder):
    w, n = 0.25, 3
    ds = read_audio(audio_folder, window_seconds=w, num_windows=n, seed=4, include_paths=True)
    first = ds.take_all()
    assert set(first[0]) == {"audio", "pts_seconds", "sample_rate", "window_index", "path"}
    files = assert_windows_equal_local(first, 4, 0, w, n)
    assert sorted(os.path.basename(p) for p in files) == ["mono.flac", "stereo.wav"]
    assert {np.asarray(r["audio"]).shape[0] for r in first} == {1, 2}  # num_channels per file
    second = ds.take_all()  # the next execution is the next epoch
    assert_windows_equal_local(second, 4, 1, w, n)
    assert sorted(r["pts_seconds"] for r in first) != sorted(r["pts_seconds"] for r in second)
    fixed = read_audio(audio_folder, window_seconds=w, num_windows=n, seed=4, epoch=5, include_paths=True)
    a, b = fixed.take_all(), fixed.take_all()
    assert_windows_equal_local(a, 4, 5, w, n)
    assert_windows_equal_local(b, 4, 5, w, n)


def test_audio_whole_files_resampled_and_without_paths(ray_local, audio_folder):
    rows = read_audio(audio_folder, sample_rate=8000, seed=0, include_paths=True).take_all()
    assert len(rows) == 2
    for row in rows:
        with md.AudioDecoder(row["path"], sample_rate=8000) as dec:
            ref = dec.get_all_samples()
        assert row["window_index"] == 0 and row["sample_rate"] == 8000 == ref.sample_rate
        assert row["pts_seconds"] == ref.pts_seconds
        assert np.array_equal(np.asarray(row["audio"]), ref.data.numpy())
    bare = read_audio(audio_folder, sample_rate=8000).take_all()
    assert len(bare) == 2 and all("path" not in r for r in bare)


def test_audio_damaged_file_raises_naming_it_or_is_skipped(ray_local, tmp_path, audio_folder):
    d = tmp_path / "mixed_audio"
    d.mkdir()
    shutil.copy(audio_folder / "stereo.wav", d / "good.wav")
    (d / "damaged.flac").write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(md.InvalidMediaError, match="damaged.flac"):
        read_audio(d, window_seconds=0.25, num_windows=2, seed=0).take_all()
    rows = read_audio(d, window_seconds=0.25, num_windows=2, seed=0, include_paths=True,
                      on_error="skip").take_all()
    assert {os.path.basename(r["path"]) for r in rows} == {"good.wav"}
    assert len(rows) == 2


# -- docs/ray.md's worked example, run as written against moto's S3 ----------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "ray.md"


def test_docs_worked_example_runs_against_moto_s3(ray_local, folder, tmp_path):
    pytest.importorskip("s3fs")
    boto3 = pytest.importorskip("boto3")
    text = DOC.read_text()
    section = text[text.index("## Worked example"):]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    server, endpoint = moto_s3_server()
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket="my-bucket")
        for p in folder.iterdir():
            client.upload_file(str(p), "my-bucket", f"kinetics/train/{p.name}")
        options = {"key": "testing", "secret": "testing",
                   "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
        # Only what points the example at this machine changes (each must be in the doc).
        for old, new in (
            ("ray.init()", "ray.init(ignore_reinit_error=True)"),
            ('storage_options={"anon": False}', f"storage_options={options!r}"),
            ('"/mnt/shared/md-index"', repr(str(tmp_path / "md-index"))),
            ("range(10)", "range(2)"),
            ("...  # forward / backward", "seen.append((epoch, clips))"),
        ):
            assert old in code, old
            code = code.replace(old, new)
        seen: list = []
        exec(compile(code, str(DOC), "exec"), {"seen": seen})  # noqa: S102 - the doc's own code
    finally:
        server.stop()
    per_epoch = {e: torch.cat([c for k, c in seen if k == e]) for e in (0, 1)}
    for clips in per_epoch.values():
        assert clips.shape == (3 * 4, 3, 16, 112, 112)  # 3 files x 4 clips, (B, 3, F, H, W)
        assert clips.dtype == torch.float32 and 0 <= clips.min() and clips.max() <= 1
    draws = [{clip.numpy().tobytes() for clip in per_epoch[e]} for e in (0, 1)]
    assert draws[0] != draws[1]  # a new draw per pass (batches may come in any order)
    assert len(os.listdir(tmp_path / "md-index")) == 3  # one shared index entry per file
