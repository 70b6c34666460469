"""Batched random access (GOP-aware planning, seek once per GOP, decode forward, convert only the
requested frames) gives exactly what a plain sequential decode gives, for any index set.

The reference is FFmpeg's own sequential decode through PyAV. One decoder serves many examples in a
row, so the reader's position state (where the last request left it) is exercised too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mediadecode as md
from conftest import encode_video, pyav_reference

FILES = ["h264_bframes.mp4", "h264_bframes.mkv", "vp9.webm", "vfr.mp4", "open_gop.mp4"]


def _open_gop(folder: Path):
    # Open GOPs: B-frames after an I-frame (in decode order) reference the previous GOP.
    options = {"preset": "ultrafast", "bf": "3", "g": "10",
               "x264-params": "open-gop=1:bframes=3:b-adapt=0:keyint=10:min-keyint=10:scenecut=0"}
    return encode_video(folder / "open_gop.mp4", codec="libx264", width=64, height=48,
                        pix_fmt="yuv420p", num_frames=60, options=options)


@pytest.fixture(scope="module")
def references(generated_video, generated_video_dir):
    out = {}
    for name in FILES:
        gen = _open_gop(generated_video_dir) if name == "open_gop.mp4" else generated_video(name)
        out[name] = (gen.path, pyav_reference(gen.path))
    return out


def test_open_gop_file_really_has_open_gops(references):
    import av

    path, _ = references["open_gop.mp4"]
    with av.open(str(path)) as c:
        packets = [p for p in c.demux(video=0) if p.size]
    keyframe_pts = [p.pts for p in packets if p.is_keyframe]
    # a packet that follows a keyframe in decode order but is shown before it
    leading = [
        p for k, p in zip(packets, packets[1:])
        if k.is_keyframe and k.pts > 0 and p.pts < k.pts
    ]
    assert len(keyframe_pts) > 2 and leading


index_lists = st.lists(st.integers(min_value=-200, max_value=200), min_size=0, max_size=24)


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("num_threads", [1, 0])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=index_lists)
def test_get_frames_at_equals_sequential_decode(references, module_decoders, name, num_threads, raw):
    path, ref = references[name]
    n = len(ref)
    key = (name, num_threads)
    decoder = module_decoders.get(key)
    if decoder is None:
        decoder = module_decoders[key] = md.VideoDecoder(path, dimension_order="NHWC", num_threads=num_threads)
    indices = [i % (2 * n) - n for i in raw]  # in range, negatives and duplicates included
    batch = decoder.get_frames_at(indices)
    want = [i % n for i in indices]
    assert batch.data.shape == (len(indices), *ref.frames.shape[1:])
    assert np.array_equal(batch.data.numpy(), ref.frames[want])
    assert batch.pts_seconds.tolist() == ref.times[want].tolist()


@pytest.mark.parametrize("name", FILES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_played_at_equals_sequential_decode(references, name, data):
    path, ref = references[name]
    begin, end = float(ref.times[0]), float(ref.end_seconds)
    times = data.draw(st.lists(st.floats(min_value=begin, max_value=end, exclude_max=True),
                               max_size=12))
    with md.VideoDecoder(path, dimension_order="NHWC") as dec:
        batch = dec.get_frames_played_at(times)
    want = [int(np.searchsorted(ref.times, t, side="right")) - 1 for t in times]
    assert np.array_equal(batch.data.numpy(), ref.frames[want])


@pytest.mark.parametrize("name", ["h264_bframes.mp4", "h264_bframes.mkv", "vp9.webm", "open_gop.mp4"])
def test_approximate_mode_random_access_on_cfr(references, name):
    path, ref = references[name]
    rng = np.random.default_rng(0)
    indices = rng.integers(0, len(ref), size=30).tolist()
    with md.VideoDecoder(path, dimension_order="NHWC", seek_mode="approximate") as dec:
        assert len(dec) == len(ref)
        got = dec.get_frames_at(indices).data.numpy()
        singles = np.stack([dec[i].numpy() for i in indices[:8]])
    assert np.array_equal(got, ref.frames[indices])
    assert np.array_equal(singles, ref.frames[indices[:8]])


def test_one_seek_per_gop(references):
    """Frames of one GOP cost one seek, and frames of later GOPs never re-decode earlier ones."""
    path, ref = references["h264_bframes.mp4"]  # GOP 12
    with md.VideoDecoder(path, num_threads=1) as dec:
        cursor = dec._r._cursor  # the ffmpeg backend's decode cursor
        seeks = []
        original = cursor.seek

        def counting_seek(ts):
            seeks.append(ts)
            return original(ts)

        cursor.seek = counting_seek
        dec.get_frames_at([40, 13, 14, 15, 2, 41])  # GOPs 0, 1, 3
        assert len(seeks) <= 3
        seeks.clear()
        dec.get_frames_at([24, 25, 26, 27])  # one GOP, forward
        assert len(seeks) <= 1


def test_unrequested_non_reference_frames_are_skipped(references, monkeypatch):
    """Decoding forward to a frame late in a GOP lets FFmpeg skip the disposable B-frames in
    between (skip_frame=NONREF packet by packet); the requested frames are still FFmpeg's."""
    from mediadecode.engine import CpuDecoderSetup, DecodeCursor

    path, ref = references["h264_bframes.mp4"]  # GOP 12, B-frames
    decoded = {}
    for skip in (False, True):
        monkeypatch.setattr(CpuDecoderSetup, "skip_nonref", skip)
        counts = []
        original = DecodeCursor.next_frame

        def counting(self, original=original, counts=counts):
            had_pending = self._pending is not None
            frame = original(self)
            if frame is not None and not had_pending:
                counts.append(frame.pts)
            return frame

        monkeypatch.setattr(DecodeCursor, "next_frame", counting)
        with md.VideoDecoder(path, dimension_order="NHWC", num_threads=1) as dec:
            got = dec.get_frames_at([11, 23, 35]).data.numpy()
        monkeypatch.setattr(DecodeCursor, "next_frame", original)
        assert np.array_equal(got, ref.frames[[11, 23, 35]])
        decoded[skip] = len(counts)
    assert decoded[True] < decoded[False], decoded
