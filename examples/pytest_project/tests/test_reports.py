"""A user's tests: only the plugin's fixtures and queueing.testing's helpers."""

from __future__ import annotations

import pytest
from reports import api
from reports.jobs import FAIL_FIRST, send_email

from queueing import Job, JobStatus, Queue
from queueing.testing import QueueClock, QueueWorker, assert_job_status, wait_for


@pytest.fixture(autouse=True)
def _no_outage() -> None:
    FAIL_FIRST.clear()


def test_a_report_is_visible_as_soon_as_it_is_requested(queue: Queue) -> None:
    job = api.request_report(7, user_id="ada", tenant_id="acme")
    assert queue.get_job(job.id).status is JobStatus.PENDING


def test_a_report_runs_its_six_stages(queue: Queue, queueing_worker: QueueWorker) -> None:
    job = api.request_report(7, user_id="ada", tenant_id="acme")
    ran = queueing_worker.drain()
    assert ran.job_ids == [job.id]
    done = assert_job_status(queue, job, JobStatus.COMPLETED)
    assert done.result == {"report_id": 7, "stages": 6}
    assert done.progress == 100


def test_generate_twice_returns_the_same_job(queue: Queue) -> None:
    first = api.request_report(7, user_id="ada", tenant_id="acme")
    second = api.request_report(7, user_id="ada", tenant_id="acme")
    assert (second.id, second.created) == (first.id, False)
    assert len(queue.list_jobs()) == 1


def test_email_is_retried_with_backoff_without_waiting(
    queue: Queue, queueing_worker: QueueWorker, queue_clock: QueueClock
) -> None:
    FAIL_FIRST["bob@example.com"] = 2
    job = queue.enqueue(send_email, {"to": "bob@example.com"})
    assert [r.outcome for r in queueing_worker.drain()] == ["retry"]
    assert queueing_worker.drain().runs == ()  # backing off: nothing is due
    queue_clock.advance(5)
    assert [r.outcome for r in queueing_worker.drain()] == ["retry"]
    queue_clock.advance(10)
    assert [r.outcome for r in queueing_worker.drain()] == ["completed"]
    done = assert_job_status(queue, job, JobStatus.COMPLETED)
    assert (done.attempts, done.result) == (3, "sent to bob@example.com")


def test_a_worker_in_the_background(queue: Queue, queueing_worker: QueueWorker) -> None:
    with queueing_worker.background() as worker:
        job = api.request_report(8, user_id="ada", tenant_id="acme")
        done: Job = wait_for(queue, job, JobStatus.COMPLETED)
    assert done.worker_id == worker.worker_id
    assert job in worker.ran()
