"""Reproductions of the worker defects of issue 9, one test per defect.

Each test fails on the worker as it was when the issue was filed, for the reason its
docstring gives, and passes once that defect is fixed. Worker processes run
``tests.apps.defect_tasks`` (``queueing worker --app ...``), driven from outside with
real signals. Nothing sleeps to wait: the tests wait on job changes (LISTEN/NOTIFY,
``Queue.wait_for``), on the workers' JSON log lines, on a process's exit, or poll the
database, each with a deadline. Only handlers sleep, to simulate work.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import psycopg
import pytest

from queueing import RetryPolicy, sql
from queueing.errors import WaitTimeout
from queueing.models import Job, JobStatus
from queueing.queue import JobRequest, Queue
from queueing.testing.workers import QueueWorker
from tests.apps import defect_tasks
from tests.helpers import ROOT, WorkerProcess, poll

APP = "tests.apps.defect_tasks:queue"


# --- helpers ----------------------------------------------------------------------------


@contextlib.contextmanager
def _worker(database_url: str, *args: str) -> Iterator[WorkerProcess]:
    """``queueing worker --app tests.apps.defect_tasks:queue ARGS``, once it runs
    (as tests.helpers.worker_process, with this file's app); killed on exit."""
    env = {**os.environ, "QUEUEING_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "queueing", "worker", "--app", APP, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pipes = (proc.stdout, proc.stderr)
    worker = WorkerProcess(proc)
    try:
        worker.wait_for_log("worker.started")
        yield worker
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a stopped process dies of SIGKILL too; be sure
            proc.kill()
            proc.wait()
        for pipe in pipes:
            if pipe is not None:
                pipe.close()


# A worker process started ahead of need: Python and the app imported, waiting for a line
# on stdin, then ``queueing worker ARGS`` exactly as ``python -m queueing`` runs it. On a
# busy machine the imports take seconds; a supervisor keeps one spare ready so that a
# restart costs a registration, not a cold start. It registers nothing until released.
_SPARE = (
    "import sys\n"
    "import queueing.cli\n"
    "import tests.apps.defect_tasks\n"
    "sys.stdin.readline()\n"
    "sys.argv = ['queueing', *sys.argv[1:]]\n"
    "queueing.cli.main()\n"
)


class _Spares:
    """Worker processes for a supervisor: ``start()`` releases the spare (then prepares
    the next one) and returns it once it runs; every process is killed on ``close()``."""

    def __init__(self, database_url: str, *args: str) -> None:
        self._url = database_url
        self._args = args
        self._procs: list[subprocess.Popen[str]] = []
        self._spare = self._prepare()

    def _prepare(self) -> subprocess.Popen[str]:
        env = {**os.environ, "QUEUEING_DATABASE_URL": self._url, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-c", _SPARE, "worker", "--app", APP, *self._args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._procs.append(proc)
        return proc

    def start(self) -> WorkerProcess:
        proc, self._spare = self._spare, self._prepare()
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        worker = WorkerProcess(proc)
        worker.wait_for_log("worker.started")
        return worker

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()


def _final(queue: Queue, job_id: int, timeout: float) -> Job:
    """The job once it is terminal, or as it is at the deadline (for the assertion)."""
    try:
        return queue.wait_for(job_id, timeout=timeout)
    except WaitTimeout:
        return queue.get_job(job_id)


def _dead_worker_with_job(url: str, queue: Queue, queue_name: str) -> tuple[int, Job]:
    """A worker row silent for an hour holding one active job (claimed as a worker does)."""
    job = queue.enqueue(defect_tasks.noop, queue=queue_name)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) "
            "VALUES (now() - interval '1 hour') RETURNING id"
        ).fetchone()
        assert row is not None
        dead_id = cast(int, row[0])
        claimed = conn.execute(
            sql.query("claim_jobs"),
            {"queues": [queue_name], "worker_id": dead_id, "limit": 1, "idle": False},
        ).fetchall()
    assert [row[0] for row in claimed] == [job.id]
    active = queue.get_job(job.id)
    assert (active.status, active.worker_id) == (JobStatus.ACTIVE, dead_id)
    return dead_id, active


def _backend_state(url: str, pid: int | None) -> Any:
    if pid is None:
        return None
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT state, wait_event_type, left(query, 80) FROM pg_stat_activity WHERE pid = %s",
            [pid],
        ).fetchone()


