"""The database operations of the library's front, written once, with no I/O of their own.

An operation (``Op[T]``) is a generator that yields *effects* (run this named query, run
these effects in a transaction, wait for a notification), receives their results
and returns a ``T``. ``queueing.drivers`` runs the same generator over a sync or an
async psycopg connection, so the sync and async APIs share one implementation of every
rule.

The rule: everything the library's front does on the database is an operation run by
``queueing.drivers``: ``Queue``/``AsyncQueue`` (the operations below), retention
(``queueing.retention.prune_op``) and the test helpers (``queueing.testing``'s clock and
run listing, written beside them). The worker (``queueing/worker/``) is async only and
runs its own named queries directly on its connections; it uses an operation only where
it shares the front's rule (the schema check, retention's prune).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Collection, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import TypeAdapter

from queueing import models, sql, tracing
from queueing.concurrency import with_concurrency
from queueing.errors import (
    InvalidTransition,
    JobNotFound,
    NotAllowed,
    SchemaNotMigrated,
    WaitTimeout,
)
from queueing.models import Actor, EnqueuedJob, Job, JobStatus

Row = dict[str, Any]


@dataclass(frozen=True)
class Query:
    """Run the named query of sql/queries.sql; the result is its rows (maybe none)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Script:
    """Run a whole SQL script (a migration); no result."""

    text: str


@dataclass(frozen=True)
class WaitNotify:
    """Wait up to ``timeout`` seconds for a notification; the result is the payloads received
    (several may arrive together; none at the timeout)."""

    timeout: float


@dataclass(frozen=True)
class Transaction:
    """Run the operation ``op`` in a transaction of its own (a savepoint inside one the
    connection is already in); the result is ``op``'s. An error raised inside rolls the
    transaction back and ends the whole operation."""

    op: Op[Any]


@dataclass(frozen=True)
class Pipeline:
    """Run the operation ``op`` with its ``Send`` queries pipelined: each goes to the
    server at once, and the client's work until the matching ``Fetch`` overlaps the
    server's. A driver may run it unpipelined (a connection it was lent): then each
    ``Send`` waits for its rows. Either way the result is ``op``'s."""

    op: Op[Any]


@dataclass(frozen=True)
class Send:
    """Send the query without waiting for its rows; the result is a handle for ``Fetch``.
    Only inside a ``Pipeline``."""

    query: Query


@dataclass(frozen=True)
class Fetch:
    """The rows of a ``Send``'s query (its result ``handle``), waited for."""

    handle: Any


Effect = Query | Script | WaitNotify | Transaction | Pipeline | Send | Fetch
T = TypeVar("T")
Op = Generator[Effect, Any, T]
"""An operation returning a ``T``: it yields effects and is sent each one's result."""

JOB_CHANGED_CHANNEL = "queueing_jobs_changed_v2"
"""Notified once per statement that changes jobs' status or progress (migration 0012);
the payload is their ids, comma-separated (see ``hinted_ids``)."""
#: Seconds between two reads of a waited-for job when no connection may LISTEN.
WAIT_POLL_INTERVAL = 0.25
#: How long a wait waits to register for job-change hints (``listen_job_changes``) before
#: it polls instead: a transaction that changed jobs unannounced is still open.
REGISTER_WAIT = 1.0


@dataclass(frozen=True)
class NewJob:
    """One row to enqueue, already validated and in its stored form."""

    task_name: str
    queue: str
    priority: int
    args: Mapping[str, Any]
    scheduled_at: dt.datetime | None
    tenant_id: str | None
    user_id: str | None
    max_attempts: int
    dedupe_key: str | None = None
    dedupe_for: float | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    args_exact: bool = True
    """Whether ``args`` reads back from jsonb as it is (``limits.check_payload``): then
    ``enqueue`` builds the record from this row instead of reading it back."""


def _job(row: Row) -> Job:
    return Job.model_validate(row)


_ENQUEUED_ROWS = TypeAdapter(list[EnqueuedJob])


#: Jobs per statement when ``enqueue_chunks`` splits a large batch: small enough that the
#: client prepares the next chunk while the server inserts this one, large enough that
#: a statement's own cost is spread over many jobs. Batches of 5,000 on the benchmark
#: machine, one connection, 3 rounds: chunks of 500, 45,000-51,000 jobs/s; of 1,000,
#: 43,000-49,000; one statement, 36,000-39,000.
ENQUEUE_CHUNK = 500


def enqueue(jobs: Sequence[NewJob]) -> Op[list[EnqueuedJob]]:
    """Insert the jobs in one statement; their records, in order."""
    query, records = _enqueue_statement(jobs)
    return records((yield query))


