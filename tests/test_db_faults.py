"""Database faults: the worker process rides out a PostgreSQL restart or crash, a killed
LISTEN connection, a database that refuses new connections, pools smaller than its
concurrency, an outcome the database refuses, a stop while the database is away, and a
failover through a server that is read-only for a while.

Real worker processes (``python -m queueing worker``), real signals, a real PostgreSQL:
the tests that stop or reconfigure the server run their own (``tests.private_server``),
never the shared one; the others use the session's test database and touch only its
backends. Nothing sleeps to wait: the tests wait on the workers' JSON log lines, on
LISTEN/NOTIFY (``Queue.wait_for``) or on pg_ctl, each with a deadline. An outage that
must last a while ends on the workers' logs too: once their heartbeats have failed for
that long (``_failed_beats_spanning``).

The workers run this module's ``app``: ``--app tests.test_db_faults:app``, given after
the one ``tests.helpers.worker_process`` passes, which it overrides. Run with
``pytest -s tests/test_db_faults.py`` to see the recovery figures (docs/faults.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql

from queueing import JobContext, Queue
from queueing.errors import DatabaseUnavailable
from queueing.models import Job, JobStatus
from queueing.queue import JobRequest
from queueing.worker.backoff import BACKOFF_CAP, BACKOFF_INITIAL
from queueing.worker.worker import FORCED_FLUSH_TIMEOUT
from tests.helpers import Fleet, WorkerProcess, pointed_at, wait_all
from tests.private_server import PrivateServer, StopMode, private_server

# --- the app the workers run ---------------------------------------------------------

APP = "tests.test_db_faults:app"
#: Jobs that meet at the barrier, and the concurrency of the worker that runs them.
MEETING = 16
#: How long a job waits at the barrier for the others before it gives up (and fails).
MEET_TIMEOUT = 10.0

# The pool of two is smaller than any concurrency below: jobs that enqueue children
# through it share two connections.
app = Queue(pool_size=2, pool_timeout=2.0)
_meeting = threading.Barrier(MEETING)


@app.task(name="step", retry=1)
async def step(ctx: JobContext, seconds: float, reports: int = 0) -> str:
    """Work for ``seconds``, in ``reports`` stages each followed by a progress report.
    One attempt only: a failed report shows as a failed job, not hidden by a retry."""
    stages = max(reports, 1)
    for stage in range(1, stages + 1):
        await asyncio.sleep(seconds / stages)  # allowed-sleep: simulates work
        if reports:
            await ctx.set_progress(round(100 * stage / stages), {"stage": stage})
    return "done"


@app.task(name="hold", retry=1)
def hold(ctx: JobContext, seconds: float) -> str:
    """Run until cancelled (or ``seconds`` pass)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not ctx.cancelled:
        time.sleep(0.01)  # allowed-sleep: simulates work, checking for cancellation
    return "stopped" if ctx.cancelled else "done"


@app.task(name="meet", retry=1)
def meet(ctx: JobContext) -> int:
    """Report, enqueue a child through ``app`` (pool of 2), report, then wait at a barrier
    until all MEETING jobs are there at once, and report again.

    Every job holds its slot while it waits, so the barrier opens only if no job ever
    waits for a connection another job holds: a progress report must hold its pool
    connection for one statement only, each sync job must have a thread of its own,
    and an enqueue must give its connection back at once.
    """
    ctx.set_progress_sync(25, {"stage": "started"})
    child = app.enqueue("child", {"parent": ctx.job_id})
    ctx.set_progress_sync(50, {"stage": "child enqueued"})
    _meeting.wait(timeout=MEET_TIMEOUT)
    ctx.set_progress_sync(100, {"stage": "met"})
    return child.id


@app.task(name="child")
async def child(parent: int) -> int:
    return parent


@app.task(name="noop")
async def noop() -> None:
    return None


@app.task(name="nap")
async def nap(seconds: float) -> str:
    """Work for ``seconds``; the default retry policy (3 attempts), so that a rescued
    attempt runs again."""
    await asyncio.sleep(seconds)  # allowed-sleep: simulates work
    return "done"


@app.task(name="gated")
def gated(gate: str) -> str:
    """Work until the file ``gate`` exists; the default retry policy (3 attempts), so
    that a rescued attempt runs again (at once: the gate stays open)."""
    while not Path(gate).exists():
        time.sleep(0.01)  # allowed-sleep: simulates work until the test opens the gate
    return "done"


@app.task(name="nul", retry=1)
async def nul() -> str:
    """A result the database refuses (the test's trigger, ``REFUSE_RESULT``). The worker
    refuses unstorable results itself now (``InvalidResult``), so the database's refusal
    of a result it was sent is made by a trigger."""
    return "refuse me"


#: A data error (22023) for the result "refuse me", as jsonb raises for ``\\u0000``.
REFUSE_RESULT = """
CREATE FUNCTION test_refuse_result() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.result = '"refuse me"'::jsonb THEN
        RAISE EXCEPTION 'refused' USING ERRCODE = '22023';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_refuse_result BEFORE UPDATE ON procrastinate_jobs
    FOR EACH ROW EXECUTE FUNCTION test_refuse_result();
"""


