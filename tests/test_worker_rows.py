"""A worker's row and its jobs (migration 0013): no foreign key between them, and what
stands in its place. Statement-level tests on a real database, no worker process: each
drives the release's own named queries (sql/queries.sql) as the worker does."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from queueing import sql
from queueing.models import JobStatus
from queueing.queue import Queue


def _register(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(sql.query("register_worker"), {"host": "test", "pid": 1}).fetchone()
    assert row is not None
    return int(row["worker_id"])


def _claim(conn: psycopg.Connection[Any], worker_id: int, limit: int) -> list[int]:
    params = {"queues": None, "worker_id": worker_id, "limit": limit, "idle": False}
    return [r["id"] for r in conn.execute(sql.query("claim_jobs"), params).fetchall()]


def _finish(conn: psycopg.Connection[Any], worker_id: int, job_id: int) -> None:
    conn.execute(
        sql.query("finish_jobs"),
        {
            "worker_id": worker_id,
            "outcomes": json.dumps(
                [{"id": job_id, "attempt": 1, "outcome": "succeeded", "result": None}]
            ),
        },
    ).fetchall()


def _row(conn: psycopg.Connection[Any], job_id: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT xmin::text AS version, worker_id, status::text FROM procrastinate_jobs"
        " WHERE id = %s",
        [job_id],
    ).fetchone()
    assert row is not None
    return dict(row)


def test_a_workers_exit_releases_its_active_jobs_and_leaves_its_finished_ones_alone(
    queue: Queue,
) -> None:
    first, second, third = (queue.enqueue("noop").id for _ in range(3))
    with psycopg.connect(queue.database_url, autocommit=True, row_factory=dict_row) as conn:
        worker_id = _register(conn)
        assert _claim(conn, worker_id, 2) == [first, second]
        _finish(conn, worker_id, first)
        finished_before = _row(conn, first)

        conn.execute(sql.query("unregister_worker"), {"worker_id": worker_id})

        # The finished job: untouched (no new row version), still naming who ran it.
        assert _row(conn, first) == finished_before
        assert finished_before["worker_id"] == worker_id
        # The active one: no worker now, which is what the rescue looks for.
        assert _row(conn, second)["worker_id"] is None
        assert _row(conn, second)["status"] == "doing"
        pending = _row(conn, third)
        assert (pending["worker_id"], pending["status"]) == (None, "todo")


def test_a_claim_by_a_worker_whose_row_is_gone_raises_and_takes_nothing(queue: Queue) -> None:
    job = queue.enqueue("noop")
    with psycopg.connect(queue.database_url, autocommit=True, row_factory=dict_row) as conn:
        worker_id = _register(conn)
        conn.execute(sql.query("unregister_worker"), {"worker_id": worker_id})
        # The error the worker's claim loop re-registers on, as the foreign key raised.
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="not registered"):
            _claim(conn, worker_id, 10)
    assert queue.get_job(job.id).status is JobStatus.PENDING


def test_the_rescue_takes_an_active_job_whose_worker_has_no_row(queue: Queue) -> None:
    # A release-12 worker's claim (queueing_claim_v6, kept for rolling deploys) does not
    # look for its row: made after the row went, it leaves a job active under an id no
    # worker has. No heartbeat will ever go stale for it: the rescue must take it anyway,
    # once it has run longer than the rescue's stall timeout.
    job = queue.enqueue("noop")
    with psycopg.connect(queue.database_url, autocommit=True, row_factory=dict_row) as conn:
        worker_id = _register(conn)
        conn.execute(sql.query("unregister_worker"), {"worker_id": worker_id})
        claimed = conn.execute(
            "SELECT id FROM queueing_claim_v6(NULL, %s, 10, false)", [worker_id]
        ).fetchall()
        assert [r["id"] for r in claimed] == [job.id]
        assert _row(conn, job.id)["worker_id"] == worker_id

        # Not at once: that worker may still be running it, and its finisher still writes
        # under the old id. Once it started longer ago than a stalled worker's heartbeat:
        # taken.
        rescue = sql.query("rescue_stalled")
        assert conn.execute(rescue, {"stalled_after": 3600, "limit": 500}).fetchall() == []
        rescued = conn.execute(rescue, {"stalled_after": 0, "limit": 500}).fetchall()

    assert [(r["id"], r["status"]) for r in rescued] == [(job.id, "pending")]
    after = queue.get_job(job.id)
    assert (after.status, after.worker_id) == (JobStatus.PENDING, None)
    assert [a.outcome for a in queue.attempts(job.id)] == ["worker_lost"]
