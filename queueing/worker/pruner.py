"""The pruner: deletes finished jobs past their keep (``queueing.retention``)."""

from __future__ import annotations

from queueing import drivers, logs
from queueing.retention import Retention, prune_op
from queueing.worker.connection import Connection
from queueing.worker.periodic import Periodic


class Pruner(Periodic):
    """Applies ``retention`` every ``interval`` seconds."""

    name = "queueing-pruner"
    kind = "prune"

    def __init__(self, database_url: str, *, interval: float, retention: Retention) -> None:
        # The first round one interval after start: a worker restarting in a loop must
        # not prune on every start.
        super().__init__(database_url, interval, first_delay=interval)
        self.retention = retention

    async def round(self, conn: Connection) -> None:
        # Untranslated: Periodic handles psycopg's errors (an outage costs one round).
        op = prune_op(self.retention, exclusive=True)
        deleted = await drivers.run_async(op, await conn.get(), translate=False)
        if deleted:
            logs.event("jobs.pruned", deleted=deleted)
