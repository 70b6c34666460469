"""The hostile-media campaign at scale: seeded mutations of the project's generated media through
every public read path, each case in a worker process with a timeout (see
:mod:`mediadecode.testing.fuzz`; ``tests/test_fuzz.py`` runs a few hundred of the same cases).

Reproduce (writes the figures into docs/reliability.md between its campaign markers)::

    .venv/bin/python benchmarks/fuzz_campaign.py --n 10000 --workers 2 --write-doc docs/reliability.md

``--failures FILE`` writes every crash, hang, undocumented error and descriptor left open as JSON (with the case's seed
file, mutations and RNG seed, which reproduce it through ``fuzz.mutate``); ``--keep DIR`` keeps
the damaged files of crashes and hangs. The corpus itself is never committed: it is regenerated
from the seeds.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

from mediadecode.testing import fuzz

START = "<!-- fuzz-campaign:start -->"
END = "<!-- fuzz-campaign:end -->"


def _figures(report: fuzz.Report, args, seconds: float, seeds: list[Path]) -> str:
    outcomes = report.outcome_counts()
    lines = [
        START,
        f"Command: `python benchmarks/fuzz_campaign.py --n {args.n} --seed {args.seed} "
        f"--workers {args.workers} --timeout {args.timeout:g}`",
        "",
        f"Run: {len(report.results)} cases from {len(seeds)} seed files "
        f"({', '.join(p.name for p in seeds)}), {args.workers} worker processes, "
        f"{seconds / 60:.1f} min on {platform.machine()} ({platform.python_version()}).",
        "",
        "| outcome | count |",
        "|---|---|",
        f"| cases | {len(report.results)} |",
        f"| crashes (worker killed by a signal) | {len(report.crashes)} |",
        f"| hangs (no answer within {args.timeout:g} s) | {len(report.hangs)} |",
        f"| cases with an undocumented error | {len(report.undocumented)} |",
        f"| cases leaving a file descriptor open (after a collection) | {len(report.fd_growth)} |",
        f"| cases leaving a file descriptor open until the cycle collector runs | "
        f"{len(report.fd_growth_without_gc)} |",
        f"| cases with decoded video frames | {report.decoded_frames} |",
        f"| cases with decoded audio samples | {report.decoded_samples} |",
        f"| largest worker RSS after a case | {report.max_rss / 2**20:.0f} MiB |",
        "",
        "Outcomes of the read paths (one per path and case):",
        "",
        "| outcome | count |",
        "|---|---|",
    ]
    lines += [f"| {name} | {count} |" for name, count in outcomes.most_common()]
    faults = report.fault_classes()
    if faults:
        lines += ["", "Undocumented errors by read path:", ""]
        lines += [f"- `{what}` in {where}: {n}" for (where, what), n in sorted(faults.items())]
    lines.append(END)
    return "\n".join(lines)


def _write_doc(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10000, help="number of damaged files")
    parser.add_argument("--seed", type=int, default=0, help="campaign seed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    parser.add_argument("--write-doc", type=Path, help="update the figures in this markdown file")
    parser.add_argument("--failures", type=Path, help="write crashes, hangs, undocumented errors and open descriptors as JSON")
    parser.add_argument("--keep", type=Path, help="folder for the damaged files (default: a temporary one)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        seeds = fuzz.make_seed_corpus(folder / "seeds")
        cases = fuzz.make_cases(seeds, n=args.n, seed=args.seed)
        start = time.monotonic()
        last = [start]

        def progress(done: int, total: int) -> None:
            if time.monotonic() - last[0] > 30 or done == total:
                last[0] = time.monotonic()
                print(f"{done}/{total} cases, {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)

        report = fuzz.run_cases(cases, folder / "cases", workers=args.workers, timeout=args.timeout,
                                progress=progress)
        seconds = time.monotonic() - start
    print(report.summary())
    if args.failures is not None:
        bad = {r.case.index: r for r in report.crashes + report.hangs + report.undocumented
               + report.fd_growth + report.fd_growth_without_gc}
        args.failures.write_text(json.dumps([fuzz.as_dict(r) for _, r in sorted(bad.items())], indent=1))
    if args.write_doc is not None:
        _write_doc(args.write_doc, _figures(report, args, seconds, seeds))
    return 0 if not (report.crashes or report.hangs or report.undocumented) else 1


if __name__ == "__main__":
    sys.exit(main())
