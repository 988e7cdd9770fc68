"""An app with per-key concurrency limits: ``--app tests.apps.limits_app:queue``.

Each handler records its own execution: the times it started and ended, read from the
host's clock (every worker process of a test runs on the same host), returned as its
job's result. The test measures concurrency from these records. (Not through a table
the handlers write on connections of their own: one more connection per worker process
took the shared test server past max_connections.)
"""

from __future__ import annotations

import asyncio
import time

from queueing import Queue

queue = Queue()


async def _execute(key: str, seconds: float) -> dict[str, object]:
    started = time.time()
    await asyncio.sleep(seconds)  # allowed-sleep: simulates work
    return {"key": key, "started": started, "finished": time.time()}


@queue.task(name="limited", concurrency_key="tenant:{tenant}", concurrency_limit=2)
async def limited(tenant: str, seconds: float) -> dict[str, object]:
    return await _execute(f"tenant:{tenant}", seconds)


@queue.task(name="unlimited")
async def unlimited(seconds: float) -> dict[str, object]:
    """The control: the same work with no limit, measured the same way."""
    return await _execute("control", seconds)
