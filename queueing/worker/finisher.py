"""Write attempt outcomes to the database in batches.

Outcomes queue up while a write is in flight, so under load many jobs finish in one
statement, and at a low rate each is written at once. Each outcome's transition is
logged only after its commit, so a log line never claims what the database does not hold.

While the database is away, outcomes wait in memory and the write is retried with an
exponential backoff (the worker cuts it short with ``retry_now`` once its claims go
through again); the jobs stay "active" meanwhile. An outcome the database refuses as
data (a result holding ``\u0000``, which jsonb cannot store) is isolated from its
batch and recorded as an ``OutcomeRejected`` failure, so one bad value can never
wedge the outcomes of every other job.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import Any

import psycopg

from queueing import logs
from queueing.drivers import first_line
from queueing.worker.backoff import ReconnectBackoff
from queueing.worker.connection import Connection
from queueing.worker.metrics import WorkerMetrics
from queueing.worker.outcome import Outcome, OutcomeKind, error_json

MAX_BATCH = 500
_STATUS_EVENT = {
    "completed": "job.completed",
    "failed": "job.failed",
    "pending": "job.retrying",
    "cancelled": "job.cancelled",
}


class OutcomeRejected(Exception):
    """The database refused to store this attempt's outcome (its result or error)."""


class Finisher:
    """Writes the outcomes of one worker registration's attempts (see the module doc)."""

    def __init__(
        self,
        worker_id: int,
        database_url: str,
        metrics: WorkerMetrics | None = None,
        committed: asyncio.Event | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.name = f"queueing-finisher-{worker_id}"
        self._conn = Connection(database_url)
        self._pending: list[Outcome] = []
        self._writing: list[Outcome] = []
        self._has_work = asyncio.Event()
        self._retry_now = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._backoff = ReconnectBackoff()  # consecutive failed writes, and since when
        self.written = 0
        self._metrics = metrics
        #: Set after each commit of outcomes (see Registration.committed).
        self._committed = committed

    def submit(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        self._idle.clear()
        self._has_work.set()

    async def flushed(self) -> None:
        """Return once every submitted outcome is committed."""
        await self._idle.wait()

    @property
    def pending(self) -> int:
        """Outcomes submitted and not yet committed."""
        return len(self._pending) + len(self._writing)

    def job_ids(self) -> set[int]:
        """The jobs whose outcomes are submitted and not yet committed."""
        return {o.job.id for o in self._pending} | {o.job.id for o in self._writing}

    def close(self) -> None:
        """Finish what is pending, then stop ``run``."""
        self._closing = True
        self._has_work.set()

    def retry_now(self) -> None:
        """End a retry's backoff now (the database answers again)."""
        self._retry_now.set()

    async def run(self) -> None:
        """Write outcomes as they come until ``close()``; never gives one up to an outage.

        Safe to run again after it raised: a batch being written goes back in front.
        """
        if self._pending:
            self._has_work.set()
        try:
            while True:
                await self._has_work.wait()
                self._has_work.clear()
                while self._pending:
                    batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                    self._writing = batch
                    try:
                        await self._write_all(batch)
                    except BaseException:
                        self._pending[:0] = batch  # not lost: the next run writes it
                        raise
                    finally:
                        self._writing = []
                if not self._pending:
                    self._idle.set()
                    if self._closing:
                        return
        finally:
            await self._conn.close()

    async def _write_all(self, batch: list[Outcome]) -> None:
        """Commit ``batch``, retrying until the database takes it.

        A batch the database refuses as data is split until the refused outcome is
        alone, and that one is recorded as an OutcomeRejected failure instead.
        """
        while True:
            try:
                rows = await self._write(batch)
            except psycopg.DataError as exc:
                if len(batch) > 1:
                    half = len(batch) // 2
                    await self._write_all(batch[:half])
                    await self._write_all(batch[half:])
                    return
                replacement = _rejected(batch[0], exc)
                if replacement is None:
                    # Even the replacement was refused: nothing is left to write. The
                    # job stays active under this worker until it stops, then goes back.
                    logs.event(
                        "worker.finish_dropped",
                        logging.ERROR,
                        job_id=batch[0].job.id,
                        task=batch[0].job.task_name,
                        error=first_line(exc),
                    )
                    return
                logs.event(
                    "worker.finish_rejected",
                    logging.ERROR,
                    job_id=batch[0].job.id,
                    task=batch[0].job.task_name,
                    outcome=batch[0].kind,
                    error=first_line(exc),
                )
                batch = [replacement]
                continue
            except psycopg.Error as exc:
                # The outcomes stay in memory and are written when the database is
                # back; the jobs stay "active" until then. Not only connection errors:
                # a server that came back read-only (a failover) refuses writes too.
                await self._back_off(exc, len(batch))
                continue
            # Committed: no longer pending, before the metrics and the log lines say so
            # (the pending gauge is read from the metrics server's thread at any time).
            self._forget(batch)
            self._recovered()
            self.written += len(batch)
            if self._committed is not None and any(o.job.limited for o in batch):
                self._committed.set()
            if self._metrics is not None:
                self._metrics.committed(batch, rows)
            self._log(batch, rows)
            return

    def _forget(self, committed: list[Outcome]) -> None:
        """Drop committed outcomes from the batch being written (all of it, unless the
        batch was split around an outcome the database refused)."""
        if committed is self._writing:
            self._writing = []
            return
        done = {id(o) for o in committed}
        self._writing = [o for o in self._writing if id(o) not in done]

    async def _back_off(self, exc: psycopg.Error, jobs: int) -> None:
        delay = self._backoff.failed("worker.finish_retry", exc, jobs=jobs)
        await self._conn.drop_if_lost(exc)
        self._retry_now.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._retry_now.wait(), timeout=delay)

    def _recovered(self) -> None:
        self._backoff.recovered("worker.finish_recovered", pending=self.pending)

    async def _write(self, batch: list[Outcome]) -> dict[int, str]:
        params = {"worker_id": self.worker_id, "outcomes": outcomes_json(batch)}
        rows = await self._conn.fetch("finish_jobs", params)
        return {row["id"]: row["status"] for row in rows}

    @staticmethod
    def _log(batch: list[Outcome], statuses: dict[int, str]) -> None:
        if not logs.logger.isEnabledFor(logging.INFO):
            return
        for o in batch:
            status = statuses.get(o.job.id)
            if status is None:
                # Fenced out: the attempt was no longer current (rescued, cancelled...).
                logs.event(
                    "job.finish_ignored",
                    logging.WARNING,
                    job_id=o.job.id,
                    task=o.job.task_name,
                    attempt=o.job.attempts,
                    outcome=o.kind,
                )
                continue
            fields: dict[str, Any] = {
                "job_id": o.job.id,
                "task": o.job.task_name,
                "queue": o.job.queue_name,
                "attempt": o.job.attempts,
                "status": status,
                "duration_ms": round(o.duration * 1000, 3),
            }
            if o.error_type:
                fields["error"] = o.error_type
            if o.retry_in:
                fields["retry_in_s"] = round(o.retry_in, 3)
            interrupted = o.kind is OutcomeKind.INTERRUPTED
            name = "job.interrupted" if interrupted else _STATUS_EVENT[status]
            logs.event(name, **fields)


def outcomes_json(batch: list[Outcome]) -> str:
    """The ``outcomes`` of ``finish_jobs``: a JSON array, one object per attempt.

    Written by formatting, not by an encoder: the ids and attempts are ints, the kind an
    enum value, and the result and error are JSON text already (``result_json``,
    ``error_json``), embedded as they are. A retry's time is the absolute UTC instant.
    """
    now = dt.datetime.now(dt.UTC)
    return (
        "["
        + ",".join(
            f'{{"id":{o.job.id},"attempt":{o.job.attempts},"outcome":"{o.kind.value}"'
            f',"result":{o.result_json or "null"},"error":{o.error_json or "null"}'
            + (
                f',"retry_at":"{(now + dt.timedelta(seconds=o.retry_in)).isoformat()}"}}'
                if o.retry_in
                else "}"
            )
            for o in batch
        )
        + "]"
    )


def _rejected(outcome: Outcome, exc: psycopg.Error) -> Outcome | None:
    """What to record instead of an outcome the database refused: the same kind of end
    (a success whose result cannot be stored is a failure), with an OutcomeRejected
    error in place of the refused result or error. None if that was already it."""
    if outcome.error_type == OutcomeRejected.__name__:
        return None
    message = (
        f"the database refused this attempt's {outcome.kind} outcome "
        f"({type(exc).__name__}: {first_line(exc)}); the handler's "
        f"{'result' if outcome.kind is OutcomeKind.SUCCEEDED else 'error'} is not stored"
    )
    return Outcome(
        outcome.job,
        OutcomeKind.FAILED if outcome.kind is OutcomeKind.SUCCEEDED else outcome.kind,
        error_json=error_json(OutcomeRejected(message.replace("\x00", ""))),
        error_type=OutcomeRejected.__name__,
        retry_in=outcome.retry_in,
        duration=outcome.duration,
    )
