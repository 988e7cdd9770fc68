"""The vacuumer: keeps the queue's tables vacuumed while they churn.

Every job leaves two dead row versions behind (its claim and its finish update the row),
and the claim reads the head of the ready indexes, where those versions' entries pile
up until a VACUUM removes them: without one, each claim walks more dead entries than the
last (measured in docs/benchmarks.md: a sustained drain fell to half its rate within
minutes). Autovacuum's defaults (a table is due once a fifth of it is dead, looked at
once a minute) are made for tables that change slowly, and a server may run with
autovacuum off. So every worker looks every ``interval`` seconds, and vacuums the jobs
and attempts tables when they hold at least ``min_dead`` dead rows and no vacuum (theirs
or autovacuum's) ran for ``interval`` seconds. ``VACUUM (SKIP_LOCKED)`` makes the
workers that look at the same moment return at once while one of them vacuums.

A VACUUM cannot run inside a transaction or a function, so unlike the rescuer and the
pruner this service takes no advisory lock: the due check and SKIP_LOCKED are what keep
a fleet of workers from vacuuming in turn. Without the table owner's rights, VACUUM
only warns and skips; nothing fails.
"""

from __future__ import annotations

from queueing import logs, sql
from queueing.worker.connection import Connection
from queueing.worker.periodic import Periodic

#: Fewer dead rows than this are not worth a vacuum's scan of every index.
MIN_DEAD_ROWS = 10_000


class Vacuumer(Periodic):
    """Vacuums the queue tables when due (see the module doc)."""

    name = "queueing-vacuumer"
    kind = "vacuum"

    def __init__(
        self, database_url: str, *, interval: float, min_dead: int = MIN_DEAD_ROWS
    ) -> None:
        super().__init__(database_url, interval, first_delay=interval)
        self.min_dead = min_dead
        self.vacuums = 0

    async def round(self, conn: Connection) -> None:
        params = {"min_dead": self.min_dead, "every": self.interval}
        rows = await conn.fetch("vacuum_due", params)
        if not rows or not rows[0]["due"]:
            return
        # Never prepared (a utility statement), and sent without parameters.
        await (await conn.get()).execute(sql.query("vacuum_queue_tables"), prepare=False)
        self.vacuums += 1
        logs.event("jobs.vacuumed")
