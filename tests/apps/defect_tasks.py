"""Tasks for tests/test_worker_defects.py, as a worker process imports them:
``--app tests.apps.defect_tasks:queue``.

The database comes from QUEUEING_DATABASE_URL, as in production.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from queueing import Queue, RetryPolicy

queue = Queue()

#: The queue of ``blocking`` only: a worker serving it alone is the one that blocks.
BLOCKING_QUEUE = "defect-blocking"
#: The queue of ``poison`` and ``steady``.
PILL_QUEUE = "defect-pill"


@queue.task(name="defect_noop")
async def noop() -> str:
    return "done"


@queue.task(name="defect_blocking", queue=BLOCKING_QUEUE, retry=RetryPolicy(max_attempts=1))
async def blocking(seconds: float) -> str:
    # An async handler that blocks the event loop (a CPU-bound step, a sync client).
    time.sleep(seconds)  # noqa: ASYNC251  # allowed-sleep: simulates work that blocks the loop
    return "done"


@queue.task(name="defect_poison", queue=PILL_QUEUE, retry=RetryPolicy(max_attempts=3, delay=0))
async def poison() -> None:
    # Kills its worker process on every attempt (a segfault, the OOM killer).
    os.kill(os.getpid(), signal.SIGKILL)


@queue.task(name="defect_steady", queue=PILL_QUEUE, retry=RetryPolicy(max_attempts=3, delay=0))
async def steady(seconds: float) -> str:
    await asyncio.sleep(seconds)  # allowed-sleep: simulates work
    return "done"