# --- helpers -----------------------------------------------------------------------

DATABASE = "queueing"
#: procrastinate's status -> the queue's status, as the queueing_jobs view maps it.
QUEUE_STATUS = {
    "todo": "pending",
    "doing": "active",
    "aborting": "active",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
    "aborted": "cancelled",
}
Line = dict[str, object]


def _at(line: Line) -> dt.datetime:
    return dt.datetime.fromisoformat(str(line["ts"]))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _status_rows(url: str) -> list[tuple[int, str, str, str | None]]:
    """(id, queue status, procrastinate status, task) of every job."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT v.id, v.status, j.status::text, j.task_name "
            "FROM queueing_jobs AS v JOIN procrastinate_jobs AS j ON j.id = v.id ORDER BY v.id"
        ).fetchall()


def _attempt_outcomes(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT outcome, count(*) FROM queueing_attempts GROUP BY outcome"
        ).fetchall()
    return {outcome: count for outcome, count in rows}


def _enqueue_retrying(queue: Queue, requests: list[JobRequest]) -> tuple[list[Job], int]:
    """Enqueue once the server is back; the jobs and how many tries failed first.

    The pool's connections died with the server and fail on first use: a failed try
    closes the pool, and the next one connects afresh. A try that failed sent nothing
    (its connection was dead), so no job is enqueued twice.
    """
    for failed in range(3):
        try:
            return queue.enqueue_many(requests), failed
        except DatabaseUnavailable:
            queue.close()
    raise AssertionError("enqueue still failed three times after the server came back")


#: The heartbeat interval of the workers whose outages are measured in failed beats.
HEARTBEAT_INTERVAL = 0.2


def _failed_beats_spanning(seconds: float) -> int:
    """How many failed heartbeats in a row span at least ``seconds``: a worker beats
    every HEARTBEAT_INTERVAL after its last beat, and only the database's return (its
    claim loop recovering) makes it beat sooner. An outage that must last is ended on
    this many failed beats in the workers' logs, not on the test's clock."""
    return math.ceil(seconds / HEARTBEAT_INTERVAL)


def _count(outcome: str, jobs: set[int]) -> dict[str, int]:
    return {outcome: len(jobs)} if jobs else {}


def _listener_pids(control: psycopg.Connection[Any]) -> list[int]:
    """Backends of this database whose last statement was a worker's LISTEN."""
    # The statement's text starts with the named query's comment (sql/queries.sql).
    rows = control.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        """AND strpos(query, 'LISTEN "procrastinate_') > 0 AND pid <> pg_backend_pid()"""
    ).fetchall()
    return [row[0] for row in rows]


def _reconnected(worker: WorkerProcess, *, times: int) -> Callable[[], bool]:
    """Whether the worker logged its listener's ``times``-th reconnection."""

    def check() -> bool:
        events = worker.events("worker.listener_reconnected")
        return any(line.get("reconnects") == times for line in events)

    return check


@pytest.fixture
def faults_app(queue: Queue) -> Iterator[Queue]:
    """This module's ``app`` on the session's test database, its tables emptied (by
    ``queue``): jobs enqueued through it get their task's retry policy (through a Queue
    that does not know the task, three attempts)."""
    with pointed_at(app, queue.database_url) as on_test_database:
        yield on_test_database


@pytest.fixture
def private_pg() -> Iterator[PrivateServer]:
    """A private server with a migrated ``queueing`` database; always stopped after."""
    with private_server() as server:
        Queue(server.create_database(DATABASE)).migrate()
        yield server


# --- 1. a restart in the middle of a run ---------------------------------------------

CONCURRENCY = 4
STALL_TIMEOUT = 2.0
# Down longer than the stall timeout: when the server comes back, every worker's last
# heartbeat is older than that, so every worker looks stalled until it beats again.
OUTAGE_S = STALL_TIMEOUT + 0.5
RESTART_SETTINGS = (
    "--app", APP, "--concurrency", str(CONCURRENCY), "--poll-interval", "0.5",
    "--heartbeat-interval", str(HEARTBEAT_INTERVAL), "--stall-timeout", str(STALL_TIMEOUT),
    "--rescue-interval", "0.2", "--prune-interval", "0", "--shutdown-timeout", "5",
)  # fmt: skip
# Two workers: one runs plain jobs, whose slots free up during the outage, so its
# claims fail and back off; the other runs jobs that report progress, which wait for
# the database with their slots held, and must not fail for it.
PLAIN, REPORTING = "default", "reports"
PLAIN_JOBS = 120  # about 3 s of work for its worker: the outage lands mid-run
REPORTING_JOBS = 40  # about 1 s
DURING = 20
SEED = 20261122


