"""The package ships ``py.typed``, and code written against its public API type-checks with mypy
(``tests/typing/public_api_usage.py``); a deliberately wrong use is reported, so the check can fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mediadecode

pytest.importorskip("mypy", reason="mypy is not installed (it is in the [test] extra)")

USAGE = Path(__file__).parent / "typing" / "public_api_usage.py"


def _mypy(path: Path, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--ignore-missing-imports",
         "--no-error-summary", "--cache-dir", str(cache), str(path)],
        capture_output=True, text=True, timeout=600,
    )


def test_the_package_is_marked_typed():
    assert (Path(mediadecode.__file__).parent / "py.typed").is_file()


@pytest.mark.slow
def test_public_api_usage_type_checks(tmp_path):
    good = _mypy(USAGE, tmp_path / "cache")
    assert good.returncode == 0, good.stdout + good.stderr
    wrong = tmp_path / "wrong_usage.py"
    wrong.write_text(USAGE.read_text().replace("rate: int = samples.sample_rate", "rate: str = samples.sample_rate"))
    bad = _mypy(wrong, tmp_path / "cache")
    assert bad.returncode != 0 and "Incompatible types in assignment" in bad.stdout, bad.stdout
