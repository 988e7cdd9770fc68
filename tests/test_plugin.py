"""The pytest plugin: fixtures, helpers, and a user's project run with ``-n 4``."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import psycopg
import pytest

from queueing import AsyncQueue, JobStatus, Queue, QueueingError, RetryPolicy
from queueing.testing import (
    QueueClock,
    QueueWorker,
    assert_job_status,
    assert_job_status_async,
    databases,
    wait_for,
    wait_for_async,
)
from queueing.testing.measure_isolation import rollback_sees_nothing
from tests.helpers import run_pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "pytest_project"


def test_the_example_project_passes_twice_with_four_workers() -> None:
    for run in (1, 2):
        result = run_pytest(EXAMPLE, "-n", "4", "-q")
        assert result.returncode == 0, f"run {run}:\n{result.stdout}\n{result.stderr}"
        assert " passed" in result.stdout
        assert "failed" not in result.stdout


def test_keep_db_keeps_the_database_of_a_failing_run(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_fails.py").write_text(
        "def test_fails(queue):\n    queue.enqueue('x')\n    assert False\n"
    )
    result = run_pytest(tmp_path, "--queueing-keep-db", "-s")
    assert result.returncode == 1, result.stdout + result.stderr
    kept = [line for line in result.stdout.splitlines() if "kept test database" in line]
    assert len(kept) == 1, result.stdout
    url = kept[0].split("kept test database ", 1)[1].strip()
    with Queue(url) as q:
        assert [j.task_name for j in q.list_jobs()] == ["x"]  # left as the test left it
    name = str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])
    databases.drop_database(databases.server_url(), name)


# --- isolation ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(3))
def test_every_test_starts_with_an_empty_queue(queue: Queue, n: int) -> None:
    assert queue.list_jobs() == []
    queue.enqueue("left-behind", {"n": n})


def test_a_rolled_back_transaction_would_hide_jobs_from_the_worker(queue: Queue) -> None:
    """Why isolation empties tables instead of rolling back: the worker has its own
    connections and cannot see a test's uncommitted jobs."""
    assert rollback_sees_nothing(queue) == 0
    assert queue.list_jobs() == []


# --- drain ---------------------------------------------------------------------------------


def test_drain_returns_what_ran(queue: Queue, queueing_worker: QueueWorker) -> None:
    @queue.task(name="ok")
    def ok(n: int) -> int:
        return n

    @queue.task(name="broken", retry=1)
    def broken() -> None:
        raise ValueError("bad input")

    first = queue.enqueue(ok, {"n": 1})
    second = queue.enqueue(broken)
    later = queue.enqueue(ok, {"n": 3}, delay=3600)
    ran = queueing_worker.drain()
    assert sorted(ran.job_ids) == [first.id, second.id]
    assert ran.outcomes == {first.id: "completed", second.id: "failed"}
    assert first in ran and second.id in ran and later not in ran
    failed = next(r for r in ran if r.job_id == second.id)
    assert (failed.task_name, failed.attempt) == ("broken", 1)
    assert failed.error is not None and failed.error.message == "bad input"
    assert ran.stats is not None and ran.stats.claimed == 2
    assert len(queueing_worker.drain()) == 0  # idle: the delayed job is not waited for


async def test_drain_in_an_async_test_points_to_drain_async(
    queueing_worker: QueueWorker,
) -> None:
    with pytest.raises(RuntimeError, match="drain_async"):
        queueing_worker.drain()


# --- background worker ---------------------------------------------------------------------