def enqueue_chunks(chunks: Iterable[Sequence[NewJob]]) -> Op[list[EnqueuedJob]]:
    """Insert the jobs of ``chunks``, one statement each, in one transaction (all or
    none), pipelined: the iterator makes (validates) each chunk while the server inserts
    the one before, and each chunk's records are built while it inserts the next."""
    return (yield Transaction(_pipelined(_enqueue_each(chunks))))  # type: ignore[no-any-return]


def _pipelined(op: Op[T]) -> Op[T]:
    return (yield Pipeline(op))  # type: ignore[no-any-return]


def _enqueue_each(chunks: Iterable[Sequence[NewJob]]) -> Op[list[EnqueuedJob]]:
    done: list[EnqueuedJob] = []
    in_flight: tuple[Any, Callable[[list[Row]], list[EnqueuedJob]]] | None = None
    for chunk in chunks:
        query, records = _enqueue_statement(chunk)
        handle = yield Send(query)
        if in_flight is not None:
            done += in_flight[1]((yield Fetch(in_flight[0])))
        in_flight = (handle, records)
    if in_flight is not None:
        done += in_flight[1]((yield Fetch(in_flight[0])))
    return done


def _enqueue_statement(
    jobs: Sequence[NewJob],
) -> tuple[Query, Callable[[list[Row]], list[EnqueuedJob]]]:
    """The statement that inserts ``jobs``, and what turns its rows into their records.

    Three statements: jobs with a dedupe key go through the keyed insert, which may
    return an existing job; others through the plain insert, which returns only their
    ids and creation time, and their records are built here from what was sent (the
    rest of a new job's record is column defaults); unless some job's arguments would
    not read back as sent (``NewJob.args_exact``): then the plain insert that reads
    every record back."""
    trace_context = tracing.current_context()
    keyed = any(j.dedupe_key for j in jobs)
    payload = json.dumps(
        [
            {
                "queue_name": j.queue,
                "task_name": j.task_name,
                "priority": j.priority,
                # With the enqueuer's trace context, if a span is active (tracing.py).
                "args": tracing.with_trace_context(
                    with_concurrency(j.args, j.concurrency_key, j.concurrency_limit),
                    trace_context,
                ),
                "scheduled_at": j.scheduled_at.isoformat() if j.scheduled_at else None,
                "tenant_id": j.tenant_id,
                "user_id": j.user_id,
                "max_attempts": j.max_attempts,
            }
            | (
                {
                    "dedupe_key": j.dedupe_key,
                    "dedupe_for": f"{j.dedupe_for} seconds" if j.dedupe_for else None,
                }
                if keyed
                else {}
            )
            for j in jobs
        ],
        ensure_ascii=False,
    )
    if not keyed and all(j.args_exact for j in jobs):

        def built(rows: list[Row]) -> list[EnqueuedJob]:
            [row] = rows
            return _new_records(jobs, row["ids"], row["created_at"])

        return Query("enqueue_new", {"jobs": payload}), built

    def read(rows: list[Row]) -> list[EnqueuedJob]:
        # Each record as JSON text, validated for the whole batch in one call.
        return _ENQUEUED_ROWS.validate_json("[" + ",".join(r["job"] for r in rows) + "]")

    return Query("enqueue" if keyed else "enqueue_plain", {"jobs": payload}), read


def _new_records(
    jobs: Sequence[NewJob], ids: Sequence[int], created_at: dt.datetime
) -> list[EnqueuedJob]:
    """The records of jobs just inserted by ``enqueue_new``: what was sent, the server's
    ids and creation time, and the columns' defaults (as the ``queueing_jobs`` view
    shows them: a job with no run time is due from its creation)."""
    tz = created_at.tzinfo
    return _ENQUEUED_ROWS.validate_python(
        [
            {
                "id": job_id,
                "task_name": j.task_name,
                "queue": j.queue,
                "tenant_id": j.tenant_id,
                "user_id": j.user_id,
                "status": JobStatus.PENDING,
                "progress": 0,
                "progress_detail": None,
                "args": j.args,
                "result": None,
                "error": None,
                "attempts": 0,
                "max_attempts": j.max_attempts,
                "priority": j.priority,
                "cancel_requested": False,
                "worker_id": None,
                "created_at": created_at,
                "scheduled_at": j.scheduled_at.astimezone(tz) if j.scheduled_at else created_at,
                "started_at": None,
                "finished_at": None,
                "updated_at": created_at,
                "created": True,
            }
            for j, job_id in zip(jobs, ids, strict=True)
        ]
    )


def get_job(job_id: int) -> Op[Job]:
    rows = yield Query("get_job", {"id": job_id})
    if not rows:
        raise JobNotFound(job_id)
    return _job(rows[0])


@dataclass(frozen=True)
class JobFilter:
    """Filters of ``list_jobs``; None means "any"."""

    statuses: Collection[JobStatus] | None = None
    task: str | None = None
    queue: str | None = None
    tenant_id: str | None = None
    user_id: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    #: Text the error's type or message contains (case-insensitive, no wildcards).
    error_text: str | None = None
    before_id: int | None = None
    limit: int = 100


