"""Wait for jobs and assert on them, with failure messages that show the whole story:
the job's record and its attempt history."""

from __future__ import annotations

from collections.abc import Collection

from queueing.errors import WaitTimeout
from queueing.models import TERMINAL_STATUSES, Attempt, Job, JobStatus
from queueing.queue import AsyncQueue, Queue

JobRef = Job | int
"""A job record or a job id."""

DEFAULT_TIMEOUT = 10.0


class JobWaitTimeout(WaitTimeout, AssertionError):
    """``wait_for``'s timeout: the job did not reach the awaited status in time.

    Both a ``WaitTimeout`` (what ``Queue.wait_for`` raises, so ``except WaitTimeout``
    and ``pytest.raises(WaitTimeout)`` catch both alike) and an ``AssertionError`` (so
    pytest reports a test failure, not an error in the code under test). Its message
    is the job's record and attempt history; ``job`` is that record, ``history`` the
    attempts.
    """

    def __init__(self, message: str, job: Job, history: Collection[Attempt]) -> None:
        super().__init__(message)
        self.job = job
        self.history = tuple(history)


def job_id_of(job: JobRef) -> int:
    """The id of a job record, or the id itself."""
    return job.id if isinstance(job, Job) else job


def describe(job: Job, history: Collection[Attempt]) -> str:
    """A job's record and attempt history, as assertion messages show them."""
    fields = job.model_dump(mode="json", exclude={"created", "error"}, exclude_none=True)
    lines = [f"job {job.id} ({job.task_name}):"]
    lines += [f"    {name}: {value!r}" for name, value in fields.items()]
    if job.error is not None:
        lines.append(f"    error: {job.error.type}: {job.error.message}")
    lines.append("  attempts:")
    if not history:
        lines.append("    (none finished)")
    for a in history:
        error = f" - {a.error.type}: {a.error.message}" if a.error else ""
        lines.append(f"    #{a.attempt} on worker {a.worker_id}: {a.outcome}{error}")
    if job.error is not None and job.error.traceback:
        lines.append("  last error's traceback:")
        lines += [f"    {line}" for line in job.error.traceback.rstrip().splitlines()]
    return "\n".join(lines)


def describe_job(queue: Queue, job: JobRef) -> str:
    """The current record and attempt history of ``job``, formatted for a message."""
    job_id = job_id_of(job)
    return describe(queue.get_job(job_id), queue.attempts(job_id))


async def describe_job_async(queue: AsyncQueue, job: JobRef) -> str:
    """``describe_job`` for ``queue.aio``."""
    job_id = job_id_of(job)
    return describe(await queue.get_job(job_id), await queue.attempts(job_id))


def _wanted(statuses: Collection[JobStatus]) -> frozenset[JobStatus]:
    return frozenset(statuses) or TERMINAL_STATUSES


def _expected(statuses: Collection[JobStatus]) -> str:
    return " or ".join(sorted(str(s) for s in statuses))


def _status_line(job: Job) -> str:
    error = f": {job.error.type}: {job.error.message}" if job.error is not None else ""
    return f"job {job.id} is {job.status}{error}"


def _mismatch(job: Job, history: Collection[Attempt], wanted: Collection[JobStatus]) -> str:
    return f"expected {_expected(wanted)}, {_status_line(job)}\n{describe(job, history)}"


def assert_job_status(queue: Queue, job: JobRef, *statuses: JobStatus) -> Job:
    """Assert the job is now in one of ``statuses``; returns its current record.

    The failure message reads "expected completed, job 42 is failed: ValueError: ..."
    followed by the record and the attempt history.
    """
    wanted = _wanted(statuses)
    current = queue.get_job(job_id_of(job))
    if current.status not in wanted:
        raise AssertionError(_mismatch(current, queue.attempts(current.id), wanted))
    return current


async def assert_job_status_async(queue: AsyncQueue, job: JobRef, *statuses: JobStatus) -> Job:
    """``assert_job_status`` for ``queue.aio``."""
    wanted = _wanted(statuses)
    current = await queue.get_job(job_id_of(job))
    if current.status not in wanted:
        raise AssertionError(_mismatch(current, await queue.attempts(current.id), wanted))
    return current


def wait_for(
    queue: Queue, job: JobRef, *statuses: JobStatus, timeout: float = DEFAULT_TIMEOUT
) -> Job:
    """Block until the job is in one of ``statuses`` (default: any terminal one).

    Woken by the database's notifications (LISTEN/NOTIFY), never by polling or sleeping.
    After ``timeout`` seconds it raises ``JobWaitTimeout`` (a ``WaitTimeout`` and an
    ``AssertionError``: the test fails) whose message shows the job's record and
    history. A job that does not exist raises ``JobNotFound`` at once.
    """
    wanted = _wanted(statuses)
    job_id = job_id_of(job)
    try:
        return queue.wait_for(job_id, wanted, timeout=timeout)
    except WaitTimeout:
        pass
    # Raised outside the `except`: the library's WaitTimeout is the same news, and
    # chaining it would print the failure twice.
    current = queue.get_job(job_id)
    raise _timed_out(timeout, current, queue.attempts(job_id), wanted)


async def wait_for_async(
    queue: AsyncQueue, job: JobRef, *statuses: JobStatus, timeout: float = DEFAULT_TIMEOUT
) -> Job:
    """``wait_for`` for ``queue.aio`` (``JobWaitTimeout`` likewise)."""
    wanted = _wanted(statuses)
    job_id = job_id_of(job)
    try:
        return await queue.wait_for(job_id, wanted, timeout=timeout)
    except WaitTimeout:
        pass
    current = await queue.get_job(job_id)
    raise _timed_out(timeout, current, await queue.attempts(job_id), wanted)


def _timed_out(
    timeout: float, job: Job, history: Collection[Attempt], wanted: Collection[JobStatus]
) -> JobWaitTimeout:
    return JobWaitTimeout(f"waited {timeout:g}s: {_mismatch(job, history, wanted)}", job, history)
