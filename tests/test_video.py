"""VideoDecoder on the ffmpeg backend, checked against FFmpeg's own output.

The reference for every pixel and timestamp is PyAV decoding the file sequentially
(``frame.to_ndarray(format="rgb24")``, ``frame.time``), rotated by the display matrix as players
show it (see ``conftest.pyav_reference``). Pixels must be bit-exact, timestamps equal as float64.
Other expected numbers come from how a file was generated (``conftest.Generated``) or from the
media corpus's MANIFEST.md.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import math
import threading
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from conftest import (
    GENERATORS,
    MEDIA_DIR,
    MEDIA_MISSING_REASON,
    Generated,
    Reference,
    count_open_fds,
    media_path,
    parse_manifest,
    pyav_reference,
)
from mediadecode import VideoDecoder
from mediadecode.errors import DecodingError, InvalidMediaError, MediaDecodeError, StreamNotFoundError

# -- the cases: every generated file and every video stream of the real corpus --------------------


def _shared_cases() -> list[str]:
    manifest = MEDIA_DIR / "MANIFEST.md"
    if not manifest.is_file():
        return ["media:<absent>"]
    names = []
    for name, streams in sorted(parse_manifest(manifest).items()):
        if name == "corrupted_h264.mp4":
            continue  # damaged on purpose: tested on its own below
        if any(len(s) > 2 and s[2] == "video" for s in streams):
            names.append(f"media:{name}")
    # nasa_13013.mp4 has a second, smaller video stream (0) besides the default one (3).
    if "media:nasa_13013.mp4" in names:
        names.append("media:nasa_13013.mp4#0")
    return names


CASE_IDS = [f"gen:{name}" for name in GENERATORS] + _shared_cases()


@dataclasses.dataclass
class Case:
    id: str
    path: Path
    stream_index: int | None
    ref: Reference
    generated: Generated | None

    def open(self, **kwargs) -> VideoDecoder:
        return VideoDecoder(self.path, stream_index=self.stream_index, **kwargs)

    @property
    def hw(self) -> tuple[int, int]:
        return self.ref.frames.shape[1], self.ref.frames.shape[2]

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(zlib.crc32(self.id.encode()))


@pytest.fixture(scope="module", params=CASE_IDS)
def case(request, generated_video) -> Case:
    # Module scope: pytest runs all tests of one file together, so each reference is decoded once
    # and only one is held in memory at a time.
    kind, _, name = request.param.partition(":")
    if kind == "gen":
        gen = generated_video(name)
        return Case(request.param, gen.path, None, pyav_reference(gen.path), gen)
    if name == "<absent>":
        pytest.skip(MEDIA_MISSING_REASON)
    name, _, stream = name.partition("#")
    path = media_path(name)
    stream_index = int(stream) if stream else None
    return Case(request.param, path, stream_index, pyav_reference(path, stream_index), None)


def nhwc(data: torch.Tensor, dimension_order: str) -> np.ndarray:
    """Frames (batched or single) as a channels-last numpy array."""
    assert data.dtype == torch.uint8
    if dimension_order == "NCHW":
        data = data.movedim(-3, -1)
    return data.numpy()


def assert_frames_equal(actual: torch.Tensor, expected: np.ndarray, dimension_order="NCHW", what=""):
    got = nhwc(actual, dimension_order)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    if not np.array_equal(got, expected):
        if got.ndim == 4:
            bad = [i for i in range(len(got)) if not np.array_equal(got[i], expected[i])]
            pytest.fail(f"{what}: frames at batch positions {bad[:10]} differ from FFmpeg's")
        pytest.fail(f"{what}: frame differs from FFmpeg's")


def assert_pts_equal(actual: torch.Tensor, expected: np.ndarray):
    assert actual.dtype == torch.float64
    np.testing.assert_array_equal(actual.numpy(), expected)


# -- per-file checks against the PyAV reference ----------------------------------------------------


def test_len_and_num_frames(case):
    with case.open() as dec:
        assert len(dec) == len(case.ref)
        assert dec.metadata.num_frames == len(case.ref)
        assert dec.metadata.num_frames_from_content == len(case.ref)


def test_get_all_frames_nhwc(case):
    with case.open(dimension_order="NHWC") as dec:
        batch = dec.get_all_frames()
        assert batch.data.dtype == torch.uint8
        assert tuple(batch.data.shape) == (len(case.ref), *case.hw, 3)
        assert_frames_equal(batch.data, case.ref.frames, "NHWC", "get_all_frames")
        assert_pts_equal(batch.pts_seconds, case.ref.times)
        assert batch.duration_seconds.dtype == torch.float64
        assert bool((batch.duration_seconds > 0).all())


def test_iteration(case):
    with case.open() as dec:
        frames = list(dec)
        assert len(frames) == len(case.ref)
        assert all(f.shape == (3, *case.hw) for f in frames)
        assert_frames_equal(torch.stack(frames), case.ref.frames, "NCHW", "iteration")


def test_getitem_every_index_backwards(case):
    n = len(case.ref)
    indices = list(range(n - 1, -1, -1))
    if n * case.ref.frames[0].size > 20_000_000:
        # long or large files: a spread of indices, still visited backwards (each one a seek)
        indices = sorted(set(case.rng().choice(n, 6, replace=False).tolist()) | {0, n - 1}, reverse=True)
    with case.open() as dec:
        for i in indices:
            assert_frames_equal(dec[i], case.ref.frames[i], "NCHW", f"decoder[{i}]")
        for i in indices[:: max(1, len(indices) // 4)]:
            assert_frames_equal(dec[i - n], case.ref.frames[i], "NCHW", f"decoder[{i - n}]")
        frame = dec.get_frame_at(indices[0])
        assert frame.pts_seconds == case.ref.times[indices[0]]
        assert_frames_equal(frame.data, case.ref.frames[indices[0]], "NCHW", "get_frame_at")
        for bad in (n, -n - 1):
            with pytest.raises(IndexError):
                dec[bad]
            with pytest.raises(IndexError):
                dec.get_frame_at(bad)
            with pytest.raises(IndexError):
                dec.get_frames_at([0, bad])


def test_get_frames_at_random(case):
    n = len(case.ref)
    rng = case.rng()
    idx = rng.integers(0, n, size=min(24, 2 * n)).tolist()
    idx += [idx[0], idx[-1], 0, n - 1, 0]  # duplicates
    idx = [i - n if k % 3 == 0 else i for k, i in enumerate(idx)]  # negative indices
    rng.shuffle(idx)
    resolved = [i % n for i in idx]
    assert resolved != sorted(resolved)
    with case.open() as dec:
        batch = dec.get_frames_at(idx)
        assert_frames_equal(batch.data, case.ref.frames[resolved], "NCHW", f"get_frames_at({idx})")
        assert_pts_equal(batch.pts_seconds, case.ref.times[resolved])
        # a tensor of indices works the same
        again = dec.get_frames_at(torch.tensor(idx))
        assert torch.equal(again.data, batch.data)


@pytest.mark.parametrize(
    "key",
    [
        slice(1, None, 3),
        slice(-5, None),
        slice(2, -1, 2),
        slice(None, None, -1),
        slice(-2, 1, -3),
        slice(5, 0, -2),
        slice(0, 10_000, 7),
        slice(10_000, None),  # empty
    ],
    ids=str,
)
def test_slices(case, key):
    with case.open() as dec:
        data = dec[key]
        expected = case.ref.frames[key]
        assert data.shape == (len(expected), 3, *case.hw)
        assert_frames_equal(data, expected, "NCHW", f"decoder[{key}]")


def test_get_frames_in_range(case):
    n = len(case.ref)
    with case.open(dimension_order="NHWC") as dec:
        for start, stop, step in [(1, n - 1, 2), (-4, n, 3), (0, 10_000, 5), (n // 2, n // 2, 1)]:
            batch = dec.get_frames_in_range(start, stop, step)
            expected = case.ref.frames[start:stop:step]
            assert_frames_equal(batch.data, expected, "NHWC", f"get_frames_in_range({start}, {stop}, {step})")
            assert_pts_equal(batch.pts_seconds, case.ref.times[start:stop:step])
        with pytest.raises(ValueError):
            dec.get_frames_in_range(n - 1, 0)  # reversed
        with pytest.raises(ValueError):
            dec.get_frames_in_range(-1, 0)  # reversed once -1 is resolved
        for step in (0, -1):
            with pytest.raises(ValueError):
                dec.get_frames_in_range(0, n, step)


def test_dimension_orders(case):
    n = len(case.ref)
    h, w = case.hw
    idx = [n - 1, 0, n // 2]
    with case.open(dimension_order="NCHW") as nchw, case.open(dimension_order="NHWC") as nhwc_dec:
        a, b = nchw.get_frames_at(idx).data, nhwc_dec.get_frames_at(idx).data
        assert a.shape == (3, 3, h, w) and b.shape == (3, h, w, 3)
        assert a.dtype == b.dtype == torch.uint8
        assert torch.equal(a, b.permute(0, 3, 1, 2))
        assert nchw[0].shape == (3, h, w) and nhwc_dec[0].shape == (h, w, 3)
        assert torch.equal(nchw[0], nhwc_dec[0].permute(2, 0, 1))
        for dec, shape in ((nchw, (0, 3, h, w)), (nhwc_dec, (0, h, w, 3))):
            empty = dec.get_frames_at([])
            assert tuple(empty.data.shape) == shape and empty.data.dtype == torch.uint8
            assert tuple(empty.pts_seconds.shape) == (0,) and empty.pts_seconds.dtype == torch.float64
            assert tuple(empty.duration_seconds.shape) == (0,)
            assert len(empty) == 0


def test_metadata_matches_reference(case):
    h, w = case.hw
    with case.open() as dec:
        m = dec.metadata
        assert (m.width, m.height) == (w, h)
        assert m.stream_index == dec.stream_index == case.ref.stream_index
        assert (m.rotation or 0) == 90 * round(case.ref.rotation / 90)
        assert m.begin_stream_seconds == case.ref.times[0]
        assert m.end_stream_seconds == pytest.approx(case.ref.end_seconds, abs=1e-9)
        duration = case.ref.end_seconds - case.ref.times[0]
        assert m.duration_seconds == pytest.approx(duration, abs=1e-9)
        # exact mode: average_fps is num_frames / duration from the packet scan ...
        assert m.average_fps == pytest.approx(len(case.ref) / duration, rel=1e-9)
        if case.generated is None or case.generated.cfr:
            # ... which on constant-rate media is the header's nominal rate
            assert m.average_fps == pytest.approx(float(case.ref.average_rate), rel=2e-3)


def _played_index(times: np.ndarray, t: float) -> int:
    """Index of the frame on screen at t: the last frame with pts <= t."""
    return int(np.searchsorted(times, t, side="right")) - 1


def test_frames_played_at(case):
    times = case.ref.times
    with case.open() as dec:
        begin, end = dec.metadata.begin_stream_seconds, dec.metadata.end_stream_seconds
        mids = (times[:-1] + times[1:]) / 2
        queries = [float(t) for t in times[::-1]] + [float(t) for t in mids]
        if len(queries) > 60:  # long files: a sample
            queries = [queries[k] for k in case.rng().choice(len(queries), 60, replace=False)]
        queries += [begin, end - 1e-6]
        queries = [queries[k] for k in case.rng().permutation(len(queries))]
        expected = [_played_index(times, t) for t in queries]
        batch = dec.get_frames_played_at(queries)
        assert_frames_equal(batch.data, case.ref.frames[expected], "NCHW", "get_frames_played_at")
        assert_pts_equal(batch.pts_seconds, times[expected])
        for t in queries[:4]:
            frame = dec.get_frame_played_at(t)
            assert frame.pts_seconds == times[_played_index(times, t)]
            assert_frames_equal(frame.data, case.ref.frames[_played_index(times, t)], "NCHW", f"at {t}")
        empty = dec.get_frames_played_at([])
        assert tuple(empty.data.shape) == (0, 3, *case.hw)
        # Outside [begin, end): IndexError, the same class for single and batched requests.
        for t in (begin - 1e-3, end, end + 1.0):
            with pytest.raises(IndexError):
                dec.get_frame_played_at(t)
            with pytest.raises(IndexError):
                dec.get_frames_played_at([begin, t])


def test_frames_played_in_range(case):
    times = case.ref.times
    n = len(times)
    with case.open() as dec:
        end = dec.metadata.end_stream_seconds
        ranges = [
            (float(times[0]), end),  # everything
            (float(times[1 % n]), float(times[-1])),  # starts on a pts, stops on one (excluded)
            (float(times[0] + times[min(1, n - 1)]) / 2, float(times[n // 2]) + 1e-4),  # between pts
            (float(times[n // 2]), float(times[n // 2])),  # empty
        ]
        for start, stop in ranges:
            batch = dec.get_frames_played_in_range(start, stop)
            # the frame on screen at start, then every frame whose pts is below stop
            lo = _played_index(times, start)
            hi = int(np.searchsorted(times, stop, side="left"))
            expected = list(range(lo, max(lo, hi))) if stop > start else []
            assert_frames_equal(batch.data, case.ref.frames[expected], "NCHW", f"range [{start}, {stop})")
            assert_pts_equal(batch.pts_seconds, times[expected])
            # frames whose pts is inside the range are always there
            inside = [i for i in range(n) if start <= times[i] < stop]
            assert set(inside) <= set(expected)

        # with fps: round((stop - start) * fps) output times start + k / fps, each the frame on
        # screen at that time
        start, stop, fps = float(times[0]), end, 7.5
        count = math.floor((stop - start) * fps + 0.5)
        out_times = [start + k / fps for k in range(count)]
        expected = [_played_index(times, t) for t in out_times]
        batch = dec.get_frames_played_in_range(start, stop, fps=fps)
        assert_frames_equal(batch.data, case.ref.frames[expected], "NCHW", "played_in_range(fps=7.5)")
        np.testing.assert_allclose(batch.pts_seconds.numpy(), out_times, rtol=0, atol=1e-9)

        with pytest.raises(ValueError):
            dec.get_frames_played_in_range(float(times[-1]), float(times[0]))  # reversed
        with pytest.raises(ValueError):
            dec.get_frames_played_in_range(float(times[0]) - 1.0, float(times[-1]))  # before begin
        with pytest.raises(ValueError):
            dec.get_frames_played_in_range(float(times[0]), end + 1.0)  # after end
        with pytest.raises(ValueError):
            dec.get_frames_played_in_range(float(times[0]), end, fps=0)


# -- seek modes ------------------------------------------------------------------------------------

CFR_FROM_ZERO = ["h264_bframes.mp4", "h264_bframes.mkv", "vp9.webm", "odd_67x45.mp4"]


@pytest.mark.parametrize("name", CFR_FROM_ZERO)
def test_approximate_equals_exact_on_cfr(generated_video, name):
    """approximate mode trusts the header (no packet scan) and maps index i to the frame on screen
    at begin + (i + 0.5) / fps; on constant-frame-rate files it returns the same frames."""
    gen = generated_video(name)
    ref = pyav_reference(gen.path)
    with VideoDecoder(gen.path, seek_mode="approximate") as approx:
        m = approx.metadata
        assert m.num_frames_from_content is None and m.end_stream_seconds_from_content is None
        assert m.average_fps == float(gen.rate)  # header rate
        with av.open(str(gen.path)) as c:
            header_frames = c.streams.video[0].frames
        if header_frames:  # MP4 writes the count; Matroska/WebM do not (then duration * fps)
            assert m.num_frames == header_frames
        assert len(approx) == gen.num_frames
        batch = approx.get_frames_at(list(range(len(approx)))[::-1])
        assert_frames_equal(batch.data, ref.frames[::-1], "NCHW", f"approximate {name}")
        assert_pts_equal(batch.pts_seconds, ref.times[::-1])
        assert_frames_equal(approx[3:9:2], ref.frames[3:9:2], "NCHW", "approximate slice")


def test_approximate_on_vfr_maps_index_to_time(generated_video):
    """On variable-frame-rate media approximate mode differs from exact: index i is the frame on
    screen at begin + (i + 0.5) / header_fps, and num_frames is the header's count."""
    gen = generated_video("vfr.mp4")
    ref = pyav_reference(gen.path)
    with av.open(str(gen.path)) as c:
        stream = c.streams.video[0]
        header_frames, header_fps = stream.frames, float(stream.average_rate)
    with VideoDecoder(gen.path, seek_mode="approximate") as approx, VideoDecoder(gen.path) as exact:
        assert approx.metadata.num_frames == header_frames == gen.num_frames
        assert approx.metadata.average_fps == pytest.approx(header_fps)
        n = len(approx)
        expected = [_played_index(ref.times, ref.times[0] + (i + 0.5) / header_fps) for i in range(n)]
        assert expected != list(range(n))  # the file really is VFR
        assert_frames_equal(approx.get_frames_at(list(range(n))).data, ref.frames[expected], "NCHW", "vfr")
        # exact mode is right frame by frame
        assert_frames_equal(exact.get_frames_at(list(range(n))).data, ref.frames, "NCHW", "vfr exact")


