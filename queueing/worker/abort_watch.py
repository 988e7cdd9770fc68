"""Stops running jobs whose cancel was requested.

A cancel request is a flag on the job's row (``abort_requested``); procrastinate's
trigger sends an abort hint with it, but a hint is only a hint (it may be lost, or
forged), so the watch asks the database which of this worker's running jobs are flagged:
at once when a hint arrives, and every ``interval`` seconds in any case.
"""

from __future__ import annotations

import asyncio

import psycopg

from queueing import logs
from queueing.worker.connection import Connection
from queueing.worker.outcome import Cancelled
from queueing.worker.running import RunningJobs
from queueing.worker.services import first


class AbortWatch:
    """Looks for cancel requests on a hint (``look_now``) or every ``interval`` seconds."""

    name = "queueing-aborts"

    def __init__(self, conn: Connection, running: RunningJobs, interval: float) -> None:
        self._conn = conn
        self._running = running
        self._interval = interval
        self._look = asyncio.Event()

    def look_now(self) -> None:
        """An abort hint arrived (or an unrecognised one): look now."""
        self._look.set()

    async def run(self) -> None:
        while True:
            await first(self._look.wait(), timeout=self._interval)
            self._look.clear()
            if len(self._running) == 0:
                continue
            try:
                rows = await self._conn.fetch("cancel_requested", {"ids": self._running.ids()})
            except psycopg.Error as exc:
                await self._conn.drop_if_lost(exc)
                continue  # the next interval looks again
            for row in rows:
                if self._running.stop(row["id"], Cancelled):
                    logs.event("job.cancel_requested", job_id=row["id"])
