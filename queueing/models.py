"""Records read from the database: frozen pydantic models."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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
    """A job's status record, exactly as stored (the ``queueing_jobs`` view)."""

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
    cancelled_at: dt.datetime | None = None
    created: bool | None = None
    """Set on records returned by enqueue: True if that call created the job, False if it
    returned an existing job with the same dedupe key. None on records read otherwise."""


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
    """Who asks for a change: the system (CLI, operators), a tenant's admin, or a user."""

    model_config = ConfigDict(frozen=True)

    kind: str = Field(pattern="^(system|admin|user)$")
    tenant_id: str | None = None
    user_id: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(kind="system")

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