def _steps(rng: random.Random, count: int, queue: str) -> list[JobRequest]:
    reports = 2 if queue == REPORTING else 0
    return [
        JobRequest(
            "step", {"seconds": round(rng.uniform(0.05, 0.15), 3), "reports": reports}, queue=queue
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_workers_ride_out_a_database_restart(private_pg: PrivateServer, mode: StopMode) -> None:
    """Stop the server mid-run (``fast``: an operator's restart; ``immediate``: a crash),
    keep it down past the stall timeout, start it again.

    The workers stay up, back off exponentially while it is down, reconnect by
    themselves, and every job ends completed, once: no job failed on the way (a
    progress report on a connection that died in the pool is tried again), no live
    worker was taken for dead (rescuers wait a stall timeout after an outage), and
    the heartbeat, the abort watch and delayed jobs all work again after.
    """
    url = private_pg.url(DATABASE)
    rng = random.Random(SEED)
    with pointed_at(app, url) as queue, contextlib.ExitStack() as stack:
        fleet = Fleet(
            stack,
            url,
            (*RESTART_SETTINGS, "--queue", PLAIN),
            (*RESTART_SETTINGS, "--queue", REPORTING),
        )
        plain, reporting = fleet.workers
        before = queue.enqueue_many(
            _steps(rng, PLAIN_JOBS, PLAIN) + _steps(rng, REPORTING_JOBS, REPORTING)
        )
        # Falls due while the server is down.
        delayed = queue.enqueue("step", {"seconds": 0.05}, delay=1.0, queue=PLAIN)
        fleet.wait_until(
            "each worker completed jobs before the outage",
            lambda: all(w.count("job.completed") >= 2 * CONCURRENCY for w in fleet.workers),
            timeout=20,
        )

        stopped_at = _now()
        private_pg.stop(mode)
        during = _steps(rng, DURING, PLAIN) + _steps(rng, DURING, REPORTING)
        with pytest.raises(DatabaseUnavailable):
            queue.enqueue_many(during)  # the caller's retry comes after the restart
        queue.close()  # else its pool keeps trying to reconnect, with its own backoff
        fleet.wait_until(
            "every worker noticed the outage (and the plain one backs off)",
            lambda: (
                plain.count("worker.claim_failed") >= 4
                and all(w.count("worker.heartbeat_failed") >= 1 for w in fleet.workers)
            ),
            timeout=20,
        )
        # Up again only once every worker's heartbeat has failed for OUTAGE_S.
        failed_beats = _failed_beats_spanning(OUTAGE_S)
        fleet.wait_until(
            f"every worker's heartbeat failed {failed_beats} times (down for {OUTAGE_S}s)",
            lambda: all(w.count("worker.heartbeat_failed") >= failed_beats for w in fleet.workers),
            timeout=OUTAGE_S + 20,
        )
        private_pg.start()
        ready_at = private_pg.ready_times()[-1]

        during_jobs, enqueue_retries = _enqueue_retrying(queue, during)
        ids = [job.id for job in [*before, delayed, *during_jobs]]
        wait_all(queue, ids, timeout=60)
        fleet.wait_until(
            "every worker's heartbeat recovered",
            lambda: all(w.count("worker.heartbeat_recovered") >= 1 for w in fleet.workers),
            timeout=10,
        )
        # The abort watch survived: a running job is cancelled on request.
        held = queue.enqueue("hold", {"seconds": 60}, queue=PLAIN)
        queue.wait_for(held.id, [JobStatus.ACTIVE], timeout=10)
        queue.cancel(held.id)
        assert queue.wait_for(held.id, timeout=10).status is JobStatus.CANCELLED
        with psycopg.connect(url) as conn:
            beats: dict[int, dt.datetime] = dict(
                conn.execute("SELECT id, last_heartbeat FROM procrastinate_workers").fetchall()
            )
        codes = fleet.stop()

    rows = _status_rows(url)
    outcomes = _attempt_outcomes(url)
    started = fleet.events("job.started")
    completed = fleet.events("job.completed")
    fresh = {line["job_id"] for line in started if _at(line) > ready_at}

    def after_ready(lines: list[Line]) -> float:
        return (min(_at(line) for line in lines if _at(line) > ready_at) - ready_at).total_seconds()

    done_before = max(_at(line) for line in completed if _at(line) < stopped_at)
    done_after = min(_at(line) for line in completed if _at(line) > ready_at)
    delays = [float(str(line["retry_in"])) for line in plain.events("worker.claim_failed")]
    recovered = [
        (w.id, [float(str(line["outage_s"])) for line in w.events("worker.claim_recovered")])
        for w in fleet.workers
    ]
    reports_held = [
        float(str(line["outage_s"])) for line in fleet.events("worker.finish_recovered")
    ]
    print()  # noqa: T201 - the figures, shown with pytest -s
    print(f"restart ({mode}): {len(ids)} jobs, 2 workers x {CONCURRENCY}")  # noqa: T201
    print(f"  server down {(ready_at - stopped_at).total_seconds():.3f}s (stop to ready)")  # noqa: T201
    print(  # noqa: T201
        f"  ready -> first claim {after_ready(started):.3f}s, "
        f"first outcome written {after_ready(completed):.3f}s, first job claimed and "
        f"completed {after_ready([c for c in completed if c['job_id'] in fresh]):.3f}s"
    )
    for worker in fleet.workers:
        print(  # noqa: T201
            f"  worker {worker.id} ({'plain' if worker is plain else 'reporting'}): "
            f"first claim {after_ready(worker.events('job.started')):.3f}s after ready"
        )
    print(f"  queue stalled {(done_after - done_before).total_seconds():.3f}s")  # noqa: T201
    print(f"  plain worker's claim retry_in: {delays}")  # noqa: T201
    print(f"  claim outage_s per worker: {recovered}; finisher outage_s: {reports_held}")  # noqa: T201
    print(f"  enqueue: failed while down, then {enqueue_retries} failed tries after")  # noqa: T201
    print(f"  attempts: {outcomes}; claims given back: {fleet.count('job.claim_lost')}")  # noqa: T201

    assert codes == [0, 0]
    # Every job ended, the status agreeing with the queue's state; all completed once.
    assert all(QUEUE_STATUS[state] == status for _, status, state, _ in rows), rows
    by_id = {row[0]: row for row in rows}
    assert {by_id[i][1] for i in ids} == {"completed"}
    assert by_id[held.id][1] == "cancelled"
    # A claim whose reply the crash cut off was given back, unrun, by its worker: that
    # is the only other attempt there may be.
    lost = {int(str(line["job_id"])) for line in fleet.events("job.claim_lost")}
    assert outcomes == {"completed": len(ids), "cancelled": 1, **_count("interrupted", lost)}
    assert sorted(str(line["job_id"]) for line in started) == sorted(
        str(i) for i in [*ids, held.id]
    ), "a job started twice"
    for event in ("worker.registration_lost", "job.rescued"):
        assert fleet.count(event) == 0, fleet.events(event)
    # A finish may be fenced out only as the retry of a write whose commit the stop cut
    # off from its reply: the job then holds that outcome, recorded once (checked above).
    for line in fleet.events("job.finish_ignored"):
        held_outcome = {"succeeded": "completed", "cancelled": "cancelled"}[str(line["outcome"])]
        assert by_id[int(str(line["job_id"]))][1] == held_outcome, line
    assert fleet.count("job.finish_ignored") <= sum(
        int(str(line["jobs"])) for line in fleet.events("worker.finish_retry")
    )
    assert fleet.count("worker.side_task_failed") == 0, fleet.events("worker.side_task_failed")
    # The reporting worker's jobs waited out the outage in their progress reports.
    assert reporting.count("job.progress") == 2 * (REPORTING_JOBS + DURING)
    # Exponential backoff, capped, logged. Below the cap each delay is drawn from the
    # upper half of a doubling ceiling, so the delays never decrease.
    uncapped = sum(1 for n in range(64) if BACKOFF_INITIAL * 2**n < BACKOFF_CAP)
    assert delays[:uncapped] == sorted(delays[:uncapped]), delays
    assert max(delays) <= BACKOFF_CAP and max(delays) >= 4 * min(delays), delays
    assert recovered[0][1] and max(recovered[0][1]) >= OUTAGE_S - 0.5, recovered
    assert all(w.count("worker.listener_reconnected") >= 1 for w in fleet.workers)
    assert all(beats[w.id] > ready_at for w in fleet.workers), beats
    # Back at work within one backoff cap of the server accepting connections.
    assert after_ready(plain.events("job.started")) < BACKOFF_CAP + 2


# --- 2. the listening connection killed ----------------------------------------------

KILLS = 5
# Far longer than the test: only a notification (or the listener's wake-up after it
# reconnects) can make the worker pick a job up within PICKUP_S.
LONG_POLL = "60"
PICKUP_S = 10.0


def test_listener_killed_five_times_reconnects_and_pick_up_goes_on(
    queueing_database_url: str, faults_app: Queue
) -> None:
    """pg_terminate_backend on the worker's LISTEN connection, five times: each time the
    worker logs the loss and the reconnection. A job enqueued right after the kill,
    whose notification nobody hears, is picked up by the wake-up the listener gives
    once it listens again; one enqueued after, by its notification. Polling (60 s) is
    far too slow to be what picked up either."""
    queue = faults_app
    url = queueing_database_url
    with (
        contextlib.ExitStack() as stack,
        psycopg.connect(url, autocommit=True) as control,
    ):
        fleet = Fleet(stack, url, ("--app", APP, "--poll-interval", LONG_POLL))
        worker = fleet.workers[0]
        pickups: list[dt.timedelta] = []
        for kill in range(1, KILLS + 1):
            pids = _listener_pids(control)
            assert len(pids) == 1, pids  # only this test's worker listens on this database
            # Without a timeout: with one, it polls for the backend's exit every 100 ms,
            # long enough for the listener to be back before the next job is enqueued.
            assert control.execute("SELECT pg_terminate_backend(%s)", pids).fetchone() == (True,)
            killed_at = _now()
            # Enqueued at once: committed before the listener listens again (it waits
            # ~50 ms first), so its notification is lost; the listener's wake-up after
            # reconnecting is what must pick it up. Waited for before the next job,
            # whose own notification would pick it up too.
            in_gap = queue.enqueue("noop")
            fleet.wait_until(
                f"listener reconnection {kill}",
                _reconnected(worker, times=kill),
                timeout=PICKUP_S,
            )
            assert queue.wait_for(in_gap.id, timeout=PICKUP_S).status is JobStatus.COMPLETED
            after = queue.enqueue("noop")
            assert queue.wait_for(after.id, timeout=PICKUP_S).status is JobStatus.COMPLETED
            # The line is written just after the commit, so it may come an instant after
            # the job's waiter was woken.
            pickups += [
                _at(worker.wait_for_job_log("job.completed", job.id, timeout=5)) - killed_at
                for job in (in_gap, after)
            ]
            now_listening = _listener_pids(control)
            assert len(now_listening) == 1 and now_listening != pids, now_listening
        lost = worker.events("worker.listener_lost")
        back = worker.events("worker.listener_reconnected")
        code = worker.stop()

    gaps = [(_at(b) - _at(a)).total_seconds() for a, b in zip(lost, back, strict=True)]
    print()  # noqa: T201 - the figures, shown with pytest -s
    print(f"listener killed {KILLS}x: lost -> reconnected {[round(g, 3) for g in gaps]}s")  # noqa: T201
    print(  # noqa: T201
        "  kill -> job completed: "
        f"{[round(p.total_seconds(), 3) for p in pickups]}s (in the gap, after; per kill)"
    )
    assert code == 0
    assert len(lost) == KILLS
    assert [line["reconnects"] for line in back] == list(range(1, KILLS + 1))
    # Only the listener's connection was touched: claims never failed.
    assert worker.count("worker.claim_failed") == 0
    assert worker.count("job.completed") == 2 * KILLS


def test_a_claim_whose_reply_was_lost_is_given_back(
    queueing_database_url: str, faults_app: Queue
) -> None:
    """A claim is one autocommitted statement: if its connection dies after the commit,
    the job is active under a worker that never saw it, heartbeats, and so is never
    rescued. The worker, after a claim failed with its connection, asks the database
    what it holds for it and gives back the rest.

    The lost reply is made exactly: the job is marked claimed by the worker (what the
    committed claim did), then every connection of the worker is cut, so its next
    claim fails with its connection, as the real one did."""
    queue = faults_app
    url = queueing_database_url
    with (
        contextlib.ExitStack() as stack,
        psycopg.connect(url, autocommit=True) as control,
    ):
        fleet = Fleet(stack, url, ("--app", APP, "--poll-interval", LONG_POLL))
        worker = fleet.workers[0]
        lost = queue.enqueue("noop", delay=3600)  # not due: only our UPDATE claims it
        control.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s,"
            " attempts = attempts + 1 WHERE id = %s",
            [worker.id, lost.id],
        )
        # With a timeout: returns once they are gone, so that the test's own pooled
        # connections, cut too, are seen dead by the pool's check before their next use.
        control.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            "   AND backend_type = 'client backend'"
        )
        nudge = queue.enqueue("noop")  # its hint wakes the claim loop, whose claim fails
        assert queue.wait_for(nudge.id, timeout=PICKUP_S).status is JobStatus.COMPLETED
        done = queue.wait_for(lost.id, timeout=PICKUP_S)
        code = worker.stop()
    assert done.status is JobStatus.COMPLETED
    assert done.attempts == 1  # the lost claim did not use up an attempt
    assert [line["job_id"] for line in worker.events("job.claim_lost")] == [lost.id]
    assert [a.outcome for a in queue.attempts(lost.id)] == ["interrupted", "completed"]
    assert code == 0