def test_approximate_nonzero_start(generated_video):
    gen = generated_video("nonzero_start.mkv")
    ref = pyav_reference(gen.path)
    with VideoDecoder(gen.path, seek_mode="approximate") as approx:
        assert approx.metadata.begin_stream_seconds == gen.first_pts_seconds
        # Matroska's segment duration runs from 0: the frame count must not include the 1.5 s
        # before the first frame.
        assert len(approx) == gen.num_frames
        idx = list(range(gen.num_frames))
        assert_frames_equal(approx.get_frames_at(idx).data, ref.frames, "NCHW", "approximate nonzero start")


def test_bad_seek_mode_and_dimension_order(h264_mp4):
    with pytest.raises(ValueError):
        VideoDecoder(h264_mp4.path, seek_mode="fast")
    with pytest.raises(ValueError):
        VideoDecoder(h264_mp4.path, dimension_order="CHW")


# -- generated files: numbers from the generator -----------------------------------------------


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generated_metadata(generated_video, name):
    gen = generated_video(name)
    with VideoDecoder(gen.path) as dec:
        m = dec.metadata
        assert (m.width, m.height) == (gen.width, gen.height)
        assert len(dec) == m.num_frames == gen.num_frames
        assert m.begin_stream_seconds == pytest.approx(gen.first_pts_seconds, abs=1e-3)
        assert m.rotation is None
        # the pts the generator gave the frames, in seconds (containers may round to 1 ms)
        expected = [float(p * gen.time_base) for p in gen.pts]
        np.testing.assert_allclose(dec.get_all_frames().pts_seconds.numpy(), expected, rtol=0, atol=1e-3)
        if gen.cfr:
            assert m.average_fps == pytest.approx(float(gen.rate), rel=2e-3)


