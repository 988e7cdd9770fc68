"""The finisher's outcomes document (migration 0014): what the worker sends is what the
job records. Statement-level, on a real database: jobs are claimed with the release's
``claim_jobs`` and finished with ``finish_jobs`` fed by ``outcomes_json``, as the
finisher feeds it; no worker process."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from queueing import sql
from queueing.models import JobStatus
from queueing.queue import Queue
from queueing.worker.execute import result_json
from queueing.worker.finisher import outcomes_json
from queueing.worker.outcome import Claimed, Outcome, OutcomeKind, error_json

RESULTS: list[Any] = [
    None,
    0,
    -1.5,
    'text with "quotes", a \\ backslash, a tab\t, é and \U0001f600',
    [1, "two", {"three": [3.0, None, True]}],
    {"nested": {"deep": ["x", {"y": 2**70}]}, "": "empty key"},
]


def _claimed(conn: psycopg.Connection[Any], queue: Queue, n: int) -> tuple[int, list[Claimed]]:
    for _ in range(n):
        queue.enqueue("noop")
    row = conn.execute(sql.query("register_worker"), {"host": "test", "pid": 1}).fetchone()
    assert row is not None
    params = {"queues": None, "worker_id": row["worker_id"], "limit": n, "idle": False}
    claimed = [Claimed(**r) for r in conn.execute(sql.query("claim_jobs"), params).fetchall()]
    assert len(claimed) == n
    return int(row["worker_id"]), claimed


def _finish(conn: psycopg.Connection[Any], worker_id: int, batch: list[Outcome]) -> dict[int, str]:
    params = {"worker_id": worker_id, "outcomes": outcomes_json(batch)}
    return {r["id"]: r["status"] for r in conn.execute(sql.query("finish_jobs"), params)}


def test_each_result_is_stored_as_the_handler_returned_it(queue: Queue) -> None:
    with psycopg.connect(queue.database_url, autocommit=True, row_factory=dict_row) as conn:
        worker_id, claimed = _claimed(conn, queue, len(RESULTS))
        batch = [
            Outcome(job, OutcomeKind.SUCCEEDED, result_json=result_json(value, task_name="t"))
            for job, value in zip(claimed, RESULTS, strict=True)
        ]
        statuses = _finish(conn, worker_id, batch)
        # A handler that returned nothing: a JSON null, not an SQL NULL (as before 0014).
        stored_none = conn.execute(
            "SELECT result IS NOT NULL AS has_value FROM procrastinate_jobs WHERE id = %s",
            [claimed[0].id],
        ).fetchone()
    assert statuses == {job.id: "completed" for job in claimed}
    assert stored_none == {"has_value": True}
    for job, value in zip(claimed, RESULTS, strict=True):
        stored = queue.get_job(job.id)
        assert stored.status is JobStatus.COMPLETED
        assert json.dumps(stored.result, sort_keys=True) == json.dumps(value, sort_keys=True)


def test_failures_retries_and_cancels_keep_their_errors_and_times(queue: Queue) -> None:
    with psycopg.connect(queue.database_url, autocommit=True, row_factory=dict_row) as conn:
        worker_id, (failed, retried, cancelled) = _claimed(conn, queue, 3)
        conn.execute("UPDATE procrastinate_jobs SET max_attempts = 5 WHERE id = %s", [retried.id])
        error = error_json(ValueError('bad "input" \\ é'))
        before = dt.datetime.now(dt.UTC)
        statuses = _finish(
            conn,
            worker_id,
            [
                Outcome(failed, OutcomeKind.FAILED, error_json=error, error_type="ValueError"),
                Outcome(retried, OutcomeKind.RETRY, error_json=error, retry_in=90.0),
                Outcome(cancelled, OutcomeKind.CANCELLED, error_json=error),
            ],
        )
    assert statuses == {failed.id: "failed", retried.id: "pending", cancelled.id: "cancelled"}
    for job_id in (failed.id, retried.id, cancelled.id):
        stored = queue.get_job(job_id)
        assert stored.error is not None
        assert stored.error.type == "ValueError"
        assert stored.error.message == 'bad "input" \\ é'
        assert stored.result is None
    again = queue.get_job(retried.id)
    assert before + dt.timedelta(seconds=89) < again.scheduled_at
    assert again.scheduled_at < dt.datetime.now(dt.UTC) + dt.timedelta(seconds=91)
    assert [a.outcome for a in queue.attempts(retried.id)] == ["retry"]


def test_an_outcome_the_type_does_not_name_is_refused_and_changes_nothing(queue: Queue) -> None:
    with psycopg.connect(queue.database_url, autocommit=True, row_factory=dict_row) as conn:
        worker_id, [job] = _claimed(conn, queue, 1)
        bad = json.dumps([{"id": job.id, "attempt": job.attempts, "outcome": "exploded"}])
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            conn.execute(sql.query("finish_jobs"), {"worker_id": worker_id, "outcomes": bad})
    assert queue.get_job(job.id).status is JobStatus.ACTIVE
