"""Rescue of stalled jobs: real worker processes, SIGKILL, and fencing of the dead worker.

Workers run with short settings (heartbeat 0.2 s, stalled after 1 s, rescue every
0.2 s) so a rescue happens within seconds. Nothing sleeps: the tests wait on the
workers' JSON log lines and on job changes (LISTEN/NOTIFY), each with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import signal
from typing import Any, cast

import psycopg
import pytest

from queueing import sql
from queueing.models import Job, JobStatus
from queueing.queue import Queue
from tests.helpers import WorkerProcess, worker_process

FAST = (
    "--heartbeat-interval", "0.2", "--stall-timeout", "1", "--rescue-interval", "0.2",
    "--prune-interval", "0",
)  # fmt: skip


def _worker(database_url: str, *args: str) -> contextlib.AbstractContextManager[WorkerProcess]:
    """A worker process with the short settings."""
    return worker_process(database_url, *FAST, *args)


def _active(queue: Queue, seconds: float) -> Job:
    job = queue.enqueue("work", {"seconds": seconds})
    active = queue.wait_for(job.id, [JobStatus.ACTIVE], timeout=20)
    assert active.worker_id is not None
    return active


def _late_finish(url: str, job: Job) -> list[Any]:
    """What the dead worker would write for its attempt if it came back: must change nothing."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            sql.query("finish_jobs"),
            {
                "worker_id": job.worker_id,
                "outcomes": json.dumps(
                    [
                        {
                            "id": job.id,
                            "attempt": job.attempts,
                            "outcome": "succeeded",
                            "result": "late",
                        }
                    ]
                ),
            },
        ).fetchall()


def test_killed_workers_job_is_rescued_and_completed_by_another(
    queueing_database_url: str, queue: Queue
) -> None:
    with _worker(queueing_database_url) as first:
        running = _active(queue, 4.0)
        assert running.worker_id == first.id
        first.kill()

    with _worker(queueing_database_url) as second:
        rescued = second.wait_for_log("job.rescued")
        assert (rescued["job_id"], rescued["status"], rescued["level"]) == (
            running.id,
            "pending",
            "warning",
        )
        # The dead worker's late finish is fenced out, whatever the job's state now.
        assert _late_finish(queueing_database_url, running) == []
        done = queue.wait_for(running.id, timeout=30)
        assert _late_finish(queueing_database_url, running) == []
        second_id = second.id

    assert done.status is JobStatus.COMPLETED
    assert done.result == "done"
    assert done.attempts == 2
    assert done.worker_id == second_id
    lost, completed = queue.attempts(running.id)
    assert (lost.attempt, lost.outcome, lost.worker_id) == (1, "worker_lost", running.worker_id)
    assert lost.error is not None and lost.error.type == "WorkerLost"
    assert f"worker {running.worker_id} stopped heartbeating" in lost.error.message
    assert (completed.attempt, completed.outcome, completed.worker_id) == (
        2,
        "completed",
        second_id,
    )
    # The dead worker's row was forgotten.
    with psycopg.connect(queueing_database_url) as conn:
        ids = {r[0] for r in conn.execute("SELECT id FROM procrastinate_workers").fetchall()}
    assert running.worker_id not in ids


def test_rescued_job_with_its_attempts_spent_ends_failed(
    queueing_database_url: str, queue: Queue
) -> None:
    job = queue.enqueue("work", {"seconds": 60})
    with psycopg.connect(queueing_database_url, autocommit=True) as conn:
        conn.execute("UPDATE procrastinate_jobs SET max_attempts = 1 WHERE id = %s", [job.id])
    with _worker(queueing_database_url) as first:
        running = queue.wait_for(job.id, [JobStatus.ACTIVE], timeout=20)
        first.kill()
    with _worker(queueing_database_url) as second:
        rescued = second.wait_for_log("job.rescued")
        failed = queue.wait_for(job.id, timeout=20)
        assert _late_finish(queueing_database_url, running) == []

    assert (rescued["job_id"], rescued["status"]) == (job.id, "failed")
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.type == "WorkerLost"
    assert failed.finished_at is not None
    assert failed.worker_id is None
    assert [(a.attempt, a.outcome) for a in queue.attempts(job.id)] == [(1, "worker_lost")]


def test_a_draining_worker_keeps_heartbeating_and_is_not_rescued(
    queueing_database_url: str, queue: Queue
) -> None:
    # The job runs 3 s, three times the stall timeout, and drains after SIGTERM while
    # another worker's rescuer looks every 0.2 s.
    with _worker(queueing_database_url) as draining, _worker(queueing_database_url) as rescuer:
        running = _active(queue, 3.0)
        owner, other = (
            (draining, rescuer) if running.worker_id == draining.id else (rescuer, draining)
        )
        owner.send_signal(signal.SIGTERM)
        owner.wait_for_log("worker.draining")
        done = queue.wait_for(running.id, timeout=30)
        assert owner.wait_stopped(timeout=15) == 0
        other.send_signal(signal.SIGTERM)
        other.wait_for_log("worker.stopped", timeout=15)

    assert done.status is JobStatus.COMPLETED
    assert done.attempts == 1
    assert [(a.attempt, a.outcome) for a in queue.attempts(running.id)] == [(1, "completed")]
    assert draining.events("job.rescued") == rescuer.events("job.rescued") == []


def test_a_worker_whose_row_is_gone_registers_again_and_is_fenced(
    queueing_database_url: str, queue: Queue
) -> None:
    # Its row deleted while a job runs (as if it had stalled and been rescued): the
    # heartbeat notices, the worker registers again; the job, given back, runs again
    # under the new id, and the first attempt's finish is fenced out.
    with _worker(queueing_database_url) as worker:
        running = _active(queue, 1.5)
        with psycopg.connect(queueing_database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM procrastinate_workers WHERE id = %s", [running.worker_id])
        lost = worker.wait_for_log("worker.registration_lost")
        rescued = worker.wait_for_log("job.rescued")
        ignored = worker.wait_for_log("job.finish_ignored")
        done = queue.wait_for(running.id, timeout=20)
        follower = queue.enqueue("noop")
        followed = queue.wait_for(follower.id, timeout=20)
        worker.send_signal(signal.SIGTERM)
        worker.wait_for_log("worker.stopped", timeout=15)

    assert (lost["old_worker_id"], lost["level"]) == (running.worker_id, "warning")
    new_id = cast(int, lost["worker_id"])
    assert new_id != running.worker_id
    assert (rescued["job_id"], rescued["status"]) == (running.id, "pending")
    assert (ignored["job_id"], ignored["attempt"]) == (running.id, 1)
    assert done.status is JobStatus.COMPLETED
    assert (done.attempts, done.worker_id) == (2, new_id)
    assert followed.status is JobStatus.COMPLETED
    assert followed.worker_id == new_id
    assert [(a.attempt, a.outcome) for a in queue.attempts(running.id)] == [
        (1, "worker_lost"),
        (2, "completed"),
    ]


def test_stall_timeout_must_exceed_the_heartbeat_interval(queue: Queue) -> None:
    from queueing.worker import Worker

    with pytest.raises(ValueError, match="must exceed heartbeat_interval"):
        Worker(queue, heartbeat_interval=5, stall_timeout=5)
