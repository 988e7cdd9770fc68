"""Test support: throwaway databases, fixtures (``queueing.testing.plugin``) and drain()."""

from __future__ import annotations

import asyncio
from typing import Any

from queueing.queue import Queue
from queueing.worker import Worker, WorkerStats


def drain(queue: Queue, **worker_options: Any) -> WorkerStats:
    """Run an in-process worker until no job is due now and none is running."""
    return asyncio.run(Worker(queue, **worker_options).run(until_idle=True))


async def drain_async(queue: Queue, **worker_options: Any) -> WorkerStats:
    """``drain`` for tests that already run an event loop."""
    return await Worker(queue, **worker_options).run(until_idle=True)
