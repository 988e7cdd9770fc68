"""Write attempt outcomes to the database in batches.

Outcomes queue up while a write is in flight, so under load many jobs finish in one
statement, and at a low rate each is written at once. Each outcome's transition is
logged only after its commit, so a log line never claims what the database does not hold.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from queueing import logs, sql
from queueing.drivers import first_line
from queueing.worker.execute import Outcome

MAX_BATCH = 500
_STATUS_EVENT = {
    "completed": "job.completed",
    "failed": "job.failed",
    "pending": "job.retrying",
    "cancelled": "job.cancelled",
}


class Finisher:
    def __init__(
        self,
        worker_id: int,
        connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
    ) -> None:
        self._worker_id = worker_id
        self._connect = connect
        self._pending: list[Outcome] = []
        self._has_work = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self.written = 0

    def submit(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        self._idle.clear()
        self._has_work.set()

    async def flushed(self) -> None:
        """Return once every submitted outcome is committed."""
        await self._idle.wait()

    def close(self) -> None:
        """Finish what is pending, then stop ``run``."""
        self._closing = True
        self._has_work.set()

    async def run(self) -> None:
        conn: psycopg.AsyncConnection[Any] | None = None
        backoff = 0.05
        try:
            while True:
                await self._has_work.wait()
                self._has_work.clear()
                while self._pending:
                    batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                    while True:
                        try:
                            if conn is None or conn.closed:
                                conn = await self._connect()
                            rows = await self._write(conn, batch)
                            backoff = 0.05
                            break
                        except psycopg.OperationalError as exc:
                            # The outcomes stay in memory and are written when the
                            # database is back; the jobs stay "active" until then.
                            logs.event(
                                "worker.finish_retry",
                                logging.WARNING,
                                error=first_line(exc),
                                jobs=len(batch),
                                retry_in=backoff,
                            )
                            conn = None
                            await asyncio.sleep(backoff)
                            backoff = min(backoff * 2, 5.0)
                    self.written += len(batch)
                    self._log(batch, rows)
                if not self._pending:
                    self._idle.set()
                    if self._closing:
                        return
        finally:
            if conn is not None:
                await conn.close()

    async def _write(
        self, conn: psycopg.AsyncConnection[Any], batch: list[Outcome]
    ) -> dict[int, str]:
        now = dt.datetime.now(dt.UTC)
        params = {
            "worker_id": self._worker_id,
            "ids": [o.job.id for o in batch],
            "attempts": [o.job.attempts for o in batch],
            "outcomes": [o.kind for o in batch],
            "results": [o.result_json for o in batch],
            "errors": [o.error_json for o in batch],
            "retry_at": [
                now + dt.timedelta(seconds=o.retry_in) if o.retry_in else None for o in batch
            ],
        }
        cur = await conn.execute(sql.query("finish_jobs"), params)
        return {row[0]: row[1] for row in await cur.fetchall()}

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
            name = "job.interrupted" if o.kind == "interrupted" else _STATUS_EVENT[status]
            logs.event(name, **fields)
