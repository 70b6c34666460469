"""The benchmark script keeps working: one worker subprocess times a real decode, and the report
renders its results (the full run is in docs/performance.md, not in the test suite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "decode_benchmark.py"
sys.path.insert(0, str(SCRIPT.parent))

import decode_benchmark as bench  # noqa: E402


def test_worker_times_every_workload(generated_video):
    path = generated_video("h264_bframes.mp4").path
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--worker", "mediadecode[ffmpeg]", "--mode", "video",
         "--threads", "1", "--reps", "1", "--files", str(path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert result["errors"] == {}
    assert set(result["times"]) == {f"{path.name}|{w}" for w in bench.VIDEO_WORKLOADS}
    assert all(len(t) == 1 and t[0] > 0 for t in result["times"].values())


def test_report_gives_ratios_to_torchcodec():
    res = {
        "libraries": ["mediadecode[ffmpeg]", "torchcodec"],
        "media": {"mp3": "x.mp3"},
        "threads": {"1": {"a.mp4|all": {"mediadecode[ffmpeg]": [1.0, 3.0, 2.0], "torchcodec": [4.0],
                                        "ffmpeg CLI (rgb24)": [1.0]}}},
        "dataloader": {"mediadecode[ffmpeg]": [300.0], "torchcodec": [200.0]},
        "rss": {"a.mp4|all": {"mediadecode[ffmpeg]": 100.0, "torchcodec": 200.0}},
        "errors": {},
    }
    text = bench.render(res, "python benchmarks/decode_benchmark.py", None)
    assert "| a.mp4 | every frame | 2.000 (0.50x) | 4.000 | 1.000 (0.25x) | — |" in text
    assert "| mediadecode[ffmpeg] | 300 | 1.50x |" in text
    assert "100 (0.50x)" in text
    assert "python benchmarks/decode_benchmark.py" in text