def test_generated_vfr_timestamps_exact(generated_video):
    gen = generated_video("vfr.mp4")  # 1/1000 time base: MP4 keeps the millisecond values exactly
    with VideoDecoder(gen.path) as dec:
        expected = [p / 1000 for p in gen.pts]
        assert dec.get_all_frames().pts_seconds.tolist() == expected
        m = dec.metadata
        assert m.average_fps == pytest.approx(len(gen.pts) / m.duration_seconds)


def test_generated_nonzero_start_times(generated_video):
    gen = generated_video("nonzero_start.mkv")
    with VideoDecoder(gen.path) as dec:
        assert dec.metadata.begin_stream_seconds == 1.5
        assert dec.get_frame_played_at(1.5).pts_seconds == 1.5
        with pytest.raises(IndexError):
            dec.get_frame_played_at(1.0)
        with pytest.raises(IndexError):
            dec.get_frames_played_at([1.0])


# -- real corpus: numbers from PyAV and the MANIFEST ------------------------------------------------


@pytest.mark.parametrize("name, clockwise", [("video_0.mov", 0), ("video_90.mov", 90),
                                             ("video_180.mov", 180), ("video_270.mov", 270)])
def test_rotation_metadata(manifest, name, clockwise):
    path = media_path(name)
    coded = manifest[name][0]
    coded_w, coded_h = int(coded[3]), int(coded[4])
    with av.open(str(path)) as c:
        pyav_rotation = next(c.decode(video=0)).rotation
    with VideoDecoder(path) as dec:
        m = dec.metadata
        # PyAV's frame.rotation is the display matrix angle (counter-clockwise); the file names
        # give decord's clockwise rotate tag
        assert (m.rotation or 0) == pyav_rotation
        assert (-(m.rotation or 0)) % 360 == clockwise
        expected_wh = (coded_h, coded_w) if clockwise in (90, 270) else (coded_w, coded_h)
        assert (m.width, m.height) == expected_wh
        assert dec[0].shape == (3, expected_wh[1], expected_wh[0])