def test_polling_picks_jobs_up_while_the_listener_cannot_reconnect(
    private_pg: PrivateServer,
) -> None:
    """Kill the listener while the database refuses new connections (as when no
    connection slot is free): the listener keeps failing to reconnect, yet jobs are
    picked up, by polling, on the connections the worker already holds; once
    connections are allowed again the listener is back."""
    url = private_pg.url(DATABASE)
    allow = pgsql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}")
    with (
        pointed_at(app, url) as queue,
        contextlib.ExitStack() as stack,
        psycopg.connect(private_pg.url(), autocommit=True) as admin,
        psycopg.connect(url, autocommit=True) as control,
    ):
        fleet = Fleet(stack, url, ("--app", APP, "--poll-interval", "0.2"))
        worker = fleet.workers[0]
        # A first job, so that the worker's finisher holds its connection too.
        assert queue.wait_for(queue.enqueue("noop").id, timeout=10).status is JobStatus.COMPLETED
        refused = allow.format(pgsql.Identifier(DATABASE), pgsql.SQL("false"))
        admin.execute(refused)
        try:
            pids = _listener_pids(control)
            control.execute("SELECT pg_terminate_backend(%s, 5000)", pids)
            fleet.wait_until(
                "the listener failing to reconnect",
                lambda: worker.count("worker.listener_lost") >= 3,
                timeout=10,
            )
            # Enqueued on a connection of its own: new ones are refused.
            job = queue.enqueue("noop", connection=control)
            fleet.wait_until(
                "the job completed by polling",
                lambda: any(
                    line.get("job_id") == job.id for line in worker.events("job.completed")
                ),
                timeout=10,
            )
            assert worker.count("worker.listener_reconnected") == 0
        finally:
            admin.execute(allow.format(pgsql.Identifier(DATABASE), pgsql.SQL("true")))
        fleet.wait_until(
            "the listener reconnected",
            lambda: worker.count("worker.listener_reconnected") == 1,
            timeout=BACKOFF_CAP + 5,
        )
        code = worker.stop()
    assert code == 0
    assert worker.count("worker.claim_failed") == 0
    assert worker.count("worker.side_task_failed") == 0


