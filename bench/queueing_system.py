"""queueing in the benchmark harness of ``bench.baselines`` (same method, same figures).

Full status tracking is on: every job's record gets started_at / finished_at / result /
progress in the same statements that claim and finish it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from queueing import JobRequest, Queue
from queueing.worker import Worker

# Worker settings: jobs run at once per process, and how many one claim may take.
QUEUEING_CONCURRENCY = 100
#: The harness's name for queueing workers with metrics on.
METRICS_SYSTEM = "queueing+metrics"


def bench_queue(conninfo: str, stamp: Any = None) -> Queue:
    """A Queue with the harness's two tasks: ``noop`` and ``stamp``."""
    queue = Queue(conninfo)

    @queue.task(name="noop", retry=1)
    async def noop() -> None:
        return None

    @queue.task(name="stamp", retry=1)
    async def stamp_task(key: str) -> None:
        started = time.time()
        if stamp is not None:
            stamp(key, started)

    return queue


class QueueingSystem:
    name = "queueing"
    clear_sql = (
        "TRUNCATE procrastinate_jobs, procrastinate_events, procrastinate_workers "
        "RESTART IDENTITY CASCADE"
    )
    pending_sql = (
        "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing'))"
    )
    done_sql = "SELECT count(*) FROM queueing_jobs WHERE status = 'completed'"
    analyze_sql = "ANALYZE procrastinate_jobs"

    def __init__(
        self, conninfo: str, concurrency: int = QUEUEING_CONCURRENCY, *, metrics: bool = False
    ) -> None:
        self.conninfo = conninfo
        self.queue = bench_queue(conninfo)
        self.worker_setting = concurrency
        # The harness spawns its workers by this name: "queueing+metrics" runs them with
        # Prometheus metrics on and their /metrics server listening (bench --metrics-ab).
        self.name = METRICS_SYSTEM if metrics else "queueing"
        self.settings_text = (
            f"queueing worker: concurrency={concurrency} (claims up to the free slots in one "
            "statement, finishes in batches), LISTEN on, full status tracking, asyncio loop"
            + (", metrics on (--metrics-port 0)" if metrics else "")
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

    async def enqueue_stamp(self, key: str) -> None:
        await self.queue.aio.enqueue("stamp", {"key": key})


async def queueing_worker(
    conninfo: str,
    concurrency: int,
    stamp: Any,
    ready_then_go: Any,
    until_stop: Any,
    *,
    metrics: bool = False,
) -> None:
    """One harness worker process: ready, go, run until told to stop, stop gracefully.
    ``metrics``: with its Prometheus metrics on and served on a free port, as in
    production (nothing scrapes it: a scrape every 15 s costs nothing a drain can see)."""
    queue = bench_queue(conninfo, stamp)
    worker = Worker(
        queue,
        concurrency=concurrency,
        batch_size=concurrency,
        metrics_port=0 if metrics else None,
        metrics_host="127.0.0.1",
    )
    await ready_then_go()
    run = asyncio.create_task(worker.run())
    await worker.started.wait()

    async def run_none() -> None:
        await run

    await until_stop(asyncio.ensure_future(run_none()))
    worker.stop()
    await run