def test_nasa_streams(manifest):
    path = media_path("nasa_13013.mp4")
    streams = {int(s[0]): s for s in manifest["nasa_13013.mp4"]}
    with VideoDecoder(path) as dec:
        assert dec.stream_index == 3  # the MANIFEST: stream 3 is the best/default one
        assert len(dec) == dec.metadata.num_frames == 390
        assert (dec.metadata.width, dec.metadata.height) == (int(streams[3][3]), int(streams[3][4]))
        assert dec.metadata.average_fps == pytest.approx(float(Fraction(streams[3][6])))
    with VideoDecoder(path, stream_index=0) as dec0:
        assert dec0.stream_index == 0
        assert (dec0.metadata.width, dec0.metadata.height) == (320, 180)
        assert dec0[0].shape == (3, 180, 320)
        assert dec0.metadata.average_fps == pytest.approx(float(Fraction(streams[0][6])))
    for bad in (1, 2, 6, -1):  # audio, subtitle, out of range
        with pytest.raises(StreamNotFoundError):
            VideoDecoder(path, stream_index=bad)


def test_non_zero_start_file():
    path = media_path("test_non_zero_start.mp4")
    with av.open(str(path)) as c:
        first = next(c.decode(video=0)).time
    assert first > 0
    with VideoDecoder(path) as dec:
        assert dec.metadata.begin_stream_seconds == first > 0
        assert dec[0].shape == (3, 112, 200)
        with pytest.raises(IndexError):
            dec.get_frame_played_at(first / 2)