# --- 3. pools smaller than the concurrency -------------------------------------------

DEADLINE_S = 30.0


def test_sixteen_jobs_reporting_and_enqueueing_through_small_pools_do_not_deadlock(
    queueing_database_url: str, faults_app: Queue
) -> None:
    """16 sync jobs at once on a worker of concurrency 16, whose progress pool holds 4
    connections, each reporting progress three times and enqueueing a child through a
    Queue whose pool holds 2, and none finishing before all 16 are in flight together
    (a barrier). All 32 jobs complete within the deadline.

    This proves that no job ever waits for a connection another job holds while it
    runs: a progress report holds its connection for one statement, every slot has a
    thread of its own, and an enqueue gives its connection back at once. Were any of
    these held across a job, at most 4 (or 2) jobs would reach the barrier, and every
    job would fail there (BrokenBarrierError) instead of completing.
    """
    queue = faults_app
    url = queueing_database_url
    with contextlib.ExitStack() as stack:
        fleet = Fleet(
            stack, url, ("--app", APP, "--concurrency", str(MEETING), "--prune-interval", "0")
        )
        began = time.monotonic()
        parents = queue.enqueue_many(JobRequest("meet") for _ in range(MEETING))
        wait_all(queue, [p.id for p in parents], timeout=DEADLINE_S)
        children = queue.list_jobs(task="child", limit=2 * MEETING)
        wait_all(queue, [c.id for c in children], timeout=DEADLINE_S)
        elapsed = time.monotonic() - began
        code = fleet.workers[0].stop()

    print()  # noqa: T201 - the figures, shown with pytest -s
    print(f"{MEETING} jobs meeting through pools of 4 and 2: all done in {elapsed:.3f}s")  # noqa: T201
    assert code == 0
    assert elapsed < DEADLINE_S
    done = [queue.get_job(p.id) for p in parents]
    assert [(j.status, j.progress) for j in done] == [(JobStatus.COMPLETED, 100)] * MEETING, [
        (j.id, j.status, j.error) for j in done
    ]
    assert sorted(int(str(j.result)) for j in done) == sorted(c.id for c in children)
    assert [queue.get_job(c.id).status for c in children] == [JobStatus.COMPLETED] * MEETING
    assert fleet.count("job.progress") == 3 * MEETING


