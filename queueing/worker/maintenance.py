"""The worker's maintenance side tasks: rescue of stalled jobs, and retention.

Every worker runs both, but one worker at a time does a round of each: the holder of
the service's transaction-scoped advisory lock (``try_maintenance_lock``), taken in
the same transaction as the service's query. Each uses a connection of its own, so
that its transaction never mixes with the claim loop's statements.

A round that fails (the database is away) is logged and tried again at the next
interval, on a new connection. The rescuer then waits one ``stall_timeout`` before its
first round on the database that came back: every worker's heartbeat failed during
the outage, so all of them look stalled until they beat again, and rescuing at once
would take live workers' running jobs from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from queueing import logs, sql
from queueing.drivers import first_line
from queueing.retention import Retention, prune_async

#: Advisory lock "service" id of the rescuer.
RESCUE_SERVICE = 1
#: Jobs rescued per statement; a round repeats until fewer come back.
RESCUE_BATCH = 500

Connect = Callable[[], Awaitable[psycopg.AsyncConnection[Any]]]


class _Service:
    """Runs ``round`` every ``interval`` seconds, on a connection of its own; the first
    round after ``first_delay`` seconds."""

    name = "maintenance"

    def __init__(self, connect: Connect, interval: float, first_delay: float) -> None:
        self._connect = connect
        self.interval = interval
        self.first_delay = first_delay
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.rounds = 0
        # A round failed and none succeeded since: the database was away.
        self._failing = False

    async def run(self) -> None:
        """Run rounds until cancelled; a database error costs one round, never the task."""
        try:
            await asyncio.sleep(self.first_delay)
            while True:
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = await self._connect()
                    if self._failing:
                        await self.after_outage()
                    await self.round(self._conn)
                    self._failing = False
                    self.rounds += 1
                except psycopg.Error as exc:
                    # The next round retries; a broken connection is replaced.
                    self._failing = True
                    logs.event(f"worker.{self.name}_failed", logging.WARNING, error=first_line(exc))
                    if self._conn is not None:
                        with contextlib.suppress(psycopg.Error):
                            await self._conn.close()
                    self._conn = None
                await asyncio.sleep(self.interval)
        finally:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None

    async def after_outage(self) -> None:
        """Called before the first round on a database that answers again after failed
        rounds (its connection is back)."""

    async def round(self, conn: psycopg.AsyncConnection[Any]) -> None:
        raise NotImplementedError


class Rescuer(_Service):
    """Gives back the active jobs of workers that stopped heartbeating.

    A worker is stalled once its last heartbeat is older than ``stall_timeout``; its
    active jobs go back to pending (failed when their attempts are spent), each with a
    ``worker_lost`` attempt row, and the worker row is deleted (queueing_rescue_v1).
    """

    name = "rescue"

    def __init__(self, connect: Connect, *, interval: float, stall_timeout: float) -> None:
        # The first round at once: a worker restarted after a crash gives back what
        # the crash left as soon as it is stale.
        super().__init__(connect, interval, first_delay=0.0)
        self.stall_timeout = stall_timeout

    async def after_outage(self) -> None:
        """Give live workers one ``stall_timeout`` to heartbeat before judging them.

        Their heartbeats failed while the database was away, so each looks stalled now.
        Workers beat every heartbeat_interval (< stall_timeout, which Worker checks),
        and at once when their claims go through again, so within one stall_timeout of
        the database answering every live worker has beaten again and only the dead
        still look stalled. A worker that died during the outage is rescued this much
        later; this round is one this rescuer saw fail, so an outage longer than
        stall_timeout is seen whenever rescue_interval is shorter than stall_timeout.
        """
        logs.event("worker.rescue_held", logging.WARNING, hold_s=self.stall_timeout)
        await asyncio.sleep(self.stall_timeout)

    async def round(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while True:
            async with conn.transaction():
                cur = await conn.execute(
                    sql.query("try_maintenance_lock"), {"service": RESCUE_SERVICE}
                )
                row = await cur.fetchone()
                if not (row and row[0]):
                    return  # another worker is rescuing right now
                cur = await conn.execute(
                    sql.query("rescue_stalled"),
                    {"stalled_after": self.stall_timeout, "limit": RESCUE_BATCH},
                )
                rescued = await cur.fetchall()
            # Logged after the commit: a line never claims what the database does not hold.
            for job_id, status in rescued:
                logs.event("job.rescued", logging.WARNING, job_id=job_id, status=status)
            if len(rescued) < RESCUE_BATCH:
                return


class Pruner(_Service):
    """Deletes finished jobs past their keep (``queueing.retention``)."""

    name = "prune"

    def __init__(self, connect: Connect, *, interval: float, retention: Retention) -> None:
        # The first round one interval after start: a worker restarting in a loop must
        # not prune on every start.
        super().__init__(connect, interval, first_delay=interval)
        self.retention = retention

    async def round(self, conn: psycopg.AsyncConnection[Any]) -> None:
        deleted = await prune_async(conn, self.retention, exclusive=True)
        if deleted:
            logs.event("jobs.pruned", deleted=deleted)