# --- 1. a job claimed right after re-registering stays active forever ---------------------


def test_a_job_claimed_while_re_registering_is_finished(
    queueing_database_url: str, queue: Queue
) -> None:
    """Defect 1: a job claimed by the claim that finds the worker's row gone (and
    registers again) must still be finished.

    The worker's row is deleted and a job enqueued in the same transaction, while the
    worker is idle and its heartbeat is 30 s away: its next claim meets the foreign-key
    error, registers again and claims the job under the new id. Today the job is handed
    to the old id's finisher, ``queueing_finish_v2`` drops its outcome (logged
    ``job.finish_ignored``) and the job stays ``active`` forever: a failure here says
    the job did not end ``completed`` within 10 s.
    """
    url = queueing_database_url
    slow_beat = ("--heartbeat-interval", "30", "--stall-timeout", "60", "--rescue-interval", "30")
    with _worker(url, *slow_beat, "--prune-interval", "0") as worker:
        old_id = worker.wait_for_log("worker.started")["worker_id"]
        # Once this job is done the worker is idle, waiting for a hint or its poll.
        warm = _final(queue, queue.enqueue(defect_tasks.noop).id, timeout=15)
        assert warm.status is JobStatus.COMPLETED
        # One commit: the worker's next claim sees both the row gone and the job due, so
        # the claim that registers again is the one that takes the job.
        with psycopg.connect(url) as conn:
            deleted = conn.execute("DELETE FROM procrastinate_workers WHERE id = %s", [old_id])
            assert deleted.rowcount == 1
            job = queue.enqueue(defect_tasks.noop, connection=conn)
        done = _final(queue, job.id, timeout=10)
        history = queue.attempts(job.id)
        if done.status is not JobStatus.COMPLETED:  # for the message: what the worker did
            with contextlib.suppress(AssertionError):
                worker.wait_for_log("job.finish_ignored", timeout=2)
        ignored = worker.events("job.finish_ignored")

    assert done.status is JobStatus.COMPLETED, (
        f"job {job.id} is {done.status} (worker {done.worker_id}, the lost id was {old_id}); "
        f"finishes the worker logged as ignored: {ignored}"
    )
    assert done.result == "done"
    assert done.attempts == 1
    assert done.worker_id != old_id
    assert [(a.attempt, a.outcome) for a in history] == [(1, "completed")]


# --- 2. a frozen worker holds the rescue lock for everyone ---------------------------------


RESCUE_FAST = (
    "--heartbeat-interval", "0.5", "--stall-timeout", "2", "--rescue-interval", "0.2",
    "--poll-interval", "0.2", "--prune-interval", "0",
)  # fmt: skip