# --- 4. an outcome the database refuses ----------------------------------------------


def test_an_outcome_the_database_refuses_does_not_wedge_the_others(
    queueing_database_url: str, faults_app: Queue
) -> None:
    """A job whose result the database refuses (a data error) finishes in the same batch
    as others: it ends failed with an OutcomeRejected error, every other job completes,
    later jobs too, and the worker stops cleanly (nothing left unwritten)."""
    queue = faults_app
    url = queueing_database_url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(REFUSE_RESULT)
    with contextlib.ExitStack() as stack:
        stack.callback(_drop_refusal, url)
        fleet = Fleet(stack, url, ("--app", APP, "--concurrency", "20"))
        first = queue.enqueue_many(
            [*(JobRequest("noop") for _ in range(10)), JobRequest("nul")]
            + [JobRequest("noop") for _ in range(9)]
        )
        wait_all(queue, [j.id for j in first], timeout=20)
        later = queue.enqueue("noop")
        assert queue.wait_for(later.id, timeout=10).status is JobStatus.COMPLETED
        code = fleet.workers[0].stop()
    rejected = queue.get_job(first[10].id)
    assert rejected.status is JobStatus.FAILED
    assert rejected.error is not None and rejected.error.type == "OutcomeRejected"
    assert rejected.result is None
    others = [queue.get_job(j.id).status for j in first if j.id != rejected.id]
    assert others == [JobStatus.COMPLETED] * 19
    assert code == 0
    assert fleet.count("worker.finish_rejected") == 1
    assert fleet.count("worker.side_task_failed") == 0
    assert all(QUEUE_STATUS[state] == status for _, status, state, _ in _status_rows(url))


