"""Queues as an operator sees them: counts per queue, pause and resume, a global limit.

A queue's settings live in ``queueing_queues`` (migration 0009) and the claim reads them
(``queueing_claim_v8``): a paused queue's jobs are claimed by no worker, whichever, while
enqueueing into it goes on (its jobs stay pending) and running jobs finish; ``max_active``
bounds how many of its jobs are active at once across all workers. Resuming wakes the
workers in the same commit. Sync and async run these operations (``Queue.pause_queue``,
``queue.aio.pause_queue``...).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from queueing.concurrency import check_limit
from queueing.errors import QueueNotFound
from queueing.ops import Op, Query


class QueueInfo(BaseModel):
    """One queue: its jobs by state and its settings.

    ``pending``: due now, waiting for a worker; ``delayed``: waiting for a later run time
    (a delay, a retry backoff); ``active``: running; ``failed_last_hour``: failed for good
    in the last hour; ``oldest_pending_age_seconds``: how long the oldest due job has
    waited (None: none is due).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    pending: int
    active: int
    delayed: int
    failed_last_hour: int
    oldest_pending_age_seconds: float | None
    paused: bool
    max_active: int | None


def list_queues(queue: str | None = None) -> Op[list[QueueInfo]]:
    """Every queue that holds a job or has a setting (or only ``queue``), by name."""
    rows = yield Query("list_queues", {"queue": queue})
    return [QueueInfo.model_validate(r) for r in rows]


def change(
    name: str,
    *,
    declared: bool,
    paused: bool | None = None,
    max_active: int | None = None,
    set_limit: bool = False,
) -> Op[QueueInfo]:
    """Pause/resume a queue or set its ``max_active`` (``set_limit``); its state after.

    ``declared``: the caller's app declares a task on this queue (else it must hold a job
    or a setting already). QueueNotFound for an unknown queue, InvalidPayload for a limit
    under 1; nothing is written then.
    """
    if set_limit and max_active is not None:
        check_limit(max_active)  # now, before any connection
    return _change(
        {
            "queue": name,
            "declared": declared,
            "paused": paused,
            "max_active": max_active,
            "set_limit": set_limit,
        }
    )


def _change(params: dict[str, object]) -> Op[QueueInfo]:
    name = str(params["queue"])
    if not (yield Query("set_queue_settings", params)):
        raise QueueNotFound(name)
    (info,) = yield from list_queues(name)
    return info
