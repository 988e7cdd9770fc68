"""Per-key and per-queue concurrency limits, enforced by the claim across all workers."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from queueing import (
    ConfigurationError,
    InvalidPayload,
    Job,
    JobContext,
    JobRequest,
    JobStatus,
    Queue,
)
from queueing.testing import QueueWorker
from tests.apps import limits_app
from tests.helpers import Fleet, pointed_at, run_cli, wait_all

APP = "tests.apps.limits_app:queue"


@pytest.fixture
def app(queue: Queue) -> Iterator[Queue]:
    """The limits app's Queue on this test's (emptied) database."""
    with pointed_at(limits_app.queue, queue.database_url) as q:
        yield q


def _max_overlap(jobs: list[Job]) -> dict[str, int]:
    """Per key, the most executions running at once, from the times each handler
    recorded: at each start, how many of the key's executions had started and not ended."""
    runs: dict[str, list[tuple[float, float]]] = {}
    for job in jobs:
        run = job.result
        assert isinstance(run, dict)
        runs.setdefault(str(run["key"]), []).append((run["started"], run["finished"]))
    return {
        key: max(sum(1 for s, f in spans if s <= start < f) for start, _ in spans)
        for key, spans in runs.items()
    }


def test_eight_workers_2000_jobs_20_keys_limit_2(app: Queue) -> None:
    url = app.database_url
    requests = [
        JobRequest("limited", {"tenant": f"t{n % 20}", "seconds": 0.002 * (n % 7)})
        for n in range(2000)
    ]
    # The control: jobs with no limit, measured the same way, do overlap.
    requests += [JobRequest("unlimited", {"seconds": 0.05}) for _ in range(200)]
    # No pruner, no vacuumer: 5 connections a worker, 40 for the fleet (a shared server).
    args = (
        "--app", APP, "--concurrency", "5", "--poll-interval", "0.1",
        "--prune-interval", "0", "--vacuum-interval", "0",
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        fleet = Fleet(stack, url, *[args] * 8)
        ids = [job.id for job in app.enqueue_many(requests)]
        wait_all(app, ids, 300)
        assert fleet.stop() == [0] * 8
    jobs = app.list_jobs(limit=5000)
    assert Counter(job.status for job in jobs) == {JobStatus.COMPLETED: 2200}
    overlap = _max_overlap(jobs)
    control = overlap.pop("control")
    assert len(overlap) == 20
    assert max(overlap.values()) <= 2, overlap
    assert control > 2, "the measurement sees concurrent executions when nothing limits them"
    started = Counter(str(line["queue"]) for line in fleet.events("job.started"))
    assert sum(started.values()) == 2200  # each job ran once


def test_a_key_at_its_limit_does_not_hold_back_other_keys(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    release = threading.Event()

    @queue.task(name="export", concurrency_key="{tenant_id}", concurrency_limit=2)
    def export(n: int) -> int:
        release.wait(60)
        return n

    big = queue.enqueue_many(
        [JobRequest(export, {"n": n}, tenant_id="bulk") for n in range(10_000)]
    )
    try:
        with queueing_worker.background(concurrency=10, poll_interval=60):
            queue.wait_for(big[0].id, [JobStatus.ACTIVE], timeout=30)
            queue.wait_for(big[1].id, [JobStatus.ACTIVE], timeout=30)
            # The small tenant's one job: claimed by the next claim round (its enqueue's
            # notification wakes the worker), ahead of the bulk tenant's 9,998.
            small = queue.enqueue(export, {"n": -1}, tenant_id="small")
            release_small = queue.wait_for(small.id, [JobStatus.ACTIVE], timeout=10)
            assert release_small.status == JobStatus.ACTIVE
            active = queue.list_jobs(statuses=[JobStatus.ACTIVE], limit=100)
            assert sorted(j.id for j in active) == sorted([big[0].id, big[1].id, small.id])
            release.set()
            assert queue.wait_for(small.id, timeout=30).result == -1
            # Then the bulk tenant's jobs go on, two at a time (not waited for: 10,000).
            queue.wait_for(big[2].id, timeout=30)
    finally:
        release.set()


def _claim_as_other_worker(url: str, job_id: int) -> int:
    """Claim ``job_id`` under a worker registration of its own (no process behind it);
    that worker's id."""
    with psycopg.connect(url, autocommit=True) as conn:
        (worker_id,) = conn.execute(
            "SELECT worker_id FROM procrastinate_register_worker_v1()"
        ).fetchone() or (0,)
        claimed = conn.execute(
            "SELECT id FROM queueing_claim_v8(NULL, %s, 1, false)", (worker_id,)
        ).fetchall()
        assert claimed == [(job_id,)]
    return int(worker_id)


def _stop_heartbeat(url: str, worker_id: int) -> None:
    """The worker died: its last heartbeat an hour ago."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour' "
            "WHERE id = %s",
            (worker_id,),
        )


def test_a_rescued_job_gives_its_slot_back(queue: Queue, queueing_worker: QueueWorker) -> None:
    @queue.task(name="sync_account", concurrency_key="{account}", concurrency_limit=1)
    def sync_account(account: str, n: int) -> int:
        return n

    lost = queue.enqueue(sync_account, {"account": "a", "n": 1})
    waiting = queue.enqueue(sync_account, {"account": "a", "n": 2})
    holder = _claim_as_other_worker(queue.database_url, lost.id)
    # The other worker holds key "a"'s only slot: this one cannot take `waiting`...
    assert queueing_worker.drain().job_ids == []
    assert queue.get_job(waiting.id).status == JobStatus.PENDING
    # ...until the other dies and the rescuer gives `lost` back: its slot comes back.
    _stop_heartbeat(queue.database_url, holder)
    with queueing_worker.background(
        poll_interval=0.1, rescue_interval=0.1, heartbeat_interval=0.2, stall_timeout=1.0
    ):
        assert queue.wait_for(lost.id, timeout=30).status == JobStatus.COMPLETED
        assert queue.wait_for(waiting.id, timeout=30).status == JobStatus.COMPLETED
    outcomes = [a.outcome for a in queue.attempts(lost.id)]
    assert outcomes == ["worker_lost", "completed"]


def test_cancelling_a_running_job_frees_its_slot(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    @queue.task(name="render", concurrency_key="{doc}", concurrency_limit=1)
    async def render(doc: str, n: int) -> int:
        if n == 1:
            await asyncio.Event().wait()  # runs until cancelled
        return n

    first = queue.enqueue(render, {"doc": "d", "n": 1})
    second = queue.enqueue(render, {"doc": "d", "n": 2})
    with queueing_worker.background(poll_interval=60):
        queue.wait_for(first.id, [JobStatus.ACTIVE], timeout=20)
        queue.enqueue(render, {"doc": "other", "n": 3})  # a claim round that skips "d"
        assert queue.get_job(second.id).status == JobStatus.PENDING
        queue.cancel(first.id)
        assert queue.wait_for(first.id, timeout=20).status == JobStatus.CANCELLED
        assert queue.wait_for(second.id, timeout=20).result == 2


def test_a_queue_max_active_holds_across_its_jobs(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    running: list[int] = []
    most = [0]
    lock = threading.Lock()

    @queue.task(name="crawl", queue="crawl")
    async def crawl(n: int) -> int:
        with lock:
            running.append(n)
            most[0] = max(most[0], len(running))
        await asyncio.sleep(0.01)  # allowed-sleep: simulates work
        with lock:
            running.remove(n)
        return n

    queue.set_queue_limit("crawl", 3)
    jobs = queue.enqueue_many([JobRequest(crawl, {"n": n}) for n in range(30)])
    assert len(queueing_worker.drain(concurrency=10, poll_interval=0.05)) == 30
    assert all(queue.get_job(j.id).status == JobStatus.COMPLETED for j in jobs)
    assert most[0] == 3
    (info,) = queue.list_queues()
    assert info.max_active == 3
    assert queue.set_queue_limit("crawl", None).max_active is None


def test_bad_limits_are_refused_and_nothing_is_written(queue: Queue) -> None:
    with pytest.raises(ConfigurationError, match="at least 1, got 0"):
        queue.task(name="t0", concurrency_key="{x}", concurrency_limit=0)(_handler)
    with pytest.raises(ConfigurationError, match="go together"):
        queue.task(name="t1", concurrency_key="{x}")(_handler)

    @queue.task(name="keyed", concurrency_key="{x}", concurrency_limit=2)
    def keyed(x: str) -> None:
        return None

    with pytest.raises(InvalidPayload, match="at least 1, got 0"):
        queue.enqueue(keyed, {"x": "a"}, concurrency_limit=0)
    with pytest.raises(InvalidPayload, match="cannot make the job's concurrency key"):
        queue.enqueue(keyed, {"x": "a"}, concurrency_key="{y}", concurrency_limit=1)
    producer = Queue(queue.database_url)  # declares no task: any name, any JSON args
    try:
        with pytest.raises(InvalidPayload, match="reserved"):
            producer.enqueue("other", {"_queueing_concurrency": {"key": "k", "limit": 1}})
        with pytest.raises(InvalidPayload, match="needs a concurrency_limit"):
            producer.enqueue("other", {}, concurrency_key="k")
    finally:
        producer.close()
    with pytest.raises(InvalidPayload, match="at least 1, got 0"):
        queue.set_queue_limit("default", 0)
    assert queue.list_jobs() == []
    assert queue.list_queues() == []


def _handler(x: str) -> None:
    return None


def test_an_enqueue_may_name_its_own_key(queue: Queue, queueing_worker: QueueWorker) -> None:
    seen: list[str] = []

    @queue.task(name="notify")
    def notify(ctx: JobContext, to: str) -> None:
        seen.append(to)

    job = queue.enqueue(notify, {"to": "ada"}, concurrency_key="mail:ada", concurrency_limit=1)
    with psycopg.connect(queue.database_url) as conn:
        row = conn.execute(
            "SELECT concurrency_key, concurrency_limit, args FROM procrastinate_jobs WHERE id = %s",
            (job.id,),
        ).fetchone()
    assert row == ("mail:ada", 1, {"to": "ada"})  # the key left the args
    assert queueing_worker.drain().job_ids == [job.id]
    assert seen == ["ada"]


def test_cli_enqueue_with_a_key_and_a_bad_limit(queue: Queue) -> None:
    url = queue.database_url
    done = run_cli(
        "enqueue", "sync", "--concurrency-key", "acct:1", "--concurrency-limit", "1",
        "--json", "--database-url", url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    bad = run_cli(
        "enqueue", "sync", "--concurrency-key", "acct:1", "--concurrency-limit", "0",
        "--database-url", url,
    )  # fmt: skip
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr == "error: a concurrency limit must be at least 1, got 0\n"
    assert len(queue.list_jobs()) == 1


def _insert(conn: psycopg.Connection[Any], n: int, queue: str, key: str | None) -> None:
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, concurrency_key,"
        " concurrency_limit) SELECT %s, 't', '{}', %s, CASE WHEN %s::text IS NULL THEN NULL"
        " ELSE 2 END FROM generate_series(1, %s)",
        (queue, key, key, n),
    )


@pytest.mark.parametrize("analyzed", [True, False], ids=["analyzed", "fresh-statistics"])
def test_a_full_key_and_a_paused_queue_are_not_walked(queue: Queue, analyzed: bool) -> None:
    """A claim's cost does not grow with a key's waiting jobs or a paused queue's: buffers
    from EXPLAIN (ANALYZE, BUFFERS), as tests/test_claim_plans.py counts them."""
    with psycopg.connect(queue.database_url, autocommit=True) as conn:
        # Earlier tests' rows, deleted between tests, are dead versions until a vacuum:
        # without it the claim stepped over 20,000 of them (2,699 buffers, in a full run).
        conn.execute("VACUUM procrastinate_jobs")
        (worker_id,) = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone() or (0,)
        _insert(conn, 20_000, "q", "full")
        claim = "SELECT count(*) FROM queueing_claim_v8(%s, %s, %s, false)"
        assert conn.execute(claim, (None, worker_id, 2)).fetchone() == (2,)  # "full" is full
        _insert(conn, 20_000, "parked", None)
        conn.execute("INSERT INTO queueing_queues (name, paused) VALUES ('parked', true)")
        _insert(conn, 1, "q", "small")
        _insert(conn, 50, "q", None)
        if analyzed:
            conn.execute("ANALYZE procrastinate_jobs")
        conn.execute(claim, (["warm"], worker_id, 1))  # plans the function's statements
        explain = (
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)"
            " SELECT * FROM queueing_claim_v8(NULL, %s, 10, false)"
        )
        row = conn.execute(explain, (worker_id,)).fetchone()
        assert row is not None
        top = row[0][0]["Plan"]
        claimed = conn.execute(
            "SELECT concurrency_key, count(*) FROM procrastinate_jobs WHERE status = 'doing'"
            " GROUP BY 1 ORDER BY 1"
        ).fetchall()
    buffers = top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
    assert claimed == [("full", 2), ("small", 1), (None, 9)]
    assert buffers <= 1_500, f"the claim touched {buffers} buffers"
