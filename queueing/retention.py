"""Retention: delete finished jobs once they are past their keep, in bounded batches.

A ``RetentionPolicy`` says how long finished jobs stay: completed ones for an age
and/or as the newest N of their queue, failed and cancelled ones for their own age.
``Retention`` gives a default policy and per-queue overrides. Pending and active jobs
are never touched (``queueing_prune_v2`` deletes finished jobs only).

``prune()`` is what ``queueing prune`` runs; the worker runs the same operation,
``prune_op()``, every ``prune_interval`` seconds, one worker at a time (``exclusive``).

Where the policy comes from: a ``Queue`` declares one (``Queue(retention=...)``,
default ``Retention()``); its workers (``run_worker``, ``queueing worker``) and
``queueing prune --app`` apply it. An explicit policy wins: ``run_worker(retention=)``
replaces it, and each ``queueing prune`` rule option replaces that rule in every queue's
policy (``Retention.with_rules``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import psycopg
from pydantic import BaseModel, ConfigDict, Field

from queueing import drivers, ops
from queueing.ops import Op, Query, Transaction


class _Keep(enum.Enum):
    KEEP = "keep"


#: ``Retention.with_rules``: leave this rule as it is.
KEEP = _Keep.KEEP

DAY = 24 * 3600.0
#: Jobs deleted per statement (and per transaction): bounds lock time and WAL bursts.
BATCH_SIZE = 500
#: Advisory lock "service" id of retention for ``try_maintenance_lock``.
PRUNE_SERVICE = 2


class RetentionPolicy(BaseModel):
    """How long finished jobs of a queue are kept. ``None`` disables a rule.

    A completed job is deleted once it is older than ``completed_age`` seconds *or* no
    longer among the newest ``completed_keep`` completed jobs of its queue. A failed or
    cancelled job is deleted once older than ``failed_age`` seconds. Ages count from
    the job's ``finished_at``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    completed_age: float | None = Field(default=DAY, ge=0)
    completed_keep: int | None = Field(default=1000, ge=0)
    failed_age: float | None = Field(default=7 * DAY, ge=0)

    @property
    def keeps_everything(self) -> bool:
        return (
            self.completed_age is None and self.completed_keep is None and self.failed_age is None
        )


class Retention(BaseModel):
    """The default policy and per-queue overrides.

    ``Retention(per_queue={"reports": RetentionPolicy(completed_age=3600, completed_keep=None)})``
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: RetentionPolicy = RetentionPolicy()
    per_queue: Mapping[str, RetentionPolicy] = Field(default_factory=dict)

    def for_queue(self, queue: str) -> RetentionPolicy:
        return self.per_queue.get(queue, self.default)

    def with_rules(
        self,
        *,
        completed_age: float | _Keep | None = KEEP,
        completed_keep: int | _Keep | None = KEEP,
        failed_age: float | _Keep | None = KEEP,
    ) -> Retention:
        """This retention with the given rules replaced in the default policy *and* in
        every per-queue one (what ``queueing prune --completed-age ...`` means: the
        operator's rule, everywhere; the rules not given stay each queue's own).
        ``None`` disables a rule; ``KEEP`` (the default) leaves it. ValidationError for
        a negative value."""
        given = {
            name: value
            for name, value in (
                ("completed_age", completed_age),
                ("completed_keep", completed_keep),
                ("failed_age", failed_age),
            )
            if value is not KEEP
        }
        if not given:
            return self

        def replaced(policy: RetentionPolicy) -> RetentionPolicy:
            return RetentionPolicy.model_validate({**policy.model_dump(), **given})

        return Retention(
            default=replaced(self.default),
            per_queue={queue: replaced(p) for queue, p in self.per_queue.items()},
        )


def _as_retention(retention: Retention | RetentionPolicy | None) -> Retention:
    if retention is None:
        return Retention()
    if isinstance(retention, RetentionPolicy):
        return Retention(default=retention)
    return retention


def _params(queue: str | None, policy: RetentionPolicy, limit: int) -> dict[str, Any]:
    return {
        "queue": queue,
        "completed_age": policy.completed_age,
        "completed_keep": policy.completed_keep,
        "failed_age": policy.failed_age,
        "limit": limit,
    }


def _plan(
    retention: Retention, queue: str | None, finished_queues: list[str] | None
) -> list[tuple[str | None, RetentionPolicy]]:
    """(queue or None for all, policy) pairs to prune with.

    Without overrides, one pass over every queue; with overrides, one pass per queue
    that holds finished jobs (``finished_queues``), each with its own policy.
    """
    if queue is not None:
        pairs: list[tuple[str | None, RetentionPolicy]] = [(queue, retention.for_queue(queue))]
    elif not retention.per_queue:
        pairs = [(None, retention.default)]
    else:
        assert finished_queues is not None
        pairs = [(q, retention.for_queue(q)) for q in finished_queues]
    return [(q, p) for q, p in pairs if not p.keeps_everything]


def prune_op(
    retention: Retention | RetentionPolicy | None = None,
    *,
    queue: str | None = None,
    batch_size: int = BATCH_SIZE,
    exclusive: bool = False,
) -> Op[int]:
    """The operation ``prune()`` runs: run it with ``queueing.drivers`` on a connection.

    Arguments as ``prune()``'s (checked now, not when the operation runs). Each batch
    runs in a transaction of its own, or a savepoint inside the connection's.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return _prune(_as_retention(retention), queue, batch_size, exclusive)


