"""The rescuer: gives back the active jobs of workers that stopped heartbeating.

A worker is stalled once its last heartbeat is older than ``stall_timeout``; its active
jobs go back to pending (failed when their attempts are spent and they ran alone; see
``queueing_rescue_v2`` for the poison-pill rule), each with a ``worker_lost`` attempt
row, and the worker row is deleted.

After an outage the rescuer waits one ``stall_timeout`` before its first round: every
worker's heartbeat failed while the database was away, so all of them look stalled until
they beat again, and rescuing at once would take live workers' running jobs from them.
"""

from __future__ import annotations

import asyncio
import logging

from queueing import logs
from queueing.worker.connection import Connection
from queueing.worker.metrics import WorkerMetrics
from queueing.worker.periodic import Periodic

#: Jobs rescued per statement; a round repeats until fewer come back.
RESCUE_BATCH = 500


class Rescuer(Periodic):
    """Rescues the jobs of stalled workers every ``interval`` seconds."""

    name = "queueing-rescuer"
    kind = "rescue"

    def __init__(
        self,
        database_url: str,
        *,
        interval: float,
        stall_timeout: float,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        # The first round at once: a worker restarted after a crash gives back what
        # the crash left as soon as it is stale.
        super().__init__(database_url, interval, first_delay=0.0)
        self.stall_timeout = stall_timeout
        self._metrics = metrics

    async def after_outage(self) -> None:
        """Give live workers one ``stall_timeout`` to heartbeat before judging them.

        Workers beat every heartbeat_interval (< stall_timeout, which Worker checks),
        and at once when their claims go through again, so within one stall_timeout of
        the database answering every live worker has beaten again and only the dead
        still look stalled. A worker that died during the outage is rescued this much
        later.
        """
        logs.event("worker.rescue_held", logging.WARNING, hold_s=self.stall_timeout)
        await asyncio.sleep(self.stall_timeout)

    async def round(self, conn: Connection) -> None:
        params = {"stalled_after": self.stall_timeout, "limit": RESCUE_BATCH}
        while True:
            # One autocommitted statement, lock included (see periodic.py).
            rescued = await conn.fetch("rescue_stalled", params)
            # Logged after the commit: a line never claims what the database does not hold.
            if self._metrics is not None:
                self._metrics.rescued(rescued)
            for row in rescued:
                logs.event("job.rescued", logging.WARNING, job_id=row["id"], status=row["status"])
            if len(rescued) < RESCUE_BATCH:
                return
