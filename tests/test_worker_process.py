"""The worker daemon as a real process: real signals, real exit codes, real log lines.

Every test starts ``python -m queueing worker`` (tests.helpers.worker_process) and
drives it from outside, as an orchestrator would: SIGTERM/SIGINT, cancels from another
process, a database without the schema. Nothing sleeps: the tests wait on LISTEN/NOTIFY
(``Queue.wait_for``) or on the worker's JSON log lines, each with a deadline.
"""

from __future__ import annotations

import collections
import json
import signal
import time
from collections.abc import Callable

import psycopg
import pytest
from procrastinate.schema import SchemaManager
from psycopg import sql as pgsql

from queueing import sql
from queueing.models import Job, JobStatus
from queueing.queue import JobRequest, Queue
from tests.apps import tasks_app
from tests.helpers import APP, run_cli, wait_all, worker_process

# A worker that needs more than this to exit after its grace period is broken.
PROMPT_EXIT_S = 15.0
SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]
SECRET = "SECRET-123"


# --- helpers ----------------------------------------------------------------------------


def _start_active(queue: Queue, task: str, seconds: float) -> Job:
    """Enqueue ``task`` and return once a worker runs it."""
    job = queue.enqueue(task, {"seconds": seconds})
    active = queue.wait_for(job.id, [JobStatus.ACTIVE], timeout=20)
    assert active.attempts == 1
    return active


def _assert_put_back(queue: Queue, job_id: int) -> None:
    """The interrupted attempt is undone: pending, not counted, error says why."""
    job = queue.get_job(job_id)
    assert job.status is JobStatus.PENDING
    assert job.attempts == 0
    assert job.error is not None
    assert job.error.type == "Interrupted"
    assert job.worker_id is None
    assert job.finished_at is None
    assert not job.cancel_requested
    assert queue.list_jobs(statuses=[JobStatus.ACTIVE]) == []


# --- 1. graceful stop ---------------------------------------------------------------------


@pytest.mark.parametrize("signum", SIGNALS)
def test_signal_stops_claiming_and_lets_the_running_job_finish(
    queueing_database_url: str, queue: Queue, signum: signal.Signals
) -> None:
    # Default grace period (30 s): the 2 s job finishes well within it. (2 s rather than
    # 0.5 s so that the job is surely still running when the signal lands on a busy box.)
    with worker_process(queueing_database_url) as worker:
        running = _start_active(queue, "work", 2.0)
        signalled = time.monotonic()
        worker.send_signal(signum)
        draining = worker.wait_for_log("worker.draining")
        # The claim loop has ended: a job enqueued now must not be claimed.
        late = queue.enqueue("noop")
        done = queue.wait_for(running.id, timeout=20)
        code = worker.wait_stopped(timeout=PROMPT_EXIT_S)
        elapsed = time.monotonic() - signalled

    assert code == 0
    assert elapsed < PROMPT_EXIT_S, f"took {elapsed:.1f}s to stop"
    assert draining["running"] == 1
    [sig] = worker.events("worker.signal")
    assert (sig["signal"], sig["graceful"]) == (signum.name, True)

    assert done.status is JobStatus.COMPLETED
    assert done.result == "done"
    assert done.attempts == 1
    assert done.error is None
    completed = worker.events("job.completed")
    assert [line["job_id"] for line in completed] == [running.id]

    left = queue.get_job(late.id)
    assert left.status is JobStatus.PENDING
    assert left.attempts == 0
    assert left.started_at is None
    assert worker.job_lines(late.id) == []
    assert worker.lines[-1]["event"] == "worker.stopped"


# --- 2./3./4. grace period exceeded --------------------------------------------------------


