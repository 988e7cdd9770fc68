"""The jobs a worker runs right now: started, stopped on request, their outcomes handed on.

Each running job owns its stop event (the one its handler reads as ``ctx.cancelled``) and
its reason to stop, if it was asked to: state of the job, kept with the job, set only here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from dataclasses import dataclass, field

from queueing import logs
from queueing.context import JobContext, StopFlag
from queueing.queue import Queue
from queueing.worker.execute import execute
from queueing.worker.finisher import Finisher
from queueing.worker.metrics import WorkerMetrics
from queueing.worker.outcome import Claimed, Outcome
from queueing.worker.progress import ProgressWriter

#: Async handlers run as tasks named so (the loop watchdog reads the job id from it).
JOB_TASK_PREFIX = "queueing-job-"


@dataclass
class WorkerStats:
    """What a worker did, for tests and the benchmark."""

    claimed: int = 0
    finished: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass
class _Running:
    job: Claimed
    stop: StopFlag
    task: asyncio.Task[Outcome]
    stop_reason: type[Exception] | None = None


class RunningJobs:
    """Starts claimed jobs, stops them when asked, and submits each outcome to the
    finisher of the registration that claimed the job."""

    def __init__(
        self,
        queue: Queue,
        progress: ProgressWriter,
        stats: WorkerStats,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._queue = queue
        self._progress = progress
        self._jobs: dict[int, _Running] = {}
        self.stats = stats
        #: Set whenever a job ends (a slot is free again).
        self.slot_freed = asyncio.Event()
        self._metrics = metrics

    def __len__(self) -> int:
        return len(self._jobs)

    def ids(self) -> list[int]:
        return list(self._jobs)

    @property
    def alone(self) -> bool:
        """A job that must run alone is running: claim nothing beside it."""
        return any(r.job.run_alone for r in self._jobs.values())

    def start(self, job: Claimed, finisher: Finisher) -> None:
        """Run ``job``; its outcome goes to ``finisher``."""
        stop = StopFlag()

        def ctx() -> JobContext:
            # Built only for a handler that takes one (most do not).
            return JobContext(
                job_id=job.id,
                task_name=job.task_name,
                queue=job.queue_name,
                attempt=job.attempts,
                max_attempts=job.max_attempts,
                tenant_id=job.tenant_id,
                user_id=job.user_id,
                _write_progress=functools.partial(self._progress.write, job),
                _loop=asyncio.get_running_loop(),
                _cancelled=stop,
                schedule_tick=job.schedule_tick,
            )

        task = self._queue.tasks.get(job.task_name)
        running: _Running
        coro = execute(job, task, ctx, lambda: running.stop_reason)
        running = _Running(job, stop, asyncio.create_task(coro, name=f"{JOB_TASK_PREFIX}{job.id}"))
        self._jobs[job.id] = running
        self.stats.claimed += 1
        if self._metrics is not None:
            self._metrics.started(job, dt.datetime.now(dt.UTC))
        if logs.logger.isEnabledFor(logging.INFO):  # not even the fields' dict, per job
            logs.event(
                "job.started",
                job_id=job.id,
                task=job.task_name,
                queue=job.queue_name,
                attempt=job.attempts,
            )
        running.task.add_done_callback(functools.partial(self._done, running, finisher))

    def stop(self, job_id: int, reason: type[Exception]) -> bool:
        """Stop a running job (``Cancelled`` or ``Interrupted``); False if it is not
        running here or was already asked to stop."""
        running = self._jobs.get(job_id)
        if running is None or running.stop_reason is not None:
            return False
        running.stop_reason = reason
        running.stop.set()
        running.task.cancel()
        return True

    async def wait(self, *, timeout: float | None = None) -> None:
        """Return once every running job has ended (or at ``timeout``)."""
        tasks = [r.task for r in self._jobs.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def _done(self, running: _Running, finisher: Finisher, task: asyncio.Task[Outcome]) -> None:
        self._jobs.pop(running.job.id, None)
        # Whatever happened, the attempt is over: a plain function still running in its
        # thread (timed out, abandoned at shutdown) sees ctx.cancelled and can stop.
        running.stop.set()
        self.slot_freed.set()
        if task.cancelled():  # cannot happen: execute() turns cancellation into an outcome
            return
        outcome = task.result()
        self.stats.finished += 1
        self.stats.outcomes[outcome.kind] = self.stats.outcomes.get(outcome.kind, 0) + 1
        finisher.submit(outcome)
