"""Safe defaults for untrusted media: playlist-type formats (HLS, ffconcat, SDP...) that make
FFmpeg open other files or network addresses are refused unless ``allow_playlists=True``; a local
file may only use FFmpeg's ``file`` protocol; bytes, file objects and URLs none at all."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

import mediadecode as md

MEDIA_FFMPEG = shutil.which("ffmpeg")


def available(name: str) -> bool:
    return any(r.name == name and r.available for r in md.list_backends())


BACKENDS = [None, "ffmpeg", "torchcodec", "decord"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, h264_mp4):
    folder = tmp_path_factory.mktemp("untrusted")
    a, b = folder / "a.mp4", folder / "b.mp4"
    shutil.copy(h264_mp4.path, a)
    shutil.copy(h264_mp4.path, b)
    out = {"a": a, "b": b, "folder": folder}
    out["hls_passwd"] = folder / "passwd.m3u8"
    out["hls_passwd"].write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n/etc/passwd\n#EXT-X-ENDLIST\n")
    out["hls_local"] = folder / "local.m3u8"
    out["hls_local"].write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\n{a}\n#EXT-X-ENDLIST\n")
    out["concat_passwd"] = folder / "passwd.ffconcat"
    out["concat_passwd"].write_text("ffconcat version 1.0\nfile /etc/passwd\n")
    out["concat_local"] = folder / "local.ffconcat"
    out["concat_local"].write_text(
        "ffconcat version 1.0\nfile a.mp4\nduration 2.0\nfile b.mp4\nduration 2.0\n")
    out["sdp"] = folder / "stream.sdp"
    out["sdp"].write_text("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\n"
                          "t=0 0\r\nm=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n")
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["hls_passwd", "hls_local", "concat_passwd", "concat_local"])
def test_playlists_are_refused_by_default(files, name, backend):
    if backend is not None and not available(backend):
        pytest.skip(f"{backend} is unavailable here")
    path = files[name]
    with pytest.raises(md.UnsafeMediaError) as excinfo:
        md.VideoDecoder(path, backend=backend)
    message = str(excinfo.value)
    assert str(path) in message and "allow_playlists=True" in message
    assert ("HLS playlist" in message) if name.startswith("hls") else ("ffconcat" in message)
    assert isinstance(excinfo.value, md.UnsupportedRequestError)  # also a ValueError


@pytest.mark.parametrize("name", ["hls_passwd", "concat_passwd", "concat_local"])
def test_playlists_are_refused_by_every_entry_point(files, name):
    path = files[name]
    with pytest.raises(md.UnsafeMediaError):
        md.get_container_metadata(path)
    with pytest.raises(md.UnsafeMediaError):
        md.AudioDecoder(path)
    if name.startswith("concat"):  # FFmpeg detects HLS only with an .m3u8 name; ffconcat by content
        with pytest.raises(md.UnsafeMediaError):
            md.VideoDecoder(path.read_bytes())
        with pytest.raises(md.UnsafeMediaError):
            md.VideoDecoder(io.BytesIO(path.read_bytes()))


def test_hls_bytes_are_not_followed(files):
    """Without a file name FFmpeg does not even detect HLS: the bytes are invalid media."""
    with pytest.raises(md.InvalidMediaError):
        md.VideoDecoder(files["hls_local"].read_bytes())


def test_network_session_formats_are_refused_even_when_playlists_are_allowed(files):
    with pytest.raises(md.UnsafeMediaError, match="SDP.*never opens it"):
        md.VideoDecoder(files["sdp"], allow_playlists=True)


def test_allowed_concat_list_of_local_media_decodes(files):
    reference = _pyav_frames(files["concat_local"])
    assert len(reference) == 96
    with md.VideoDecoder(files["concat_local"], allow_playlists=True, backend="ffmpeg") as dec:
        assert len(dec) == 96
        batch = dec.get_frames_in_range(0, 96)
    for i in range(96):
        assert np.array_equal(batch.data[i].permute(1, 2, 0).numpy(), reference[i]), i


def test_allowed_concat_list_random_access(files):
    """A concat demuxer refuses seeks past its first file: the reader decodes forward from the
    start instead, and random access still gives FFmpeg's frames."""
    reference = _pyav_frames(files["concat_local"])
    indices = [90, 3, 60, 47, 95, 0]
    with md.VideoDecoder(files["concat_local"], allow_playlists=True, backend="ffmpeg",
                         dimension_order="NHWC") as dec:
        batch = dec.get_frames_at(indices)
        single = dec[50]
    for k, i in enumerate(indices):
        assert np.array_equal(batch.data[k].numpy(), reference[i]), i
    assert np.array_equal(single.numpy(), reference[50])


