"""Clip samplers: shapes, pts, policies, ranges, seeds and errors, on every available backend.

Frames are checked against FFmpeg's own sequential decode (PyAV), and the draws against
torchcodec 0.17's samplers (an independent implementation) when torchcodec can be loaded.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mediadecode as md
from conftest import pyav_reference, torchcodec_or_skip
from mediadecode import samplers

CPU_VIDEO_BACKENDS = [
    b.name for b in md.list_backends()
    if b.available and "video" in b.media_types and "cpu" in b.devices
]


@pytest.fixture(scope="module")
def clip(generated_video):
    gen = generated_video("h264_bframes.mp4")  # 48 frames, 24 fps, GOP 12, B-frames
    return gen, pyav_reference(gen.path)


@pytest.fixture(params=CPU_VIDEO_BACKENDS)
def decoder(request, clip):
    gen, _ = clip
    with md.VideoDecoder(gen.path, backend=request.param) as dec:
        yield dec


def frame_index(ref, pts: float) -> int:
    hits = np.nonzero(ref.times == pts)[0]
    assert len(hits) == 1, f"pts {pts} is not one frame of the reference"
    return int(hits[0])


def check_against_reference(batch, ref) -> np.ndarray:
    """Every frame equals FFmpeg's frame with the same pts; returns the (clips, frames) indices."""
    assert batch.data.ndim == 5 and batch.data.dtype == torch.uint8
    assert batch.pts_seconds.shape == batch.data.shape[:2] == batch.duration_seconds.shape
    assert batch.pts_seconds.dtype == torch.float64
    idx = np.vectorize(lambda p: frame_index(ref, p))(batch.pts_seconds.numpy())
    want = torch.from_numpy(ref.frames[idx.reshape(-1)]).permute(0, 3, 1, 2)
    assert torch.equal(batch.data.reshape(-1, *batch.data.shape[2:]), want)
    return idx


def test_random_indices_shapes_pts_and_span(decoder, clip):
    _, ref = clip
    batch = samplers.clips_at_random_indices(
        decoder, num_clips=6, num_frames_per_clip=4, num_indices_between_frames=3, seed=1
    )
    assert batch.data.shape == (6, 4, 3, 64, 96)
    idx = check_against_reference(batch, ref)
    assert (np.diff(idx, axis=1) == 3).all()  # dilation
    assert idx[:, -1].max() < len(ref)  # default range keeps clips inside the video


def test_regular_indices_are_evenly_spaced(decoder, clip):
    _, ref = clip
    batch = samplers.clips_at_regular_indices(decoder, num_clips=5, num_frames_per_clip=2)
    idx = check_against_reference(batch, ref)
    starts = idx[:, 0]
    assert starts[0] == 0 and starts[-1] == len(ref) - 2  # last start keeping the clip inside
    assert (np.diff(starts) > 0).all() and np.ptp(np.diff(starts)) <= 1
    assert (idx[:, 1] == starts + 1).all()


@pytest.mark.parametrize(
    "policy, expected_tail",
    [("repeat_last", [46, 47, 47, 47]), ("wrap", [46, 47, 46, 47])],
)
def test_policies_complete_clips_past_the_end(decoder, clip, policy, expected_tail):
    _, ref = clip
    batch = samplers.clips_at_regular_indices(
        decoder, num_clips=1, num_frames_per_clip=4, sampling_range_start=46,
        sampling_range_end=48, policy=policy,
    )
    assert check_against_reference(batch, ref)[0].tolist() == expected_tail


def test_error_policy_raises(decoder):
    with pytest.raises(ValueError, match="past the end"):
        samplers.clips_at_regular_indices(
            decoder, num_clips=1, num_frames_per_clip=4, sampling_range_start=46,
            sampling_range_end=48, policy="error",
        )


def test_seed_and_generator_reproduce_draws(decoder):
    a = samplers.clips_at_random_indices(decoder, num_clips=4, seed=123)
    b = samplers.clips_at_random_indices(decoder, num_clips=4, seed=123)
    assert torch.equal(a.pts_seconds, b.pts_seconds)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    c = samplers.clips_at_random_timestamps(decoder, num_clips=4, generator=g1)
    d = samplers.clips_at_random_timestamps(decoder, num_clips=4, generator=g2)
    assert torch.equal(c.pts_seconds, d.pts_seconds)
    state = torch.random.get_rng_state()
    samplers.clips_at_random_indices(decoder, num_clips=4, seed=9)
    assert torch.equal(torch.random.get_rng_state(), state)  # a seed leaves global state alone
    with pytest.raises(ValueError, match="seed or generator"):
        samplers.clips_at_random_indices(decoder, seed=1, generator=g1)


