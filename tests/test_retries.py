"""Retries with backoff: the job waits as pending with its next run time."""

from __future__ import annotations

import datetime as dt

import pytest

from queueing import Backoff, JobContext, JobStatus, Queue, RetryPolicy
from queueing.testing import drain


def test_default_policy_is_three_attempts_with_exponential_backoff(queue: Queue) -> None:
    attempts: list[int] = []

    @queue.task(name="always_fails")
    def always_fails(ctx: JobContext) -> None:
        attempts.append(ctx.attempt)
        raise ConnectionError(f"upstream down (attempt {ctx.attempt})")

    job = queue.enqueue(always_fails)
    assert job.max_attempts == 3
    waits = []
    for expected_wait in (5, 10):
        drain(queue)
        waiting = queue.get_job(job.id)
        # Waiting for the next attempt: pending, with its run time and the last error.
        assert waiting.status is JobStatus.PENDING
        assert waiting.finished_at is None
        assert waiting.error is not None and waiting.error.type == "ConnectionError"
        assert waiting.started_at is not None
        wait = (waiting.scheduled_at - waiting.updated_at).total_seconds()
        assert expected_wait - 0.5 < wait <= expected_wait
        waits.append(expected_wait)
        assert drain(queue).claimed == 0  # not due yet: nothing runs early
        queue.run_now(job.id)  # move the clock for this job instead of waiting
    drain(queue)
    failed = queue.get_job(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.attempts == 3
    assert attempts == [1, 2, 3]
    assert failed.error is not None and failed.error.message == "upstream down (attempt 3)"


def test_flaky_job_succeeds_on_a_later_attempt(queue: Queue) -> None:
    @queue.task(name="flaky", retry=RetryPolicy(max_attempts=4, delay=0))
    def flaky(ctx: JobContext) -> int:
        if ctx.attempt < 3:
            raise TimeoutError("try again")
        return ctx.attempt

    job = queue.enqueue(flaky)
    drain(queue)
    done = queue.get_job(job.id)
    assert (done.status, done.result, done.attempts, done.error) == (
        JobStatus.COMPLETED,
        3,
        3,
        None,
    )


def test_only_listed_exceptions_retry(queue: Queue) -> None:
    @queue.task(name="picky", retry=RetryPolicy(max_attempts=5, delay=0, retry_on=(TimeoutError,)))
    def picky() -> None:
        raise ValueError("not retryable")

    job = queue.enqueue(picky)
    drain(queue)
    failed = queue.get_job(job.id)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)


def test_a_timeout_fails_the_attempt(queue: Queue) -> None:
    @queue.task(name="slow", timeout=0.05, retry=1)
    async def slow() -> None:
        import asyncio

        await asyncio.Event().wait()

    job = queue.enqueue(slow)
    drain(queue)
    failed = queue.get_job(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.type == "TimeoutError"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (RetryPolicy(), [5, 10, 20, 40]),
        (RetryPolicy(backoff=Backoff.LINEAR, delay=2), [2, 4, 6, 8]),
        (RetryPolicy(backoff=Backoff.CONSTANT, delay=3), [3, 3, 3, 3]),
        (RetryPolicy(delay=5, max_delay=12), [5, 10, 12, 12]),
    ],
)
def test_backoff_shapes(policy: RetryPolicy, expected: list[float]) -> None:
    assert [policy.delay_after(n) for n in range(1, 5)] == expected


def test_jitter_stays_within_its_bounds() -> None:
    policy = RetryPolicy(delay=10, jitter=0.2)
    for _ in range(200):
        assert 8 <= policy.delay_after(1) <= 12


def test_job_keeps_the_attempt_limit_it_was_enqueued_with(queue: Queue) -> None:
    job = queue.enqueue("anything")
    assert job.max_attempts == 3
    assert queue.get_job(job.id).scheduled_at == job.created_at
    assert job.scheduled_at - job.created_at < dt.timedelta(seconds=1)
