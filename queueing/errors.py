"""Typed exceptions: everything the library raises on purpose derives from QueueingError."""

from __future__ import annotations


class QueueingError(Exception):
    """Base class. ``str(error)`` is one line meant for a human."""


class ConfigurationError(QueueingError):
    """The queue is configured wrongly (bad URL, unknown app path, duplicate task...)."""


class DatabaseUnavailable(QueueingError):
    """PostgreSQL could not be reached."""


class SchemaNotMigrated(QueueingError):
    """The database lacks the queue's schema, or has an older or newer one."""


class JobNotFound(QueueingError):
    """No job has this id (or the caller may not see it)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class InvalidTransition(QueueingError):
    """The job is not in a status that allows the requested change."""

    def __init__(self, job_id: int, status: str, action: str) -> None:
        super().__init__(f"job {job_id} is {status}: it cannot be {action}")
        self.job_id = job_id
        self.status = status
        self.action = action


class NotAllowed(QueueingError):
    """The actor may see the job but not make this change (e.g. another user's job)."""

    def __init__(self, job_id: int, action: str) -> None:
        super().__init__(f"not allowed to {action} job {job_id}")
        self.job_id = job_id
        self.action = action


class UnknownTask(QueueingError):
    """No task of this name is registered."""


class InvalidPayload(QueueingError):
    """A job's arguments failed validation; nothing was enqueued."""


class InvalidProgress(QueueingError, ValueError):
    """A progress report was refused before it was written: a percent that is not an
    integer from 0 to 100, or a detail that is not storable JSON within the payload
    limits (``queueing.limits``). A ValueError too, for handlers that catch that."""


class WaitTimeout(QueueingError, TimeoutError):
    """The job did not reach the awaited status in time."""
