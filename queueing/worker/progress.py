"""Progress reports from running handlers, written on a small pool of their own.

Many handlers may report at once, and the claim loop's connection must stay free. A
connection is held for one statement only, never across a handler's work, so
``concurrency`` reporters share the pool's few connections however long their jobs run.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from queueing import drivers, logs, sql
from queueing.config import connect_options
from queueing.models import JSON
from queueing.worker.backoff import ReconnectBackoff
from queueing.worker.outcome import Claimed

#: How long a progress report may wait for the database (as long as psycopg_pool's
#: default wait for a connection) before the handler gets the error.
PROGRESS_TIMEOUT = 30.0
POOL_SIZE = 4
#: Seconds a progress connection may stay unused before the pool closes it (one per
#: period, down to none): a burst of reports does not hold server connections for the
#: pool's default 10 minutes.
POOL_MAX_IDLE = 30.0


class ProgressWriter:
    """Writes handlers' progress reports; ``open`` before the first job, ``close`` after."""

    def __init__(self, database_url: str) -> None:
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            database_url,
            min_size=0,
            max_size=POOL_SIZE,
            max_idle=POOL_MAX_IDLE,
            open=False,
            name="queueing-progress",
            kwargs={**connect_options(), "autocommit": True},
            check=drivers.check_pooled_async,
        )

    async def open(self) -> None:
        await self._pool.open()

    async def close(self) -> None:
        await self._pool.close()

    async def write(self, job: Claimed, percent: int, detail: JSON | None) -> None:
        """Write one progress report; return once it is committed.

        A connection that died while idle in the pool (the database restarted) fails
        on first use; the report is tried again on a fresh connection, with a backoff
        while the database is away, for up to ``PROGRESS_TIMEOUT`` seconds; then the
        handler gets the error.
        """
        params = {
            "id": job.id,
            "attempt": job.attempts,
            "progress": percent,
            "detail": psycopg.types.json.Jsonb(detail) if detail is not None else None,
        }
        deadline = time.monotonic() + PROGRESS_TIMEOUT
        backoff = ReconnectBackoff(cap=1.0)
        while True:
            try:
                remaining = max(deadline - time.monotonic(), 0.001)
                async with self._pool.connection(timeout=remaining) as conn:
                    await conn.execute(sql.query("set_progress"), params)
                break
            except psycopg.OperationalError:
                delay = backoff.next()
                if time.monotonic() + delay >= deadline:
                    raise
                await asyncio.sleep(delay)
        logs.event("job.progress", job_id=job.id, task=job.task_name, progress=percent)