def test_average_fps_matches_manifest(manifest):
    for name, streams in manifest.items():
        if name == "corrupted_h264.mp4":
            continue
        for s in streams:
            if len(s) < 7 or s[2] != "video":
                continue
            with VideoDecoder(MEDIA_DIR / name, stream_index=int(s[0])) as dec:
                assert dec.metadata.average_fps == pytest.approx(float(Fraction(s[6])), rel=2e-3), name
            with VideoDecoder(MEDIA_DIR / name, stream_index=int(s[0]), seek_mode="approximate") as dec:
                assert dec.metadata.average_fps == pytest.approx(float(Fraction(s[6])), rel=1e-9), name


def test_corrupted_file_errors_or_frames():
    """A damaged file gives frames or a MediaDecodeError that names the file: nothing else."""
    path = media_path("corrupted_h264.mp4")
    try:
        dec = VideoDecoder(path)
    except MediaDecodeError as exc:
        assert path.name in str(exc)
        return
    outcomes = []
    with dec:
        n = len(dec)
        assert n > 0
        for i in list(range(n)) + [0, n // 2, n - 1]:
            try:
                frame = dec[i]
            except MediaDecodeError as exc:
                assert path.name in str(exc)
                outcomes.append("error")
            else:
                assert frame.shape == (3, dec.metadata.height, dec.metadata.width)
                assert frame.dtype == torch.uint8
                outcomes.append("frame")
        try:
            batch = dec.get_all_frames()
        except MediaDecodeError as exc:
            assert path.name in str(exc)
        else:
            assert len(batch) == n
    assert "frame" in outcomes  # its first frames are intact


# -- sources -----------------------------------------------------------------------------------


def _all_sources(path: Path, stack):
    data = path.read_bytes()
    yield "str", str(path)
    yield "Path", path
    yield "bytes", data
    yield "tensor", torch.frombuffer(bytearray(data), dtype=torch.uint8)
    yield "BytesIO", io.BytesIO(data)
    f = open(path, "rb")
    stack.append(f)
    yield "file", f


@pytest.mark.parametrize("which", ["generated", "rotated"])
def test_sources_give_identical_frames(h264_mp4, which):
    path = h264_mp4.path if which == "generated" else media_path("nasa_13013_rotated.mp4")
    ref = pyav_reference(path)
    n = len(ref)
    idx = [n - 1, 0, n // 2, 1]
    files: list = []
    try:
        for kind, source in _all_sources(path, files):
            with VideoDecoder(source, dimension_order="NHWC") as dec:
                assert len(dec) == n, kind
                assert_frames_equal(dec.get_all_frames().data, ref.frames, "NHWC", kind)
                assert_frames_equal(dec.get_frames_at(idx).data, ref.frames[idx], "NHWC", kind)
                assert (dec.metadata.width, dec.metadata.height) == (ref.frames.shape[2], ref.frames.shape[1])
    finally:
        for f in files:
            assert not f.closed  # the decoder does not close a caller's file object
            f.close()


# -- threads and file handles --------------------------------------------------------------------


def test_threads_share_one_decoder(h264_mp4):
    ref = pyav_reference(h264_mp4.path)
    n = len(ref)
    errors: list[BaseException] = []
    mismatches: list[str] = []
    barrier = threading.Barrier(4)

    with VideoDecoder(h264_mp4.path) as dec:

        def work(seed: int) -> None:
            rng = np.random.default_rng(seed)
            try:
                barrier.wait()
                for _ in range(8):
                    idx = rng.integers(-n, n, size=6).tolist()
                    batch = dec.get_frames_at(idx)
                    expect = ref.frames[[i % n for i in idx]]
                    if not np.array_equal(nhwc(batch.data, "NCHW"), expect):
                        mismatches.append(f"thread {seed}: {idx}")
                    i = int(rng.integers(0, n))
                    if not np.array_equal(nhwc(dec[i], "NCHW"), ref.frames[i]):
                        mismatches.append(f"thread {seed}: [{i}]")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    assert not mismatches, mismatches


def test_no_leaked_file_handles(h264_mp4, tmp_path):
    if count_open_fds() is None:
        pytest.skip("/proc/self/fd is not available on this platform")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video at all" * 100)
    corrupted = MEDIA_DIR / "corrupted_h264.mp4"
    data = h264_mp4.path.read_bytes()

    def exercise():
        for source in (h264_mp4.path, str(h264_mp4.path), data, io.BytesIO(data)):
            dec = VideoDecoder(source)
            dec.get_frames_at([0, -1])
            dec.close()
            dec.close()  # idempotent
            with pytest.raises(ValueError):
                dec[0]  # closed
        with VideoDecoder(h264_mp4.path, seek_mode="approximate") as dec:
            dec[5]
        with pytest.raises(InvalidMediaError):
            VideoDecoder(garbage)
        with pytest.raises(InvalidMediaError):
            VideoDecoder(b"\x00" * 1000)
        with pytest.raises(StreamNotFoundError):
            VideoDecoder(h264_mp4.path, stream_index=3)
        with pytest.raises(IndexError):
            with VideoDecoder(h264_mp4.path) as dec:
                dec[10_000]
        if corrupted.is_file():
            with VideoDecoder(corrupted) as dec:
                try:
                    dec.get_all_frames()
                except MediaDecodeError:
                    pass

    exercise()  # warm-up: lazy imports and FFmpeg's one-time setup may open files
    gc.collect()
    before = count_open_fds()
    for _ in range(3):
        exercise()
    gc.collect()
    after = count_open_fds()
    assert after == before, f"{after - before} file descriptors leaked"


def test_corrupted_file_decodes_every_frame_ffmpeg_can():
    """One corrupt packet costs only its frame: every other frame equals PyAV's own decode,
    packet by packet, skipping the packets the decoder rejects (what the ffmpeg CLI does)."""
    import av

    path = media_path("corrupted_h264.mp4")
    reference = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1  # PyAV's default is FFmpeg's automatic slice threads
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            for frame in frames:
                reference[frame.time] = frame.to_ndarray(format="rgb24")
    # One decoding thread, like the reference: with frame threading FFmpeg reports a corrupt
    # packet's error on a later packet, so concealment (and the frames around it) can differ.
    with VideoDecoder(path, dimension_order="NHWC", num_threads=1) as dec:
        pts_ticks = {
            i: dec.get_frame_at(i).pts_seconds for i in range(len(dec)) if _decodes(dec, i)
        }
        assert len(pts_ticks) == len(reference) > 0
        for i, ticks in pts_ticks.items():
            assert np.array_equal(dec[i].numpy(), reference[ticks]), i
        missing = sorted(set(range(len(dec))) - set(pts_ticks))
        for i in missing:
            with pytest.raises(DecodingError, match=rf"corrupted_h264\.mp4: frame {i} "):
                dec[i]


def _decodes(dec, index: int) -> bool:
    try:
        dec[index]
    except DecodingError:
        return False
    return True