def _hls_playlist(source, folder):
    """A local HLS playlist of 1-second segments cut from ``source`` by the ffmpeg CLI."""
    if MEDIA_FFMPEG is None:
        pytest.skip("the ffmpeg command is not installed")
    import subprocess

    playlist = folder / "play.m3u8"
    subprocess.run([MEDIA_FFMPEG, "-v", "error", "-y", "-i", str(source), "-c", "copy",
                    "-f", "hls", "-hls_time", "1", "-hls_list_size", "0",
                    "-hls_segment_filename", str(folder / "seg%03d.ts"), str(playlist)],
                   check=True, timeout=60)
    return playlist


def _pyav_frames(path):
    """Every frame of the first video stream as FFmpeg decodes it (file protocol only)."""
    import av

    with av.open("file:" + str(path), options={"protocol_whitelist": "file"}) as c:
        return [frame.to_ndarray(format="rgb24") for frame in c.decode(video=0)]


def test_allowed_hls_playlist_decodes_with_random_access(files, tmp_path):
    playlist = _hls_playlist(files["a"], tmp_path)
    reference = _pyav_frames(playlist)
    with md.VideoDecoder(playlist, allow_playlists=True, backend="ffmpeg", dimension_order="NHWC") as dec:
        n = len(dec)
        assert n == len(reference) > 0
        indices = [n - 1, 0, n // 2]
        batch = dec.get_frames_at(indices)
    for k, i in enumerate(indices):
        assert np.array_equal(batch.data[k].numpy(), reference[i]), i


def test_allowed_hls_playlist_of_local_segments_opens(files, tmp_path):
    playlist = _hls_playlist(files["a"], tmp_path)
    with pytest.raises(md.UnsafeMediaError):
        md.get_container_metadata(playlist)
    meta = md.get_container_metadata(playlist, allow_playlists=True)
    assert meta.format_name == "hls"
    assert meta.best_video_stream_index is not None


def test_a_local_playlist_cannot_reach_the_network(files, tmp_path):
    """Even with allow_playlists=True a local file may only use the file protocol: a segment
    on an HTTP server is never requested."""
    pytest.importorskip("aiohttp")
    from _remote_servers import MediaHTTPServer

    server = MediaHTTPServer({"a.ts": files["a"]}).start()
    try:
        playlist = tmp_path / "net.m3u8"
        playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\n"
                            f"{server.url('media/a.ts')}\n#EXT-X-ENDLIST\n")
        with pytest.raises(md.MediaDecodeError):
            md.VideoDecoder(playlist, allow_playlists=True, backend="ffmpeg")
        assert server.get_requests == 0
    finally:
        server.stop()


def test_a_url_playlist_is_never_followed(files):
    """A URL source is read only through its own transport: FFmpeg gets no protocol, so a
    concat list served over HTTP cannot make it open a local file, even when allowed."""
    pytest.importorskip("aiohttp")
    from _remote_servers import MediaHTTPServer

    listing = files["folder"] / "abs.ffconcat"
    listing.write_text(f"ffconcat version 1.0\nfile {files['a']}\nduration 2.0\n")
    server = MediaHTTPServer({"abs.ffconcat": listing}).start()
    try:
        url = server.url("media/abs.ffconcat")
        with pytest.raises(md.UnsafeMediaError, match="ffconcat"):
            md.VideoDecoder(url)
        with pytest.raises(md.InvalidMediaError):
            md.VideoDecoder(url, allow_playlists=True, backend="ffmpeg")
    finally:
        server.stop()


def test_ordinary_media_still_opens_with_the_safe_defaults(files, h264_mp4):
    with md.VideoDecoder(files["a"]) as dec:
        assert len(dec) == h264_mp4.num_frames
    with md.VideoDecoder(files["a"].read_bytes()) as dec:
        assert len(dec) == h264_mp4.num_frames
