"""§1: the status record and its invariant, against a real database."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from queueing import JobContext, JobRequest, JobStatus, Queue, RetryPolicy
from queueing.testing import drain


def _rows(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM queueing_jobs ORDER BY id").fetchall()


def test_record_exists_the_instant_enqueue_commits_with_no_worker(queue: Queue) -> None:
    job = queue.enqueue("report.generate", {"month": "2026-10"}, tenant_id="org-1", user_id="u-7")
    # Read through another connection: what any other observer sees.
    (row,) = _rows(queue.database_url)
    assert row["id"] == job.id
    assert row["status"] == "pending"
    assert (row["tenant_id"], row["user_id"]) == ("org-1", "u-7")
    assert row["progress"] == 0
    assert row["created_at"] is not None
    assert row["started_at"] is None and row["finished_at"] is None
    assert queue.get_job(job.id).status is JobStatus.PENDING


def test_rolled_back_enqueue_leaves_nothing(queue: Queue) -> None:
    with psycopg.connect(queue.database_url) as conn:
        queue.enqueue("send_invoice", {"n": 1}, connection=conn)
        assert len(conn.execute("SELECT 1 FROM queueing_jobs").fetchall()) == 1  # visible inside
        assert _rows(queue.database_url) == []  # invisible outside until commit
        conn.rollback()
    assert _rows(queue.database_url) == []
    assert queue.stats() == []


def test_enqueue_joins_the_callers_transaction_and_commits_with_it(queue: Queue) -> None:
    with psycopg.connect(queue.database_url) as conn:
        conn.execute("CREATE TABLE orders (id int primary key)")
        conn.execute("INSERT INTO orders VALUES (1)")
        job = queue.enqueue("ship_order", {"order": 1}, connection=conn)
        conn.commit()
    assert queue.get_job(job.id).status is JobStatus.PENDING
    with psycopg.connect(queue.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1,)
        conn.execute("DROP TABLE orders")
        conn.commit()


def test_a_thousand_zero_ms_jobs_at_concurrency_20_all_ordered(queue: Queue) -> None:
    @queue.task
    async def instant(n: int) -> int:
        return n

    @queue.task
    def instant_sync(n: int) -> int:
        return n

    requests = [JobRequest(instant if n % 2 else instant_sync, {"n": n}) for n in range(1000)]
    jobs = queue.enqueue_many(requests)
    stats = drain(queue, concurrency=20)
    assert stats.claimed == 1000
    rows = _rows(queue.database_url)
    assert len(rows) == 1000
    by_id = {j.id: n for n, j in enumerate(jobs)}
    for row in rows:
        assert row["status"] == "completed"
        assert row["result"] == by_id[row["id"]]
        assert row["created_at"] <= row["started_at"] <= row["finished_at"]
        assert row["finished_at"] <= row["updated_at"]
        assert row["progress"] == 100
        assert row["attempts"] == 1


def test_observers_never_see_a_status_without_its_result_or_error(queue: Queue) -> None:
    @queue.task(retry=RetryPolicy(max_attempts=1))
    def maybe(n: int) -> int:
        if n % 3 == 0:
            raise ValueError(f"n={n}")
        return n

    queue.enqueue_many([JobRequest(maybe, {"n": n}) for n in range(600)])
    violations: list[dict[str, Any]] = []
    snapshots = 0
    done = threading.Event()

    def observe() -> None:
        nonlocal snapshots
        with psycopg.connect(queue.database_url, autocommit=True, row_factory=dict_row) as conn:
            while not done.is_set():
                for row in conn.execute(
                    "SELECT status, result, error, started_at, finished_at FROM queueing_jobs"
                ):
                    terminal = row["status"] in ("completed", "failed", "cancelled")
                    if (
                        (row["status"] == "completed") != (row["result"] is not None)
                        or (row["status"] == "failed") != (row["error"] is not None)
                        or terminal != (row["finished_at"] is not None)
                        or (row["status"] == "active" and row["started_at"] is None)
                    ):
                        violations.append(row)
                snapshots += 1

    observer = threading.Thread(target=observe)
    observer.start()
    try:
        drain(queue, concurrency=20)
    finally:
        done.set()
        observer.join()
    assert snapshots > 0
    assert violations == []
    counts = {c.status: c.count for c in queue.stats()}
    assert counts == {JobStatus.COMPLETED: 400, JobStatus.FAILED: 200}


@pytest.mark.parametrize(
    ("assignment", "constraint"),
    [
        ("progress = 101", "queueing_progress_range"),
        ("progress = -1", "queueing_progress_range"),
        ("finished_at = now()", "queueing_finished_iff_terminal"),
        ("started_at = created_at - interval '1 second'", "queueing_started_after_created"),
    ],
)
def test_the_database_refuses_records_that_break_the_invariant(
    queue: Queue, assignment: str, constraint: str
) -> None:
    job = queue.enqueue("anything")
    with (
        psycopg.connect(queue.database_url) as conn,
        pytest.raises(psycopg.errors.CheckViolation) as err,
    ):
        conn.execute(f"UPDATE procrastinate_jobs SET {assignment} WHERE id = %s", [job.id])
    assert err.value.diag.constraint_name == constraint
    assert queue.get_job(job.id).status is JobStatus.PENDING


def test_a_finished_job_cannot_lose_its_finish_time(queue: Queue) -> None:
    @queue.task
    def quick() -> None:
        return None

    job = queue.enqueue(quick)
    drain(queue)
    with psycopg.connect(queue.database_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE procrastinate_jobs SET finished_at = NULL WHERE id = %s", [job.id])


def test_timestamps_stay_ordered_when_the_claim_began_before_the_enqueue_committed(
    queue: Queue,
) -> None:
    # A transaction whose now() predates the job's creation claims it: started_at must
    # still not precede created_at (the trigger stamps with GREATEST()).
    with psycopg.connect(queue.database_url) as early:
        early.execute("SELECT now()")  # the transaction (and its now()) starts here
        job = queue.enqueue("anything")
        early.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", [job.id])
        early.execute("UPDATE procrastinate_jobs SET status = 'succeeded' WHERE id = %s", [job.id])
        early.commit()
    done = queue.get_job(job.id)
    assert done.status is JobStatus.COMPLETED
    assert done.started_at is not None and done.finished_at is not None
    assert done.created_at <= done.started_at <= done.finished_at


def test_progress_is_bounded_and_recorded_per_stage(queue: Queue) -> None:
    seen: list[int] = []

    @queue.task
    async def pipeline(ctx: JobContext) -> str:
        for stage in range(1, 7):
            await ctx.set_progress(round(stage * 100 / 6), {"stage": stage, "of": 6})
            seen.append(queue_progress(queue, ctx.job_id))
        with pytest.raises(ValueError, match="between 0 and 100"):
            await ctx.set_progress(101)
        return "ok"

    job = queue.enqueue(pipeline)
    drain(queue)
    assert seen == [17, 33, 50, 67, 83, 100]
    done = queue.get_job(job.id)
    assert done.status is JobStatus.COMPLETED
    assert done.progress_detail == {"stage": 6, "of": 6}


def queue_progress(queue: Queue, job_id: int) -> int:
    with psycopg.connect(queue.database_url) as conn:
        row = conn.execute("SELECT progress FROM queueing_jobs WHERE id = %s", [job_id]).fetchone()
        assert row is not None
        return int(row[0])
