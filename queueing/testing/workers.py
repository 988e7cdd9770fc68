"""In-process workers for tests: drain the queue and say what ran, or run in the background.

``QueueWorker`` is what the ``queueing_worker`` fixture gives. Nothing here sleeps: a
drain ends when the worker finds the queue idle, a background worker is waited for on
its ``started`` event and stopped with ``Worker.stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from queueing import drivers
from queueing.models import Job, JobError
from queueing.ops import Op, Query
from queueing.queue import Queue
from queueing.worker import Worker, WorkerStats

TEST_WORKER_DEFAULTS: dict[str, Any] = {
    # Retention would delete finished jobs a test is about to read.
    "retention": None,
    # A test that leaves a job running should not hold the suite for the default 30 s.
    "shutdown_timeout": 5.0,
}
"""Worker options the fixture uses unless a test passes its own."""


class Run(BaseModel):
    """One attempt a test worker ran: which job, which try, how it ended.

    ``outcome`` is the attempt history's: ``completed``, ``failed``, ``retry`` (failed,
    another attempt is scheduled), ``cancelled``, ``interrupted`` or ``worker_lost``.
    """

    model_config = ConfigDict(frozen=True)

    job_id: int
    task_name: str
    attempt: int
    outcome: str
    worker_id: int | None
    error: JobError | None


@dataclass(frozen=True)
class Drained:
    """What a test worker ran, oldest attempt first (``drain()``'s return value).

    Iterate it for the ``Run`` of each attempt; ``job_ids`` lists each job once; ``job in
    drained`` (a Job or an id) says whether that job ran.
    """

    runs: tuple[Run, ...]
    stats: WorkerStats | None = field(default=None, compare=False)

    @property
    def job_ids(self) -> list[int]:
        """The ids of the jobs that ran, each once, in the order they first finished."""
        return list(dict.fromkeys(run.job_id for run in self.runs))

    @property
    def outcomes(self) -> dict[int, str]:
        """Each job's last outcome in this run."""
        return {run.job_id: run.outcome for run in self.runs}

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def __contains__(self, job: object) -> bool:
        job_id = job.id if isinstance(job, Job) else job
        return any(run.job_id == job_id for run in self.runs)


class QueueWorker:
    """Runs ``Worker``\\ s of ``queue`` inside the test process (the ``queueing_worker``
    fixture).

    ``drain()`` runs one until the queue is idle (no job due now, none running) and
    returns what it ran; ``background()`` runs one in a thread while the test acts.
    Worker options (``concurrency=``, ``queues=``...) may be given here as defaults or to
    each call; ``TEST_WORKER_DEFAULTS`` applies unless overridden.
    """

    def __init__(self, queue: Queue, **defaults: Any) -> None:
        self.queue = queue
        self.defaults = {**TEST_WORKER_DEFAULTS, **defaults}

    def worker(self, **options: Any) -> Worker:
        """A new, not yet running ``Worker`` with the defaults and ``options``."""
        return Worker(self.queue, **{**self.defaults, **options})

    def drain(self, **options: Any) -> Drained:
        """Run a worker until no job is due now and none is running; what it ran.

        ``options`` are ``Worker``'s, over this object's defaults and
        ``TEST_WORKER_DEFAULTS`` (no pruning, a 5 s shutdown grace). ``concurrency=N``
        (default 10, as ``Worker``): at most N handlers run at once, and each claim takes
        at most as many due jobs as slots are free, highest priority first, then oldest.
        With ``concurrency=1`` jobs run one at a time in that order.

        Jobs that fall due while it drains run in the same drain: a retry without a
        backoff, a job a handler enqueued. Jobs scheduled later (a delay, a retry
        backoff) are not waited for: move the clock (``queue_clock.advance``) and drain
        again. An empty queue returns at once with no runs.

        Returns a ``Drained``: one ``Run`` per attempt this drain finished, in the order
        their outcomes were written (with ``concurrency`` above 1, the order they ended,
        not the order they started), and the worker's ``WorkerStats`` as ``stats``.
        From an async test, use ``await drain_async()``.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop running: the usual case
        else:
            raise RuntimeError(
                "queueing_worker.drain() called from a running event loop: "
                "use `await queueing_worker.drain_async()`"
            )
        # Outside the `except` block: run there, every error the loop raised (a handler's
        # included, with the traceback stored for it) had "no running event loop" as its
        # context, and its traceback began with that error.
        return asyncio.run(self.drain_async(**options))

    async def drain_async(self, **options: Any) -> Drained:
        """``drain()`` for async tests."""
        worker = self.worker(**options)
        stats = await worker.run(until_idle=True)
        runs = await drivers.run_async_at(self.queue.database_url, _runs(worker), autocommit=True)
        return Drained(runs, stats)

    @contextlib.contextmanager
    def background(self, *, timeout: float = 30.0, **options: Any) -> Iterator[BackgroundWorker]:
        """Run a worker in a thread for the ``with`` block.

        Yields once the worker listens for jobs (its ``started`` event), so nothing the
        test enqueues is missed. On exit the worker is stopped (gracefully: running jobs
        get ``shutdown_timeout`` seconds) and joined; an error it raised is raised here.
        ``timeout`` bounds the start and the stop.
        """
        handle = BackgroundWorker(self.queue, self.worker(**options))
        try:
            handle.start(timeout)
            yield handle
        finally:
            handle.stop(timeout)
        if handle.error is not None:
            raise handle.error


class BackgroundWorker:
    """A worker running in a thread during ``with queueing_worker.background():``."""

    def __init__(self, queue: Queue, worker: Worker) -> None:
        self.queue = queue
        self.worker = worker
        self.stats: WorkerStats | None = None
        self.error: BaseException | None = None

    def start(self, timeout: float) -> None:
        """Run the worker in a thread; return once it listens for jobs. Raises what made
        it fail to start, or AssertionError if it did not start within ``timeout``."""
        ready = threading.Event()
        worker = self.worker

        async def main() -> WorkerStats:
            run = asyncio.ensure_future(worker.run())
            started = asyncio.ensure_future(worker.started.wait())
            try:
                await asyncio.wait({run, started}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                started.cancel()
            if worker.started.is_set():
                ready.set()  # else run() failed: target() records why, then sets ready
            return await run

        def target() -> None:
            try:
                self.stats = asyncio.run(main())
            except BaseException as exc:  # handed to the test's thread
                self.error = exc
            finally:
                ready.set()

        self._thread = threading.Thread(target=target, name="queueing-test-worker", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise AssertionError(f"the background worker did not start within {timeout:g}s")
        if self.error is not None:
            raise self.error

    def stop(self, timeout: float) -> None:
        """Stop the worker gracefully (forced if that takes over ``timeout``) and join it."""
        self.worker.stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.worker.stop(force=True)
            self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the background worker did not stop within {timeout:g}s")

    @property
    def worker_id(self) -> int | None:
        """The worker's registration id (as in job records and attempt history)."""
        return self.worker.worker_id

    def ran(self) -> Drained:
        """What this worker has run so far, read from the attempt history: a ``Drained``
        with one ``Run`` per attempt recorded under this worker's registration id(s),
        in the order they were recorded.

        An attempt is there once its outcome is written, a moment after its handler
        returned (outcomes are written in batches): wait for the job (``wait_for``)
        before asserting on its run. Once the ``with`` block has exited every outcome
        is written (jobs still running at the stop show as ``interrupted``) and the
        list is complete. ``stats`` is None while the worker runs, its ``WorkerStats``
        once it stopped.
        """
        runs = drivers.run_sync_at(self.queue.database_url, _runs(self.worker), autocommit=True)
        return Drained(runs, self.stats)


def _runs(worker: Worker) -> Op[tuple[Run, ...]]:
    """The attempts the worker ran (under every registration it had), oldest first."""
    rows = yield Query("testing_worker_runs", {"worker_ids": worker.worker_ids})
    return tuple(Run.model_validate(row) for row in rows)
