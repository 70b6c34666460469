"""Code as a user writes it against mediadecode's public API; ``tests/test_typing.py`` checks that
mypy accepts it (the annotations of the public API are usable). Never executed."""

from __future__ import annotations

import torch

import mediadecode as md
from mediadecode.encoders import AudioEncoder, VideoEncoder
from mediadecode.frame_index import FrameIndex
from mediadecode.samplers import clips_at_random_indices, clips_at_regular_timestamps
from mediadecode.transforms import CenterCrop, Resize


def video(path: str) -> torch.Tensor:
    decoder = md.VideoDecoder(path, seek_mode="exact", dimension_order="NHWC",
                              transforms=[Resize((224, 224)), CenterCrop((200, 200))])
    n: int = len(decoder)
    meta: md.VideoStreamMetadata = decoder.metadata
    fps: float | None = meta.average_fps
    frame: md.Frame = decoder.get_frame_at(0)
    seconds: float = frame.pts_seconds + frame.duration_seconds
    batch: md.FrameBatch = decoder.get_frames_at([0, n - 1])
    shown: md.FrameBatch = decoder.get_frames_played_in_range(0.0, 1.0)
    index: FrameIndex | None = decoder.frame_index
    keys: torch.Tensor | None = None if index is None else index.key_frame_indices
    clips: md.FrameBatch = clips_at_random_indices(decoder, num_clips=2, num_frames_per_clip=4)
    timed: md.FrameBatch = clips_at_regular_timestamps(decoder, seconds_between_clip_starts=1.0)
    del fps, seconds, shown, keys, clips, timed
    with md.use_backend("ffmpeg"):
        first: torch.Tensor = md.VideoDecoder(path)[0]
    del first
    return batch.data


def audio(path: str) -> torch.Tensor:
    decoder = md.AudioDecoder(path, sample_rate=16000, num_channels=1)
    samples: md.AudioSamples = decoder.get_samples_played_in_range(0.0, 2.0)
    rate: int = samples.sample_rate
    del rate
    return samples.data


def encode(frames: torch.Tensor, samples: torch.Tensor) -> bytes:
    VideoEncoder(frames, frame_rate=30).to_file("out.mp4", crf=0)
    data: torch.Tensor = AudioEncoder(samples, sample_rate=16000).to_tensor("wav")
    return data.numpy().tobytes()


def backends() -> list[str]:
    return [info.name for info in md.list_backends() if info.available]


def errors(path: str) -> str | None:
    try:
        md.VideoDecoder(path)
    except md.InvalidMediaError as exc:
        return str(exc)
    except md.NoBackendError as exc:
        return str(exc)
    return None
