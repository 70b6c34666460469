"""GOP-parallel decoding: run a :func:`~mediadecode.engine.gop_plan.plan_gop_chunks` plan.

Each chunk is decoded by a single-threaded :class:`~mediadecode.engine.cursor.DecodeCursor` of its
own (its own container and decoder, the shared frame index) in its own thread, writing into the
one shared output batch. The cursors are kept between requests, so a later request that continues
where a chunk stopped does not seek.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

from .cursor import DecodeCursor
from .output import OutputBatch, OutputStage

__all__ = ["GopParallelDecoder", "MAX_PARALLEL_GOPS", "available_cores"]

# At most this many GOPs of one request decode at once (one thread and one decoder each).
MAX_PARALLEL_GOPS = 8


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class GopParallelDecoder:
    """Decodes the chunks of a plan in parallel threads.

    Args:
        make_cursor: opens a new single-threaded cursor on the same stream.
        output: the output stage (each cursor gets its own writer).
    """

    def __init__(self, make_cursor: Callable[[], DecodeCursor], output: OutputStage):
        self._make_cursor = make_cursor
        self._output = output
        self._workers: list[tuple[DecodeCursor, object]] = []

    @property
    def cursors(self) -> list[DecodeCursor]:
        """The worker cursors made so far."""
        return [cursor for cursor, _ in self._workers]

    def close(self) -> None:
        """Close every worker cursor; idempotent."""
        workers, self._workers = self._workers, []
        for cursor, _ in workers:
            cursor.close()

    def decode(self, targets: Sequence[int], chunks: list[tuple[int, int]], batch: OutputBatch) -> None:
        """Write the frames at sorted ``targets`` (pts ticks) into ``batch``, chunk by chunk.

        Raises:
            DecodingError: as :meth:`DecodeCursor.decode_exact` (the first error of any chunk).
        """
        while len(self._workers) < len(chunks):
            self._workers.append((self._make_cursor(), self._output.writer()))
        # Give each chunk the cursor that can reach it without seeking, if there is one.
        free = list(self._workers)
        jobs = []
        for start, stop in chunks:
            worker = next((w for w in free if not w[0].must_seek(targets[start])), free[0])
            free.remove(worker)
            jobs.append((worker, start, stop))
        errors: list[BaseException] = []

        def run(worker, start, stop):
            cursor, writer = worker
            try:
                cursor.decode_exact(targets[start:stop], batch, writer, start)
            except BaseException as exc:  # re-raised in the calling thread below
                cursor.reset(at_start=False)
                errors.append(exc)

        threads = [threading.Thread(target=run, args=job, daemon=True) for job in jobs[1:]]
        for thread in threads:
            thread.start()
        run(*jobs[0])
        for thread in threads:
            thread.join()
        if errors:
            # Raised without a local name and with the list emptied: the error's traceback holds
            # this frame and ``run``'s (whose closure holds ``errors``), so keeping it in either
            # would make a cycle that keeps the cursors' files open until the cycle collector.
            try:
                raise errors[0]
            finally:
                errors.clear()
