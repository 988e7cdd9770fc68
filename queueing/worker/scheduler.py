"""The scheduler: runs the due ticks of the app's schedules (``queueing.schedules``).

Every worker of an app that declares schedules runs one. A round reads the queue clock
and each schedule's last tick run (one query), computes the due ticks from the cron
expressions, and runs them in one autocommitted statement (``fire_schedule_ticks``)
that inserts each tick row and its job together. Schedulers of several workers compute
the same ticks; the tick table's primary key lets one insert through, so each tick gets
exactly one job, with no leader to elect and no lock held between statements.

Between rounds it waits until the next tick is due, or ``interval`` seconds at most (how
soon it sees the queue clock moved, in tests, or its schedules' registrations deleted).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

from queueing import logs
from queueing.schedules import Schedule
from queueing.worker.connection import Connection, Row
from queueing.worker.periodic import Periodic

#: Waited past a tick's instant, so the round that wakes for it reads a clock that is
#: past it (the database's clock and ours are read at slightly different moments).
TICK_MARGIN = 0.005


class Scheduler(Periodic):
    """Runs the due ticks of ``schedules`` (see the module doc)."""

    name = "queueing-scheduler"
    kind = "schedule"

    def __init__(
        self, database_url: str, schedules: Mapping[str, Schedule], *, interval: float
    ) -> None:
        super().__init__(database_url, interval, first_delay=0.0)
        self._schedules = dict(schedules)
        self._next_delay = interval
        # Registered by this worker's first round: a deploy's new definitions (cron,
        # arguments) replace the stored ones.
        self._registered = False

    def next_delay(self) -> float:
        return self._next_delay

    async def round(self, conn: Connection) -> None:
        rows = await self._state(conn)
        if not rows:
            return  # the registry was emptied under us: the next round registers again
        now: dt.datetime = rows[0]["now"]
        due = [
            self._schedules[row["name"]].job_row(tick)
            for row in rows
            for tick in self._schedules[row["name"]].due_ticks(row["due_after"], now)
        ]
        if due:
            fired = await conn.fetch("fire_schedule_ticks", {"ticks": json.dumps(due)})
            # Logged after the commit: the tick and its job exist.
            for tick in fired:
                logs.event(
                    "schedule.fired",
                    schedule=tick["schedule_name"],
                    tick=tick["tick_at"].isoformat(),
                    job_id=tick["job_id"],
                )
        upcoming = min(s.next_tick(now) for s in self._schedules.values())
        wait = (upcoming - now).total_seconds() + TICK_MARGIN
        self._next_delay = min(max(wait, TICK_MARGIN), self.interval)

    async def _state(self, conn: Connection) -> list[Row]:
        """Each schedule's state; the schedules are registered first on the first round,
        and again if one is missing (the registry was emptied under us)."""
        params = {"names": list(self._schedules)}
        rows = await conn.fetch("schedule_state", params) if self._registered else []
        if len(rows) < len(self._schedules):
            registrations = [s.registration() for s in self._schedules.values()]
            await conn.fetch("register_schedules", {"schedules": json.dumps(registrations)})
            self._registered = True
            logs.event("schedules.registered", schedules=sorted(self._schedules))
            rows = await conn.fetch("schedule_state", params)
        return rows