def test_a_background_worker_runs_jobs_while_the_test_acts(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    release = threading.Event()

    @queue.task(name="gated")
    def gated() -> str:
        release.wait(30)
        return "done"

    with queueing_worker.background() as worker:
        job = queue.enqueue(gated)
        active = wait_for(queue, job, JobStatus.ACTIVE)
        assert active.worker_id == worker.worker_id
        release.set()
        done = wait_for(queue, job.id)
        assert done.status is JobStatus.COMPLETED
    assert worker.ran().job_ids == [job.id]
    assert worker.stats is not None and worker.stats.finished == 1


def test_leaving_the_block_stops_a_running_job(queue: Queue, queueing_worker: QueueWorker) -> None:
    @queue.task(name="forever")
    async def forever() -> None:
        await asyncio.Event().wait()

    job = queue.enqueue(forever)
    with queueing_worker.background(shutdown_timeout=0.2) as worker:
        wait_for(queue, job, JobStatus.ACTIVE)
    assert [r.outcome for r in worker.ran()] == ["interrupted"]
    assert queue.get_job(job.id).status is JobStatus.PENDING  # given back, not lost


def test_a_worker_that_cannot_start_fails_the_test(queue: Queue) -> None:
    nowhere = Queue(databases.with_database(queue.database_url, "queueing_no_such_db"))
    with (
        pytest.raises(QueueingError),
        QueueWorker(nowhere).background(),
    ):
        pytest.fail("the block must not run")


# --- waiting and assertions ----------------------------------------------------------------


def test_wait_for_fails_with_the_record_after_its_timeout(queue: Queue) -> None:
    job = queue.enqueue("nobody-runs-this", tenant_id="acme")
    with pytest.raises(AssertionError) as caught:
        wait_for(queue, job, JobStatus.COMPLETED, timeout=0.2)
    message = str(caught.value)
    assert message.startswith(f"waited 0.2s: expected completed, job {job.id} is pending\n")
    assert "tenant_id: 'acme'" in message


def test_assert_job_status_shows_the_record_and_the_history(
    queue: Queue, queueing_worker: QueueWorker, queue_clock: QueueClock
) -> None:
    @queue.task(name="flaky", retry=RetryPolicy(max_attempts=2, delay=5))
    def flaky() -> None:
        raise ValueError("bad input")

    job = queue.enqueue(flaky)
    queueing_worker.drain()
    queue_clock.advance(5)
    queueing_worker.drain()
    with pytest.raises(AssertionError) as caught:
        assert_job_status(queue, job, JobStatus.COMPLETED)
    message = str(caught.value)
    assert message.startswith(
        f"expected completed, job {job.id} is failed: ValueError: bad input\n"
    ), message
    assert "    status: 'failed'\n" in message
    assert "    error: ValueError: bad input\n" in message
    assert "last error's traceback:" in message
    assert "#1 on worker" in message and "retry - ValueError: bad input" in message
    assert "#2 on worker" in message and "failed - ValueError: bad input" in message
    assert assert_job_status(queue, job.id, JobStatus.FAILED).attempts == 2
    assert assert_job_status(queue, job).status is JobStatus.FAILED  # default: terminal


# --- the clock -----------------------------------------------------------------------------


def test_the_clock_makes_a_delayed_job_due(
    queue: Queue, queueing_worker: QueueWorker, queue_clock: QueueClock
) -> None:
    # The wall clock moves too (a drain may take a second under load): leave it room.
    job = queue.enqueue("later", delay=3600)
    assert queue_clock.advance(3000) == []
    assert len(queueing_worker.drain()) == 0
    assert queue_clock.advance(600) == [job.id]
    assert queue_clock.advanced.total_seconds() == 3600
    assert queueing_worker.drain().job_ids == [job.id]


def test_the_clock_wakes_a_background_worker(
    queue: Queue, queueing_worker: QueueWorker, queue_clock: QueueClock
) -> None:
    @queue.task(name="tick")
    def tick() -> str:
        return "tock"

    # A long poll interval: only the wake-up can make the job run within the timeout.
    with queueing_worker.background(poll_interval=120):
        job = queue.enqueue(tick, delay=3600)
        queue_clock.advance(3600)
        assert wait_for(queue, job).result == "tock"


def test_the_clock_ages_finished_jobs_too(
    queue: Queue, queueing_worker: QueueWorker, queue_clock: QueueClock
) -> None:
    @queue.task(name="digest")
    def digest() -> None:
        return None

    job = queue.enqueue(digest, dedupe_key="hourly", dedupe_for=3600)
    queueing_worker.drain()
    assert queue.enqueue(digest, dedupe_key="hourly", dedupe_for=3600).id == job.id
    queue_clock.advance(3601)
    assert queue.enqueue(digest, dedupe_key="hourly", dedupe_for=3600).created is True
    with pytest.raises(ValueError, match="only moves forward"):
        queue_clock.advance(-1)


# --- async ---------------------------------------------------------------------------------


async def test_async_fixtures_and_helpers(
    aqueue: AsyncQueue, queueing_worker: QueueWorker, queue_clock: QueueClock
) -> None:
    job = await aqueue.enqueue("async-later", delay=30)
    assert await queue_clock.advance_async(30) == [job.id]
    assert (await queueing_worker.drain_async()).job_ids == [job.id]
    # No handler is declared for "async-later", so the job fails (and says why).
    failed = await wait_for_async(aqueue, job, JobStatus.FAILED, timeout=5)
    assert failed.error is not None
    with pytest.raises(AssertionError, match=f"expected completed, job {job.id} is failed"):
        await assert_job_status_async(aqueue, job, JobStatus.COMPLETED)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_under_anyio(queue: Queue, queueing_worker: QueueWorker) -> None:
    @queue.task(name="double")
    async def double(n: int) -> int:
        return 2 * n

    aio = queue.aio  # under anyio, close the async pool in the test's own loop
    try:
        job = await aio.enqueue(double, {"n": 21})
        ran = await queueing_worker.drain_async()
        assert job in ran
        assert (await wait_for_async(aio, job)).result == 42
    finally:
        await aio.close()
