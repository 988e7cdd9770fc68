"""queueing: a PostgreSQL job queue whose job status and queue state change in one transaction."""

from queueing.context import JobContext
from queueing.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    InvalidPayload,
    InvalidTransition,
    JobNotFound,
    QueueingError,
    SchemaNotMigrated,
    UnknownTask,
    WaitTimeout,
)
from queueing.models import TERMINAL_STATUSES, Job, JobError, JobStatus, QueueCount
from queueing.ops import JobFilter
from queueing.queue import AsyncQueue, JobRequest, Queue
from queueing.retry import Backoff, RetryPolicy
from queueing.tasks import Task

__all__ = [
    "TERMINAL_STATUSES",
    "AsyncQueue",
    "Backoff",
    "ConfigurationError",
    "DatabaseUnavailable",
    "InvalidPayload",
    "InvalidTransition",
    "Job",
    "JobContext",
    "JobError",
    "JobFilter",
    "JobNotFound",
    "JobRequest",
    "JobStatus",
    "Queue",
    "QueueCount",
    "QueueingError",
    "RetryPolicy",
    "SchemaNotMigrated",
    "Task",
    "UnknownTask",
    "WaitTimeout",
]
