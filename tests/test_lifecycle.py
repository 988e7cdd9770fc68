"""Job lifecycle rules enforced in PostgreSQL: dedupe, cancel with ownership, history."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from queueing import (
    Actor,
    InvalidPayload,
    InvalidTransition,
    JobNotFound,
    JobRequest,
    JobStatus,
    NotAllowed,
    Queue,
    RetryPolicy,
)
from queueing.testing import drain

# --- deduplication ----------------------------------------------------------------------


def test_a_live_key_returns_the_existing_job(queue: Queue) -> None:
    first = queue.enqueue("generate", {"doc": 1}, tenant_id="acme", dedupe_key="doc-1")
    again = queue.enqueue("generate", {"doc": 1}, tenant_id="acme", dedupe_key="doc-1")
    assert first.created is True
    assert again.created is False
    assert again.id == first.id
    other_tenant = queue.enqueue("generate", {"doc": 1}, tenant_id="globex", dedupe_key="doc-1")
    assert other_tenant.created is True
    assert other_tenant.id != first.id
    assert len(queue.list_jobs()) == 2
    assert queue.get_job(first.id).created is None  # only enqueue says whether it created


def test_a_key_covers_active_jobs_and_is_free_once_terminal(queue: Queue) -> None:
    release = threading.Event()

    @queue.task(name="generate")
    def generate() -> str:
        release.wait(30)
        return "done"

    job = queue.enqueue(generate, dedupe_key="k")
    worker = threading.Thread(target=drain, args=(queue,))
    worker.start()
    try:
        queue.wait_for(job.id, [JobStatus.ACTIVE], timeout=20)
        while_active = queue.enqueue(generate, dedupe_key="k")
        assert (while_active.id, while_active.created) == (job.id, False)
        release.set()
        queue.wait_for(job.id, timeout=20)
    finally:
        release.set()
        worker.join()
    after = queue.enqueue(generate, dedupe_key="k")
    assert after.created is True
    assert after.id != job.id


def test_dedupe_for_covers_a_window_after_completion(queue: Queue) -> None:
    @queue.task(name="digest")
    def digest() -> None:
        return None

    job = queue.enqueue(digest, dedupe_key="hourly", dedupe_for=3600)
    drain(queue)
    again = queue.enqueue(digest, dedupe_key="hourly", dedupe_for=3600)
    assert (again.id, again.created, again.status) == (job.id, False, JobStatus.COMPLETED)
    # An hour later (made by moving the finish time back, not by waiting): free again.
    with psycopg.connect(queue.database_url) as conn:
        conn.execute(
            "UPDATE procrastinate_jobs SET finished_at = finished_at - interval '61 minutes', "
            "started_at = started_at - interval '61 minutes', "
            "created_at = created_at - interval '61 minutes' WHERE id = %s",
            [job.id],
        )
    later = queue.enqueue(digest, dedupe_key="hourly", dedupe_for=3600)
    assert later.created is True


@pytest.mark.many_connections
def test_fifty_concurrent_clients_get_one_job(queue: Queue) -> None:
    url = queue.database_url
    start = threading.Barrier(50)

    def client(n: int) -> tuple[int, bool | None]:
        # Each client has its own pool, as separate web workers would: of one connection,
        # so that the fifty stay well under the server's connection limit.
        with Queue(url, pool_size=1) as q:
            start.wait(10)
            job = q.enqueue("generate", {"by": n}, tenant_id="acme", dedupe_key="report-42")
            return job.id, job.created

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(client, range(50)))
    ids = {job_id for job_id, _ in results}
    assert len(ids) == 1
    assert Counter(created for _, created in results) == {False: 49, True: 1}
    assert len(queue.list_jobs()) == 1


def test_duplicates_within_one_batch_return_the_same_job(queue: Queue) -> None:
    jobs = queue.enqueue_many(
        [
            JobRequest("a", dedupe_key="x"),
            JobRequest("b"),
            JobRequest("a", dedupe_key="x"),
            JobRequest("c"),
        ]
    )
    assert [j.task_name for j in jobs] == ["a", "b", "a", "c"]
    assert [j.created for j in jobs] == [True, True, False, True]
    assert jobs[0].id == jobs[2].id
    assert len(queue.list_jobs()) == 3


# --- cancellation with ownership ----------------------------------------------------------

ADA = Actor.user("ada", "acme")
BOB = Actor.user("bob", "acme")
EVE = Actor.user("eve", "globex")


def test_owner_cancels_their_queued_job_and_the_record_says_who(queue: Queue) -> None:
    job = queue.enqueue("generate", tenant_id="acme", user_id="ada")
    cancelled = queue.cancel(job.id, actor=ADA)
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.cancelled_by == "user:ada"
    assert cancelled.cancelled_at is not None


def test_another_user_is_not_allowed_and_another_tenant_sees_nothing(queue: Queue) -> None:
    job = queue.enqueue("generate", tenant_id="acme", user_id="ada")
    with pytest.raises(NotAllowed, match="not allowed to cancel"):
        queue.cancel(job.id, actor=BOB)
    with pytest.raises(JobNotFound):
        queue.cancel(job.id, actor=EVE)
    with pytest.raises(JobNotFound):
        queue.cancel(job.id, actor=Actor.admin("globex"))
    untouched = queue.get_job(job.id)
    assert untouched.status is JobStatus.PENDING
    assert untouched.cancelled_by is None


def test_admin_cancels_any_job_of_the_tenant_and_system_any_job(queue: Queue) -> None:
    mine = queue.enqueue("generate", tenant_id="acme", user_id="ada")
    other = queue.enqueue("generate", tenant_id="globex", user_id="eve")
    assert queue.cancel(mine.id, actor=Actor.admin("acme")).cancelled_by == "admin:acme"
    assert queue.cancel(other.id).cancelled_by == "system"


def test_an_operator_cancels_and_retries_any_job_and_is_recorded_by_name(
    queue: Queue,
) -> None:
    ada = Actor.operator("ada")
    job = queue.enqueue("generate", tenant_id="globex", user_id="eve")
    cancelled = queue.cancel(job.id, actor=ada)
    assert (cancelled.status, cancelled.cancelled_by) == (JobStatus.CANCELLED, "operator:ada")
    assert queue.get_job(job.id).cancelled_by_actor == ada
    retried = queue.retry(job.id, actor=ada)  # the system's rights; a retry records no one
    assert (retried.status, retried.cancelled_by) == (JobStatus.PENDING, None)
    with pytest.raises(InvalidTransition):
        queue.retry(job.id, actor=ada)


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "operator name must be 1 to 256"), ("a" * 257, "1 to 256"), ("a\x00b", "NUL")],
)
def test_an_operators_name_is_checked_as_an_id(name: str, message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        Actor.operator(name)


async def test_an_operator_cancels_an_active_job_through_the_async_api(queue: Queue) -> None:
    job = queue.enqueue("generate")
    with psycopg.connect(queue.database_url, autocommit=True) as conn:
        conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", [job.id])
    try:
        stopping = await queue.aio.cancel(job.id, actor=Actor.operator("grace:hopper"))
    finally:
        # Its pool's tasks must not outlive the test's loop: left to the loop's teardown,
        # their cancellation hung an xdist worker once (a full run; the server had closed
        # one of its connections).
        await queue.aio.close()
    assert (stopping.cancel_requested, stopping.cancelled_by) == (True, "operator:grace:hopper")
    assert stopping.cancelled_by_actor == Actor.operator("grace:hopper")


def test_a_completed_job_cannot_be_cancelled(queue: Queue) -> None:
    @queue.task(name="generate")
    def generate() -> str:
        return "done"

    job = queue.enqueue(generate, tenant_id="acme", user_id="ada")
    drain(queue)
    with pytest.raises(InvalidTransition, match="is completed"):
        queue.cancel(job.id, actor=ADA)
    assert queue.get_job(job.id).result == "done"


def test_owner_cancels_their_running_job(queue: Queue) -> None:
    @queue.task(name="generate")
    async def generate() -> None:
        await asyncio.Event().wait()

    job = queue.enqueue(generate, tenant_id="acme", user_id="ada")
    worker = threading.Thread(target=drain, args=(queue,))
    worker.start()
    try:
        queue.wait_for(job.id, [JobStatus.ACTIVE], timeout=20)
        asked = queue.cancel(job.id, actor=ADA)
        assert asked.cancel_requested
        done = queue.wait_for(job.id, timeout=20)
    finally:
        worker.join()
    assert done.status is JobStatus.CANCELLED
    assert done.result is None
    assert done.cancelled_by == "user:ada"
    assert [a.outcome for a in queue.attempts(job.id)] == ["cancelled"]


def test_retry_is_for_admins_and_the_system(queue: Queue) -> None:
    job = queue.enqueue("generate", tenant_id="acme", user_id="ada")
    queue.cancel(job.id)
    with pytest.raises(NotAllowed, match="not allowed to retry"):
        queue.retry(job.id, actor=ADA)
    with pytest.raises(JobNotFound):
        queue.retry(job.id, actor=Actor.admin("globex"))
    retried = queue.retry(job.id, actor=Actor.admin("acme"))
    assert retried.status is JobStatus.PENDING
    assert retried.cancelled_by is None


def test_cancel_racing_completion_ends_one_way_or_the_other(queue: Queue) -> None:
    """1,000 jobs, each cancelled within milliseconds of its end: completed with its result
    or cancelled without one, never both, and the status always matches the queue state."""
    gates = {n: threading.Event() for n in range(1000)}

    @queue.task(name="racer")
    def racer(n: int) -> int:
        gates[n].wait(10)
        return n

    jobs = queue.enqueue_many([JobRequest(racer, {"n": n}) for n in range(1000)])
    worker = threading.Thread(target=drain, args=(queue,), kwargs={"concurrency": 20})
    worker.start()
    try:
        for n, job in enumerate(jobs):
            queue.wait_for(job.id, [JobStatus.ACTIVE], timeout=30)
            # Half end just before the cancel arrives, half just after it.
            if n % 2:
                gates[n].set()
                _cancel_quietly(queue, job.id)
            else:
                _cancel_quietly(queue, job.id)
                gates[n].set()
    finally:
        for gate in gates.values():
            gate.set()
        worker.join()
    outcomes = {"completed": 0, "cancelled": 0}
    with psycopg.connect(queue.database_url) as conn:
        rows = conn.execute(
            "SELECT v.status, v.result, j.abort_requested, j.status::text "
            "FROM queueing_jobs AS v JOIN procrastinate_jobs AS j ON j.id = v.id"
        ).fetchall()
    assert len(rows) == 1000
    for status, result, abort_requested, queue_state in rows:
        assert not abort_requested
        if status == "completed":
            assert queue_state == "succeeded"
            assert result is not None
        else:
            assert status == "cancelled"
            assert queue_state == "aborted"
            assert result is None
        outcomes[status] += 1
    assert sum(outcomes.values()) == 1000
    print(f"cancel racing completion: {outcomes}")  # noqa: T201


def _cancel_quietly(queue: Queue, job_id: int) -> None:
    """Cancel; a job that already completed refuses, which is one of the allowed endings."""
    with contextlib.suppress(InvalidTransition):
        queue.cancel(job_id)


# --- attempt history ----------------------------------------------------------------------


def test_every_attempt_keeps_a_row_of_history(queue: Queue) -> None:
    @queue.task(name="shaky", retry=RetryPolicy(max_attempts=3, delay=0))
    def shaky(n: int) -> int:
        if queue.get_job(current[0]).attempts < 3:
            raise ConnectionError("try again")
        return n

    current: list[int] = []
    job = queue.enqueue(shaky, {"n": 7})
    current.append(job.id)
    drain(queue)
    done = queue.get_job(job.id)
    assert (done.status, done.result, done.attempts) == (JobStatus.COMPLETED, 7, 3)
    history = queue.attempts(job.id)
    assert [(a.attempt, a.outcome) for a in history] == [
        (1, "retry"),
        (2, "retry"),
        (3, "completed"),
    ]
    assert all(a.worker_id is not None for a in history)
    assert history[0].error is not None and history[0].error.type == "ConnectionError"
    assert history[2].error is None
    for a in history:
        assert a.started_at is not None and a.started_at <= a.finished_at
    with pytest.raises(JobNotFound):
        queue.attempts(10**9)