def list_jobs(filters: JobFilter) -> Op[list[Job]]:
    rows = yield Query(
        "list_jobs",
        {
            "statuses": [str(s) for s in filters.statuses] if filters.statuses else None,
            "task": filters.task,
            "queue": filters.queue,
            "tenant_id": filters.tenant_id,
            "user_id": filters.user_id,
            "created_after": filters.created_after,
            "created_before": filters.created_before,
            "error_text": filters.error_text,
            "before_id": filters.before_id,
            "limit": filters.limit,
        },
    )
    return [_job(r) for r in rows]


def stats() -> Op[list[models.QueueCount]]:
    rows = yield Query("stats")
    return [models.QueueCount.model_validate(r) for r in rows]


def _changed_or_explain(rows: list[Row], job_id: int, action: str) -> Op[Job]:
    """The record a state-changing function returned, or the reason it changed nothing."""
    if rows:
        return _job(rows[0])
    current = yield from get_job(job_id)
    raise InvalidTransition(job_id, current.status, action)


def _actor_params(actor: Actor) -> dict[str, Any]:
    return {
        "actor": actor.kind,
        "tenant": actor.tenant_id,
        "user": actor.user_id,
        "operator": actor.name,
    }


def _acted(row: Row, job_id: int, verb: str, refused: str, refusal: str) -> Job:
    """The record after an actor's change, or the typed error for the outcome the SQL gave."""
    outcome = row["outcome"]
    if outcome == "not_found":
        raise JobNotFound(job_id)
    if outcome == "not_allowed":
        raise NotAllowed(job_id, verb)
    current = Job.model_validate_json(row["job"])
    if outcome == refused:
        raise InvalidTransition(job_id, current.status, refusal)
    return current


def cancel(job_id: int, actor: Actor) -> Op[Job]:
    """Cancel a pending job now, or ask an active one to stop, if ``actor`` may.

    Rules (enforced by queueing_cancel_v3): the owner may cancel their own job, a tenant
    admin any job of the tenant, the system and an operator any job; another user gets
    NotAllowed; a job of another tenant is JobNotFound to them; a terminal job is
    InvalidTransition. ``cancelled_by`` records the actor (``Job.cancelled_by``).
    """
    (row,) = yield Query("cancel_job", {"id": job_id, **_actor_params(actor)})
    return _acted(row, job_id, "cancel", "terminal", "cancelled")


def retry(job_id: int, actor: Actor) -> Op[Job]:
    """Re-run a failed or cancelled job (same id; attempts continue): admins, the system
    and operators only. A retry records no actor: an operator retries as the system."""
    params = {"id": job_id, "actor": actor.rights, "tenant": actor.tenant_id}
    (row,) = yield Query("retry_job", params)
    return _acted(
        row, job_id, "retry", "not_retryable", "retried (only failed or cancelled jobs are)"
    )


def set_actor(actor: Actor) -> Op[None]:
    """Make ``actor`` who the current transaction acts for (row-level security, 0005)."""
    params = {"kind": actor.kind, "tenant_id": actor.tenant_id, "user_id": actor.user_id or ""}
    yield Query("set_actor", params)


def attempts(job_id: int) -> Op[list[models.Attempt]]:
    """The job's attempt history, oldest first (JobNotFound if there is no such job)."""
    yield from get_job(job_id)
    rows = yield Query("job_attempts", {"id": job_id})
    return [models.Attempt.model_validate(r) for r in rows]


def run_now(job_id: int) -> Op[Job]:
    """Make a pending job that waits for its run time (delay or retry backoff) due now."""
    rows = yield Query("run_job_now", {"id": job_id})
    return (yield from _changed_or_explain(rows, job_id, "run now (only pending jobs are)"))


def wait_for(
    job_id: int, statuses: Collection[JobStatus], timeout: float, *, listen: bool = True
) -> Op[Job]:
    """Wait, on LISTEN/NOTIFY, until the job is in one of ``statuses``.

    Notifications are only hints: the row is re-read after each one, and it is read
    after the registration for them (``listen_job_changes``), so a change between the
    two cannot be missed. Without ``listen`` (no connection can LISTEN: docs/pooling.md),
    or if registering takes longer than ``REGISTER_WAIT``, the row is re-read every
    ``WAIT_POLL_INTERVAL`` seconds instead.
    """
    wanted = frozenset(statuses) or models.TERMINAL_STATUSES
    deadline = time.monotonic() + timeout
    if listen:
        listen = yield from listen_job_changes(min(timeout, REGISTER_WAIT))
    while True:
        job = yield from get_job(job_id)
        if job.status in wanted:
            return job
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(
                    f"job {job_id} is still {job.status} after {timeout:g}s "
                    f"(waited for {', '.join(sorted(wanted))})"
                )
            payloads = yield from _wait_hint(remaining, listen)
            if not listen or _names(payloads, job_id):
                break


