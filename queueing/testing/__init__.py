"""Test support for applications that use queueing.

The pytest plugin (``queueing.testing.plugin``, registered through ``pytest11``, so
installing queueing is enough) gives each session and each pytest-xdist worker a
throwaway database and these fixtures: ``queue``, ``aqueue``, ``queueing_worker``,
``queue_clock`` and ``queueing_database_url``. This module holds the helpers tests
call: ``wait_for``, ``assert_job_status`` (and their ``_async`` twins), ``drain``.
``wait_for`` times out with ``JobWaitTimeout``, both a ``WaitTimeout`` (like
``Queue.wait_for``) and an ``AssertionError`` (a test failure).
"""

from __future__ import annotations

import asyncio
from typing import Any

from queueing.queue import Queue
from queueing.testing.assertions import (
    JobRef,
    JobWaitTimeout,
    assert_job_status,
    assert_job_status_async,
    describe_job,
    describe_job_async,
    wait_for,
    wait_for_async,
)
from queueing.testing.clock import QueueClock
from queueing.testing.workers import BackgroundWorker, Drained, QueueWorker, Run
from queueing.worker import Worker, WorkerStats

__all__ = [
    "BackgroundWorker",
    "Drained",
    "JobRef",
    "JobWaitTimeout",
    "QueueClock",
    "QueueWorker",
    "Run",
    "assert_job_status",
    "assert_job_status_async",
    "describe_job",
    "describe_job_async",
    "drain",
    "drain_async",
    "wait_for",
    "wait_for_async",
]


def drain(queue: Queue, **worker_options: Any) -> WorkerStats:
    """Run an in-process worker until no job is due now and none is running."""
    return asyncio.run(Worker(queue, **worker_options).run(until_idle=True))


async def drain_async(queue: Queue, **worker_options: Any) -> WorkerStats:
    """``drain`` for tests that already run an event loop."""
    return await Worker(queue, **worker_options).run(until_idle=True)
