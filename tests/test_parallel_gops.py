"""GOP-parallel decoding in the ffmpeg backend: a request spanning several GOPs is cut at GOP
boundaries and decoded by single-threaded clones of the reader in parallel threads. Results must be
exactly FFmpeg's sequential decode (PyAV), whatever the cut."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mediadecode as md
from mediadecode.backends import ffmpeg as ffmpeg_backend
from mediadecode.backends.ffmpeg import FFmpegVideoReader
from mediadecode.engine import DecodeCursor
from mediadecode.errors import DecodingError
from conftest import pyav_reference

FILES = ["h264_bframes.mp4", "h264_bframes.mkv", "vp9.webm", "vfr.mp4"]


@pytest.fixture(scope="module")
def refs(generated_video):
    return {name: (generated_video(name).path, pyav_reference(generated_video(name).path)) for name in FILES}


class _Spy:
    """Counts, per decode cursor, the frames each ``decode_exact`` call was asked for."""

    def __init__(self, monkeypatch):
        self.calls = []
        original = DecodeCursor.decode_exact
        spy = self

        def wrapped(cursor, targets, batch, writer, base=0):
            spy.calls.append((id(cursor), len(targets)))
            return original(cursor, targets, batch, writer, base)

        monkeypatch.setattr(DecodeCursor, "decode_exact", wrapped)


def _force_workers(monkeypatch, workers):
    monkeypatch.setattr(ffmpeg_backend, "available_cores", lambda: workers)
    monkeypatch.setattr(FFmpegVideoReader, "PARALLEL_MIN_FRAMES", 1)


def _workers(reader) -> list[DecodeCursor]:
    """The GOP-parallel worker cursors of a reader (none before its first parallel request)."""
    return [] if reader._parallel is None else reader._parallel.cursors


def test_request_over_several_gops_is_split_between_clones(refs, monkeypatch):
    path, ref = refs["h264_bframes.mp4"]  # GOP 12
    _force_workers(monkeypatch, 3)
    spy = _Spy(monkeypatch)
    indices = list(range(len(ref)))
    with md.VideoDecoder(path, dimension_order="NHWC", backend="ffmpeg") as dec:
        reader = dec._r
        batch = dec.get_frames_at(indices)
        workers = {id(w) for w in _workers(reader)}
    assert len(workers) == 3
    assert {who for who, _ in spy.calls} == workers  # every chunk went to a clone
    assert sum(n for _, n in spy.calls) == len(indices)
    assert np.array_equal(batch.data.numpy(), ref.frames)
    assert batch.pts_seconds.tolist() == ref.times.tolist()


@pytest.mark.parametrize("num_threads", [1])
def test_one_thread_means_no_clones(refs, monkeypatch, num_threads):
    path, ref = refs["h264_bframes.mp4"]
    monkeypatch.setattr(FFmpegVideoReader, "PARALLEL_MIN_FRAMES", 1)
    with md.VideoDecoder(path, num_threads=num_threads, backend="ffmpeg") as dec:
        dec.get_frames_at([0, 20, 47])
        assert _workers(dec._r) == []


def test_file_object_sources_are_not_split(refs, monkeypatch):
    """A caller's file object cannot be opened twice: one reader decodes everything."""
    path, ref = refs["h264_bframes.mp4"]
    _force_workers(monkeypatch, 2)
    with open(path, "rb") as f, md.VideoDecoder(f, dimension_order="NHWC", backend="ffmpeg") as dec:
        got = dec.get_frames_at([0, 20, 47]).data.numpy()
        assert _workers(dec._r) == []
    assert np.array_equal(got, ref.frames[[0, 20, 47]])


def test_bytes_sources_are_split(refs, monkeypatch):
    path, ref = refs["h264_bframes.mkv"]
    _force_workers(monkeypatch, 2)
    with md.VideoDecoder(path.read_bytes(), dimension_order="NHWC", backend="ffmpeg") as dec:
        got = dec.get_frames_at([1, 25, 45]).data.numpy()
        assert len(_workers(dec._r)) == 2
    assert np.array_equal(got, ref.frames[[1, 25, 45]])


def test_sequential_reading_stays_on_the_main_reader(refs, monkeypatch):
    """Iterating continues the main reader's decode (frame threading); clones would re-decode
    the GOP the main reader is in."""
    path, ref = refs["h264_bframes.mp4"]
    _force_workers(monkeypatch, 2)
    with md.VideoDecoder(path, dimension_order="NHWC", backend="ffmpeg") as dec:
        got = np.stack([f.numpy() for f in dec])
        assert _workers(dec._r) == []
    assert np.array_equal(got, ref.frames)


def test_error_in_a_clone_reaches_the_caller_and_the_decoder_recovers(refs, monkeypatch):
    path, ref = refs["h264_bframes.mp4"]
    _force_workers(monkeypatch, 2)
    original = DecodeCursor.decode_exact
    fail = {"on": True}

    def flaky(cursor, targets, batch, writer, base=0):
        if base > 0 and fail["on"]:
            raise DecodingError("injected failure")
        return original(cursor, targets, batch, writer, base)

    monkeypatch.setattr(DecodeCursor, "decode_exact", flaky)
    with md.VideoDecoder(path, dimension_order="NHWC", backend="ffmpeg") as dec:
        with pytest.raises(DecodingError, match="injected"):
            dec.get_frames_at([0, 47])
        fail["on"] = False
        assert np.array_equal(dec.get_frames_at([0, 47]).data.numpy(), ref.frames[[0, 47]])


def test_close_and_park_free_the_clones(refs, monkeypatch):
    path, _ = refs["h264_bframes.mp4"]
    _force_workers(monkeypatch, 2)
    dec = md.VideoDecoder(path, backend="ffmpeg")
    reader = dec._r
    dec.get_frames_at([0, 47])
    clones = _workers(reader)
    assert len(clones) == 2 and all(c.is_open for c in clones)
    reader.park()  # what happens before fork
    assert _workers(reader) == [] and not any(c.is_open for c in clones)
    dec.get_frames_at([0, 47])  # reopens, makes new clones
    clones = _workers(reader)
    dec.close()
    assert not any(c.is_open for c in clones)


index_lists = st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=40)


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("workers", [2, 3, 5])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=index_lists)
def test_any_cut_equals_sequential_decode(refs, module_decoders, name, workers, raw):
    path, ref = refs[name]
    n = len(ref)
    key = (name, workers)
    dec = module_decoders.get(key)
    if dec is None:
        dec = module_decoders[key] = md.VideoDecoder(path, dimension_order="NHWC", backend="ffmpeg")
        reader = dec._r
        reader._num_threads = workers  # this reader only: at most this many threads
        reader.PARALLEL_MIN_FRAMES = 1
    indices = [i % n for i in raw]
    batch = dec.get_frames_at(indices)
    assert np.array_equal(batch.data.numpy(), ref.frames[indices])
    assert batch.pts_seconds.tolist() == ref.times[indices].tolist()
