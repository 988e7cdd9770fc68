"""Why tests are isolated by emptying tables, and what it costs: ``python -m
queueing.testing.measure_isolation`` (server: QUEUEING_TEST_DATABASE_URL or embedded).

Three ways to give each test an empty queue, timed on a throwaway database holding a
few jobs (what a test leaves behind):

- TRUNCATE of the queue tables (the plugin's first version);
- DELETE from them (what the plugin does);
- a transaction per test, rolled back at the end. Cheapest, but wrong for a queue:
  the worker claims jobs on its own connections, which cannot see the test's
  uncommitted jobs, so a drain finds nothing to run. ``rollback_sees_nothing`` shows it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable

import psycopg

from queueing import sql
from queueing.queue import Queue
from queueing.testing import databases
from queueing.worker import Worker


def _time(setup: Callable[[], object], action: Callable[[], object], rounds: int) -> float:
    """Median milliseconds of ``action`` after ``setup``."""
    samples = []
    for _ in range(rounds):
        setup()
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def rollback_sees_nothing(queue: Queue) -> int:
    """Enqueue inside an open transaction, drain, roll back: how many jobs the worker ran."""
    with psycopg.connect(queue.database_url) as conn:
        queue.enqueue("anything", connection=conn)
        stats = asyncio.run(Worker(queue, retention=None).run(until_idle=True))
        conn.rollback()
    return stats.claimed


def measure(rounds: int = 20) -> dict[str, float]:
    """Median cost in milliseconds of each isolation method (plus the drain check)."""
    admin = databases.server_url()
    name = f"queueing_measure_{os.getpid()}"
    url = databases.create_database(admin, name)
    try:
        with Queue(url) as queue, psycopg.connect(url, autocommit=True) as conn:

            def leave_jobs() -> None:
                queue.enqueue("a", {"n": 1})
                queue.enqueue("b", {"n": 2}, delay=60)

            results = {
                "truncate_ms": _time(
                    leave_jobs, lambda: conn.execute(sql.query("reset_jobs")), rounds
                ),
                "delete_ms": _time(
                    leave_jobs, lambda: conn.execute(sql.query("testing_reset")), rounds
                ),
            }
            conn.execute(sql.query("testing_reset"))

            def rolled_back() -> None:
                with psycopg.connect(url) as tx:
                    queue.enqueue("a", {"n": 1}, connection=tx)
                    tx.rollback()

            results["rollback_ms_incl_enqueue"] = _time(lambda: None, rolled_back, rounds)
            results["jobs_a_worker_ran_under_rollback"] = float(rollback_sees_nothing(queue))
        return results
    finally:
        databases.drop_database(admin, name)


def main() -> None:
    """Print the measurement."""
    for key, value in measure().items():
        print(f"{key:36} {value:8.2f}")  # noqa: T201 - a measurement script


if __name__ == "__main__":
    main()