def _drop_refusal(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP FUNCTION test_refuse_result() CASCADE")


# --- 5. a worker stopped while the database is away ----------------------------------

STOP_SETTINGS = (
    "--app", APP, "--concurrency", "2", "--shutdown-timeout", "10",
    "--heartbeat-interval", str(HEARTBEAT_INTERVAL), "--stall-timeout", "1",
    "--rescue-interval", "0.2", "--prune-interval", "0",
)  # fmt: skip


def _stop_during_outage(
    server: PrivateServer, queue: Queue, fleet: Fleet, gate: Path
) -> tuple[WorkerProcess, list[Job]]:
    """Two jobs running, the server stopped, SIGTERM: the jobs finish in the grace
    period, and their outcomes wait for the database.

    The jobs end when the test opens ``gate``, once the worker drains them with the
    server down. With a fixed 0.5 s of work they had to outlast the test's reading of
    their "job.started" lines, the server's stop (together 0.13-0.25 s of it on a loaded
    2-core box) and the SIGTERM; had they ended first, the worker had nothing to drain
    (no "worker.draining") or wrote their outcomes before the server went away."""
    worker = fleet.workers[0]
    jobs = queue.enqueue_many([JobRequest("gated", {"gate": str(gate)}) for _ in range(2)])
    fleet.wait_until("both jobs running", lambda: worker.count("job.started") == 2, timeout=10)
    server.stop("fast")
    queue.close()  # its pool's connections died with the server (see test 1)
    worker.send_signal(signal.SIGTERM)
    fleet.wait_until(
        "the worker draining both jobs",
        lambda: [line["running"] for line in worker.events("worker.draining")] == [2],
        timeout=10,
    )
    gate.touch()  # the jobs end in the grace period, with the database away
    fleet.wait_until(
        "the outcomes waiting for the database",
        lambda: worker.count("worker.finish_retry") >= 2,
        timeout=10,
    )
    return worker, jobs


def test_a_worker_stopped_during_an_outage_writes_its_outcomes_once_the_database_is_back(
    private_pg: PrivateServer, tmp_path: Path
) -> None:
    """SIGTERM while the database is away: the worker does not exit with outcomes it
    could not write; once the database is back it writes them, unregisters and exits 0."""
    url = private_pg.url(DATABASE)
    with pointed_at(app, url) as queue, contextlib.ExitStack() as stack:
        fleet = Fleet(stack, url, STOP_SETTINGS)
        worker, jobs = _stop_during_outage(private_pg, queue, fleet, tmp_path / "gate")
        # Down for longer than any bounded wait of a worker that would give up (a
        # forced stop gives up after FORCED_FLUSH_TIMEOUT): it is still there after, its
        # heartbeat (which runs while it drains) failing all the while.
        outage = FORCED_FLUSH_TIMEOUT + 1
        beats = worker.count("worker.heartbeat_failed") + _failed_beats_spanning(outage)
        fleet.wait_until(
            f"the heartbeat failing for {outage}s more",
            lambda: worker.count("worker.heartbeat_failed") >= beats,
            timeout=outage + 20,
        )
        assert worker.running  # still there, holding the outcomes
        assert worker.count("job.completed") == 0
        private_pg.start()
        code = worker.wait(20)
        statuses = [queue.get_job(job.id).status for job in jobs]
        with psycopg.connect(url) as conn:
            registered = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
    assert code == 0
    assert statuses == [JobStatus.COMPLETED] * 2
    assert worker.count("job.completed") == 2
    assert worker.count("worker.outcomes_abandoned") == 0
    assert registered == (0,)  # it unregistered on its way out


def test_a_worker_forced_to_stop_during_an_outage_leaves_its_jobs_to_the_rescuer(
    private_pg: PrivateServer, tmp_path: Path
) -> None:
    """A second SIGTERM while the outcomes wait for the database: the worker gives them
    up (logged) and exits 0 promptly. Nothing is lost: its jobs are still active under
    its silent registration, so once the database is back a rescuer gives them back and
    they run again."""
    url = private_pg.url(DATABASE)
    with pointed_at(app, url) as queue, contextlib.ExitStack() as stack:
        fleet = Fleet(stack, url, STOP_SETTINGS)
        worker, jobs = _stop_during_outage(private_pg, queue, fleet, tmp_path / "gate")
        forced_at = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(FORCED_FLUSH_TIMEOUT + 10)
        exit_s = time.monotonic() - forced_at
        private_pg.start()
        rescuer = Fleet(stack, url, STOP_SETTINGS)
        wait_all(queue, [job.id for job in jobs], timeout=20)
        statuses = [queue.get_job(job.id).status for job in jobs]
        codes = rescuer.stop()
    print()  # noqa: T201 - the figures, shown with pytest -s
    print(f"forced stop during an outage: exited {exit_s:.3f}s after the second SIGTERM")  # noqa: T201
    assert code == 0
    assert exit_s < FORCED_FLUSH_TIMEOUT + 5
    abandoned = worker.events("worker.outcomes_abandoned")
    assert [line["jobs"] for line in abandoned] == [2]
    assert statuses == [JobStatus.COMPLETED] * 2
    assert codes == [0]
    assert _attempt_outcomes(url) == {"worker_lost": 2, "completed": 2}
    assert all(QUEUE_STATUS[state] == status for _, status, state, _ in _status_rows(url))


# --- 6. a failover to a server that is read-only for a while -------------------------

FAILOVER_SETTINGS = (
    "--app", APP, "--concurrency", "2", "--poll-interval", LONG_POLL,
    "--heartbeat-interval", "0.2", "--stall-timeout", "5", "--rescue-interval", "0.2",
    "--prune-interval", "0",
)  # fmt: skip


def test_a_failover_through_a_read_only_server_costs_no_part_of_the_worker(
    private_pg: PrivateServer,
) -> None:
    """The server restarts as a standby not promoted yet (as when a failover lands on a
    replica first): it takes connections but refuses every write and LISTEN with
    ReadOnlySqlTransaction, which is not a connection error. Then it is promoted.

    The worker stays up through it all: claims back off, outcomes wait, the heartbeat
    fails and goes on, the listener's refused LISTEN is logged and retried with backoff.
    After the promotion every job completes, and a job enqueued last is picked up by
    notification (polling is 60 s): the listener listens again. No side task died.
    """
    url = private_pg.url(DATABASE)
    with pointed_at(app, url) as queue, contextlib.ExitStack() as stack:
        fleet = Fleet(stack, url, FAILOVER_SETTINGS)
        worker = fleet.workers[0]
        jobs = queue.enqueue_many([JobRequest("nap", {"seconds": 0.1}) for _ in range(20)])
        fleet.wait_until("jobs completed", lambda: worker.count("job.completed") >= 2, timeout=10)
        private_pg.stop("fast")
        queue.close()  # its pool's connections died with the server (see test 1)
        private_pg.start(standby=True)

        def refused(event: str) -> bool:
            return any(
                line.get("error_type") == "ReadOnlySqlTransaction" for line in worker.events(event)
            )

        fleet.wait_until(
            "claims, outcomes and the listener refused by the read-only server",
            lambda: (
                refused("worker.claim_failed")
                and refused("worker.finish_retry")
                and any(
                    "cannot execute LISTEN" in str(line["error"])  # "... during recovery"
                    for line in worker.events("worker.listener_lost")
                )
                and any(
                    "read-only" in str(line["error"])
                    for line in worker.events("worker.heartbeat_failed")
                )
            ),
            timeout=20,
        )
        private_pg.promote()
        wait_all(queue, [job.id for job in jobs], timeout=30)
        fleet.wait_until(
            "the listener listening again",
            lambda: worker.count("worker.listener_reconnected") >= 1,
            timeout=20,
        )
        last = queue.enqueue("noop")
        assert queue.wait_for(last.id, timeout=PICKUP_S).status is JobStatus.COMPLETED
        code = worker.stop()
    failed = worker.events("worker.side_task_failed")
    print()  # noqa: T201 - the figures, shown with pytest -s
    print(f"failover via a read-only server: side tasks restarted {len(failed)}x")  # noqa: T201
    assert code == 0
    assert failed == []
    assert worker.count("worker.claim_recovered") >= 1
    assert _attempt_outcomes(url) == {"completed": len(jobs) + 1}
    assert all(QUEUE_STATUS[state] == status for _, status, state, _ in _status_rows(url))


# --- the library's pools ---------------------------------------------------------------


def test_the_first_call_after_a_restart_succeeds_on_a_pool_of_dead_connections(
    private_pg: PrivateServer,
) -> None:
    """Idle pooled connections die with the server; the pools' check replaces them
    before use, so neither the sync nor the async API fails its first call after."""
    url = private_pg.url(DATABASE)
    queue = Queue(url, pool_size=4, pool_timeout=10.0)

    async def enqueue_async(n: int) -> list[Job]:
        return list(await asyncio.gather(*(queue.aio.enqueue("t") for _ in range(n))))

    try:
        loop = asyncio.new_event_loop()
        # Fill both pools with idle connections.
        threads = [threading.Thread(target=queue.enqueue, args=("t",)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        loop.run_until_complete(enqueue_async(4))
        private_pg.stop("fast")
        private_pg.start()
        assert queue.enqueue("after").task_name == "after"  # no DatabaseUnavailable
        assert len(loop.run_until_complete(enqueue_async(4))) == 4
        assert len(queue.list_jobs(limit=100)) == 13  # 4 + 4 before, 1 + 4 after
        loop.run_until_complete(queue.aio.close())
        loop.close()
    finally:
        queue.close()


def test_concurrent_first_calls_share_one_pool(queue: Queue) -> None:
    """Eight threads (and eight tasks) making their first call at once open one pool
    each side, so ``pool_size`` holds and no pool is leaked."""
    fresh = Queue(queue.database_url, pool_size=3)
    pools: list[object] = []
    barrier = threading.Barrier(8)

    def first_call() -> None:
        barrier.wait(timeout=10)
        pools.append(fresh._get_pool())

    async def first_calls() -> list[object]:
        return list(await asyncio.gather(*(fresh.aio._get_pool() for _ in range(8))))

    try:
        threads = [threading.Thread(target=first_call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(pools) == 8 and len({id(p) for p in pools}) == 1
        loop = asyncio.new_event_loop()
        try:
            async_pools = loop.run_until_complete(first_calls())
            assert len({id(p) for p in async_pools}) == 1
            loop.run_until_complete(fresh.aio.close())
        finally:
            loop.close()
    finally:
        fresh.close()
