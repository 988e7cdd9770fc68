"""The worker's vacuumer: the queue's tables are vacuumed once they hold many dead rows
(queueing/worker/vacuumer.py), by a real worker, and only then."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql

from queueing import Queue, sql
from queueing.worker import Worker
from queueing.worker.connection import Connection
from queueing.worker.vacuumer import Vacuumer
from tests.helpers import poll

_SQL = sql.named_blocks((Path(__file__).parent / "vacuum.sql").read_text("utf-8"))
DEAD = 2_000


def _run(url: str, name: str, **params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        # Test-only statements from tests/vacuum.sql, never user input.
        cur = conn.execute(pgsql.SQL(_SQL[name]), params or None)
        return cur.fetchall() if cur.description else []


def _dead_rows(url: str, n: int) -> None:
    """Leave ``n`` dead row versions in the jobs table, seen by the statistics."""
    _run(url, "make_dead_rows", n=n)
    _run(url, "delete_jobs")
    # The statistics are flushed within a second of a transaction's end.
    poll("the dead rows counted", lambda: _run(url, "table_state")[0][0] >= n or None, 30)


def _last_vacuum(url: str) -> Any:
    return _run(url, "table_state")[0][1]


def test_a_round_vacuums_only_past_the_threshold(queue: Queue) -> None:
    url = queue.database_url
    # Earlier tests on this session's database left dead rows: start from none.
    _run(url, "vacuum")
    poll("the vacuum counted", lambda: _run(url, "table_state")[0][0] == 0 or None, 30)
    _dead_rows(url, DEAD)
    before = _last_vacuum(url)

    async def rounds() -> tuple[int, int]:
        conn = Connection(url)
        try:
            # A tiny interval: the vacuum above ran long enough ago.
            above = Vacuumer(url, interval=0.001, min_dead=DEAD * 2)
            await above.round(conn)
            below = Vacuumer(url, interval=0.001, min_dead=DEAD)
            await below.round(conn)
            return above.vacuums, below.vacuums
        finally:
            await conn.close()

    assert asyncio.run(rounds()) == (0, 1)
    assert _last_vacuum(url) not in (None, before)


def test_a_worker_vacuums_the_queue_tables(queue: Queue) -> None:
    url = queue.database_url
    _dead_rows(url, 10_000)  # MIN_DEAD_ROWS
    before = _last_vacuum(url)
    worker = Worker(queue, vacuum_interval=0.2)

    def vacuumed() -> Any:
        last = _last_vacuum(url)
        return None if last in (None, before) else last

    async def run() -> Any:
        task = asyncio.create_task(worker.run())
        try:
            await asyncio.to_thread(poll, "a vacuum by the worker", vacuumed, 60)
        finally:
            worker.stop()
            await task
        return _last_vacuum(url)

    assert asyncio.run(run()) not in (None, before)


@pytest.mark.parametrize("interval", [0, -1])
def test_a_vacuum_interval_must_be_positive(queue: Queue, interval: float) -> None:
    with pytest.raises(ValueError, match="vacuum intervals must be positive"):
        Worker(queue, vacuum_interval=interval)
