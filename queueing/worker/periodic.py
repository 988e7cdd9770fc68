"""The shape of the maintenance services: a round every ``interval`` seconds.

Every worker runs them, but one worker at a time does a round: each round is one
autocommitted statement that takes the service's advisory lock inside itself and ends
with it, so no client can hold the lock between statements (a worker frozen mid-round,
by SIGSTOP or a blocked event loop, would otherwise stop every worker's maintenance).

Each round opens a connection and closes it at its end: a round is a statement or a
few every ``interval`` seconds (10 s or more), so holding a connection between rounds
would cost every worker one server connection for nothing (docs/pooling.md counts them).

A round that fails (the database is away) is logged and tried again at the next
interval.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg

from queueing import logs
from queueing.drivers import first_line
from queueing.worker.connection import Connection


class Periodic:
    """Runs ``round`` every ``interval`` seconds, on a connection of its own opened for
    the round; the first round after ``first_delay`` seconds."""

    name = "queueing-maintenance"
    #: What its log lines call it (``worker.<kind>_failed``).
    kind = "maintenance"

    def __init__(self, database_url: str, interval: float, first_delay: float) -> None:
        self._conn = Connection(database_url)
        self.interval = interval
        self.first_delay = first_delay
        self.rounds = 0
        # A round failed and none succeeded since: the database was away.
        self._failing = False

    async def run(self) -> None:
        """Run rounds until cancelled; a database error costs one round, never the task."""
        try:
            await asyncio.sleep(self.first_delay)
            while True:
                await self._one_round()
                await asyncio.sleep(self.next_delay())
        finally:
            await self._conn.close()

    async def _one_round(self) -> None:
        try:
            if self._failing:
                await self._conn.get()  # the database answers again before we wait on it
                await self._conn.drop()  # (not held through the wait)
                await self.after_outage()
            await self.round(self._conn)
            self._failing = False
            self.rounds += 1
        except psycopg.Error as exc:
            # The next round retries; a broken connection is replaced.
            self._failing = True
            logs.event(f"worker.{self.kind}_failed", logging.WARNING, error=first_line(exc))
        finally:
            await self._conn.drop()  # held for the round only

    async def after_outage(self) -> None:
        """Called before the first round on a database that answers again after failed
        rounds."""

    def next_delay(self) -> float:
        """Seconds from the end of a round to the next: ``interval`` (a service that knows
        when its next work is due may wait less)."""
        return self.interval

    async def round(self, conn: Connection) -> None:
        raise NotImplementedError
