"""Run by test_log_safety.py in its own process: decode with FFmpeg's log messages routed into
Python logging, and report what happened as one JSON line on stdout.

    python _log_safety_child.py LEVEL WHEN PLAN.json SECONDS

LEVEL is an ``av.logging`` level name (ERROR, VERBOSE). WHEN says when the level is set:
``before_first_open``, as torchvision 0.19-0.21 do when ``torchvision.io`` is imported, or
``while_open``: after a decoder has opened and started its frame threads. PLAN.json lists the media
(see test_log_safety.py). After SECONDS, faulthandler prints every thread's stack and the process
exits with status 1: a hang shows where it waits instead of blocking the test.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import multiprocessing
import sys
import threading


class RecordingHandler(logging.Handler):
    """Does what an application's handler does (formats each record, takes a lock), and counts."""

    def __init__(self):
        super().__init__(level=1)
        self.count = 0
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        with self._guard:
            self.count += len(text) > 0


class Clips:
    """A map-style dataset for DataLoader workers: item ``i`` opens a video, reads a range, closes."""

    def __init__(self, videos: list[dict]):
        self.videos = videos

    def __len__(self) -> int:
        return 4 * len(self.videos)

    def __getitem__(self, i: int) -> int:
        from mediadecode import VideoDecoder

        video = self.videos[i % len(self.videos)]
        with VideoDecoder(video["path"]) as decoder:
            n = len(decoder)
            batch = decoder.get_frames_at([n // 3, n - 1 - i % 2])
        return int(batch.data.shape[0])


def read_partly(video: dict, cycle: int, reference: dict) -> int:
    """Open ``video``, read part of it (a different request each cycle), close; returns the
    number of frames read. The first cycle checks its frames against PyAV's."""
    from mediadecode import VideoDecoder

    n = video["num_frames"]
    seek_mode = "approximate" if cycle % 5 == 4 else "exact"
    with VideoDecoder(video["path"], seek_mode=seek_mode) as decoder:
        kind = cycle % 4
        if kind == 0:  # the request: a range in the middle
            batch = decoder.get_frames_played_in_range(video["begin"] + 0.2 * video["duration"],
                                                       video["begin"] + 0.6 * video["duration"])
            return int(batch.data.shape[0])
        if kind == 1:  # one frame, the decoder stopped with packets in flight
            decoder.get_frame_at(n // 2)
            return 1
        if kind == 2:  # several GOPs (GOP-parallel clones on the exact index)
            indices = [1, n // 2, n - 2]
            batch = decoder.get_frames_at(indices)
            if video["compare"] and video["path"] not in reference:
                reference[video["path"]] = bool((batch.data.permute(0, 2, 3, 1).numpy()
                                                 == pyav_frames(video["path"], indices)).all())
            return len(indices)
        count = 0
        for _ in decoder:  # iteration, abandoned after three frames
            count += 1
            if count == 3:
                break
        return count


def pyav_frames(path: str, indices: list[int]):
    """Frames ``indices`` (presentation order) decoded by PyAV on one thread, as rgb24 (N, H, W, 3)."""
    import av
    import numpy as np

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        frames = sorted(container.decode(stream), key=lambda f: f.pts)
        return np.stack([frames[i].to_ndarray(format="rgb24") for i in indices])


def main() -> None:
    level_name, when, plan_path, seconds = sys.argv[1:5]
    faulthandler.dump_traceback_later(float(seconds), exit=True)
    import av

    level = getattr(av.logging, level_name)
    handler = RecordingHandler()
    libav = logging.getLogger("libav")  # parent of libav.h264, libav.AVIOContext, ...
    libav.addHandler(handler)
    libav.setLevel(1)
    if when == "before_first_open":
        av.logging.set_level(level)

    from mediadecode import AudioDecoder, VideoDecoder

    with open(plan_path) as f:
        plan = json.load(f)
    videos, audios, clip = plan["videos"], plan["audios"], plan["clip"]

    early = None
    if when == "while_open":
        early = VideoDecoder(clip["path"])
        early.get_frame_at(1)  # frame threads started, packets in flight
        av.logging.set_level(level)

    frames = cycles = 0
    reference: dict[str, bool] = {}
    for video in videos:
        for cycle in range(video["cycles"]):
            frames += read_partly(video, cycle, reference)
            cycles += 1
    for audio in audios:
        for cycle in range(plan["audio_cycles"]):
            with AudioDecoder(audio["path"]) as decoder:
                samples = decoder.get_samples_played_in_range(0.1 + 0.05 * cycle, 0.4)
                frames += int(samples.data.shape[1] > 0)
            cycles += 1

    # DataLoader workers, forked while this process holds a decoder with running frame threads.
    import torch.utils.data

    holder = VideoDecoder(clip["path"])
    holder.get_frame_at(2)
    context = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    loader = torch.utils.data.DataLoader(Clips(videos), batch_size=None, num_workers=2,
                                         multiprocessing_context=context, timeout=float(seconds))
    loaded = sum(loader)
    holder.get_frame_at(3)  # the parked decoder reopens
    holder.close()

    # torchvision's read_video, as the second report (a hang on the 2nd or 3rd call).
    from mediadecode.adapters.torchvision import read_video, read_video_timestamps

    pts, _ = read_video_timestamps(clip["path"])
    read_video_frames = []
    for _ in range(6):
        vframes, _, _ = read_video(clip["path"], pts[1], pts[3])
        read_video_frames.append(int(vframes.shape[0]))

    if early is not None:
        early.close()
    print(json.dumps({
        "cycles": cycles,
        "frames": frames,
        "loaded": loaded,
        "read_video_frames": read_video_frames,
        "matches_pyav": reference,
        "records": handler.count,
        "level_after": av.logging.get_level(),
    }))


if __name__ == "__main__":
    main()