@pytest.mark.many_connections
def test_a_worker_frozen_in_its_rescue_round_does_not_stop_the_others_rescuing(
    queueing_database_url: str, queue: Queue
) -> None:
    """Defect 2: a worker frozen mid-rescue must not keep every other worker from
    rescuing.

    Worker W's rescue statement is made to wait on a row lock the test holds (dead worker
    D1's row, which the rescue deletes); W is frozen (SIGSTOP) while it waits, then the
    lock is released, so W's statement ends on the server while W's client sends nothing
    more. A second dead worker D2 then holds a job, and a live worker Y starts. Today the
    rescue's advisory lock lives in a transaction the client commits: W's backend sits
    ``idle in transaction`` holding it, Y's rescuer never gets it, and D2's job stays
    ``active``: a failure here says D2's job was not rescued (and completed by Y) within
    10 s, and shows W's backend state.
    """
    url = queueing_database_url
    d1, d1_job = _dead_worker_with_job(url, queue, "defect-d1")
    with contextlib.ExitStack() as stack:
        holder = stack.enter_context(psycopg.connect(url))  # a transaction, held open
        holder.execute("SELECT id FROM procrastinate_workers WHERE id = %s FOR UPDATE", [d1])
        holder_pid = holder.info.backend_pid
        watcher = stack.enter_context(psycopg.connect(url, autocommit=True))

        # W serves a queue no job uses: a claim W sent just before its SIGSTOP can still
        # be read and run by its backend after the test enqueued D2's job, and would take it.
        w = stack.enter_context(_worker(url, *RESCUE_FAST, "--queue", "defect-w"))

        def blocked_by_holder() -> int | None:
            row = watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                [holder_pid],
            ).fetchone()
            return None if row is None else cast(int, row[0])

        w_pid = poll("W's rescue waits on the test's row lock", blocked_by_holder, timeout=15)
        w.proc.send_signal(signal.SIGSTOP)
        try:
            holder.rollback()  # the lock is gone; W's statement ends on the server

            def settled() -> bool | None:
                row = watcher.execute(
                    "SELECT wait_event_type IS DISTINCT FROM 'Lock' AND state <> 'active' "
                    "FROM pg_stat_activity WHERE pid = %s",
                    [w_pid],
                ).fetchone()
                return True if row is None or row[0] else None

            poll("W's rescue statement ended", settled, timeout=15)

            d2, d2_job = _dead_worker_with_job(url, queue, "defect-d2")
            with _worker(url, *RESCUE_FAST) as y:
                y_id = y.wait_for_log("worker.started")["worker_id"]
                done = _final(queue, d2_job.id, timeout=10)
                w_backend = _backend_state(url, w_pid)
                history = queue.attempts(d2_job.id)
        finally:
            w.proc.send_signal(signal.SIGCONT)

    assert done.status is JobStatus.COMPLETED, (
        f"dead worker {d2}'s job {d2_job.id} is {done.status}, not rescued and run by "
        f"worker {y_id}; frozen worker W's backend (state, wait, query): {w_backend}"
    )
    assert done.worker_id == y_id
    lost = [a for a in history if a.outcome == "worker_lost"]
    assert [a.worker_id for a in lost] == [d2], history
    assert lost[0].error is not None and lost[0].error.type == "WorkerLost"
    assert history[-1].outcome == "completed"
    assert queue.get_job(d1_job.id).worker_id != d1


# --- 3. a handler blocking the event loop gets its worker taken for dead -----------------


BLOCK_FAST = (
    "--heartbeat-interval", "0.5", "--stall-timeout", "2", "--rescue-interval", "0.5",
    "--prune-interval", "0",
)  # fmt: skip


def test_an_async_handler_blocking_the_loop_does_not_get_its_worker_taken_for_dead(
    queueing_database_url: str, queue: Queue
) -> None:
    """Defect 3: an async handler that blocks the event loop past the stall timeout
    must not get its worker taken for dead, and the worker must say what blocked it.

    Worker B (the only one serving the job's queue) runs a handler that blocks its loop
    4 s (``time.sleep``) with a 2 s stall timeout, while worker R rescues every 0.5 s.
    Today the heartbeat runs on the blocked loop, so R rescues the job (``worker_lost``;
    with one attempt it ends ``failed: WorkerLost``): a failure of the first assertion
    says so. The fix's loop-lag watchdog logs ``worker.loop_blocked`` with the blocking
    ``job_id`` and ``blocked_s``: a failure of the last assertions says B logged no
    such line naming the job (by the time it stopped).
    """
    url = queueing_database_url
    with (
        _worker(url, *BLOCK_FAST, "--queue", defect_tasks.BLOCKING_QUEUE) as blocked,
        _worker(url, *BLOCK_FAST, "--queue", "defect-elsewhere") as rescuer,
    ):
        blocked_id = blocked.wait_for_log("worker.started")["worker_id"]
        job = queue.enqueue(defect_tasks.blocking, {"seconds": 4.0})
        done = _final(queue, job.id, timeout=25)
        history = queue.attempts(job.id)
        # Stop both and read every line they logged (worker.stopped is their last).
        for w in (blocked, rescuer):
            w.proc.send_signal(signal.SIGTERM)
        for w in (blocked, rescuer):
            with contextlib.suppress(AssertionError):
                w.wait_for_log("worker.stopped", timeout=15)
        rescues = rescuer.events("job.rescued") + blocked.events("job.rescued")
        watchdog = blocked.events("worker.loop_blocked")

    outcomes = [(a.attempt, a.outcome, a.worker_id) for a in history]
    assert done.status is JobStatus.COMPLETED, (
        f"job {job.id} is {done.status} ({done.error}); attempts {outcomes}; rescue lines {rescues}"
    )
    assert outcomes == [(1, "completed", blocked_id)]
    assert not any(a.outcome == "worker_lost" for a in history)
    assert rescues == []
    naming_the_job = [line for line in watchdog if line.get("job_id") == job.id]
    assert naming_the_job, f"worker B logged no worker.loop_blocked for job {job.id}: {watchdog}"
    for line in naming_the_job:
        assert isinstance(line["blocked_s"], int | float)
        assert line["blocked_s"] > 0


