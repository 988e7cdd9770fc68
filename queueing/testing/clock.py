"""Move the queue's clock in tests, so delays and retry backoffs need no waiting."""

from __future__ import annotations

import datetime as dt

from queueing import drivers
from queueing.ops import Op, Query
from queueing.queue import Queue


class QueueClock:
    """The ``queue_clock`` fixture: moves the queue's clock forward.

    ``advance(seconds)`` makes every job of the queue that much older: a delayed job, or
    one waiting out a retry backoff, falls due that much sooner (workers are woken for
    it); created, started and finished times move back too, so age-based rules
    (``dedupe_for`` windows, retention) see the time pass. Only the jobs present at the
    call move: a job enqueued afterwards starts from the real clock. The clock schedules
    read (``queueing_now_v1()``, ``Queue.schedule``) moves forward by as much: a worker's
    scheduler then runs the ticks that came due.
    """

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.advanced = dt.timedelta()
        """How far this clock has been moved in total."""

    def advance(self, seconds: float | dt.timedelta) -> list[int]:
        """Move the clock forward by ``seconds`` (ValueError if negative).

        Returns the ids, ascending, of the pending jobs this move made due: those whose
        run time (a delay, ``run_at``, a retry backoff) was still ahead and now is not.
        Jobs already due before the call, jobs still not due after it, and active or
        finished jobs are not listed (they moved all the same); ``advance(0)`` returns
        ``[]``. The workers of the listed jobs' queues are woken.
        """
        return drivers.run_sync_at(self.queue.database_url, self._advance(seconds), autocommit=True)

    async def advance_async(self, seconds: float | dt.timedelta) -> list[int]:
        """``advance()`` for async tests."""
        op = self._advance(seconds)
        return await drivers.run_async_at(self.queue.database_url, op, autocommit=True)

    def _advance(self, seconds: float | dt.timedelta) -> Op[list[int]]:
        """The operation both run (``seconds`` is checked now, before any connection)."""
        return self._advance_by(_seconds(seconds))

    def _advance_by(self, amount: float) -> Op[list[int]]:
        rows = yield Query("testing_advance_clock", {"seconds": amount})
        self.advanced += dt.timedelta(seconds=amount)
        return [row["id"] for row in rows]


def _seconds(value: float | dt.timedelta) -> float:
    amount = value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
    if amount < 0:
        raise ValueError(f"the queue clock only moves forward (got {amount:g}s)")
    return amount