def wait_for_change(job_id: int, seen: Job, timeout: float, *, listen: bool = True) -> Op[Job]:
    """Return the job's record once it differs from ``seen`` (or ``seen`` at the deadline);
    ``listen`` as in ``wait_for``."""
    deadline = time.monotonic() + timeout
    if listen:
        listen = yield from listen_job_changes(min(timeout, REGISTER_WAIT))
    while True:
        job = yield from get_job(job_id)
        if job != seen:
            return job
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return job
        payloads = yield from _wait_hint(remaining, listen)
        while listen and payloads and not _names(payloads, job_id):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return job
            payloads = yield WaitNotify(remaining)


def listen_job_changes(wait: float | None) -> Op[bool]:
    """LISTEN for job-change hints (``JOB_CHANGED_CHANNEL``), registered so that the
    database sends them (migration 0015: it sends none while no one waits); False if that
    would take more than ``wait`` seconds (None: no limit), and the caller polls instead.

    Registering waits for the transactions that changed jobs unannounced to end: a job
    read after it shows their changes, and later changes are hinted. The registration
    lasts as long as the session.
    """
    # (The function waits at least 1 ms: a limit of 0 would mean none.)
    limit = None if wait is None else dt.timedelta(seconds=wait)
    rows = yield Query("listen_job_changes", {"wait": limit})
    return bool(rows[0]["registered"])


def hinted_ids(payload: str) -> frozenset[int] | None:
    """The job ids a ``JOB_CHANGED_CHANNEL`` payload names; None for a payload that is not
    a comma-separated list of ids.

    Anyone who can connect may NOTIFY: a hint only chooses what to re-read.
    """
    parts = payload.split(",")
    if not all(p.isascii() and p.isdigit() and len(p) < 20 for p in parts):
        return None
    return frozenset(int(p) for p in parts)


def _names(payloads: list[str], job_id: int) -> bool:
    """Whether any of these payloads hints at ``job_id``."""
    return any(job_id in (hinted_ids(p) or ()) for p in payloads)


def _wait_hint(remaining: float, listen: bool) -> Op[list[str]]:
    """Wait for notifications up to ``remaining`` seconds; when not listening, for the
    next poll (no notification can come: the caller re-reads the row after it)."""
    timeout = remaining if listen else min(remaining, WAIT_POLL_INTERVAL)
    payloads: list[str] = yield WaitNotify(timeout)
    return payloads


# --- schema -----------------------------------------------------------------


def schema_state() -> Op[models.MigrationState]:
    """What of the queue's schema the database holds."""
    state = (yield Query("schema_state"))[0]
    applied: list[tuple[int, str, dt.datetime]] = []
    if state["has_migrations_table"]:
        rows = yield Query("applied_migrations")
        applied = [(r["version"], r["name"], r["applied_at"]) for r in rows]
    return models.MigrationState(
        has_procrastinate_schema=state["has_procrastinate"],
        current_version=max((v for v, _, _ in applied), default=0),
        expected_version=sql.latest_version(),
        applied=applied,
    )


def check_schema() -> Op[models.MigrationState]:
    """Raise SchemaNotMigrated, with the command that fixes it, unless the schema is current."""
    state = yield from schema_state()
    if state.current_version > state.expected_version:
        raise SchemaNotMigrated(
            f"database schema is version {state.current_version}, newer than this queueing "
            f"(version {state.expected_version}): upgrade queueing"
        )
    if not state.has_procrastinate_schema or state.current_version == 0:
        raise SchemaNotMigrated("database has no queue schema yet: run `queueing db migrate`")
    if not state.up_to_date:
        raise SchemaNotMigrated(
            f"database schema is version {state.current_version}, queueing needs version "
            f"{state.expected_version}: run `queueing db migrate`"
        )
    return state


def migrate() -> Op[list[int]]:
    """Apply procrastinate's schema (on a fresh database) and our pending migrations.

    Idempotent, and safe to run from several processes at once (advisory lock).
    Returns the versions applied by this call.
    """
    from procrastinate.schema import SchemaManager  # only migrating needs it

    yield Query("lock_migrations")
    state = (yield Query("schema_state"))[0]
    if not state["has_procrastinate"]:
        yield Script(SchemaManager.get_schema())
    yield Query("ensure_migrations_table")
    applied = {r["version"] for r in (yield Query("applied_migrations"))}
    done = []
    for migration in sql.migrations():
        if migration.version not in applied:
            yield Script(migration.text)
            yield Query("record_migration", {"version": migration.version, "name": migration.name})
            done.append(migration.version)
    return done