def test_time_based_frames_are_on_screen_at_their_sampling_times(decoder, clip):
    gen, ref = clip
    spacing = 0.1
    batch = samplers.clips_at_regular_timestamps(
        decoder, seconds_between_clip_starts=0.5, num_frames_per_clip=3,
        seconds_between_frames=spacing,
    )
    idx = check_against_reference(batch, ref)
    starts = np.arange(0, batch.data.shape[0]) * 0.5
    for c, start in enumerate(starts):
        for f in range(3):
            t = start + f * spacing
            i = idx[c, f]
            assert ref.times[i] <= t + 1e-9
            assert i == len(ref) - 1 or ref.times[i + 1] > t
    end = float(decoder.metadata.end_stream_seconds)
    assert starts[-1] < end - 2 * spacing  # default range keeps sampling times inside


def test_random_timestamps_inside_range(decoder, clip):
    _, ref = clip
    batch = samplers.clips_at_random_timestamps(
        decoder, num_clips=8, num_frames_per_clip=2, sampling_range_start=0.5,
        sampling_range_end=1.0, seed=0,
    )
    idx = check_against_reference(batch, ref)
    first_pts = batch.pts_seconds[:, 0]
    # the frame on screen at a time in [0.5, 1.0) has pts in (0.5 - one frame, 1.0)
    assert (first_pts > 0.5 - 1 / 24).all() and (first_pts < 1.0).all()
    assert (idx[:, 1] - idx[:, 0] == 1).all()


@pytest.mark.parametrize(
    "sampler, kwargs, match",
    [
        ("clips_at_random_indices", {"num_clips": 0}, "num_clips"),
        ("clips_at_random_indices", {"num_frames_per_clip": 0}, "num_frames_per_clip"),
        ("clips_at_regular_indices", {"num_indices_between_frames": 0}, "num_indices_between_frames"),
        ("clips_at_regular_indices", {"policy": "clamp"}, "policy"),
        ("clips_at_regular_indices", {"sampling_range_start": 48}, "sampling_range_start"),
        ("clips_at_regular_indices", {"sampling_range_start": 10, "sampling_range_end": 5}, "smaller"),
        ("clips_at_random_indices", {"num_frames_per_clip": 49, "policy": "error"}, "past the end"),
        ("clips_at_random_timestamps", {"sampling_range_start": -1.0}, "sampling_range_start"),
        ("clips_at_random_timestamps", {"sampling_range_start": 1.0, "sampling_range_end": 0.5}, "smaller"),
        ("clips_at_regular_timestamps", {"seconds_between_clip_starts": 0}, "seconds_between_clip_starts"),
        ("clips_at_regular_timestamps", {"seconds_between_clip_starts": 1, "seconds_between_frames": -1}, "seconds_between_frames"),
    ],
)
def test_errors(decoder, sampler, kwargs, match):
    if sampler == "clips_at_regular_timestamps":
        kwargs = {"seconds_between_clip_starts": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        getattr(samplers, sampler)(decoder, **kwargs)


def test_nhwc_decoder_gives_nhwc_clips(clip):
    gen, ref = clip
    with md.VideoDecoder(gen.path, dimension_order="NHWC") as dec:
        batch = samplers.clips_at_regular_indices(dec, num_clips=2, num_frames_per_clip=3)
    assert batch.data.shape == (2, 3, 64, 96, 3)
    assert np.array_equal(batch.data[0, 0].numpy(), ref.frames[0])


def _torchcodec():
    torchcodec_or_skip()
    from torchcodec import samplers as tc_samplers
    from torchcodec.decoders import VideoDecoder as TCDecoder

    return tc_samplers, TCDecoder


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("clips_at_random_indices", {"num_clips": 5, "num_frames_per_clip": 4, "num_indices_between_frames": 3}),
        ("clips_at_regular_indices", {"num_clips": 7, "num_frames_per_clip": 3}),
        ("clips_at_regular_indices", {"num_clips": 3, "num_frames_per_clip": 5, "num_indices_between_frames": 2,
                                      "sampling_range_start": 40, "sampling_range_end": 48, "policy": "wrap"}),
        ("clips_at_random_timestamps", {"num_clips": 4, "num_frames_per_clip": 3}),
        ("clips_at_regular_timestamps", {"seconds_between_clip_starts": 0.3, "num_frames_per_clip": 2,
                                         "seconds_between_frames": 0.25}),
    ],
)
def test_same_clips_as_torchcodec(clip, name, kwargs):
    tc_samplers, TCDecoder = _torchcodec()
    gen, _ = clip
    torch.manual_seed(3)
    expected = getattr(tc_samplers, name)(TCDecoder(str(gen.path)), **kwargs)
    torch.manual_seed(3)
    with md.VideoDecoder(gen.path) as dec:
        got = getattr(samplers, name)(dec, **kwargs)
    assert torch.equal(got.pts_seconds, expected.pts_seconds)
    assert torch.equal(got.duration_seconds, expected.duration_seconds)
    assert torch.equal(got.data, expected.data)
