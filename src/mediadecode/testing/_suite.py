"""The conformance tests, as a pytest base class to subclass (see :mod:`mediadecode.testing`)."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
import torch

import mediadecode as md
from mediadecode import registry
from mediadecode.capabilities import Capabilities, Tolerance, capabilities_of

from ._media import MediaSet, VideoCase, audio_reference, media_in

__all__ = ["BackendConformance", "assert_frames_close", "assert_durations_ok"]

VIDEO_CASES = ["bframes_mp4", "nonzero_start_mkv", "vfr_mp4", "rotated90_mp4"]
AUDIO_CASES = ["wav_s16_stereo", "aac_mono_m4a"]


def assert_frames_close(actual: torch.Tensor, expected: np.ndarray, tol: Tolerance, what: str = "") -> None:
    """``actual`` (uint8, NCHW/CHW on any device) against FFmpeg's ``expected`` (NHWC/HWC numpy)
    within ``tol``.

    Raises:
        AssertionError: shapes differ, or the largest or mean absolute difference exceeds the
            tolerance (the message gives both).
    """
    got = actual.detach().cpu()
    assert got.dtype == torch.uint8, f"{what}: dtype {got.dtype}, expected torch.uint8"
    got = got.movedim(-3, -1).numpy() if got.ndim >= 3 else got.numpy()
    assert got.shape == expected.shape, f"{what}: shape {got.shape} (as NHWC), expected {expected.shape}"
    diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    worst = int(diff.max()) if diff.size else 0
    mean = float(diff.mean()) if diff.size else 0.0
    assert worst <= tol.max_abs and mean <= tol.mean_abs + 1e-12, (
        f"{what}: differs from FFmpeg's rgb24 by max {worst} / mean {mean:.4f} "
        f"(allowed max {tol.max_abs} / mean {tol.mean_abs})"
    )


def assert_durations_ok(actual, ref, indices, what: str = "") -> None:
    """Each frame's duration is FFmpeg's (the packet's duration) or, where the container gives
    none to the backend's FFmpeg, the gap to the next frame's pts (the previous gap for the
    last frame): both are what a player would show."""
    actual = np.asarray(actual, dtype=np.float64)
    gaps = np.diff(ref.pts)
    for value, i in zip(actual, indices):
        gap = gaps[i] if i < len(gaps) else (gaps[-1] if len(gaps) else ref.durations[i])
        ok = abs(value - ref.durations[i]) <= 1e-6 or abs(value - gap) <= 1e-6
        assert ok, (
            f"{what}: frame {i} lasts {value} s; FFmpeg says {ref.durations[i]} s "
            f"(gap to the next frame: {gap} s)"
        )


def _spread(n: int) -> list[int]:
    return sorted({0, 1, n // 3, n // 2, n - 2, n - 1} & set(range(n)))


class _FrameAt(torch.utils.data.Dataset):
    """A dataset that returns frames of one decoder (created in the main process)."""

    def __init__(self, decoder, indices):
        self.decoder = decoder
        self.indices = indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, k):
        return self.decoder[self.indices[k]]


class BackendConformance:
    """Conformance tests for one backend. Subclass it in a test module::

        from mediadecode.testing import BackendConformance

        class TestMyBackend(BackendConformance):
            backend_name = "mybackend"

    Class attributes to set:
        backend_name: the registered name (required).
        device: the device to decode on (default ``"cpu"``).
        skip_if_unavailable: skip every test when the backend is unavailable here instead of
            failing (default False: for a backend's own CI an unavailable backend is a failure).
        dataloader_start_methods: multiprocessing start methods for the DataLoader test
            (default ``("fork",)`` where fork exists; ``"spawn"`` runs in the slow test).

    The kit generates its media with PyAV's encoders (see :mod:`mediadecode.testing._media`) and
    compares against FFmpeg's own decode, within the backend's declared
    :class:`~mediadecode.capabilities.Tolerance` for the device. Tests for what the backend does
    not declare (audio, approximate seek mode, bytes or file-like sources) are skipped with the
    reason; where the declaration says "cannot", the kit checks that the backend, chosen
    explicitly, refuses with :class:`~mediadecode.errors.UnsupportedRequestError`.
    """

    backend_name: str = ""
    device: str = "cpu"
    skip_if_unavailable: bool = False

    # -- fixtures ------------------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _backend_ready(self, monkeypatch):
        if not self.backend_name:
            pytest.fail(f"{type(self).__name__} must set backend_name")
        # Explicit backend= arguments are used throughout; keep outside choices out of the way.
        monkeypatch.delenv("MEDIADECODE_BACKEND", raising=False)
        reason = registry.unavailable_reason(self.backend_name)
        if reason is not None:
            if self.skip_if_unavailable:
                pytest.skip(f"backend {self.backend_name!r} is unavailable: {reason}")
            pytest.fail(f"backend {self.backend_name!r} is unavailable: {reason}")

    @pytest.fixture
    def media(self, tmp_path_factory) -> MediaSet:
        """The kit's generated media (made once per test session, then cached)."""
        return media_in(tmp_path_factory.getbasetemp() / "mediadecode-conformance")

    @pytest.fixture
    def caps(self) -> Capabilities:
        return capabilities_of(registry.get_backend_class(self.backend_name))

    @pytest.fixture
    def tol(self, caps) -> Tolerance:
        return caps.tolerance_for(self.device)

    @pytest.fixture(params=VIDEO_CASES)
    def video(self, request, media, caps) -> VideoCase:
        if "video" not in caps.media_types:
            pytest.skip(f"{self.backend_name} does not decode video")
        return media.videos[request.param]

    @pytest.fixture(params=AUDIO_CASES)
    def audio(self, request, media, caps):
        if "audio" not in caps.media_types:
            pytest.skip(f"{self.backend_name} does not decode audio")
        return media.audios[request.param]

    def open_video(self, source, **kwargs) -> md.VideoDecoder:
        """A :class:`~mediadecode.VideoDecoder` on this backend and device."""
        kwargs.setdefault("device", self.device)
        return md.VideoDecoder(source, backend=self.backend_name, **kwargs)

    def open_audio(self, source, **kwargs) -> md.AudioDecoder:
        return md.AudioDecoder(source, backend=self.backend_name, **kwargs)

    # -- declaration ---------------------------------------------------------------------------

    def test_declares_capabilities(self, caps):
        cls = registry.get_backend_class(self.backend_name)
        assert isinstance(caps, Capabilities)
        for attr in ("name", "priority", "devices", "media_types"):
            assert hasattr(cls, attr), f"the backend class lacks {attr!r}"
        assert set(caps.devices) == set(cls.devices)
        assert set(caps.media_types) == set(cls.media_types)
        row = next(r for r in md.list_backends() if r.name == self.backend_name)
        assert row.available and row.reason == ""
        assert row.capabilities == caps
        assert self.device.split(":")[0] in caps.devices

    # -- video: metadata -----------------------------------------------------------------------

    def test_metadata(self, video):
        ref = video.reference()
        with self.open_video(video.path) as dec:
            assert dec.backend == self.backend_name
            meta = dec.metadata
            assert len(dec) == meta.num_frames == len(ref) == video.num_frames
            assert (meta.width, meta.height) == (video.width, video.height)
            assert (meta.rotation or 0) % 360 == video.rotation % 360
            assert dec.stream_index == meta.stream_index == 0
            one_frame = 1 / float(video.rate)
            assert meta.begin_stream_seconds == pytest.approx(ref.pts[0], abs=1e-6)
            assert meta.begin_stream_seconds == pytest.approx(video.first_pts_seconds, abs=1e-6)
            end = ref.pts[-1] + ref.durations[-1]
            assert meta.end_stream_seconds == pytest.approx(end, abs=one_frame)
            assert meta.duration_seconds == pytest.approx(end - ref.pts[0], abs=one_frame)
            assert meta.average_fps == pytest.approx(len(ref) / (end - ref.pts[0]), rel=0.05)
            assert meta.codec

    # -- video: indexing -----------------------------------------------------------------------

    def test_index_and_negative_index(self, video, tol):
        ref = video.reference()
        n = len(ref)
        with self.open_video(video.path) as dec:
            for i in _spread(n) + [-1, -n]:
                assert_frames_close(dec[i], ref.frames[i], tol, f"{video.name}[{i}]")
            frame = dec.get_frame_at(-2)
            assert_frames_close(frame.data, ref.frames[n - 2], tol, f"{video.name} frame -2")
            assert frame.pts_seconds == pytest.approx(ref.pts[n - 2], abs=1e-6)
            assert_durations_ok([frame.duration_seconds], ref, [n - 2], video.name)
            for bad in (n, -n - 1):
                with pytest.raises(IndexError):
                    dec[bad]
                with pytest.raises(IndexError):
                    dec.get_frames_at([0, bad])

    def test_slices(self, video, tol):
        ref = video.reference()
        n = len(ref)
        with self.open_video(video.path) as dec:
            for key in (slice(None, None, 3), slice(n - 2, 1, -4), slice(-5, None), slice(2, 6)):
                expected = ref.frames[list(range(*key.indices(n)))]
                assert_frames_close(dec[key], expected, tol, f"{video.name}[{key}]")
            empty = dec[3:3]
            assert empty.shape == (0, 3, video.height, video.width)

    def test_get_frames_at_any_order_with_pts(self, video, tol):
        ref = video.reference()
        n = len(ref)
        indices = [n - 1, 0, n // 2, 0, -1, 3]
        resolved = [i % n for i in indices]
        with self.open_video(video.path) as dec:
            batch = dec.get_frames_at(indices)
            assert_frames_close(batch.data, ref.frames[resolved], tol, f"{video.name} frames {indices}")
            assert batch.pts_seconds.dtype == torch.float64
            np.testing.assert_allclose(batch.pts_seconds.numpy(), ref.pts[resolved], atol=1e-6)
            assert_durations_ok(batch.duration_seconds.numpy(), ref, resolved, video.name)
            empty = dec.get_frames_at([])
            assert empty.data.shape == (0, 3, video.height, video.width)
            assert empty.pts_seconds.shape == (0,)

    def test_get_frames_in_range_and_iteration(self, video, tol):
        ref = video.reference()
        n = len(ref)
        with self.open_video(video.path, dimension_order="NHWC") as dec:
            batch = dec.get_frames_in_range(1, n - 1, 3)
            idx = list(range(1, n - 1, 3))
            assert batch.data.shape[1:] == (video.height, video.width, 3)
            assert_frames_close(batch.data.movedim(-1, -3), ref.frames[idx], tol, f"{video.name} range")
            np.testing.assert_allclose(batch.pts_seconds.numpy(), ref.pts[idx], atol=1e-6)
            with pytest.raises(ValueError):
                dec.get_frames_in_range(5, 2)
            frames = list(dec)
            assert len(frames) == n
            assert_frames_close(torch.stack(frames).movedim(-1, -3), ref.frames, tol, f"{video.name} iteration")

    # -- video: time ---------------------------------------------------------------------------

    def test_played_at(self, video, tol):
        ref = video.reference()
        n = len(ref)
        with self.open_video(video.path) as dec:
            begin, end = dec.metadata.begin_stream_seconds, dec.metadata.end_stream_seconds
            times = [begin, ref.pts[n // 2] - 1e-4, ref.pts[n // 2], ref.pts[n // 2] + 1e-4,
                     (ref.pts[-1] + end) / 2]
            expected = [ref.index_played_at(t) for t in times]
            batch = dec.get_frames_played_at(times)
            assert_frames_close(batch.data, ref.frames[expected], tol, f"{video.name} played at {times}")
            np.testing.assert_allclose(batch.pts_seconds.numpy(), ref.pts[expected], atol=1e-6)
            one = dec.get_frame_played_at(times[2])
            assert one.pts_seconds == pytest.approx(ref.pts[n // 2], abs=1e-6)
            for bad in (begin - 0.01, end, end + 1.0):
                with pytest.raises(IndexError):
                    dec.get_frame_played_at(bad)
                with pytest.raises(IndexError):
                    dec.get_frames_played_at([bad])

    def test_played_in_range(self, video, tol):
        ref = video.reference()
        n = len(ref)
        with self.open_video(video.path) as dec:
            start, stop = ref.pts[2] + 1e-4, ref.pts[n - 3]
            batch = dec.get_frames_played_in_range(start, stop)
            idx = list(range(2, n - 3))
            assert_frames_close(batch.data, ref.frames[idx], tol, f"{video.name} played in range")
            np.testing.assert_allclose(batch.pts_seconds.numpy(), ref.pts[idx], atol=1e-6)
            assert len(dec.get_frames_played_in_range(start, start)) == 0
            with pytest.raises(ValueError):
                dec.get_frames_played_in_range(stop, start)

    # -- video: seek modes ---------------------------------------------------------------------

    def test_approximate_seek_mode(self, video, caps, tol):
        if "approximate" not in caps.seek_modes:
            with pytest.raises(md.UnsupportedRequestError, match=self.backend_name):
                self.open_video(video.path, seek_mode="approximate")
            return
        if video.name == "vfr_mp4":
            pytest.skip("approximate mode trusts the header's frame rate, which FFmpeg versions "
                        "estimate differently for variable-frame-rate streams")
        ref = video.reference()
        with self.open_video(video.path, seek_mode="approximate") as dec:
            meta = dec.metadata
            assert meta.num_frames_from_content is None
            fps = meta.average_fps
            assert fps == pytest.approx(float(ref.average_rate or video.rate), rel=1e-6)
            begin = meta.begin_stream_seconds
            n = len(dec)
            assert abs(n - len(ref)) <= 1
            for i in sorted({0, n // 2, max(0, n - 2)}):
                expected = ref.index_played_at(begin + (i + 0.5) / fps)
                assert_frames_close(dec[i], ref.frames[expected], tol, f"{video.name} approximate [{i}]")

    def test_exact_seek_mode_is_declared(self, caps):
        assert "exact" in caps.seek_modes, "every backend must offer seek_mode='exact'"

    # -- sources -------------------------------------------------------------------------------

    @pytest.mark.parametrize("kind", ["bytes", "tensor", "file"])
    def test_sources(self, kind, media, caps, tol):
        case = media.videos["bframes_mp4"]
        if "video" not in caps.media_types:
            pytest.skip(f"{self.backend_name} does not decode video")
        ref = case.reference()
        data = case.path.read_bytes()
        source = {"bytes": data, "tensor": torch.frombuffer(bytearray(data), dtype=torch.uint8),
                  "file": io.BytesIO(data)}[kind]
        declared = "file" if kind == "file" else "bytes"
        if declared not in caps.source_kinds:
            with pytest.raises(md.UnsupportedRequestError, match=self.backend_name):
                self.open_video(source)
            return
        with self.open_video(source) as dec:
            assert len(dec) == len(ref)
            assert_frames_close(dec.get_frames_at([0, 7, len(ref) - 1]).data,
                                ref.frames[[0, 7, len(ref) - 1]], tol, f"{kind} source")

    # -- errors --------------------------------------------------------------------------------

    def test_errors(self, media, caps):
        with pytest.raises(md.SourceNotFoundError):
            self.open_video(media.folder / "no-such-file.mp4")
        for bad in (media.garbage, media.text):
            with pytest.raises(md.InvalidMediaError) as excinfo:
                if "video" in caps.media_types:
                    self.open_video(bad)
                else:
                    self.open_audio(bad)
            assert not isinstance(excinfo.value, md.NoBackendError)  # explicit: no substitution
            assert str(bad) in str(excinfo.value), "the error must name the source"
        if "video" in caps.media_types:
            with pytest.raises(md.StreamNotFoundError):
                self.open_video(media.audios["wav_s16_stereo"].path)
            with pytest.raises(md.StreamNotFoundError):
                self.open_video(media.videos["bframes_mp4"].path, stream_index=7)
        if "audio" in caps.media_types:
            with pytest.raises(md.StreamNotFoundError):
                self.open_audio(media.videos["bframes_mp4"].path)

    def test_closed_decoder_raises(self, media, caps):
        if "video" not in caps.media_types:
            pytest.skip(f"{self.backend_name} does not decode video")
        dec = self.open_video(media.videos["bframes_mp4"].path)
        dec.close()
        dec.close()
        with pytest.raises(ValueError):
            dec[0]

    # -- pickling and DataLoader workers -------------------------------------------------------

    def test_pickle(self, media, caps, tol):
        if "video" not in caps.media_types:
            pytest.skip(f"{self.backend_name} does not decode video")
        case = media.videos["bframes_mp4"]
        ref = case.reference()
        dec = self.open_video(case.path)
        dec[5]
        clone = pickle.loads(pickle.dumps(dec))
        assert clone.backend == self.backend_name
        assert_frames_close(clone[9], ref.frames[9], tol, "unpickled decoder")
        assert_frames_close(dec[20], ref.frames[20], tol, "original after pickling")
        if "audio" in caps.media_types:
            audio = self.open_audio(media.audios["wav_s16_stereo"].path)
            again = pickle.loads(pickle.dumps(audio))
            assert again.backend == self.backend_name
            assert torch.equal(again.get_all_samples().data, audio.get_all_samples().data)

    def _check_dataloader(self, media, tol, context: str) -> None:
        case = media.videos["bframes_mp4"]
        ref = case.reference()
        dec = self.open_video(case.path)
        dec[0]  # opened in the parent before the workers start
        indices = [3, 30, 11, 0, 25, 17]
        loader = torch.utils.data.DataLoader(
            _FrameAt(dec, indices), batch_size=2, num_workers=2,
            multiprocessing_context=context, timeout=120,
        )
        frames = torch.cat([b.cpu() for b in loader])
        assert_frames_close(frames, ref.frames[indices], tol, f"DataLoader ({context}) workers")
        assert_frames_close(dec[30], ref.frames[30], tol, "parent after the workers")

    def test_dataloader_fork_workers(self, media, caps, tol):
        if "video" not in caps.media_types:
            pytest.skip(f"{self.backend_name} does not decode video")
        if not hasattr(os, "fork") or self.device != "cpu":
            pytest.skip("fork workers need a POSIX system and CPU decoding")
        self._check_dataloader(media, tol, "fork")

    @pytest.mark.slow
    def test_dataloader_spawn_workers(self, media, caps, tol):
        if "video" not in caps.media_types:
            pytest.skip(f"{self.backend_name} does not decode video")
        self._check_dataloader(media, tol, "spawn")

    # -- audio ---------------------------------------------------------------------------------

    def test_audio_all_samples(self, audio, tol):
        expected, first = audio_reference(audio.path)
        with self.open_audio(audio.path) as dec:
            assert dec.backend == self.backend_name
            meta = dec.metadata
            assert (meta.sample_rate, meta.num_channels) == (audio.sample_rate, audio.num_channels)
            assert meta.codec == audio.codec
            samples = dec.get_all_samples()
            assert samples.data.dtype == torch.float32
            assert samples.sample_rate == audio.sample_rate
            assert samples.pts_seconds == pytest.approx(max(first, 0.0), abs=1e-6)
            assert samples.data.shape == expected.shape
            np.testing.assert_allclose(samples.data.numpy(), expected, atol=tol.audio_max_abs, rtol=0)

    def test_audio_ranges(self, audio, tol):
        rate = audio.sample_rate
        with self.open_audio(audio.path) as dec:
            full = dec.get_all_samples()
            start, stop = 0.2, 0.45
            part = dec.get_samples_played_in_range(start, stop)
            assert part.pts_seconds == pytest.approx(start, abs=1 / rate)
            assert abs(part.data.shape[1] - round((stop - start) * rate)) <= 1
            offset = round((part.pts_seconds - full.pts_seconds) * rate)
            expected = full.data[:, offset:offset + part.data.shape[1]]
            np.testing.assert_allclose(part.data.numpy(), expected.numpy(), atol=max(tol.audio_max_abs, 1e-4), rtol=0)
            tail = dec.get_samples_played_in_range(0.5)
            assert abs(tail.data.shape[1] - (full.data.shape[1] - round((0.5 - full.pts_seconds) * rate))) <= 1
            assert dec.get_samples_played_in_range(0.3, 0.3).data.shape == (audio.num_channels, 0)
            assert dec.get_samples_played_in_range(50.0, 60.0).data.shape[1] == 0
            with pytest.raises(ValueError):
                dec.get_samples_played_in_range(0.4, 0.2)

    def test_audio_resample_and_mono(self, audio, caps, tol):
        target = 8000 if audio.sample_rate != 8000 else 16000
        expected, _ = audio_reference(audio.path, sample_rate=target)
        with self.open_audio(audio.path, sample_rate=target) as dec:
            data = dec.get_all_samples().data
            assert data.shape[0] == audio.num_channels
            assert abs(data.shape[1] - expected.shape[1]) <= 2
            m = min(data.shape[1], expected.shape[1])
            np.testing.assert_allclose(data[:, :m].numpy(), expected[:, :m], atol=max(tol.audio_max_abs, 1e-4), rtol=0)
        mono, _ = audio_reference(audio.path, layout="mono")
        with self.open_audio(audio.path, num_channels=1) as dec:
            data = dec.get_all_samples().data
            assert data.shape == mono.shape
            np.testing.assert_allclose(data.numpy(), mono, atol=max(tol.audio_max_abs, 1e-4), rtol=0)
        if caps.audio_num_channels == "mono-or-native" and audio.num_channels != 3:
            with pytest.raises(md.UnsupportedRequestError, match=self.backend_name):
                self.open_audio(audio.path, num_channels=3)
        elif caps.audio_num_channels == "any":
            with self.open_audio(audio.path, num_channels=3) as dec:
                assert dec.get_all_samples().data.shape[0] == 3

    def test_audio_from_bytes(self, audio, caps):
        data = audio.path.read_bytes()
        if "bytes" not in caps.source_kinds:
            with pytest.raises(md.UnsupportedRequestError, match=self.backend_name):
                self.open_audio(data)
            return
        with self.open_audio(data) as dec, self.open_audio(audio.path) as ref:
            assert torch.equal(dec.get_all_samples().data, ref.get_all_samples().data)