# --- 4. a poison pill burns its neighbours' attempts -------------------------------------


PILL = (
    "--concurrency", "5", "--queue", defect_tasks.PILL_QUEUE,
    "--heartbeat-interval", "0.2", "--stall-timeout", "1", "--rescue-interval", "0.2",
    "--poll-interval", "0.2", "--prune-interval", "0",
)  # fmt: skip
MAX_RESTARTS = 12


def test_a_job_that_kills_its_worker_does_not_burn_its_neighbours_attempts(
    queueing_database_url: str, queue: Queue
) -> None:
    """Defect 4: a job that kills its worker on every attempt must not cost the jobs
    running beside it their attempts.

    One poison job (SIGKILLs its own worker) and 4 healthy 0.4 s jobs, 3 attempts each,
    are claimed together by one worker (concurrency 5). The test supervises: whenever
    the worker dies it starts a new one (at most 12 times; a spare process imported
    ahead makes each restart quick), whose rescuer gives back the dead one's jobs.
    Today every death costs every job beside the poison an attempt, so after 3 deaths
    the healthy jobs end ``failed: WorkerLost``: a failure of the first assertion says
    so. The poison itself must still end ``failed: WorkerLost`` after
    exactly 3 counted attempts.
    """
    url = queueing_database_url
    # The poison last: the healthy jobs start (and sleep) before it strikes.
    healthy = queue.enqueue_many(
        JobRequest(defect_tasks.steady, {"seconds": 0.4}) for _ in range(4)
    )
    [pill] = queue.enqueue_many([JobRequest(defect_tasks.poison)])
    ids = [j.id for j in healthy]
    ever_failed: set[int] = set()
    restarts = 0
    # Generous: each death waits out a stall timeout, and a loaded machine restarts slowly.
    deadline = time.monotonic() + 90

    def snapshot() -> dict[int, Job]:
        return {j.id: j for j in queue.list_jobs(limit=10)}

    with contextlib.ExitStack() as stack:
        spares = _Spares(url, *PILL)
        stack.callback(spares.close)
        current = spares.start()
        while True:
            jobs = snapshot()
            ever_failed |= {i for i in ids if jobs[i].status is JobStatus.FAILED}
            if all(j.status.is_terminal for j in jobs.values()) or time.monotonic() > deadline:
                break
            if current.proc.poll() is not None:  # it died: start another, as a supervisor
                if restarts == MAX_RESTARTS:
                    break
                restarts += 1
                current = spares.start()
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                current.proc.wait(timeout=0.1)  # a death, or the next look at the jobs
        jobs = snapshot()
        histories = {i: queue.attempts(i) for i in [*ids, pill.id]}

    def story(job_id: int) -> list[tuple[int, str]]:
        return [(a.attempt, a.outcome) for a in histories[job_id]]

    summary = {
        i: (str(j.status), j.attempts, j.error.type if j.error else None)
        for i in [*ids, pill.id]
        for j in [jobs[i]]
    }
    assert not ever_failed, (
        f"healthy jobs {sorted(ever_failed)} failed beside the poison job {pill.id} after "
        f"{restarts} worker restarts; (status, attempts, error) per job: {summary}; "
        f"histories: { {i: story(i) for i in ids} }"
    )
    # The rule (README, Guarantees): a loss beside other jobs counts as an attempt until
    # the attempts are spent; then, instead of failing, the job runs once more alone, and
    # that run decides. So a healthy job completes, on its last attempt at the latest.
    for i in ids:
        assert jobs[i].status is JobStatus.COMPLETED, (summary, story(i))
        assert jobs[i].attempts <= jobs[i].max_attempts, (summary, story(i))
        assert histories[i][-1].outcome == "completed", (summary, story(i))
    poison = jobs[pill.id]
    assert poison.status is JobStatus.FAILED, (summary, story(pill.id))
    assert poison.error is not None and poison.error.type == "WorkerLost"
    assert poison.attempts == poison.max_attempts == 3, (summary, story(pill.id))
    assert histories[pill.id][-1].outcome == "worker_lost"
    assert restarts <= MAX_RESTARTS


