"""Give back the jobs claimed for this worker by a claim whose reply was lost.

A claim is one autocommitted statement: when its connection dies it may have committed
without the worker seeing the rows, and those jobs would stay active under a worker that
heartbeats and never runs them. So after its connection was replaced, the claim loop
asks the database what it holds for this worker; whatever is neither running here nor
awaiting its outcome goes back to pending as "interrupted" (which does not use up an
attempt). Only the claim loop claims, and it is the caller, so no claim is in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Set

from queueing import logs
from queueing.worker.connection import Connection
from queueing.worker.outcome import Claimed, ClaimLost, Outcome, OutcomeKind, error_json
from queueing.worker.registration import Registered


async def give_back_lost_claims(conn: Connection, registered: Registered, known: Set[int]) -> int:
    """Give back the jobs the database holds as claimed by ``registered`` that are not
    ``known`` here; return how many. Raises the database's errors."""
    rows = await conn.fetch("claimed_by_worker", {"worker_id": registered.worker_id})
    lost = [Claimed(**row) for row in rows if row["id"] not in known]
    reason = ClaimLost("the claim committed but its reply was lost")
    for job in lost:
        logs.event("job.claim_lost", logging.WARNING, job_id=job.id, task=job.task_name)
        registered.finisher.submit(
            Outcome(
                job,
                OutcomeKind.INTERRUPTED,
                error_json=error_json(reason),
                error_type=ClaimLost.__name__,
            )
        )
    if lost:
        await registered.finisher.flushed()
    return len(lost)
