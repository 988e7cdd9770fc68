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
