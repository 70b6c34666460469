"""Conformance kit: the tests every backend, ours or a third party's, must pass.

It makes its own media (H.264 with B-frames, a non-zero start, variable frame rate, a display
matrix, PCM and AAC audio) with PyAV's encoders and compares what a backend returns through the
:class:`~mediadecode.VideoDecoder` / :class:`~mediadecode.AudioDecoder` facade with FFmpeg's own
decode (PyAV ``frame.to_ndarray(format="rgb24")``, libswresample for audio), within the
:class:`~mediadecode.capabilities.Tolerance` the backend declares (0 for CPU FFmpeg-based
decoding). It checks indexing, slicing, pts, metadata, seek modes, time-based access, audio
ranges, resampling and mixing, source kinds, error classes, pickling and DataLoader workers, and
that what a backend declares it cannot do is refused with
:class:`~mediadecode.errors.UnsupportedRequestError`.

With pytest, subclass :class:`BackendConformance` in a test module::

    from mediadecode.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        backend_name = "mybackend"

In one call (runs pytest in a temporary folder and returns its exit code, 0 when all passed)::

    import mediadecode.testing
    assert mediadecode.testing.run_conformance("mybackend") == 0

or from a shell: ``python -m mediadecode.testing mybackend``.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BackendConformance", "run_conformance", "assert_frames_close", "make_media"]


def __getattr__(name: str):
    # pytest is imported only when the kit is used, not by ``import mediadecode.testing``.
    if name in ("BackendConformance", "assert_frames_close"):
        from . import _suite

        return getattr(_suite, name)
    if name == "make_media":
        from ._media import make_media

        return make_media
    raise AttributeError(f"module 'mediadecode.testing' has no attribute {name!r}")


_TEMPLATE = '''\
from mediadecode.testing import BackendConformance


class TestConformance(BackendConformance):
    backend_name = {name!r}
    device = {device!r}
'''


def run_conformance(
    backend_name: str,
    *,
    device: str = "cpu",
    slow: bool = True,
    pytest_args: Sequence[str] = (),
) -> int:
    """Run the conformance kit on one backend in a fresh pytest session.

    Args:
        backend_name: the registered backend name.
        device: the device to decode on (``"cpu"``, ``"cuda"``).
        slow: also run the slow tests (DataLoader spawn workers).
        pytest_args: extra pytest arguments (``["-x"]``, ``["-k", "audio"]``...).

    Returns:
        pytest's exit code: 0 when every test passed (skips allowed), non-zero otherwise.

    Raises:
        ImportError: pytest is not installed (``pip install pytest``).
    """
    import pytest

    with tempfile.TemporaryDirectory(prefix="mediadecode-conformance-") as folder:
        test_file = Path(folder) / f"test_conformance_{backend_name.replace('-', '_')}.py"
        test_file.write_text(_TEMPLATE.format(name=backend_name, device=device))
        args = [str(test_file), "-p", "no:cacheprovider", "--rootdir", folder, "-q", "-rs",
                "-o", "markers=slow: long-running conformance tests"]
        if not slow:
            args += ["-m", "not slow"]
        args += list(pytest_args)
        return int(pytest.main(args))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mediadecode.testing NAME [--device cuda] [pytest args...]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mediadecode.testing",
                                     description="Run mediadecode's conformance kit on a backend.")
    parser.add_argument("backend")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-slow", action="store_true", help="skip the slow tests")
    args, rest = parser.parse_known_args(argv)
    return run_conformance(args.backend, device=args.device, slow=not args.no_slow, pytest_args=rest)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