@pytest.mark.parametrize("signum", SIGNALS)
@pytest.mark.parametrize("task", ["work", "sync_work"])
def test_grace_period_exceeded_puts_the_job_back_and_exits_zero(
    queueing_database_url: str, queue: Queue, task: str, signum: signal.Signals
) -> None:
    # work: an async handler, cancelled outright; sync_work: a thread that polls ctx.cancelled.
    with worker_process(queueing_database_url, "--shutdown-timeout", "0.5") as worker:
        running = _start_active(queue, task, 60)
        signalled = time.monotonic()
        code = worker.stop(signum, timeout=PROMPT_EXIT_S)
        elapsed = time.monotonic() - signalled

    assert code == 0
    assert elapsed < PROMPT_EXIT_S, f"took {elapsed:.1f}s to stop"
    _assert_put_back(queue, running.id)

    [sig] = worker.events("worker.signal")
    assert (sig["signal"], sig["graceful"]) == (signum.name, True)
    assert worker.events("worker.draining")[0]["grace_s"] == 0.5
    # One line for the start, one for the interruption (written only after its commit).
    started, ended = worker.job_lines(running.id)
    assert started["event"] == "job.started"
    assert ended["status"] == "pending"
    assert ended["error"] == "Interrupted"
    assert worker.lines[-1]["event"] == "worker.stopped"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(signal.SIGTERM, signal.SIGTERM, id="SIGTERM-SIGTERM"),
        pytest.param(signal.SIGINT, signal.SIGINT, id="SIGINT-SIGINT"),
        pytest.param(signal.SIGTERM, signal.SIGINT, id="SIGTERM-SIGINT"),
    ],
)
def test_second_signal_skips_the_rest_of_the_grace_period(
    queueing_database_url: str, queue: Queue, first: signal.Signals, second: signal.Signals
) -> None:
    # A 120 s grace period that the second signal must cut short.
    with worker_process(queueing_database_url, "--shutdown-timeout", "120") as worker:
        running = _start_active(queue, "work", 60)
        worker.send_signal(first)
        worker.wait_for_log("worker.draining")
        assert worker.running  # still within its grace period
        forced = time.monotonic()
        code = worker.stop(second, timeout=PROMPT_EXIT_S)
        elapsed = time.monotonic() - forced

    assert code == 0
    assert elapsed < PROMPT_EXIT_S, f"took {elapsed:.1f}s to stop after the second signal"
    _assert_put_back(queue, running.id)
    signals = [(line["signal"], line["graceful"]) for line in worker.events("worker.signal")]
    assert signals == [(first.name, True), (second.name, False)]


# --- 5. structured logs --------------------------------------------------------------------


def test_one_json_line_per_transition_and_never_a_payload(
    queueing_database_url: str, queue: Queue
) -> None:
    with worker_process(queueing_database_url) as worker:
        # Task objects, so the jobs get the app's retry policy (fail: one attempt).
        ok = queue.enqueue(tasks_app.greet, tasks_app.Greeting(name=SECRET, times=2))
        bad = queue.enqueue(tasks_app.fail, {"message": SECRET})
        completed = queue.wait_for(ok.id, timeout=20)
        failed = queue.wait_for(bad.id, timeout=20)
        code = worker.stop(timeout=PROMPT_EXIT_S)

    assert code == 0
    # The secret did reach the handlers and the database...
    assert completed.status is JobStatus.COMPLETED
    assert completed.result == f"hello {SECRET} hello {SECRET}"
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.type == "ValueError"
    assert SECRET in failed.error.message
    # ...and never the logs: no argument, result or error message in any line.
    assert SECRET not in worker.stderr_text
    for text in worker.stderr_text.splitlines():
        line = json.loads(text)  # every line is one JSON object
        assert isinstance(line, dict)
        assert {"ts", "level", "event"} <= line.keys()

    def transitions(job: Job) -> list[dict[str, object]]:
        lines = worker.job_lines(job.id)
        for line in lines:
            assert (line["task"], line["queue"], line["attempt"]) == (job.task_name, "default", 1)
            assert "args" not in line
            assert "result" not in line
        return lines

    started, finished = transitions(completed)
    assert started["event"] == "job.started"
    assert finished["event"] == "job.completed"
    assert finished["status"] == "completed"
    assert "error" not in finished
    assert isinstance(finished["duration_ms"], float | int)

    started, finished = transitions(failed)
    assert started["event"] == "job.started"
    assert finished["event"] == "job.failed"
    assert finished["status"] == "failed"
    assert finished["error"] == "ValueError"


# --- 6. schema missing or not current -------------------------------------------------------


