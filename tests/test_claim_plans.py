"""A claim's cost does not grow with what else the jobs table holds.

Each case fills the table with rows a claim must not walk (delayed jobs that sort first,
another queue's older jobs, finished jobs), then claims a batch under ``EXPLAIN (ANALYZE,
BUFFERS)`` and bounds the buffers the claim touched: a claim that walked the obstacles
reads tens of thousands of buffers, one that reads only its batch a few hundred. Buffer
counts, not time: the bound holds on a loaded machine as on an idle one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql

from queueing import Queue, sql

OBSTACLES = 20_000
BATCH = 10
#: What a claim of BATCH jobs may touch: the batch's index entries and rows, their new
#: versions in every index, the triggers' reads. Walking the obstacles costs > 20,000.
MAX_BUFFERS = 1_500

_FILLS = sql.named_blocks((Path(__file__).parent / "claim_plans.sql").read_text("utf-8"))


def _run(conn: psycopg.Connection[Any], name: str, **params: Any) -> list[Any]:
    # Test-only statements from tests/claim_plans.sql, never user input.
    cur = conn.execute(pgsql.SQL(_FILLS[name]), params or None)
    return cur.fetchall() if cur.description else []


@pytest.fixture
def conn(queue: Queue) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(queue.database_url, autocommit=True) as c:
        # The session's database is emptied by DELETE between tests: earlier tests' rows
        # stay as dead versions until a vacuum, and a claim's index scans step over them.
        # Counted here: this test's claim, not what the tests before it left.
        c.execute("VACUUM procrastinate_jobs")
        yield c


def _claim_buffers(conn: psycopg.Connection[Any], queues: list[str] | None) -> tuple[int, int]:
    """Claim BATCH jobs under EXPLAIN (ANALYZE, BUFFERS); (buffers touched, rows claimed)."""
    worker_id = _run(conn, "a_worker")[0][0]
    # A session's first claim plans the function's statements and compiles the triggers
    # (catalog reads): not the claim's cost. Claim one job of another queue first, and
    # nothing on the all-queues path.
    _run(conn, "fill_warm")
    for warm, limit in ((["warm"], 1), (None, 0)):
        params = {"queues": warm, "worker_id": worker_id, "limit": limit, "idle": False}
        conn.execute(sql.query("claim_jobs"), params)
    explain = pgsql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + sql.query("claim_jobs")
    params = {"queues": queues, "worker_id": worker_id, "limit": BATCH, "idle": False}
    plan = conn.execute(explain, params).fetchone()
    assert plan is not None
    top = (plan[0] if isinstance(plan[0], list) else json.loads(plan[0]))[0]["Plan"]
    buffers = sum(top.get(k, 0) for k in ("Shared Hit Blocks", "Shared Read Blocks"))
    return buffers, int(top["Actual Rows"])


@pytest.mark.parametrize("fill", ["fill_delayed", "fill_other_queue", "fill_finished"])
@pytest.mark.parametrize("queues", [["q"], None], ids=["queue-q", "all-queues"])
def test_a_claim_reads_its_batch_not_the_table(
    conn: psycopg.Connection[Any], fill: str, queues: list[str] | None
) -> None:
    _run(conn, fill, n=OBSTACLES)
    _run(conn, "fill_due", n=BATCH * 5)
    _run(conn, "analyze")
    buffers, claimed = _claim_buffers(conn, queues)
    assert claimed == BATCH
    assert buffers <= MAX_BUFFERS, f"{fill}: the claim touched {buffers} buffers"


def test_the_same_claim_without_obstacles_reads_as_little(conn: psycopg.Connection[Any]) -> None:
    """The bound is not loose: the empty-table claim reads well under it."""
    _run(conn, "fill_due", n=BATCH * 5)
    _run(conn, "analyze")
    buffers, claimed = _claim_buffers(conn, ["q"])
    assert claimed == BATCH
    assert buffers <= MAX_BUFFERS // 2


def test_a_due_scheduled_job_takes_its_place_in_priority_order(
    conn: psycopg.Connection[Any],
) -> None:
    """Jobs due at once and scheduled jobs whose time has come are claimed by priority
    together: the claim merges the two index paths."""
    _run(conn, "fill_due", n=BATCH)  # priority 0
    _run(conn, "fill_scheduled_due", n=BATCH // 2, priority=5)
    _claim_buffers(conn, ["q"])
    assert _run(conn, "claimed_priorities", queue="q") == [(0, BATCH // 2), (5, BATCH // 2)]


def test_a_large_queue_is_read_on_its_own_index(conn: psycopg.Connection[Any]) -> None:
    """With its queue a fair share of the table, the statistics once made a per-queue read
    walk procrastinate's index of every pending job with a filter, past every job of the
    other queue (migration 0011 dropped that index)."""
    _run(conn, "fill_other_queue", n=OBSTACLES)
    _run(conn, "fill_due", n=OBSTACLES // 4)
    _run(conn, "analyze")
    buffers, claimed = _claim_buffers(conn, ["q"])
    assert claimed == BATCH
    assert buffers <= MAX_BUFFERS, f"the claim touched {buffers} buffers"
