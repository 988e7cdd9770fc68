"""What the test worker and the clock return (shown in the README, run with the others)."""

from __future__ import annotations

from reports import api
from reports.jobs import FAIL_FIRST, send_email

from queueing import Queue
from queueing.testing import QueueClock, QueueWorker


def test_drain_runs_jobs_at_once_and_says_how_each_attempt_ended(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    jobs = [api.request_report(n, user_id="ada", tenant_id="acme") for n in (1, 2, 3)]
    ran = queueing_worker.drain(concurrency=3)  # any Worker option, for this drain
    assert sorted(ran.job_ids) == [job.id for job in jobs]
    assert set(ran.outcomes.values()) == {"completed"}  # each job's last outcome
    assert [(run.attempt, run.outcome) for run in ran if run.job_id == jobs[0].id] == [
        (1, "completed")
    ]


def test_advance_returns_the_jobs_that_became_due(
    queue: Queue, queueing_worker: QueueWorker, queue_clock: QueueClock
) -> None:
    FAIL_FIRST["bob@example.com"] = 1
    now = queue.enqueue(send_email, {"to": "bob@example.com"})
    later = queue.enqueue(send_email, {"to": "ada@example.com"}, delay=3600)
    assert queueing_worker.drain().outcomes == {now.id: "retry"}  # backs off 5 s
    assert queue_clock.advance(5) == [now.id]  # `later` is still 3595 s away
    assert queue_clock.advance(3600) == [later.id]
    assert queueing_worker.drain().outcomes == {now.id: "completed", later.id: "completed"}


def test_a_background_worker_says_what_it_ran(queue: Queue, queueing_worker: QueueWorker) -> None:
    with queueing_worker.background() as worker:
        job = api.request_report(4, user_id="ada", tenant_id="acme")
        queue.wait_for(job.id, timeout=10)
        assert job in worker.ran()  # so far: complete once the block has exited
    assert worker.ran().outcomes == {job.id: "completed"}
