"""queueing: a PostgreSQL job queue whose job status and queue state change in one transaction."""

from queueing.context import JobContext
from queueing.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    InvalidPayload,
    InvalidProgress,
    InvalidTransition,
    JobNotFound,
    NotAllowed,
    QueueingError,
    SchemaNotMigrated,
    UnknownTask,
    WaitTimeout,
)
from queueing.models import (
    SYSTEM,
    TERMINAL_STATUSES,
    Actor,
    Attempt,
    Job,
    JobError,
    JobStatus,
    QueueCount,
)
from queueing.ops import JobFilter
from queueing.queue import AsyncQueue, JobRequest, Queue
from queueing.retry import Backoff, RetryPolicy
from queueing.tasks import Task

__all__ = [
    "SYSTEM",
    "TERMINAL_STATUSES",
    "Actor",
    "AsyncQueue",
    "Attempt",
    "Backoff",
    "ConfigurationError",
    "DatabaseUnavailable",
    "InvalidPayload",
    "InvalidProgress",
    "InvalidTransition",
    "Job",
    "JobContext",
    "JobError",
    "JobFilter",
    "JobNotFound",
    "JobRequest",
    "JobStatus",
    "NotAllowed",
    "Queue",
    "QueueCount",
    "QueueingError",
    "RetryPolicy",
    "SchemaNotMigrated",
    "Task",
    "UnknownTask",
    "WaitTimeout",
]