def _prune(retention: Retention, queue: str | None, batch_size: int, exclusive: bool) -> Op[int]:
    finished = None
    if queue is None and retention.per_queue:
        finished = [row["queue_name"] for row in (yield Query("finished_queues"))]
    total = 0
    for q, policy in _plan(retention, queue, finished):
        while True:
            params = _params(q, policy, batch_size)
            if exclusive:
                # One statement, lock included (prune_jobs_exclusive): no transaction of
                # the client's holds the maintenance lock between statements.
                (row,) = yield Query("prune_jobs_exclusive", {**params, "service": PRUNE_SERVICE})
            else:
                (row,) = yield Transaction(_prune_batch(params))
            if row["deleted"] is None:  # another process holds the maintenance lock
                return total
            deleted = int(row["deleted"])
            total += deleted
            if deleted < batch_size:
                break
    return total


def _prune_batch(params: dict[str, Any]) -> Op[list[dict[str, Any]]]:
    """One batch, in a transaction (or a savepoint inside the caller's): its result row."""
    rows: list[dict[str, Any]] = yield Query("prune_jobs", params)
    return rows


def _checked_prune(op: Op[int]) -> Op[int]:
    """``op`` after the schema check: the database at a URL may not be migrated."""
    yield from ops.check_schema()
    return (yield from op)


def prune(
    target: str | psycopg.Connection[Any],
    retention: Retention | RetentionPolicy | None = None,
    *,
    queue: str | None = None,
    batch_size: int = BATCH_SIZE,
    exclusive: bool = False,
) -> int:
    """Delete the finished jobs past their keep; return how many were deleted.

    ``target``: a database URL, or a psycopg connection (each batch runs in a
    transaction of its own, or a savepoint inside the caller's). ``queue``: only this
    queue. Deletes in batches of ``batch_size`` until a batch finds fewer. With
    ``exclusive``, each batch first takes the maintenance lock and the prune stops
    (returning what it deleted so far) when another process holds it.
    """
    op = prune_op(retention, queue=queue, batch_size=batch_size, exclusive=exclusive)
    if isinstance(target, str):
        return drivers.run_sync_at(target, _checked_prune(op), autocommit=True)
    return drivers.run_sync(op, target)


async def prune_async(
    conn: psycopg.AsyncConnection[Any],
    retention: Retention | RetentionPolicy | None = None,
    *,
    queue: str | None = None,
    batch_size: int = BATCH_SIZE,
    exclusive: bool = False,
) -> int:
    """``prune()`` on an async connection (the worker's). psycopg's errors come through
    as they are: the worker's maintenance loop handles them."""
    op = prune_op(retention, queue=queue, batch_size=batch_size, exclusive=exclusive)
    return await drivers.run_async(op, conn, translate=False)
