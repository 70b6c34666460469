"""The ``mediadecode`` command line: info, frames (contact sheet), backends, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from mediadecode import cli

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mediadecode", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def sample_clip(tmp_path_factory) -> Path:
    return cli.make_sample_clip(tmp_path_factory.mktemp("clip") / "sample.mp4", seconds=1.0, fps=10)


def test_sample_clip_has_video_and_audio(sample_clip):
    with av.open(str(sample_clip)) as c:
        kinds = sorted(s.type for s in c.streams)
        frames = sum(1 for _ in c.decode(video=0))
    assert kinds == ["audio", "video"]
    assert frames == 10


def test_frames_writes_contact_sheet_of_requested_frames(tmp_path, sample_clip):
    out = tmp_path / "sheet.png"
    proc = run_cli("frames", str(sample_clip), "--at", "0,5,-1", "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert out.exists()
    with Image.open(out) as im:
        assert im.format == "PNG"
        sheet = np.asarray(im.convert("RGB"))
    # Three thumbnails side by side; each must contain the decoded frame's pixels.
    with av.open(str(sample_clip)) as c:
        ref = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    h, w, _ = ref[0].shape
    for slot, index in enumerate([0, 5, 9]):
        # layout of contact_sheet: 8 px margin, cell width = thumb width + 16
        x0 = slot * (w + 16) + 8
        tile = sheet[8:8 + h, x0:x0 + w]
        assert np.array_equal(tile, ref[index]), f"tile {slot} is not frame {index}"
    assert "frame 9: pts 0.900000 s" in proc.stdout
    assert not list(tmp_path.glob("*.part"))


def test_frames_without_file_makes_a_sample(tmp_path):
    proc = run_cli("frames", "--at", "0,30,59", "-o", "s.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "sample clip at" in proc.stdout
    assert (tmp_path / "s.png").stat().st_size > 0


def test_info_lists_streams(tmp_path, sample_clip):
    proc = run_cli("info", str(sample_clip), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "video h264 320x240 10 frames" in proc.stdout
    assert "audio aac 48000 Hz, 2 channels" in proc.stdout


def test_info_on_nasa_reports_default_stream(tmp_path):
    path = MEDIA / "nasa_13013.mp4"
    if not path.exists():
        pytest.skip(f"shared media corpus not found at {MEDIA}")
    proc = run_cli("info", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "best video stream: 3" in proc.stdout
    assert "stream 3: video h264 480x270 390 frames" in proc.stdout
    assert "stream 2: subtitle" in proc.stdout


def test_backends_table(tmp_path):
    proc = run_cli("backends", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    line = next(l for l in proc.stdout.splitlines() if l.startswith("ffmpeg"))
    assert " yes " in line and "cpu" in line


@pytest.mark.parametrize(
    "args, needle",
    [
        (["frames", "/no/such/file.mp4"], "no such file"),
        (["frames", "{garbage}"], "cannot be read as media"),
        (["frames", "{clip}", "--at", "1000"], "out of bounds"),
        (["frames", "{clip}", "--backend", "nope"], "unknown backend"),
    ],
)
def test_errors_are_one_line_without_traceback(tmp_path, sample_clip, args, needle):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    args = [a.format(garbage=garbage, clip=sample_clip) for a in args]
    proc = run_cli(*args, "-o", str(tmp_path / "x.png"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert needle in proc.stderr
    assert not (tmp_path / "x.png").exists()
