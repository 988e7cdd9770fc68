"""Records read from the database: frozen pydantic models."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from queueing.limits import check_id

JSON = Any
"""A JSON value (dict, list, str, int, float, bool or None)."""


class JobStatus(enum.StrEnum):
    """A job's status as users see it."""

    PENDING = "pending"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobError(BaseModel):
    """The error of a job's last failed attempt."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str
    traceback: str | None = None


class Job(BaseModel):
    """A job's status record, exactly as stored (the ``queueing_jobs`` view).

    ``created`` is not part of the stored record: it says what one ``enqueue`` call did,
    so only the records enqueue returns carry it (``EnqueuedJob``, where it is a bool).
    On every record read back (``get_job``, ``list_jobs``, ``wait_for``, ``cancel``...)
    it is None, and the CLI's JSON leaves it out.
    """

    model_config = ConfigDict(frozen=True)

    id: int
    task_name: str
    queue: str
    tenant_id: str | None
    user_id: str | None
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    progress_detail: JSON | None
    args: dict[str, JSON]
    result: JSON | None
    error: JobError | None
    attempts: int
    max_attempts: int
    priority: int
    cancel_requested: bool
    worker_id: int | None
    created_at: dt.datetime
    scheduled_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    updated_at: dt.datetime
    dedupe_key: str | None = None
    cancelled_by: str | None = None
    """Who asked for the cancel, as the database stores it (``queueing_cancel_v2``):

    - ``"system"``: the system actor (the CLI without ``--as-user``/``--admin``,
      ``queue.cancel(id)`` with the default actor);
    - ``"operator:<name>"``: that operator (``Actor.operator(name)``, e.g. the
      dashboard's signed-in user), with the system's rights;
    - ``"admin:<tenant_id>"``: an admin of that tenant (always the job's own tenant);
    - ``"user:<user_id>"``: that user (always the job's owner, the only user allowed).

    The kind is everything before the first ``:``; the id is everything after it and may
    itself hold ``:``. None while nobody asked, again after a ``retry``, for a job
    cancelled another way (procrastinate's own API), and when an Actor built without its
    tenant or user id cancelled a job that has none (the SQL's concatenation with NULL).
    Set as soon as the cancel is asked for, so also while an active job is being
    stopped (``cancel_requested``), and kept once the job ends cancelled.
    ``cancelled_by_actor`` gives it back as an ``Actor``.
    """
    cancelled_at: dt.datetime | None = None
    """When the cancel was asked for (not when an active job actually stopped)."""
    created: bool | None = None
    """None on every record read back; see ``EnqueuedJob.created`` and the class doc."""

    @property
    def cancelled_by_actor(self) -> Actor | None:
        """``cancelled_by`` as the Actor who cancelled (None if nobody did).

        A user or an admin could only cancel a job of their own tenant, so the job's
        ``tenant_id`` is theirs; an operator comes back with their name. ValueError for a
        value queueing never writes.
        """
        if self.cancelled_by is None:
            return None
        kind, sep, ident = self.cancelled_by.partition(":")
        if kind == "system" and not sep:
            return Actor.system()
        if kind == "operator" and ident:
            return Actor.operator(ident)
        if kind == "admin" and ident:
            return Actor.admin(ident)
        if kind == "user" and ident:
            return Actor.user(ident, tenant_id=self.tenant_id)
        raise ValueError(f"job {self.id}: cancelled_by {self.cancelled_by!r} is not an actor")


class EnqueuedJob(Job):
    """The record ``enqueue`` returns: the job's record and what this call did."""

    created: bool
    """True if this call created the job; False if it returned the job that already
    held its dedupe key (pending or active, or completed within ``dedupe_for``)."""


class Attempt(BaseModel):
    """One finished attempt of a job (its history row).

    ``run`` numbers the rows of one job 1, 2, 3...; ``attempt`` is the attempt number
    the row counted as. An attempt that did not count against ``max_attempts`` (an
    ``interrupted`` one, or a ``worker_lost`` one given back so that the job runs once
    more alone) gives its number back, and the next row repeats it with a higher ``run``.
    """

    model_config = ConfigDict(frozen=True)

    run: int
    attempt: int
    worker_id: int | None
    started_at: dt.datetime | None
    finished_at: dt.datetime
    outcome: str
    error: JobError | None


class Actor(BaseModel):
    """Who asks for a change: the system (CLI, programs), a named operator (a person
    with the system's rights, e.g. the dashboard's signed-in user), a tenant's admin, or
    a user."""

    model_config = ConfigDict(frozen=True)

    kind: str = Field(pattern="^(system|operator|admin|user)$")
    tenant_id: str | None = None
    user_id: str | None = None
    name: str | None = None
    """The operator's name (``operator`` actors only)."""

    @model_validator(mode="after")
    def _named_operator(self) -> Actor:
        if (self.kind == "operator") != (self.name is not None):
            raise ValueError("an operator actor needs a name, and only an operator actor has one")
        check_id("operator name", self.name)  # InvalidPayload, as for every id
        return self

    @classmethod
    def system(cls) -> Actor:
        return cls(kind="system")

    @classmethod
    def operator(cls, name: str) -> Actor:
        """A person acting with the system's rights (cancel, retry, run now any job),
        recorded by name: a cancel stores ``cancelled_by = 'operator:<name>'``.
        InvalidPayload for a name that is empty, over-long or holds NUL."""
        return cls(kind="operator", name=name)

    @property
    def rights(self) -> str:
        """The kind whose rights this actor has: an operator has the system's."""
        return "system" if self.kind == "operator" else self.kind

    @classmethod
    def admin(cls, tenant_id: str) -> Actor:
        return cls(kind="admin", tenant_id=tenant_id)

    @classmethod
    def user(cls, user_id: str, tenant_id: str | None = None) -> Actor:
        return cls(kind="user", user_id=user_id, tenant_id=tenant_id)


SYSTEM = Actor.system()


class QueueCount(BaseModel):
    """How many jobs of one queue are in one status."""

    model_config = ConfigDict(frozen=True)

    queue: str
    status: JobStatus
    count: int


class MigrationState(BaseModel):
    """What ``db status`` reports."""

    model_config = ConfigDict(frozen=True)

    has_procrastinate_schema: bool
    current_version: int
    expected_version: int
    applied: list[tuple[int, str, dt.datetime]]

    @property
    def up_to_date(self) -> bool:
        return self.has_procrastinate_schema and self.current_version == self.expected_version
