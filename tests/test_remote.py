"""URL sources against real servers on 127.0.0.1: an aiohttp.web server that honours Range
requests and counts the bytes it serves, and moto's standalone S3 server.

Pixels are compared with FFmpeg's own decoding of the local file (PyAV ``to_ndarray("rgb24")``).
"""

from __future__ import annotations

import pickle
import shutil
from fractions import Fraction

import numpy as np
import pytest
import torch

pytest.importorskip("fsspec")
pytest.importorskip("aiohttp")

import mediadecode as md  # noqa: E402
from mediadecode import registry  # noqa: E402
from mediadecode.sources import as_source  # noqa: E402

from _remote_servers import MediaHTTPServer, moto_s3_server  # noqa: E402
from conftest import MEDIA_DIR, encode_video, media_path  # noqa: E402


def pyav_frames(path, indices) -> dict[int, np.ndarray]:
    """Frames ``indices`` (presentation order) of the best video stream, decoded sequentially by
    PyAV and converted by FFmpeg to rgb24."""
    import av

    wanted, out = set(indices), {}
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(c.streams.best("video"))):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
            if len(out) == len(wanted):
                break
    return out


def as_hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def media(tmp_path_factory, h264_mp4):
    """Files to serve: a generated small H.264 MP4, a generated long MPEG-4 MP4 (moov at the
    end, 20 s, keyframe every second), a truncated copy, and nasa_13013.mp4 when present."""
    folder = tmp_path_factory.mktemp("remote")
    long = folder / "long.mp4"
    encode_video(long, codec="mpeg4", width=320, height=240, pix_fmt="yuv420p", num_frames=500,
                 rate=Fraction(25), options={"g": "25", "b": "2000000"})
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(long.read_bytes()[: long.stat().st_size * 2 // 5])
    small = folder / "small.mp4"
    shutil.copy(h264_mp4.path, small)
    files = {"small.mp4": small, "long.mp4": long, "truncated.mp4": truncated}
    for name in ("nasa_13013.mp4", "sine_mono_s16.wav"):
        if (MEDIA_DIR / name).is_file():
            files[name] = MEDIA_DIR / name
    return files


@pytest.fixture(scope="module")
def http(media):
    server = MediaHTTPServer(media).start()
    yield server
    server.stop()


@pytest.fixture
def server(http):
    http.reset_counts()
    return http


# -- HTTP: correctness and read economy -----------------------------------------------------


def test_http_frames_equal_ffmpeg(server, media):
    url = server.url("media/small.mp4")
    ref = pyav_frames(media["small.mp4"], [0, 7, 20, 47])
    with md.VideoDecoder(url) as dec:
        assert dec.backend == "ffmpeg"
        assert dec.source.kind == "url"
        batch = dec.get_frames_at([47, 0, 20, 7])
        for k, i in enumerate([47, 0, 20, 7]):
            assert np.array_equal(as_hwc(batch.data[k]), ref[i]), i
        assert len(dec) == 48
        stats = dec.stats
    assert stats["bytes_read"] == server.bytes_served > 0
    assert stats["read_calls"] == server.get_requests >= 1
    assert stats["opens"] == 1  # no GOP-parallel clones for URLs: they would fetch it again


def test_random_access_transfers_a_small_fraction(server, media):
    size = media["long.mp4"].stat().st_size
    ref = pyav_frames(media["long.mp4"], [375])[375]
    with md.VideoDecoder(server.url("media/long.mp4"), seek_mode="approximate") as dec:
        frame = dec[375]
        stats = dec.stats
    assert np.array_equal(as_hwc(frame), ref)
    assert server.bytes_served == stats["bytes_read"]
    assert server.bytes_served < size / 4, (server.bytes_served, size)


def test_exact_mode_reads_the_file_at_most_once(server, media):
    """Exact mode scans every packet at open (documented): one pass, never more than the file."""
    size = media["long.mp4"].stat().st_size
    ref = pyav_frames(media["long.mp4"], [5, 499])
    with md.VideoDecoder(server.url("media/long.mp4")) as dec:
        assert len(dec) == 500
        assert np.array_equal(as_hwc(dec[499]), ref[499])
        assert np.array_equal(as_hwc(dec[5]), ref[5])
    assert server.bytes_served <= size


def test_exact_mode_reopen_uses_the_index_cache(server, media):
    """The exact index of a URL is cached under (URL, size, ETag): a second decoder of the same
    object (a DataLoader item, a new epoch) skips the scan and reads a small fraction."""
    from mediadecode import index_cache

    size = media["long.mp4"].stat().st_size
    ref = pyav_frames(media["long.mp4"], [375])[375]
    url = server.url("media/long.mp4")
    index_cache.clear()
    with md.VideoDecoder(url) as dec:
        len(dec)
    assert index_cache.stats()["entries"] >= 1
    server.reset_counts()
    with md.VideoDecoder(url) as dec:
        assert len(dec) == 500
        assert np.array_equal(as_hwc(dec[375]), ref)
    assert server.bytes_served < size / 4, (server.bytes_served, size)


def test_block_size_and_cache_type_pass_through(server):
    url = server.url("media/long.mp4")
    calls = {}
    for block in (64 * 1024, 1024 * 1024):
        with md.VideoDecoder(url, seek_mode="approximate",
                             storage_options={"block_size": block, "cache_type": "readahead"}) as dec:
            dec[100]
            calls[block] = dec.stats["read_calls"]
    assert calls[64 * 1024] > calls[1024 * 1024]


def test_audio_over_http(server, media):
    if "sine_mono_s16.wav" not in media:
        media_path("sine_mono_s16.wav")  # skips with the reason
    import av

    with av.open(str(media["sine_mono_s16.wav"])) as c:
        ref = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    ref = ref.astype(np.float32) / 32768.0
    with md.AudioDecoder(server.url("media/sine_mono_s16.wav")) as dec:
        samples = dec.get_all_samples()
        assert dec.stats["bytes_read"] > 0
    assert np.array_equal(samples.data.numpy(), ref)


def test_fsspec_objects_as_sources(server, media):
    import fsspec

    ref = pyav_frames(media["small.mp4"], [30])[30]
    url = server.url("media/small.mp4")
    with md.VideoDecoder(fsspec.open(url)) as dec:
        assert dec.source.kind == "url"
        assert np.array_equal(as_hwc(dec[30]), ref)
    with fsspec.open(url, block_size=0).open() as stream:  # a non-seekable fsspec file
        with md.VideoDecoder(stream) as dec:
            assert dec.source.kind == "url"  # reopened seekable through its file system
            assert np.array_equal(as_hwc(dec[30]), ref)


def test_pickled_decoder_reopens_the_url(server, media):
    ref = pyav_frames(media["small.mp4"], [12])[12]
    dec = md.VideoDecoder(server.url("media/small.mp4"), timeout=(5, 7),
                          storage_options={"block_size": 128 * 1024})
    clone = pickle.loads(pickle.dumps(dec))
    assert clone.source.remote.timeout == (5.0, 7.0)
    assert clone.source.remote.storage_options == {"block_size": 128 * 1024}
    assert clone.stats["bytes_read"] == 0  # counters start again in the new process/object
    assert np.array_equal(as_hwc(clone[12]), ref)
    assert clone.stats["bytes_read"] > 0
    dec.close()
    clone.close()


class _FramesDataset(torch.utils.data.Dataset):
    def __init__(self, decoder):
        self.decoder = decoder

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i):
        return i, self.decoder[i * 10]


def test_dataloader_fork_workers_read_the_url(server, media):
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork start method here")
    ref = pyav_frames(media["small.mp4"], [0, 10, 20, 30])
    dec = md.VideoDecoder(server.url("media/small.mp4"))
    dec[0]  # the parent has read from the URL before forking
    loader = torch.utils.data.DataLoader(_FramesDataset(dec), batch_size=None, num_workers=2,
                                         multiprocessing_context="fork")
    seen = 0
    for i, frame in loader:
        assert np.array_equal(as_hwc(frame), ref[int(i) * 10])
        seen += 1
    assert seen == 4
    dec.close()


def test_a_fork_child_dropping_inherited_file_systems_leaves_the_parent_working(server, media):
    """A fork child that lets go of the fsspec file systems it inherited (fsspec clears its
    instance cache in a new process) must not close the parent's pooled connections: they share
    the event loop's epoll set, and the parent would then wait on them until its read timeout."""
    import gc
    import os

    import fsspec

    if not hasattr(os, "fork"):
        pytest.skip("os.fork is not available here")
    ref = pyav_frames(media["small.mp4"], [5])[5]
    url = server.url("media/small.mp4")
    with md.VideoDecoder(url, timeout=3) as dec:
        dec[0]  # the file system now holds a pooled connection to the server
    connections = set(server.client_ports)
    pid = os.fork()
    if pid == 0:  # the child: drop everything inherited, as a DataLoader worker may
        try:
            fsspec.AbstractFileSystem.clear_instance_cache()
            gc.collect()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    with md.VideoDecoder(url, timeout=3) as dec:  # same options: the same pooled file system
        assert np.array_equal(as_hwc(dec[5]), ref)
    # The parent's pooled connection still works: no request had to wait it out and reconnect.
    assert server.client_ports == connections


def test_samplers_take_a_url_decoder(server, media):
    from mediadecode.samplers import clips_at_regular_indices

    ref = pyav_frames(media["small.mp4"], range(48))
    with md.VideoDecoder(server.url("media/small.mp4")) as dec:
        clips = clips_at_regular_indices(dec, num_clips=2, num_frames_per_clip=3)
    assert clips.data.shape[:2] == (2, 3)
    for c in range(2):
        for f in range(3):
            pts = float(clips.pts_seconds[c, f])
            index = int(round(pts * 24))  # h264_mp4 is 24 fps from pts 0
            assert np.array_equal(as_hwc(clips.data[c, f]), ref[index])


def test_a_batch_over_several_gops_reads_the_file_at_most_once(server, media):
    """GOP-parallel decoding is off for URLs: a batch spanning GOPs is read through one open
    file, never fetching a block twice."""
    size = media["long.mp4"].stat().st_size
    ref = pyav_frames(media["long.mp4"], [0, 250, 499])
    with md.VideoDecoder(server.url("media/long.mp4")) as dec:
        batch = dec.get_frames_at([0, 250, 499])
        stats = dec.stats
    for k, i in enumerate([0, 250, 499]):
        assert np.array_equal(as_hwc(batch.data[k]), ref[i]), i
    assert stats["opens"] == 1
    assert server.bytes_served <= size


# -- HTTP: errors --------------------------------------------------------------------------


def test_stall_before_any_answer_times_out(server):
    with pytest.raises(md.RemoteTimeoutError) as excinfo:
        md.VideoDecoder(server.url("stall/small.mp4"), timeout=0.5)
    err = excinfo.value
    assert isinstance(err, TimeoutError) and isinstance(err, md.MediaDecodeError)
    assert "stall/small.mp4" in str(err) and "timeout" in str(err)


def test_stall_in_the_middle_of_a_body_times_out(server):
    with pytest.raises(md.RemoteTimeoutError, match="stall-body/small.mp4"):
        md.VideoDecoder(server.url("stall-body/small.mp4"), timeout=0.5)


@pytest.mark.parametrize("backend", ["ffmpeg", "torchcodec"])
def test_404_and_403_name_the_redacted_url_and_status(server, backend):
    if backend not in {r.name for r in md.list_backends() if r.available}:
        pytest.skip(f"{backend} is unavailable here")
    with pytest.raises(md.RemoteNotFoundError) as excinfo:
        md.VideoDecoder(server.url("media/nothing-here.mp4"), backend=backend)
    assert isinstance(excinfo.value, FileNotFoundError)
    assert excinfo.value.status == 404 and "404" in str(excinfo.value)
    assert "nothing-here.mp4" in str(excinfo.value)

    secret = server.url("status/403/small.mp4").replace(
        "http://", "http://alice:hunter2@") + "?X-Amz-Signature=deadbeef&token=s3cr3t&part=1"
    with pytest.raises(md.RemoteSourceError) as excinfo:
        md.VideoDecoder(secret, backend=backend)
    err = excinfo.value
    assert not isinstance(err, md.RemoteNotFoundError)
    assert err.status == 403 and "403" in str(err)
    text = str(err) + repr(err) + str(err.url)
    for leaked in ("hunter2", "alice", "deadbeef", "s3cr3t"):
        assert leaked not in text
    assert "status/403/small.mp4" in str(err) and "part=1" in str(err) and "REDACTED" in str(err)


def test_transient_503_is_retried(server, media):
    ref = pyav_frames(media["small.mp4"], [3])[3]
    with md.VideoDecoder(server.url("flaky/2/small.mp4")) as dec:
        assert np.array_equal(as_hwc(dec[3]), ref)
        assert dec.stats["retries"] == 2


def test_persistent_503_gives_up(server):
    with pytest.raises(md.RemoteSourceError) as excinfo:
        md.VideoDecoder(as_source(server.url("status/503/small.mp4"), retries=1))
    assert excinfo.value.status == 503


@pytest.mark.parametrize("backend", ["ffmpeg", "torchcodec"])
def test_failure_after_open_is_our_error(server, backend):
    """A read that fails inside FFmpeg's demux/decode (the URL expired after the open) comes out
    as RemoteSourceError naming the URL and the status, not as an FFmpeg error."""
    if backend not in {r.name for r in md.list_backends() if r.available}:
        pytest.skip(f"{backend} is unavailable here")
    n = 1000 if backend == "ffmpeg" else 1001  # one server-side counter per test
    url = server.url(f"expire/{n}/long.mp4")
    dec = md.VideoDecoder(url, seek_mode="approximate", backend=backend, num_threads=1)
    server.flaky_left[f"expire:/expire/{n}/long.mp4"] = 0  # expires now
    with pytest.raises(md.MediaDecodeError) as excinfo:
        dec[450]
    if backend == "ffmpeg":
        assert isinstance(excinfo.value, md.RemoteSourceError)
        assert excinfo.value.status == 403
    assert "expire" in str(excinfo.value) and "403" in str(excinfo.value)
    dec.close()


def test_text_page_is_invalid_media(server):
    with pytest.raises(md.InvalidMediaError, match="127.0.0.1"):
        md.VideoDecoder(server.url("text"))


def test_connection_dropped_mid_body_is_our_error(server):
    source = as_source(server.url("cut/small.mp4"), retries=1)
    with pytest.raises(md.RemoteSourceError, match="cut/small.mp4") as excinfo:
        md.VideoDecoder(source)
    assert "content length" in str(excinfo.value)  # aiohttp: body shorter than announced
    assert source.stats["retries"] == 1


def test_truncated_file_is_invalid_media(server):
    with pytest.raises(md.InvalidMediaError, match="truncated.mp4"):
        md.VideoDecoder(server.url("media/truncated.mp4"))


def test_connection_refused_is_our_error():
    from _remote_servers import free_port

    url = f"http://127.0.0.1:{free_port()}/x.mp4"
    with pytest.raises(md.RemoteSourceError, match="127.0.0.1"):
        md.VideoDecoder(as_source(url, retries=0))


def test_bad_arguments():
    with pytest.raises(ValueError, match="protocol"):
        md.VideoDecoder("nosuchprotocol://bucket/x.mp4")
    with pytest.raises(ValueError):
        md.VideoDecoder("http://127.0.0.1:1/x.mp4", timeout=-1)
    with pytest.raises(TypeError):
        md.VideoDecoder("http://127.0.0.1:1/x.mp4", storage_options="key=1")


def test_redact_url():
    from mediadecode.remote import redact_url

    url = ("https://user:pw@bucket.s3.amazonaws.com/a%20b.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
           "&X-Amz-Credential=AKIA%2F20250101&X-Amz-Signature=abc123&X-Amz-Security-Token=tok&v=2")
    red = redact_url(url)
    for secret in ("pw", "user", "AKIA", "abc123", "tok&"):
        assert secret not in red
    assert red.startswith("https://REDACTED@bucket.s3.amazonaws.com/a%20b.mp4?")
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in red and "v=2" in red
    assert redact_url("s3://bucket/key.mp4") == "s3://bucket/key.mp4"
    assert redact_url("simplecache::https://u:p@h/x?sig=1") == "simplecache::https://REDACTED@h/x?sig=REDACTED"


# -- backends and capabilities -------------------------------------------------------------


def test_backends_declare_url_support():
    rows = {r.name: r for r in md.list_backends()}
    assert rows["ffmpeg"].capabilities.remote is True
    if "decord" in rows and rows["decord"].capabilities is not None:
        caps = rows["decord"].capabilities
        assert caps.remote is False
        assert "URL" in caps.cannot_serve(media_type="video", source_kind="url")
    assert md.Capabilities(source_kinds=("path",)).remote is False
    with pytest.raises(ValueError):
        md.Capabilities(source_kinds=("path",), remote=True)


def test_selection_skips_backends_without_url_support(server, media, monkeypatch):
    rows = {r.name: r for r in md.list_backends()}
    if not rows.get("decord") or not rows["decord"].available:
        pytest.skip("decord is unavailable here")
    from mediadecode.backends.decord import DecordBackend

    monkeypatch.setattr(DecordBackend, "priority", 10_000)
    registry._reset()
    try:
        url = server.url("media/small.mp4")
        with md.VideoDecoder(url) as dec:
            assert dec.backend != "decord"
        with pytest.raises(md.UnsupportedRequestError, match="'decord'.*URL"):
            md.VideoDecoder(url, backend="decord")
        with md.VideoDecoder(media["small.mp4"]) as dec:  # a local path still goes to decord
            assert dec.backend == "decord"
    finally:
        monkeypatch.undo()
        registry._reset()


def test_torchcodec_reads_a_url(server, media):
    rows = {r.name: r for r in md.list_backends()}
    if not rows.get("torchcodec") or not rows["torchcodec"].available:
        pytest.skip("torchcodec is unavailable here")
    ref = pyav_frames(media["long.mp4"], [250])[250]
    with md.VideoDecoder(server.url("media/long.mp4"), backend="torchcodec",
                         seek_mode="approximate") as dec:
        assert np.array_equal(as_hwc(dec[250]), ref)
    assert server.bytes_served < media["long.mp4"].stat().st_size / 2


# -- S3 (moto's standalone server) ---------------------------------------------------------


@pytest.fixture(scope="module")
def s3(media):
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server, endpoint = moto_s3_server()
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket="media")
        for name, path in media.items():
            client.upload_file(str(path), "media", name)
        options = {"key": "testing", "secret": "testing",
                   "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
        yield options
    finally:
        server.stop()


def test_s3_frames_equal_ffmpeg(s3, media):
    ref = pyav_frames(media["small.mp4"], [0, 33, 47])
    with md.VideoDecoder("s3://media/small.mp4", storage_options=s3) as dec:
        batch = dec.get_frames_at([0, 33, 47])
        assert dec.stats["bytes_read"] > 0
    for k, i in enumerate([0, 33, 47]):
        assert np.array_equal(as_hwc(batch.data[k]), ref[i])


def test_s3_random_access_reads_a_small_fraction(s3, media):
    size = media["long.mp4"].stat().st_size
    ref = pyav_frames(media["long.mp4"], [400])[400]
    with md.VideoDecoder("s3://media/long.mp4", storage_options=s3, seek_mode="approximate") as dec:
        assert np.array_equal(as_hwc(dec[400]), ref)
        assert dec.stats["bytes_read"] < size / 4


def test_s3_missing_key(s3):
    with pytest.raises(md.RemoteNotFoundError, match="s3://media/missing.mp4"):
        md.VideoDecoder("s3://media/missing.mp4", storage_options=s3)


# -- the CLI against both servers ----------------------------------------------------------


def _png(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_cli_frames_from_http_and_s3_match_the_local_file(server, s3, media, tmp_path, capsys):
    import json

    from mediadecode.cli import main

    media_path("nasa_13013.mp4")
    local_png, http_png, s3_png = tmp_path / "local.png", tmp_path / "http.png", tmp_path / "s3.png"
    assert main(["frames", str(media["nasa_13013.mp4"]), "--at", "0,389", "-o", str(local_png)]) == 0
    capsys.readouterr()
    assert main(["frames", server.url("media/nasa_13013.mp4"), "--at", "0,389", "-o", str(http_png)]) == 0
    out = capsys.readouterr().out
    assert f"bytes read: {server.bytes_served} in {server.get_requests} range requests" in out
    assert main(["frames", "s3://media/nasa_13013.mp4", "--at", "0,389", "-o", str(s3_png),
                 "--storage-options", json.dumps(s3)]) == 0
    out = capsys.readouterr().out
    assert "bytes read: " in out and "s3://media/nasa_13013.mp4" in out
    local = _png(local_png)
    assert np.array_equal(_png(http_png), local)
    assert np.array_equal(_png(s3_png), local)
    # and the sheet holds FFmpeg's frames: frame 0 appears in the top-left cell
    ref = pyav_frames(media["nasa_13013.mp4"], [0])[0]
    h, w = ref.shape[:2]
    scale = min(1.0, 320 / w)
    if scale == 1.0:
        assert np.array_equal(local[8:8 + h, 8:8 + w], ref)


def test_cli_reports_remote_errors_in_one_line(server, capsys):
    from mediadecode.cli import main

    assert main(["frames", server.url("media/nothing.mp4"), "--at", "0", "-o", "x.png"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mediadecode: error:") and "404" in err and "Traceback" not in err
