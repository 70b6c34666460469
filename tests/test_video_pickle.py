"""VideoDecoder across processes: pickling, DataLoader workers (fork and spawn), fork children.

Frames are compared with PyAV's sequential decode (``conftest.pyav_reference``), bit-exact.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from _datasets import FrameDataset
from conftest import media_path, pyav_reference
from mediadecode import VideoDecoder


def _as_nhwc(frames: torch.Tensor) -> np.ndarray:
    return frames.movedim(-3, -1).numpy()


@pytest.fixture(scope="module")
def h264_ref(h264_mp4):
    return pyav_reference(h264_mp4.path)


@pytest.mark.parametrize("source_kind", ["path", "str", "bytes", "tensor", "BytesIO"])
def test_pickle_roundtrip(h264_mp4, h264_ref, source_kind):
    data = h264_mp4.path.read_bytes()
    source = {
        "path": h264_mp4.path,
        "str": str(h264_mp4.path),
        "bytes": data,
        "tensor": torch.frombuffer(bytearray(data), dtype=torch.uint8),
        "BytesIO": io.BytesIO(data),
    }[source_kind]
    n = len(h264_ref)
    with VideoDecoder(source, dimension_order="NHWC", seek_mode="exact") as dec:
        dec[n // 2]  # a decoder part-way through the stream
        clone = pickle.loads(pickle.dumps(dec))
    with clone:
        assert len(clone) == n
        assert clone.stream_index == h264_ref.stream_index
        assert clone.metadata == VideoDecoder(h264_mp4.path).metadata
        batch = clone.get_frames_at([n - 1, 0, 7, 7])
        assert batch.data.shape == (4, *h264_ref.frames.shape[1:])  # NHWC survived pickling
        np.testing.assert_array_equal(batch.data.numpy(), h264_ref.frames[[n - 1, 0, 7, 7]])
        np.testing.assert_array_equal(batch.pts_seconds.numpy(), h264_ref.times[[n - 1, 0, 7, 7]])


def test_pickle_keeps_options():
    path = media_path("nasa_13013.mp4")
    ref = pyav_reference(path, 0)
    with VideoDecoder(path, stream_index=0, seek_mode="approximate") as dec:
        clone = pickle.loads(pickle.dumps(dec))
    with clone:
        assert clone.stream_index == 0
        assert clone.metadata.num_frames_from_content is None  # still approximate
        np.testing.assert_array_equal(_as_nhwc(clone[5]), ref.frames[5])


def test_pickle_open_file_object_fails_clearly(h264_mp4):
    with open(h264_mp4.path, "rb") as f, VideoDecoder(f) as dec:
        with pytest.raises(TypeError):
            pickle.dumps(dec)
        assert dec[0].shape == (3, 64, 96)  # the decoder is unharmed


def _run_loader(decoder, indices, context: str):
    loader = DataLoader(
        FrameDataset(decoder, indices),
        batch_size=None,
        num_workers=2,
        multiprocessing_context=context,
        timeout=60,  # a hung worker fails the test instead of hanging the suite
    )
    got = {}
    pids = set()
    for i, frame, pid in loader:
        got[int(i)] = frame
        pids.add(int(pid))
    return got, pids


@pytest.mark.parametrize(
    "context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)]
)
def test_dataloader_workers(h264_mp4, h264_ref, context):
    if context not in multiprocessing.get_all_start_methods():
        pytest.skip(f"the {context!r} start method is not available on this platform")
    n = len(h264_ref)
    indices = [0, n - 1, 5, 17, 30, 2, 41, 12]
    with VideoDecoder(h264_mp4.path) as dec:
        main = {i: dec[i] for i in indices}  # the parent has used the decoder first
        got, pids = _run_loader(dec, indices, context)
        assert os.getpid() not in pids  # frames really came from workers
        assert sorted(got) == sorted(indices)
        for i in indices:
            assert torch.equal(got[i], main[i]), f"frame {i}"
            np.testing.assert_array_equal(_as_nhwc(got[i]), h264_ref.frames[i])
        # the parent's decoder still works after its children used their copies
        np.testing.assert_array_equal(_as_nhwc(dec[n - 2]), h264_ref.frames[n - 2])
        np.testing.assert_array_equal(_as_nhwc(dec[1]), h264_ref.frames[1])


def test_dataloader_fork_real_media():
    path = media_path("nasa_13013.mp4")
    ref = pyav_reference(path)
    indices = [389, 0, 200, 13]
    with VideoDecoder(path, dimension_order="NHWC") as dec:
        dec[100]
        got, _ = _run_loader(dec, indices, "fork")
    for i in indices:
        np.testing.assert_array_equal(got[i].numpy(), ref.frames[i])


def _child_decode(dec, indices, queue):
    # As DataLoader workers do: PyTorch's OpenMP pool is not fork-safe, and once the parent has run
    # a parallel torch op any multi-threaded op in a forked child hangs (torch/libgomp, not us).
    torch.set_num_threads(1)
    try:
        batch = dec.get_frames_at(indices)
        queue.put(("ok", batch.data.numpy(), batch.pts_seconds.numpy()))
    except BaseException as exc:  # report anything to the parent
        queue.put(("error", repr(exc), None))


@pytest.mark.parametrize("source_kind", ["path", "bytes"])
def test_fork_child_uses_parent_decoder(h264_mp4, h264_ref, source_kind):
    """A decoder opened (and used) in the parent works in a forked child, and afterwards in the
    parent too (the child must not move the parent's file offset)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("fork is not available on this platform")
    ctx = multiprocessing.get_context("fork")
    source = h264_mp4.path if source_kind == "path" else h264_mp4.path.read_bytes()
    n = len(h264_ref)
    indices = [n - 1, 3, 20, 3]
    with VideoDecoder(source, dimension_order="NHWC") as dec:
        dec[10]  # the reader is open and positioned mid-stream when the fork happens
        queue = ctx.Queue()
        child = ctx.Process(target=_child_decode, args=(dec, indices, queue), daemon=True)
        child.start()
        try:
            status, data, pts = queue.get(timeout=30)
            child.join(timeout=60)
        finally:
            if child.is_alive():  # hung: do not leave it behind
                child.kill()
                child.join()
        assert child.exitcode == 0
        assert status == "ok", data
        np.testing.assert_array_equal(data, h264_ref.frames[indices])
        np.testing.assert_array_equal(pts, h264_ref.times[indices])
        # the parent carries on from where it was
        np.testing.assert_array_equal(dec[11].numpy(), h264_ref.frames[11])
        np.testing.assert_array_equal(dec.get_frames_at([0, n - 1]).data.numpy(), h264_ref.frames[[0, n - 1]])


_FORK_SCRIPT = r"""
import faulthandler, gc, os, sys
import torch
from mediadecode import VideoDecoder

path, mode = sys.argv[1], sys.argv[2]
dec = VideoDecoder(path)
expected = dec[5].clone()
dec.get_frames_at(list(range(0, len(dec), 3)))  # GOP-parallel: clones exist in the parent too
dec[len(dec) - 1]  # FFmpeg's decoding threads are running in the parent when it forks
pid = os.fork()
if pid == 0:
    faulthandler.dump_traceback_later(30, exit=True)
    torch.set_num_threads(1)
    if mode == "use":
        ok = torch.equal(dec[5], expected)
    elif mode == "close":
        dec.close()
        ok = True
    else:  # "drop": the child's only reference goes away
        del dec
        gc.collect()
        ok = True
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
assert torch.equal(dec[5], expected), "the parent's decoder broke"
dec.close()
sys.exit(code)
"""


@pytest.mark.parametrize("mode", ["use", "close", "drop"])
def test_inherited_decoder_in_fork_child(h264_mp4, mode, tmp_path):
    """In a child made by os.fork, an inherited decoder can be used, closed or dropped without
    hanging (FFmpeg's decoding threads exist only in the parent) and without disturbing the
    parent's decoder."""
    if not hasattr(os, "fork"):
        pytest.skip("os.fork is not available on this platform")
    script = tmp_path / "fork_child.py"
    script.write_text(_FORK_SCRIPT)
    try:
        proc = subprocess.run(
            [sys.executable, str(script), str(h264_mp4.path), mode],
            capture_output=True, text=True, timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"fork child ({mode}) hung")
    assert proc.returncode == 0, proc.stderr[-3000:]