# --- 5. a sync handler overrunning its timeout starves the next ones ----------------------


def test_sync_handlers_overrunning_their_timeout_do_not_fail_the_next_ones_unrun(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    """Defect 5: a plain-function handler that overruns its ``timeout=`` must not make
    the next plain-function jobs fail without running.

    Concurrency 1, four jobs of a sync task with ``timeout=0.2`` whose handler runs 1 s.
    Today the pool has exactly ``concurrency`` threads and the timeout wraps the wait for
    a thread, not the run: the first handler keeps the only thread, jobs 2-4 time out
    queued and never start. A failure of the first assertion says how many handlers
    started; of the later ones, that the TimeoutError carries no message naming the
    timeout (today it is empty).
    """
    started: list[int] = []
    changed = threading.Condition()

    @queue.task(name="defect_overrun", timeout=0.2, retry=RetryPolicy(max_attempts=1))
    def overrun(n: int) -> str:
        with changed:
            started.append(n)
            changed.notify_all()
        time.sleep(1)  # allowed-sleep: simulates work that overruns its timeout
        return "late"

    jobs = queue.enqueue_many(JobRequest(overrun, {"n": n}) for n in range(4))
    drained = queueing_worker.drain(concurrency=1)
    with changed:
        changed.wait_for(lambda: len(started) == 4, timeout=5)
        ran = sorted(started)

    finals = [queue.get_job(j.id) for j in jobs]
    errors = [
        (f.status, f.error.type if f.error else None, f.error and f.error.message) for f in finals
    ]
    assert ran == [0, 1, 2, 3], f"handlers started: {ran} of [0, 1, 2, 3]; jobs: {errors}"
    assert sorted(drained.job_ids) == sorted(j.id for j in jobs)
    for job in finals:
        assert job.status is JobStatus.FAILED, errors
        assert job.error is not None
        assert job.error.type == "TimeoutError", errors
        assert job.error.message, f"job {job.id}: empty TimeoutError message; {errors}"
        assert "0.2" in job.error.message, errors
        assert job.attempts == 1


# --- 7. attempt numbers repeat in the history ----------------------------------------------


def test_each_history_row_is_identifiable_when_an_interrupted_attempt_gives_its_number_back(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    """Defect 7: an interrupted attempt (graceful stop) gives its number back, so the next
    attempt writes a second history row with the same number. It still must not count
    against max_attempts, but each row carries its run number (1, 2, ...): a failure
    here means two rows of one job cannot be told apart."""
    first_run = threading.Event()

    @queue.task(name="defect7_twice")
    async def twice() -> str:
        if not first_run.is_set():
            first_run.set()
            await asyncio.Event().wait()  # runs until the worker's stop interrupts it
        return "done"

    job = queue.enqueue(twice)
    with queueing_worker.background(shutdown_timeout=0.1):
        queue.wait_for(job.id, [JobStatus.ACTIVE], timeout=20)
    assert queue.get_job(job.id).status is JobStatus.PENDING
    queueing_worker.drain()

    done = queue.get_job(job.id)
    history = queue.attempts(job.id)
    assert done.status is JobStatus.COMPLETED
    assert done.attempts == 1  # the interrupted attempt did not count
    assert [(a.run, a.attempt, a.outcome) for a in history] == [
        (1, 1, "interrupted"),
        (2, 1, "completed"),
    ]
