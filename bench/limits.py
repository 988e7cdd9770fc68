"""What concurrency limits and paused queues cost a worker's drain: ``python -m bench.limits``.

One in-process worker (concurrency 50) drains ``JOBS`` no-op jobs until the queue is
idle, in four scenarios, each on a fresh throwaway database:

- ``open``: no limit, nothing paused (the claim's unrestricted path);
- ``keys``: every job has a concurrency key, 100 keys with a limit of 5 each (the
  restricted path: a skip scan of the keys, an advisory lock and a count per key);
- ``one key``: one key with a limit of 50 (the worker's concurrency: the limit never binds,
  so this is the restricted path's bookkeeping alone);
- ``paused``: no limit, and another queue paused with ``PAUSED_JOBS`` jobs waiting in it
  (the restricted path, serving queues one by one; the paused jobs are never walked).

Scenarios run in a different order each round (a shared machine's load drifts); the
median jobs/s of ``ROUNDS`` rounds is printed.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable

from queueing import JobRequest, Queue
from queueing.testing import databases
from queueing.worker import Worker

JOBS = 5000
PAUSED_JOBS = 50_000
ROUNDS = 3
CONCURRENCY = 50

bench = Queue()


@bench.task(name="noop")
async def noop() -> None:
    return None


@bench.task(name="keyed", concurrency_key="k{k}", concurrency_limit=5)
async def keyed(k: int) -> None:
    return None


@bench.task(name="one_key", concurrency_key="only", concurrency_limit=CONCURRENCY)
async def one_key(k: int) -> None:
    return None


@bench.task(name="parked", queue="parked")
async def parked() -> None:
    return None


def _open(q: Queue) -> None:
    q.enqueue_many([JobRequest(noop) for _ in range(JOBS)])


def _keys(q: Queue) -> None:
    q.enqueue_many([JobRequest(keyed, {"k": n % 100}) for n in range(JOBS)])


def _one_key(q: Queue) -> None:
    q.enqueue_many([JobRequest(one_key, {"k": n}) for n in range(JOBS)])


def _paused(q: Queue) -> None:
    for start in range(0, PAUSED_JOBS, 10_000):
        q.enqueue_many([JobRequest(parked) for _ in range(start, start + 10_000)])
    q.pause_queue("parked")
    _open(q)


SCENARIOS: dict[str, Callable[[Queue], None]] = {
    "open": _open,
    "keys": _keys,
    "one key": _one_key,
    "paused": _paused,
}


def drain_rate(name: str, fill: Callable[[Queue], None]) -> float:
    """Jobs/s of one drain of ``JOBS`` jobs on a fresh database filled by ``fill``."""
    admin = databases.server_url()
    # The branch's name in the database's: other helpers share the server.
    db = "bench_sched_limits_" + name.replace(" ", "_")
    databases.drop_database(admin, db)
    bench.database_url = databases.create_database(admin, db)
    try:
        fill(bench)
        worker = Worker(bench, concurrency=CONCURRENCY, retention=None, poll_interval=0.05)
        started = time.perf_counter()
        stats = asyncio.run(worker.run(until_idle=True))
        elapsed = time.perf_counter() - started
        assert stats.finished == JOBS, (name, stats)
        return JOBS / elapsed
    finally:
        bench.close()
        databases.drop_database(admin, db)


def main(rounds: int = ROUNDS) -> None:
    rates: dict[str, list[float]] = {name: [] for name in SCENARIOS}
    names = list(SCENARIOS)
    for n in range(rounds):
        order = names[n % len(names) :] + names[: n % len(names)]
        for name in order:
            rates[name].append(drain_rate(name, SCENARIOS[name]))
            print(f"round {n + 1}: {name}: {rates[name][-1]:,.0f} jobs/s", flush=True)
    base = statistics.median(rates["open"])
    for name, values in rates.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{name:>8}: {median:,.0f} jobs/s median ({median / base:.0%} of open) [{runs}]")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS)
