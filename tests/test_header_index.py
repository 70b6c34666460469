"""mediadecode.header_index: the exact frame index from the MP4/MOV header must equal a packet
scan done here with PyAV directly (demux only, the rules of FFmpegVideoReader._scan), on every
file of the test media, and must read a small part of a remote file."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction

import pytest

from mediadecode.header_index import index_from_header
from mediadecode.pyav import open_container
from mediadecode.sources import as_source

from conftest import GENERATORS, MEDIA_DIR, X264_BFRAMES, encode_video


def pyav_scan(path, stream_index: int) -> dict:
    """Every packet's pts/duration and keyframe flag, straight from PyAV's demuxer."""
    import av

    with av.open(str(path)) as c:
        entries, keyframes = [], []
        for p in c.demux(c.streams[stream_index]):
            if p.size == 0 or p.is_discard:
                continue
            ts = p.pts if p.pts is not None else p.dts
            if ts is None:
                continue
            entries.append((ts, p.duration or 0))
            if p.is_keyframe:
                keyframes.append(ts)
    entries.sort()
    pts = [e[0] for e in entries]
    durations = [e[1] for e in entries]
    for k, d in enumerate(durations):
        if d <= 0:
            if k + 1 < len(pts):
                durations[k] = pts[k + 1] - pts[k]
            elif k > 0:
                durations[k] = durations[k - 1]
    return {"pts": pts, "durations": durations, "keyframes": sorted(keyframes)}


def header_indexes(path) -> dict[int, dict | None]:
    with open_container(as_source(str(path))) as media:
        return {s.index: index_from_header(media.container, s) for s in media.container.streams.video}


def _ffmpeg(*args):
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg CLI is not installed")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def cli_media(tmp_path_factory):
    """Files made by the ffmpeg CLI: B-frames, an edit list from a stream-copy trim (preroll
    packets marked discard), an -itsoffset edit, audio interleaved in MOV, moov at the front,
    HEVC and MPEG-4 Part 2 with B-frames, variable frame rate, negative composition offsets and
    a fragmented MP4 (the last two must give None)."""
    d = tmp_path_factory.mktemp("header_index")
    src = ["-f", "lavfi", "-i", "testsrc2=size=96x64:rate=30"]
    _ffmpeg(*src, "-t", "3", "-c:v", "libx264", "-bf", "3", "-g", "30", d / "bframes.mp4")
    _ffmpeg("-ss", "1.3", "-i", d / "bframes.mp4", "-c", "copy", d / "trimmed.mp4")
    _ffmpeg("-itsoffset", "0.5", "-i", d / "bframes.mp4", "-c", "copy", d / "offset.mp4")
    _ffmpeg(*src, "-f", "lavfi", "-i", "sine", "-t", "2", "-c:v", "libx264", "-c:a", "aac",
            d / "with_audio.mov")
    _ffmpeg(*src, "-t", "2", "-c:v", "libx264", "-bf", "2", "-movflags", "+faststart", d / "faststart.mp4")
    _ffmpeg(*src, "-t", "2", "-c:v", "mpeg4", "-bf", "2", d / "mpeg4.mp4")
    _ffmpeg(*src, "-t", "3", "-vf", "setpts='if(lt(N,30),N,N*2)/30/TB'", "-fps_mode", "vfr",
            "-c:v", "libx264", "-bf", "2", d / "vfr.mp4")
    _ffmpeg("-i", d / "bframes.mp4", "-c", "copy", "-movflags", "+negative_cts_offsets", d / "negcts.mp4")
    _ffmpeg("-i", d / "bframes.mp4", "-c", "copy", "-movflags", "+frag_keyframe+empty_moov", d / "fragmented.mp4")
    return d


def _check_equal_or_none(path) -> list:
    gave = []
    for index, got in header_indexes(path).items():
        if got is not None:
            assert got == pyav_scan(path, index), f"{path} stream {index}"
            gave.append(index)
    return gave


def test_equals_the_packet_scan_on_the_real_media():
    if not MEDIA_DIR.is_dir():
        pytest.skip(f"{MEDIA_DIR} is absent")
    files = sorted(p for p in MEDIA_DIR.iterdir() if p.suffix in (".mp4", ".mov", ".mkv", ".webm", ".avi"))
    exact = {}
    for path in files:
        exact[path.name] = _check_equal_or_none(path)
    # Every MP4/MOV of the corpus has a complete, non-fragmented header: none may fall back.
    for name, streams in exact.items():
        if name.endswith((".mp4", ".mov")):
            assert streams, f"{name}: no header index"
        else:
            assert not streams, f"{name}: only MP4/MOV give a header index"
    assert exact["nasa_13013.mp4"] == [0, 3]


def test_equals_the_packet_scan_on_the_generated_media(generated_video, tmp_path):
    from mediadecode.testing import make_media

    paths = [generated_video(name).path for name in GENERATORS]
    kit = make_media(tmp_path / "kit")
    paths += [case.path for case in kit.videos.values()]
    paths.append(encode_video(tmp_path / "hevc.mp4", codec="libx265", width=64, height=64,
                              pix_fmt="yuv420p", num_frames=20,
                              options={"x265-params": "log-level=0:bframes=3"}).path)
    for path in paths:
        gave = _check_equal_or_none(path)
        assert bool(gave) == (path.suffix in (".mp4", ".mov")), path


def test_equals_the_packet_scan_on_cli_media(cli_media):
    for name in ("bframes.mp4", "trimmed.mp4", "offset.mp4", "with_audio.mov", "faststart.mp4",
                 "mpeg4.mp4", "vfr.mp4"):
        assert _check_equal_or_none(cli_media / name) == [0], name
    # The trim leaves preroll packets FFmpeg discards: the index must leave them out too.
    import av

    with av.open(str(cli_media / "trimmed.mp4")) as c:
        assert any(e.is_discard for e in c.streams.video[0].index_entries)


@pytest.mark.parametrize("name", ["negcts.mp4", "fragmented.mp4"])
def test_none_where_the_header_cannot_tell(cli_media, name):
    assert header_indexes(cli_media / name) == {0: None}


def test_none_for_matroska_and_hostile_headers(generated_video, tmp_path):
    mkv = generated_video("h264_bframes.mkv").path
    assert header_indexes(mkv) == {0: None}
    good = generated_video("h264_bframes.mp4").path
    data = bytearray(good.read_bytes())
    at = data.find(b"stsz")
    assert at > 0
    # The same header claiming 2**31 samples (FFmpeg itself refuses such a file, so the tables
    # are handed over as fileobj): refused, never allocated.
    data[at + 12:at + 16] = (2**31).to_bytes(4, "big")
    import io

    import av

    with av.open(str(good)) as c:
        assert index_from_header(c, c.streams.video[0], fileobj=io.BytesIO(bytes(data))) is None
        # A moov that claims to run past the end of the file.
        moov = data.find(b"moov") - 4
        data = bytearray(good.read_bytes())
        data[moov:moov + 4] = (len(data) * 2).to_bytes(4, "big")
        assert index_from_header(c, c.streams.video[0], fileobj=io.BytesIO(bytes(data))) is None


@pytest.mark.slow
def test_remote_first_open_reads_a_tenth_of_the_file(tmp_path):
    """A 10 s H.264 MP4 over HTTP: the header index reads at most 10% of the file, a packet
    scan all of it."""
    pytest.importorskip("aiohttp")
    from _remote_servers import MediaHTTPServer

    path = encode_video(tmp_path / "ten_seconds.mp4", codec="libx264", width=640, height=360,
                        pix_fmt="yuv420p", num_frames=250, rate=Fraction(25),
                        options={**X264_BFRAMES, "g": "25", "crf": "18"}).path
    size = path.stat().st_size
    server = MediaHTTPServer({"v.mp4": path}).start()
    try:
        source = as_source(server.url("media/v.mp4"))
        with open_container(source) as media:
            stream = media.container.streams.video[0]
            got = index_from_header(media.container, stream)
        header_bytes = source.stats["bytes_read"]
        assert got == pyav_scan(path, 0)
        assert header_bytes <= size / 10, (header_bytes, size)
    finally:
        server.stop()
