"""Fork safety of FFmpeg decoder threads left in unreachable reference cycles.

A PyAV container dropped without ``close()`` inside a reference cycle is freed by the cycle
collector, whenever it next runs. If that is in a fork child (a DataLoader worker), FFmpeg
joins decoder threads that exist only in the parent and the child blocks for ever inside
``avcodec_free_context`` (seen as a DataLoader that never returns). mediadecode's before-fork
hook collects such garbage in the parent.
"""

from __future__ import annotations

import gc
import os
import signal
import time

import pytest

import mediadecode as md


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_cyclic_garbage_with_decoder_threads_is_freed_before_fork(h264_mp4):
    import av

    with md.VideoDecoder(h264_mp4.path, backend="ffmpeg", num_threads=2) as dec:
        dec[0]  # a threaded reader: mediadecode's fork hooks are installed
    gc.collect()
    gc.disable()
    try:
        container = av.open(str(h264_mp4.path))
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 2
        stream.thread_type = "AUTO"
        for _, _frame in zip(range(8), container.decode(stream)):
            pass
        cycle = {"container": container}
        cycle["self"] = cycle
        del container, stream, cycle, _frame
        pid = os.fork()
        if pid == 0:  # the child frees whatever garbage it inherited, then leaves
            gc.collect()
            os._exit(0)
    finally:
        gc.enable()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the fork child hung freeing a container whose decoder threads live in the parent")
