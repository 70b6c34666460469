"""FFmpeg log levels and Python logging handlers never make a decoder block (issue 19).

With ``av.logging.set_level(...)`` (torchvision 0.19-0.21 set ERROR when ``torchvision.io`` is
imported), PyAV routes FFmpeg's log messages through a callback that takes the GIL. Freeing a
decoder joins FFmpeg's frame threads while the freeing thread holds the GIL: a frame thread that
logs meanwhile waits for the GIL, and the free waits for it. Each test runs in a subprocess
(tests/_log_safety_child.py) that prints every thread's stack and exits if it has not finished
in time; without ``mediadecode.lifecycle.idle_decoders`` the ERROR case hangs inside
``container.close()`` within a few cycles of the issue's clip.

The child sets the level, puts a handler on the ``libav`` logger, then: open / partial read / close
cycles over every codec the fixtures make (H.264 4:2:0, 4:4:4 and lossless RGB, VP9, PCM, AAC),
DataLoader workers forked while a threaded decoder is open, and the torchvision adapter's
``read_video``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GENERATORS, pattern

import mediadecode
from mediadecode.testing import make_media

CHILD = Path(__file__).with_name("_log_safety_child.py")
# Seconds after which the child prints its threads' stacks and exits 1 (a hang); the parent
# kills the child's process group a little later in case even that does not happen.
HANG_AFTER = 100

# The clip: 10 frames of 300x300 lossless RGB H.264 (libx264rgb, crf=0) at 5 fps. Its
# frame threads log while they decode, so the hang shows within a few cycles.
CLIP_FRAMES, CLIP_SIZE, CLIP_RATE = 10, 300, 5


def _encode_clip(path: Path) -> None:
    import av

    try:
        av.codec.Codec("libx264rgb", "w")
    except Exception:
        pytest.skip("PyAV's FFmpeg has no libx264rgb encoder")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264rgb", rate=CLIP_RATE, options={"crf": "0"})
        stream.width = stream.height = CLIP_SIZE
        stream.pix_fmt = "rgb24"
        for i in range(CLIP_FRAMES):
            frame = av.VideoFrame.from_ndarray(pattern(i, CLIP_SIZE, CLIP_SIZE), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory, generated_video) -> Path:
    """The media the child decodes, as JSON: every generated video and audio file."""
    folder = tmp_path_factory.mktemp("log_safety")
    clip = folder / "rgb_lossless.mp4"
    _encode_clip(clip)
    videos = [dict(path=str(clip), num_frames=CLIP_FRAMES, begin=0.0,
                   duration=CLIP_FRAMES / CLIP_RATE, cycles=24, compare=True)]
    for name in GENERATORS:
        g = generated_video(name)
        videos.append(dict(path=str(g.path), num_frames=g.num_frames,
                           begin=float(g.pts[0] * g.time_base),
                           duration=float((g.pts[-1] - g.pts[0]) * g.time_base) + float(1 / g.rate),
                           cycles=5, compare=True))
    kit = make_media(folder / "kit")
    for case in kit.videos.values():
        videos.append(dict(path=str(case.path), num_frames=case.num_frames,
                           begin=case.first_pts_seconds, duration=float(case.num_frames / case.rate),
                           cycles=5, compare=not case.rotation))
    audios = [dict(path=str(case.path)) for case in kit.audios.values()]
    plan = dict(videos=videos, audios=audios, audio_cycles=4, clip=videos[0])
    path = folder / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def run_child(level: str, when: str, plan: Path) -> dict:
    """Run the child; returns its JSON summary. Fails with the child's stacks when it hangs."""
    src = str(Path(mediadecode.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, str(CHILD), level, when, str(plan), str(HANG_AFTER)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=HANG_AFTER + 30)
    except subprocess.TimeoutExpired:
        out, err = "", "the child did not finish, nor print its stacks"
    finally:
        try:  # the child, and any DataLoader worker it left behind
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == 0, f"the child failed or hung (status {proc.returncode}):\n{err[-6000:]}"
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before_first_open", "while_open"])
@pytest.mark.parametrize("level", ["ERROR", "VERBOSE"])
def test_log_level_and_handler_never_block(level, when, plan_file):
    """``before_first_open`` is torchvision's import-time ``set_level(ERROR)``; ``while_open``
    sets the level while a decoder's frame threads are running."""
    import av

    plan = json.loads(plan_file.read_text())
    summary = run_child(level, when, plan_file)

    videos = plan["videos"]
    assert summary["cycles"] == sum(v["cycles"] for v in videos) + len(plan["audios"]) * plan["audio_cycles"]
    # The user's setting is left as it was set.
    assert summary["level_after"] == getattr(av.logging, level)
    # What was read is what PyAV decodes (single-threaded, no mediadecode involved).
    assert summary["matches_pyav"] == {v["path"]: True for v in videos if v["compare"]}
    assert summary["loaded"] == 2 * 4 * len(videos)
    # read_video(pts[1], pts[3]): frames 1, 2 and 3 (torchvision's bounds are inclusive).
    assert summary["read_video_frames"] == [3] * 6
    if level == "VERBOSE":
        # FFmpeg's messages did go through the Python callback to the handler (FFmpeg logs its
        # I/O statistics at VERBOSE when each container closes).
        assert summary["records"] > 0
