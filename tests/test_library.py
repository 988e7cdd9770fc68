"""§2: the library API, sync and async, against a real database."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import psycopg
import pytest
from pydantic import BaseModel

from queueing import (
    InvalidPayload,
    InvalidTransition,
    JobFilter,
    JobNotFound,
    JobRequest,
    JobStatus,
    Queue,
    RetryPolicy,
    UnknownTask,
    WaitTimeout,
)
from queueing.testing import drain, drain_async


class Invoice(BaseModel):
    customer: str
    amount_cents: int


def test_pydantic_payload_is_validated_at_enqueue_and_rebuilt_for_the_handler(queue: Queue) -> None:
    received: list[Invoice] = []

    @queue.task(name="bill")
    def bill(invoice: Invoice) -> int:
        received.append(invoice)
        return invoice.amount_cents

    job = queue.enqueue(bill, Invoice(customer="acme", amount_cents=1200))
    assert job.args == {"invoice": {"customer": "acme", "amount_cents": 1200}}
    with pytest.raises(InvalidPayload, match="amount_cents"):
        queue.enqueue(bill, {"invoice": {"customer": "acme", "amount_cents": "lots"}})
    with pytest.raises(InvalidPayload, match="Extra inputs"):
        queue.enqueue("bill", {"invoice": {"customer": "a", "amount_cents": 1}, "extra": 1})
    assert [j.id for j in queue.list_jobs()] == [job.id]  # the bad ones wrote nothing
    drain(queue)
    assert received == [Invoice(customer="acme", amount_cents=1200)]
    assert queue.get_job(job.id).result == 1200


def test_unknown_task_is_refused_when_the_registry_is_known(queue: Queue) -> None:
    @queue.task(name="known")
    def known() -> None:
        return None

    with pytest.raises(UnknownTask, match="unknown task 'nope'"):
        queue.enqueue("nope")
    assert queue.list_jobs() == []


def test_unknown_task_fails_with_a_clear_error_at_the_worker(queue: Queue) -> None:
    producer = Queue(queue.database_url)  # a producer that knows no tasks
    job = producer.enqueue("not.declared.anywhere")
    producer.close()

    @queue.task(name="other")
    def other() -> None:
        return None

    drain(queue)
    failed = queue.get_job(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.type == "UnknownTask"
    assert "not.declared.anywhere" in failed.error.message


def test_enqueue_many_is_all_or_nothing(queue: Queue) -> None:
    @queue.task(name="square")
    def square(n: int) -> int:
        return n * n

    with pytest.raises(InvalidPayload):
        queue.enqueue_many([JobRequest(square, {"n": 1}), JobRequest(square, {"n": "x"})])
    assert queue.list_jobs() == []
    jobs = queue.enqueue_many(JobRequest(square, {"n": n}, user_id=f"u{n}") for n in range(5))
    assert [j.args["n"] for j in jobs] == [0, 1, 2, 3, 4]
    assert [j.user_id for j in jobs] == ["u0", "u1", "u2", "u3", "u4"]
    assert queue.enqueue_many([]) == []


def test_results_and_errors_are_stored(queue: Queue) -> None:
    @queue.task(name="divide", retry=1)
    def divide(a: int, b: int) -> float:
        return a / b

    ok = queue.enqueue(divide, {"a": 1, "b": 4})
    bad = queue.enqueue(divide, {"a": 1, "b": 0})
    drain(queue)
    assert queue.get_job(ok.id).result == 0.25
    failed = queue.get_job(bad.id)
    assert failed.status is JobStatus.FAILED
    assert failed.result is None
    assert failed.error is not None
    assert failed.error.type == "ZeroDivisionError"
    assert failed.error.message == "division by zero"
    assert failed.error.traceback is not None and "a / b" in failed.error.traceback


def test_list_filters_and_keyset_pagination(queue: Queue) -> None:
    for n in range(7):
        queue.enqueue(
            "t.a" if n % 2 else "t.b", {"n": n}, tenant_id=f"org{n % 2}", user_id=f"u{n % 3}"
        )
    newest_first = [j.id for j in queue.list_jobs()]
    assert newest_first == sorted(newest_first, reverse=True)
    page1 = queue.list_jobs(limit=3)
    page2 = queue.list_jobs(limit=3, before_id=page1[-1].id)
    page3 = queue.list_jobs(limit=3, before_id=page2[-1].id)
    assert [j.id for j in page1 + page2 + page3] == newest_first
    assert {j.task_name for j in queue.list_jobs(task="t.a")} == {"t.a"}
    assert {j.tenant_id for j in queue.list_jobs(tenant_id="org0")} == {"org0"}
    assert {(j.tenant_id, j.user_id) for j in queue.list_jobs(tenant_id="org1", user_id="u1")} == {
        ("org1", "u1")
    }
    assert queue.list_jobs(JobFilter(statuses=[JobStatus.ACTIVE])) == []
    now = dt.datetime.now(dt.UTC)
    assert len(queue.list_jobs(created_before=now + dt.timedelta(seconds=5))) == 7
    assert queue.list_jobs(created_after=now + dt.timedelta(seconds=5)) == []


def test_wait_for_is_woken_by_the_worker_and_times_out_otherwise(queue: Queue) -> None:
    release = threading.Event()

    @queue.task(name="gate")
    def gate() -> str:
        release.wait(30)
        return "through"

    job = queue.enqueue(gate)
    with pytest.raises(WaitTimeout, match="still pending"):
        queue.wait_for(job.id, timeout=0.2)
    worker = threading.Thread(target=drain, args=(queue,))
    worker.start()
    try:
        assert queue.wait_for(job.id, [JobStatus.ACTIVE], timeout=20).status is JobStatus.ACTIVE
        release.set()
        done = queue.wait_for(job.id, timeout=20)
    finally:
        release.set()
        worker.join()
    assert done.status is JobStatus.COMPLETED
    assert done.result == "through"
    with pytest.raises(JobNotFound):
        queue.wait_for(999_999, timeout=1)


def test_delay_and_run_at_and_run_now(queue: Queue) -> None:
    @queue.task(name="later")
    def later() -> str:
        return "ran"

    delayed = queue.enqueue(later, delay=3600)
    at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    scheduled = queue.enqueue(later, run_at=at)
    assert delayed.scheduled_at - delayed.created_at >= dt.timedelta(seconds=3599)
    assert scheduled.scheduled_at == at
    assert drain(queue).claimed == 0  # nothing due
    queue.run_now(delayed.id)
    assert drain(queue).claimed == 1
    assert queue.get_job(delayed.id).status is JobStatus.COMPLETED
    assert queue.get_job(scheduled.id).status is JobStatus.PENDING
    with pytest.raises(InvalidTransition, match="completed"):
        queue.run_now(delayed.id)
    with pytest.raises(InvalidPayload, match="not both"):
        queue.enqueue(later, delay=1, run_at=at)
    with pytest.raises(InvalidPayload, match="between 0 and 3650 days"):
        queue.enqueue(later, delay=-1)


def test_priority_orders_claims(queue: Queue) -> None:
    order: list[int] = []

    @queue.task(name="record")
    def record(n: int) -> None:
        order.append(n)

    for n, priority in enumerate([0, 5, -3, 10, 5]):
        queue.enqueue(record, {"n": n}, priority=priority)
    drain(queue, concurrency=1)
    assert order == [3, 1, 4, 0, 2]  # higher priority first, then oldest


def test_queues_route_jobs_to_the_workers_that_serve_them(queue: Queue) -> None:
    @queue.task(name="mail", queue="emails")
    def mail() -> None:
        return None

    emails = queue.enqueue(mail)
    reports = queue.enqueue(mail, queue="reports")
    assert drain(queue, queues=["emails"]).claimed == 1
    assert queue.get_job(emails.id).status is JobStatus.COMPLETED
    assert queue.get_job(reports.id).status is JobStatus.PENDING
    with pytest.raises(InvalidPayload, match="invalid queue name"):
        queue.enqueue(mail, queue="bad;name")


def test_cancel_pending_and_refuse_terminal(queue: Queue) -> None:
    job = queue.enqueue("anything")
    cancelled = queue.cancel(job.id)
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.finished_at is not None
    with pytest.raises(InvalidTransition, match="is cancelled"):
        queue.cancel(job.id)
    with pytest.raises(JobNotFound):
        queue.cancel(424242)
    retried = queue.retry(job.id)
    assert retried.status is JobStatus.PENDING
    assert retried.finished_at is None


def test_cancel_an_active_async_job_stops_it(queue: Queue) -> None:
    started = threading.Event()

    @queue.task(name="forever")
    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    job = queue.enqueue(forever)
    worker = threading.Thread(target=drain, args=(queue,))
    worker.start()
    try:
        queue.wait_for(job.id, [JobStatus.ACTIVE], timeout=20)
        asked = queue.cancel(job.id)
        assert asked.status is JobStatus.ACTIVE and asked.cancel_requested
        # Asking twice is fine while it runs. The worker may have stopped it already (it
        # reacts to the first ask within milliseconds): then the second ask is refused as
        # for any cancelled job.
        try:
            again = queue.cancel(job.id)
        except InvalidTransition:
            assert queue.get_job(job.id).status is JobStatus.CANCELLED
        else:
            assert again.status is JobStatus.ACTIVE and again.cancel_requested
        done = queue.wait_for(job.id, timeout=20)
    finally:
        worker.join()
    assert done.status is JobStatus.CANCELLED
    assert done.result is None
    assert done.error is not None and done.error.type == "Cancelled"


def test_retry_reruns_a_failed_job_with_the_same_id(queue: Queue) -> None:
    calls: list[int] = []

    @queue.task(name="once_bad", retry=RetryPolicy(max_attempts=1))
    def once_bad() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first time")
        return "second time"

    job = queue.enqueue(once_bad)
    drain(queue)
    assert queue.get_job(job.id).status is JobStatus.FAILED
    with pytest.raises(InvalidTransition, match="failed or cancelled"):
        queue.retry(queue.enqueue(once_bad, delay=60).id)
    queue.retry(job.id)
    drain(queue)
    done = queue.get_job(job.id)
    assert (done.status, done.result, done.attempts) == (JobStatus.COMPLETED, "second time", 2)


async def test_async_api_shares_the_same_behaviour(queue: Queue) -> None:
    @queue.task(name="double")
    async def double(n: int) -> int:
        return 2 * n

    aio = queue.aio
    job = await aio.enqueue(double, {"n": 21}, tenant_id="t")
    many = await aio.enqueue_many([JobRequest(double, {"n": n}) for n in range(3)])
    async with await psycopg.AsyncConnection.connect(queue.database_url) as conn:
        await aio.enqueue(double, {"n": 1}, connection=conn)
        await conn.rollback()
    assert len(await aio.list_jobs()) == 4
    await drain_async(queue)
    done = await aio.wait_for(job.id, timeout=5)
    assert (done.status, done.result) == (JobStatus.COMPLETED, 42)
    assert [(await aio.get_job(j.id)).result for j in many] == [0, 2, 4]
    with pytest.raises(InvalidPayload):
        await aio.enqueue(double, {"n": "nope"})
    with pytest.raises(JobNotFound):
        await aio.get_job(10**9)
    counts = await aio.stats()
    assert [(c.status, c.count) for c in counts] == [(JobStatus.COMPLETED, 4)]
    await aio.close()


def test_priority_out_of_range_is_refused_before_any_write(queue: Queue) -> None:
    with pytest.raises(InvalidPayload, match="priority must be between"):
        queue.enqueue("anything", priority=2**31)
    assert queue.list_jobs() == []


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ({"blob": "x" * (256 * 1024)}, {}, "the limit is 262144"),
        (
            {"deep": __import__("functools").reduce(lambda acc, _: [acc], range(40), 0)},
            {},
            "deeper",
        ),
        ({"text": "a\x00b"}, {}, "NUL"),
        ({"n": float("nan")}, {}, "not JSON"),
        ({}, {"tenant_id": "t" * 257}, "tenant_id must be 1 to 256"),
        ({}, {"user_id": ""}, "user_id must be 1 to 256"),
        ({}, {"dedupe_key": "k" * 257}, "dedupe_key must be 1 to 256"),
    ],
)
def test_hostile_input_is_refused_and_writes_nothing(
    queue: Queue, args: dict[str, object], kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidPayload, match=message):
        queue.enqueue("anything", args, **kwargs)  # type: ignore[arg-type]
    assert queue.list_jobs() == []


def test_emoji_and_right_to_left_text_round_trip(queue: Queue) -> None:
    text = "🎉 مرحبا بالعالم — שלום 👩🏽‍💻"
    job = queue.enqueue("anything", {"text": text}, tenant_id="מרחב", user_id="用户🙂")
    stored = queue.get_job(job.id)
    assert stored.args == {"text": text}
    assert (stored.tenant_id, stored.user_id) == ("מרחב", "用户🙂")


def test_the_longest_queue_name_still_fits_a_listen_channel(queue: Queue) -> None:
    @queue.task(name="long_queue_task")
    def long_queue_task() -> str:
        return "ran"

    name = "q" * 40
    job = queue.enqueue(long_queue_task, queue=name)  # its insert hint names the channel
    assert drain(queue, queues=[name]).claimed == 1
    assert queue.get_job(job.id).result == "ran"
    with pytest.raises(InvalidPayload, match="1-40"):
        queue.enqueue(long_queue_task, queue="q" * 41)
