"""queueing in the benchmark: its tasks (for the worker processes) and its client.

Full status tracking is on: every job's record gets started_at / finished_at / result /
progress in the same statements that claim and finish it, and an attempt-history row.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from queueing import JobRequest, Queue
from queueing.worker import Worker

#: The harness's name for queueing workers with metrics on (the metrics A/B).
METRICS_SYSTEM = "queueing+metrics"


def default_concurrency() -> int:
    """The worker's own default concurrency (what `queueing worker` runs without options)."""
    default = inspect.signature(Worker).parameters["concurrency"].default
    assert isinstance(default, int)
    return default


def bench_queue(conninfo: str, recorder: Any = None, pool_size: int = 10) -> Queue:
    """A Queue with the harness's two tasks: ``noop`` and ``stamp`` (bench/worker.py)."""
    queue = Queue(conninfo, pool_size=pool_size)

    @queue.task(name="noop", retry=1)
    async def noop() -> None:
        if recorder is not None:
            recorder.started()

    @queue.task(name="stamp", retry=1)
    async def stamp(t: float) -> None:
        if recorder is not None:
            recorder.stamp(t)

    return queue


class QueueingSystem:
    """The harness's client for queueing (see bench/systems.py's System)."""

    name = "queueing"
    label = "queueing"

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.queue = bench_queue(conninfo)

    def settings_text(self, setting: int) -> str:
        return (
            f"queueing worker: Worker(queue, concurrency={setting}), every other setting its "
            "default (as `queueing worker --concurrency N`), LISTEN on, full status tracking "
            "and attempt history, asyncio loop, psycopg"
        )

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        await self.queue.aio.close()
        self.queue.close()

    async def install(self) -> None:
        await asyncio.to_thread(self.queue.migrate)

    async def enqueue_batch(self, n: int) -> None:
        await self.queue.aio.enqueue_many([JobRequest("noop") for _ in range(n)])

    async def enqueue_one(self) -> None:
        await self.queue.aio.enqueue("noop")

    async def enqueue_stamps(self, t: float, n: int) -> None:
        await self.queue.aio.enqueue_many([JobRequest("stamp", {"t": t}) for _ in range(n)])
