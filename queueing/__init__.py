"""queueing: a PostgreSQL job queue whose job status and queue state change in one transaction.

The public names below are imported on first use (PEP 562 ``__getattr__``), not when the
package is: ``from queueing import Queue`` works as before, but a ``queueing`` command that
only reads a job no longer pays for procrastinate, the worker and pydantic-settings at
start-up (``import queueing`` took 0.6-0.9 s of every CLI call; docs/cli_startup.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, eagerly
    from queueing.context import JobContext
    from queueing.errors import (
        ConfigurationError,
        DatabaseUnavailable,
        InvalidPayload,
        InvalidProgress,
        InvalidResult,
        InvalidTransition,
        JobNotFound,
        NotAllowed,
        QueueingError,
        QueueNotFound,
        SchemaNotMigrated,
        UnknownTask,
        UnusableConnection,
        WaitTimeout,
    )
    from queueing.models import (
        SYSTEM,
        TERMINAL_STATUSES,
        Actor,
        Attempt,
        EnqueuedJob,
        Job,
        JobError,
        JobStatus,
        QueueCount,
    )
    from queueing.ops import JobFilter
    from queueing.queue import AsyncQueue, JobRequest, Queue
    from queueing.queues import QueueInfo
    from queueing.retry import Backoff, RetryPolicy
    from queueing.schedules import Schedule, ScheduleInfo
    from queueing.tasks import Task

#: The module that defines each public name.
_HOMES = {
    name: module
    for module, names in {
        "queueing.context": ["JobContext"],
        "queueing.errors": [
            "ConfigurationError",
            "DatabaseUnavailable",
            "InvalidPayload",
            "InvalidProgress",
            "InvalidResult",
            "InvalidTransition",
            "JobNotFound",
            "NotAllowed",
            "QueueingError",
            "QueueNotFound",
            "SchemaNotMigrated",
            "UnknownTask",
            "UnusableConnection",
            "WaitTimeout",
        ],
        "queueing.models": [
            "SYSTEM",
            "TERMINAL_STATUSES",
            "Actor",
            "Attempt",
            "EnqueuedJob",
            "Job",
            "JobError",
            "JobStatus",
            "QueueCount",
        ],
        "queueing.ops": ["JobFilter"],
        "queueing.queue": ["AsyncQueue", "JobRequest", "Queue"],
        "queueing.queues": ["QueueInfo"],
        "queueing.retry": ["Backoff", "RetryPolicy"],
        "queueing.schedules": ["Schedule", "ScheduleInfo"],
        "queueing.tasks": ["Task"],
    }.items()
    for name in names
}

# Spelled out for type checkers and linters; tests/test_public_api.py checks it is _HOMES.
__all__ = [
    "SYSTEM",
    "TERMINAL_STATUSES",
    "Actor",
    "AsyncQueue",
    "Attempt",
    "Backoff",
    "ConfigurationError",
    "DatabaseUnavailable",
    "EnqueuedJob",
    "InvalidPayload",
    "InvalidProgress",
    "InvalidResult",
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
    "QueueInfo",
    "QueueNotFound",
    "QueueingError",
    "RetryPolicy",
    "Schedule",
    "ScheduleInfo",
    "SchemaNotMigrated",
    "Task",
    "UnknownTask",
    "UnusableConnection",
    "WaitTimeout",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access, then keep the name here."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'queueing' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
