"""``queueing_worker.drain()`` records an async handler's error with its own traceback.

``drain()`` used to start its event loop inside the ``except RuntimeError`` that told it
no loop was running, so every exception raised in that loop, a handler's included, had
the "no running event loop" error as its context, and the stored traceback began with it.
"""

from __future__ import annotations

from queueing import Queue
from queueing.testing import QueueWorker


def test_an_async_handlers_traceback_starts_with_its_own_error(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    @queue.task(name="broken_async", retry=1)
    async def broken_async() -> None:
        raise ValueError("bad input")

    job = queue.enqueue(broken_async)
    ran = queueing_worker.drain()
    assert ran.outcomes == {job.id: "failed"}
    error = queue.get_job(job.id).error
    assert error is not None and error.traceback is not None
    assert error.traceback.startswith("Traceback (most recent call last):\n"), error.traceback
    assert "no running event loop" not in error.traceback, error.traceback
    assert "During handling of the above exception" not in error.traceback, error.traceback
    assert error.traceback.rstrip().endswith("ValueError: bad input"), error.traceback