def _procrastinate_only(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(pgsql.SQL(SchemaManager.get_schema()))


def _newer_than_this_code(url: str) -> None:
    Queue(url).migrate()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.query("record_migration"), {"version": sql.latest_version() + 1, "name": "future"}
        )


def _nothing(url: str) -> None:
    pass


@pytest.mark.parametrize(
    ("prepare", "expected"),
    [
        pytest.param(_nothing, "run `queueing db migrate`", id="empty"),
        pytest.param(_procrastinate_only, "run `queueing db migrate`", id="not-migrated"),
        pytest.param(_newer_than_this_code, "upgrade queueing", id="newer"),
    ],
)
def test_worker_refuses_a_database_without_the_current_schema(
    empty_database: str, prepare: Callable[[str], None], expected: str
) -> None:
    url = empty_database
    prepare(url)
    result = run_cli("worker", "--app", APP, "--database-url", url)

    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# --- 7. cancel from another process -----------------------------------------------------


@pytest.mark.parametrize("task", ["work", "sync_work"])
def test_cancel_stops_an_active_job_and_the_worker_keeps_going(
    queueing_database_url: str, queue: Queue, task: str
) -> None:
    with worker_process(queueing_database_url) as worker:
        running = _start_active(queue, task, 60)
        requested = queue.cancel(running.id)
        assert requested.status is JobStatus.ACTIVE
        assert requested.cancel_requested

        cancelled = queue.wait_for(running.id, timeout=20)
        line = worker.wait_for_log("job.cancelled")

        follower = queue.enqueue("noop")
        followed = queue.wait_for(follower.id, timeout=20)
        assert worker.running
        code = worker.stop(timeout=PROMPT_EXIT_S)

    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.error is not None
    assert cancelled.error.type == "Cancelled"
    assert cancelled.attempts == 1
    assert not cancelled.cancel_requested
    assert cancelled.finished_at is not None
    assert (line["job_id"], line["task"], line["status"]) == (running.id, task, "cancelled")
    assert followed.status is JobStatus.COMPLETED
    assert code == 0


# --- 8. two workers drain a backlog ------------------------------------------------------


def test_two_workers_run_every_job_exactly_once(queueing_database_url: str, queue: Queue) -> None:
    count = 2000
    with (
        worker_process(queueing_database_url, "--concurrency", "10") as first,
        worker_process(queueing_database_url, "--concurrency", "10") as second,
    ):
        workers = [first, second]
        worker_ids = [w.id for w in workers]

        jobs = queue.enqueue_many(JobRequest("noop") for _ in range(count))
        ids = [job.id for job in jobs]
        assert len(set(ids)) == count
        # Jobs are claimed oldest first: once the last is finished, few (if any) are
        # left; wait for those one by one.
        wait_all(queue, ids, timeout=180)

        # worker_id is cleared when a worker unregisters: read it while both run.
        finished = queue.list_jobs(limit=count + 1)
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait_stopped(timeout=60) for w in workers]

    assert codes == [0, 0]
    assert len(finished) == count
    assert {job.id for job in finished} == set(ids)
    assert {job.status for job in finished} == {JobStatus.COMPLETED}
    assert {job.attempts for job in finished} == {1}
    per_worker_db = collections.Counter(job.worker_id for job in finished)
    assert set(per_worker_db) == set(worker_ids)
    assert all(per_worker_db[wid] > 0 for wid in worker_ids), per_worker_db

    # The logs tell the same story: each job started and completed once, in one worker.
    started = collections.Counter(
        line["job_id"] for w in workers for line in w.events("job.started")
    )
    completed = collections.Counter(
        line["job_id"] for w in workers for line in w.events("job.completed")
    )
    assert started == completed == collections.Counter(ids)
    for w, wid in zip(workers, worker_ids, strict=True):
        ran = {line["job_id"] for line in w.events("job.completed")}
        assert len(ran) == per_worker_db[wid]
        assert all(line["attempt"] == 1 for line in w.events("job.completed"))
        stopped = w.events("worker.stopped")[-1]
        assert stopped["claimed"] == stopped["finished"] == len(ran)
    assert [(c.status, c.count) for c in queue.stats()] == [(JobStatus.COMPLETED, count)]
