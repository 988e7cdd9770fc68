"""Move the queue's clock in tests, so delays and retry backoffs need no waiting."""

from __future__ import annotations

import datetime as dt

import psycopg

from queueing import sql
from queueing.queue import Queue


class QueueClock:
    """The ``queue_clock`` fixture: moves the queue's clock forward.

    ``advance(seconds)`` makes every job of the queue that much older: a delayed job, or
    one waiting out a retry backoff, falls due that much sooner (workers are woken for
    it); created, started and finished times move back too, so age-based rules
    (``dedupe_for`` windows, retention) see the time pass. Only the jobs present at the
    call move: a job enqueued afterwards starts from the real clock.
    """

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.advanced = dt.timedelta()
        """How far this clock has been moved in total."""

    def advance(self, seconds: float | dt.timedelta) -> list[int]:
        """Move the clock forward; returns the ids of the jobs that became due."""
        amount = _seconds(seconds)
        with psycopg.connect(self.queue.database_url, autocommit=True) as conn:
            rows = conn.execute(sql.query("testing_advance_clock"), {"seconds": amount}).fetchall()
        self.advanced += dt.timedelta(seconds=amount)
        return [row[0] for row in rows]

    async def advance_async(self, seconds: float | dt.timedelta) -> list[int]:
        """``advance()`` for async tests."""
        amount = _seconds(seconds)
        conn = await psycopg.AsyncConnection.connect(self.queue.database_url, autocommit=True)
        async with conn:
            cur = await conn.execute(sql.query("testing_advance_clock"), {"seconds": amount})
            rows = await cur.fetchall()
        self.advanced += dt.timedelta(seconds=amount)
        return [row[0] for row in rows]


def _seconds(value: float | dt.timedelta) -> float:
    amount = value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
    if amount < 0:
        raise ValueError(f"the queue clock only moves forward (got {amount:g}s)")
    return amount
