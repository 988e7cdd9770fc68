"""The users' scenarios, written only against queueing's public API and its pytest plugin.

No worker, no status; fire-and-forget status writes racing fast jobs; tests that pass
alone and fail together; duplicates; retries, progress and cancellation with ownership.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from queueing import (
    Actor,
    InvalidTransition,
    JobContext,
    JobNotFound,
    JobRequest,
    JobStatus,
    NotAllowed,
    Queue,
)
from queueing.testing import QueueClock, QueueWorker, assert_job_status, wait_for

ADA = Actor.user("ada", "acme")
BOB = Actor.user("bob", "acme")


# --- no worker, no status ------------------------------------------------------------------


def test_a_jobs_record_is_readable_right_after_enqueue_without_a_worker(queue: Queue) -> None:
    job = queue.enqueue("generate", {"doc": 1})
    record = queue.get_job(job.id)
    assert record.status is JobStatus.PENDING
    assert record.args == {"doc": 1}
    assert record.started_at is None and record.finished_at is None
    assert [j.id for j in queue.list_jobs()] == [job.id]


def test_a_job_is_recorded_with_the_user_and_tenant_who_created_it(queue: Queue) -> None:
    job = queue.enqueue("generate", tenant_id="acme", user_id="ada")
    record = queue.get_job(job.id)
    assert (record.tenant_id, record.user_id) == ("acme", "ada")
    assert queue.list_jobs(tenant_id="acme", user_id="ada") == [record]


# --- concurrent users ----------------------------------------------------------------------


@pytest.mark.many_connections
def test_concurrent_requests_from_several_users_stay_in_their_tenant(queue: Queue) -> None:
    users = [(tenant, f"{tenant}-user-{n}") for tenant in ("acme", "globex") for n in range(5)]
    start = threading.Barrier(len(users))

    def request(owner: tuple[str, str]) -> int:
        tenant, user = owner
        with Queue(queue.database_url) as web_worker:  # one pool per web process
            start.wait(10)
            return web_worker.enqueue("generate", tenant_id=tenant, user_id=user).id

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        ids = dict(zip(users, pool.map(request, users), strict=True))
    assert len(set(ids.values())) == len(users)
    for tenant in ("acme", "globex"):
        listed = queue.list_jobs(tenant_id=tenant)
        assert sorted(j.id for j in listed) == sorted(i for (t, _), i in ids.items() if t == tenant)
        assert {j.tenant_id for j in listed} == {tenant}
    acme_job = ids[("acme", "acme-user-0")]
    with pytest.raises(JobNotFound):  # another tenant does not even see it
        queue.cancel(acme_job, actor=Actor.user("globex-user-0", "globex"))


# --- progress ------------------------------------------------------------------------------


def test_a_six_stage_job_reports_progress_after_each_stage(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    gates = [threading.Event() for _ in range(6)]

    @queue.task(name="pipeline")
    def pipeline(ctx: JobContext) -> str:
        for stage, gate in enumerate(gates, start=1):
            ctx.set_progress_sync(round(100 * stage / 6), {"stage": stage, "of": 6})
            gate.wait(30)
        return "published"

    with queueing_worker.background():
        job = queue.enqueue(pipeline)
        seen = wait_for(queue, job, JobStatus.ACTIVE)
        for stage, gate in enumerate(gates, start=1):
            while seen.progress_detail != {"stage": stage, "of": 6}:
                seen = queue.wait_for_change(seen, timeout=10)
            assert seen.status is JobStatus.ACTIVE
            assert seen.progress == round(100 * stage / 6)
            gate.set()
        done = wait_for(queue, job, JobStatus.COMPLETED)
    assert (done.progress, done.result) == (100, "published")


# --- fast jobs -----------------------------------------------------------------------------


def test_fast_jobs_never_break_their_timestamp_order(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    @queue.task(name="instant")
    def instant(n: int) -> int:
        return n

    jobs = queue.enqueue_many([JobRequest(instant, {"n": n}) for n in range(200)])
    ran = queueing_worker.drain(concurrency=20)
    assert sorted(ran.job_ids) == sorted(j.id for j in jobs)
    assert set(ran.outcomes.values()) == {"completed"}
    for record in queue.list_jobs(limit=500):
        assert record.status is JobStatus.COMPLETED
        assert record.started_at is not None and record.finished_at is not None
        assert record.created_at <= record.started_at <= record.finished_at <= record.updated_at


# --- retries -------------------------------------------------------------------------------


def test_retries_back_off_five_then_ten_seconds_without_waiting(
    queue: Queue, queueing_worker: QueueWorker, queue_clock: QueueClock
) -> None:
    @queue.task(name="upstream")  # the default policy: 3 attempts, 5 s then 10 s
    def upstream(ctx: JobContext) -> None:
        raise ConnectionError(f"upstream down (attempt {ctx.attempt})")

    job = queue.enqueue(upstream)
    for wait in (5, 10):
        assert [r.outcome for r in queueing_worker.drain()] == ["retry"]
        waiting = assert_job_status(queue, job, JobStatus.PENDING)
        assert wait - 0.5 < (waiting.scheduled_at - waiting.updated_at).total_seconds() <= wait
        assert len(queueing_worker.drain()) == 0  # not due yet: nothing runs early
        assert queue_clock.advance(wait) == [job.id]
    assert [r.outcome for r in queueing_worker.drain()] == ["failed"]
    failed = assert_job_status(queue, job, JobStatus.FAILED)
    assert failed.attempts == 3
    assert [a.outcome for a in queue.attempts(job.id)] == ["retry", "retry", "failed"]


# --- cancellation --------------------------------------------------------------------------


def test_the_owner_cancels_their_running_job(queue: Queue, queueing_worker: QueueWorker) -> None:
    @queue.task(name="long_report")
    async def long_report() -> None:
        await asyncio.Event().wait()  # runs until cancelled

    job = queue.enqueue(long_report, tenant_id="acme", user_id="ada")
    with queueing_worker.background():
        wait_for(queue, job, JobStatus.ACTIVE)
        assert queue.cancel(job.id, actor=ADA).cancel_requested
        done = wait_for(queue, job)
    assert (done.status, done.cancelled_by) == (JobStatus.CANCELLED, "user:ada")
    assert [a.outcome for a in queue.attempts(job.id)] == ["cancelled"]


def test_the_owner_cancels_their_queued_job(queue: Queue, queueing_worker: QueueWorker) -> None:
    job = queue.enqueue("generate", tenant_id="acme", user_id="ada")
    cancelled = queue.cancel(job.id, actor=ADA)
    assert (cancelled.status, cancelled.cancelled_by) == (JobStatus.CANCELLED, "user:ada")
    assert len(queueing_worker.drain()) == 0  # it never runs


def test_someone_else_may_not_cancel(queue: Queue) -> None:
    job = queue.enqueue("generate", tenant_id="acme", user_id="ada")
    with pytest.raises(NotAllowed):
        queue.cancel(job.id, actor=BOB)
    assert_job_status(queue, job, JobStatus.PENDING)


def test_a_completed_job_cannot_be_cancelled(queue: Queue, queueing_worker: QueueWorker) -> None:
    @queue.task(name="generate")
    def generate() -> str:
        return "done"

    job = queue.enqueue(generate, tenant_id="acme", user_id="ada")
    queueing_worker.drain()
    with pytest.raises(InvalidTransition):
        queue.cancel(job.id, actor=ADA)
    assert assert_job_status(queue, job, JobStatus.COMPLETED).result == "done"


def test_an_admin_cancels_any_job_of_their_tenant(queue: Queue) -> None:
    jobs = [queue.enqueue("generate", tenant_id="acme", user_id=user) for user in ("ada", "bob")]
    for job in jobs:
        cancelled = queue.cancel(job.id, actor=Actor.admin("acme"))
        assert (cancelled.status, cancelled.cancelled_by) == (JobStatus.CANCELLED, "admin:acme")


# --- duplicates ----------------------------------------------------------------------------


def test_pressing_generate_twice_returns_the_job_already_there(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    release = threading.Event()

    @queue.task(name="generate")
    def generate(doc: int) -> int:
        release.wait(30)
        return doc

    def press() -> int:
        job = queue.enqueue(
            generate, {"doc": 7}, tenant_id="acme", user_id="ada", dedupe_key="doc-7"
        )
        return job.id

    first = press()
    assert press() == first  # pending: the same job
    with queueing_worker.background():
        wait_for(queue, first, JobStatus.ACTIVE)
        assert press() == first  # running: still the same job
        release.set()
        wait_for(queue, first, JobStatus.COMPLETED)
    assert len(queue.list_jobs(tenant_id="acme")) == 1
