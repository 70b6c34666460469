"""A seeded mutation campaign over every public read path (issue 17), sized for CI.

The project's generated media (every codec and container the fixtures make, video and audio) are
damaged by seeded mutations (:mod:`mediadecode.testing.fuzz`); each damaged file runs through
every public read path in a spawned worker process with a timeout. Asserted: no crash (a worker
killed by a signal), no hang (no answer within the timeout), only documented exception classes
(a failure names the file and the mutation that reproduces it), no open file descriptor left
after a case, and a bounded worker RSS. ``benchmarks/fuzz_campaign.py`` runs the same cases at
scale.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("av")

from mediadecode.testing import fuzz  # noqa: E402

NUM_CASES = 240
WORKERS = 2
TIMEOUT_S = 60.0  # per case, all read paths; a case takes well under a second when healthy
MAX_WORKER_RSS = 3 * 2**30  # torch + PyAV + a 256 MiB output limit (fuzz.WORKER_MAX_OUTPUT_BYTES)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    seeds = fuzz.make_seed_corpus(folder / "seeds")
    assert len(seeds) >= 10, "the seed corpus covers video and audio codecs and containers"
    cases = fuzz.make_cases(seeds, n=NUM_CASES, seed=17)
    return fuzz.run_cases(cases, folder / "cases", workers=WORKERS, timeout=TIMEOUT_S)


def _describe(results) -> str:
    return "\n".join(
        f"case {r.case.index}: {Path(r.case.seed_file).name} with {r.description}: "
        f"{r.status} {r.detail} {r.undocumented or ''}"
        for r in results[:20]
    )


@pytest.mark.slow
def test_no_crash(report):
    assert not report.crashes, _describe(report.crashes)


@pytest.mark.slow
def test_no_hang(report):
    assert not report.hangs, _describe(report.hangs)


@pytest.mark.slow
def test_video_and_metadata_paths_raise_only_documented_errors(report):
    bad = [r for r in report.results
           if any(not name.startswith(("audio.", "torchaudio.")) for name in r.undocumented)]
    assert not bad, _describe(bad)


@pytest.mark.slow
def test_audio_paths_raise_only_documented_errors(report):
    bad = [r for r in report.results
           if any(name.startswith(("audio.", "torchaudio.")) for name in r.undocumented)]
    assert not bad, _describe(bad)


@pytest.mark.slow
def test_no_descriptor_left_open(report):
    assert not report.fd_growth, _describe(report.fd_growth)
    # and none waits for the cycle collector: a dropped decoder closes its file at once
    assert not report.fd_growth_without_gc, _describe(report.fd_growth_without_gc)


@pytest.mark.slow
def test_bounded_rss(report):
    assert 0 < report.max_rss < MAX_WORKER_RSS


@pytest.mark.slow
def test_the_campaign_exercised_the_read_paths(report):
    # A campaign where nothing decodes tests nothing: the mutations must leave many files
    # readable, and every path must have run.
    assert report.decoded_frames > NUM_CASES // 5
    assert report.decoded_samples > 0
    outcomes = report.outcome_counts()
    assert outcomes["ok"] > NUM_CASES
    names = {name for r in report.results for name in r.outcomes}
    for path in ("video[exact].iterate", "video[approximate].batch", "audio.chunk2",
                 "torchvision.VideoReader", "torchaudio.load", "container_metadata"):
        assert path in names
