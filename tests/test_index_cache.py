"""The exact-mode frame index cache: reopening skips the packet scan, edits invalidate it, and the
on-disk cache is shared between processes."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

import mediadecode as md
from conftest import pyav_reference
from mediadecode import index_cache
from mediadecode.backends import ffmpeg


@pytest.fixture
def fresh_cache(monkeypatch):
    monkeypatch.delenv("MEDIADECODE_INDEX_CACHE_DIR", raising=False)
    index_cache.configure()
    index_cache.clear()
    yield
    index_cache.configure()
    index_cache.clear()


@pytest.fixture
def scans(monkeypatch):
    """Counts packet scans done by the ffmpeg backend."""
    calls = []
    original = ffmpeg.FFmpegVideoReader._scan

    def counting(self):
        calls.append(self._source.name)
        return original(self)

    monkeypatch.setattr(ffmpeg.FFmpegVideoReader, "_scan", counting)
    return calls


def test_second_open_skips_the_scan_and_decodes_the_same(fresh_cache, scans, generated_video, tmp_path):
    gen = generated_video("h264_bframes.mp4")
    path = tmp_path / "clip.mp4"
    shutil.copy(gen.path, path)
    ref = pyav_reference(path)
    with md.VideoDecoder(path, dimension_order="NHWC") as first:
        a = first.get_frames_at([5, 30, 47]).data.numpy()
        meta_first = first.metadata
    with md.VideoDecoder(path, dimension_order="NHWC") as second:
        b = second.get_frames_at([5, 30, 47]).data.numpy()
        meta_second = second.metadata
    assert scans == [str(path)]
    assert index_cache.stats()["hits"] == 1
    assert np.array_equal(a, ref.frames[[5, 30, 47]]) and np.array_equal(b, a)
    assert meta_second == meta_first


def test_edited_file_is_scanned_again(fresh_cache, scans, generated_video, tmp_path):
    path = tmp_path / "clip.mp4"
    shutil.copy(generated_video("h264_bframes.mp4").path, path)
    md.VideoDecoder(path).close()
    shutil.copy(generated_video("odd_67x45.mp4").path, path)  # other content, same name
    with md.VideoDecoder(path) as dec:
        assert (dec.metadata.width, dec.metadata.height, len(dec)) == (67, 45, 20)
    assert len(scans) == 2


def test_disabled_cache_always_scans(fresh_cache, scans, generated_video):
    index_cache.configure(enabled=False)
    path = generated_video("vp9.webm").path
    md.VideoDecoder(path).close()
    md.VideoDecoder(path).close()
    assert len(scans) == 2


def test_approximate_mode_and_bytes_sources_do_not_store(fresh_cache, generated_video):
    path = generated_video("vp9.webm").path
    md.VideoDecoder(path, seek_mode="approximate").close()
    md.VideoDecoder(path.read_bytes()).close()
    assert index_cache.stats()["entries"] == 0


def test_disk_cache_is_shared_with_another_process(fresh_cache, generated_video, tmp_path):
    cache_dir = tmp_path / "index-cache"
    index_cache.configure(directory=cache_dir)
    path = generated_video("h264_bframes.mkv").path
    with md.VideoDecoder(path) as dec:
        expected = dec[17]
    assert len(list(cache_dir.glob("*.json"))) == 1
    assert not list(cache_dir.glob("*.part"))
    code = (
        "import sys, torch, mediadecode as md\n"
        "from mediadecode import index_cache\n"
        "from mediadecode.backends import ffmpeg\n"
        "ffmpeg.FFmpegVideoReader._scan = lambda self: sys.exit('scanned despite the disk cache')\n"
        f"dec = md.VideoDecoder({str(path)!r})\n"
        "torch.save(dec[17], sys.argv[1])\n"
        "assert index_cache.stats()['disk_hits'] == 1\n"
    )
    out = tmp_path / "frame.pt"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "MEDIADECODE_INDEX_CACHE_DIR": str(cache_dir)},
    )
    assert proc.returncode == 0, proc.stderr
    import torch

    assert torch.equal(torch.load(out), expected)


def test_memory_cache_is_bounded(fresh_cache, generated_video):
    index_cache.configure(max_entries=2)
    for name in ["h264_bframes.mp4", "h264_bframes.mkv", "vp9.webm"]:
        md.VideoDecoder(generated_video(name).path).close()
    assert index_cache.stats()["entries"] == 2
    with pytest.raises(ValueError):
        index_cache.configure(max_entries=0)
