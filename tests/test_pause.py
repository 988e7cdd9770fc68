"""Pausing a queue: decided in the claim statement, for every worker; resume wakes them."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest

from queueing import InvalidPayload, JobStatus, Queue, QueueNotFound
from queueing.testing import QueueClock, QueueWorker
from tests.helpers import run_cli

#: Longer than any wait below: a job that runs within a test's wait after a resume was
#: claimed because the resume woke the worker, not because the worker polled.
POLL = 60.0


def _declare(queue: Queue, release: threading.Event) -> None:
    @queue.task(name="report", queue="reports")
    def report(n: int) -> int:
        release.wait(30)
        return n

    @queue.task(name="ping")
    def ping() -> str:
        return "pong"


def _settings_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        (count,) = conn.execute("SELECT count(*) FROM queueing_queues").fetchone() or (0,)
    return int(count)


def test_a_paused_queue_is_claimed_by_no_worker_and_resume_wakes_them(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    release = threading.Event()
    release.set()
    _declare(queue, release)
    paused = queue.pause_queue("reports")
    assert (paused.name, paused.paused) == ("reports", True)
    with queueing_worker.background(poll_interval=POLL):
        held = queue.enqueue("report", {"n": 1})  # enqueue still works
        # Enqueued after `held`: if the claim did not skip "reports", `held` (older, same
        # priority) would be claimed first.
        later = queue.enqueue("ping")
        assert queue.wait_for(later.id, timeout=20).status == JobStatus.COMPLETED
        assert queue.get_job(held.id).status == JobStatus.PENDING
        (info,) = [q for q in queue.list_queues() if q.name == "reports"]
        assert (info.pending, info.active, info.paused) == (1, 0, True)
        resumed = queue.resume_queue("reports")
        assert resumed.paused is False
        # Woken by the resume's notification: the worker polls only every minute.
        assert queue.wait_for(held.id, timeout=20).result == 1


def test_jobs_running_when_their_queue_is_paused_finish(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    release = threading.Event()
    _declare(queue, release)
    with queueing_worker.background(poll_interval=0.1):
        running = queue.enqueue("report", {"n": 7})
        queue.wait_for(running.id, [JobStatus.ACTIVE], timeout=20)
        queue.pause_queue("reports")
        waiting = queue.enqueue("report", {"n": 8})
        release.set()
        assert queue.wait_for(running.id, timeout=20).status == JobStatus.COMPLETED
        sentinel = queue.enqueue("ping")
        queue.wait_for(sentinel.id, timeout=20)
        assert queue.get_job(waiting.id).status == JobStatus.PENDING


def test_queues_list_counts(queue: Queue, queue_clock: QueueClock) -> None:
    @queue.task(name="fails", queue="mail", retry=1)
    def fails() -> None:
        raise ValueError("no")

    @queue.task(name="send", queue="mail")
    def send() -> None:
        return None

    failed = queue.enqueue(fails)
    from queueing.testing import drain

    drain(queue)
    assert queue.get_job(failed.id).status == JobStatus.FAILED
    queue.enqueue(send)
    queue.enqueue(send)
    queue.enqueue(send, delay=600)
    queue_clock.advance(30)  # the two due jobs have waited 30 s (and the delayed one less)
    (mail,) = queue.list_queues()
    assert mail.name == "mail"
    assert (mail.pending, mail.active, mail.delayed, mail.failed_last_hour) == (2, 0, 1, 1)
    assert mail.oldest_pending_age_seconds is not None and mail.oldest_pending_age_seconds >= 30
    assert (mail.paused, mail.max_active) == (False, None)
    queue_clock.advance(3600)  # the failure is now over an hour old
    (mail,) = queue.list_queues()
    assert mail.failed_last_hour == 0


def test_an_unknown_queue_is_refused_and_nothing_is_written(queue: Queue) -> None:
    with pytest.raises(QueueNotFound, match="queue 'reprots' not found") as raised:
        queue.pause_queue("reprots")
    assert raised.value.http_status == 404
    with pytest.raises(InvalidPayload, match="invalid queue name"):
        queue.pause_queue("no spaces")
    assert _settings_rows(queue.database_url) == 0
    # A queue the app's tasks declare is known before any job used it.
    _declare(queue, threading.Event())
    assert queue.pause_queue("reports").paused is True
    assert [q.name for q in queue.list_queues()] == ["reports"]


async def test_pause_and_resume_async(queue: Queue) -> None:
    queue.enqueue("anything", queue="emails")
    try:
        assert (await queue.aio.pause_queue("emails")).paused is True
        (listed,) = await queue.aio.list_queues()
        assert (listed.name, listed.pending, listed.paused) == ("emails", 1, True)
        assert (await queue.aio.resume_queue("emails")).paused is False
        with pytest.raises(QueueNotFound):
            await queue.aio.resume_queue("nope")
    finally:
        await queue.aio.close()


def test_cli_queues_list_pause_resume(queue: Queue) -> None:
    url = queue.database_url
    queue.enqueue("anything", queue="emails")
    paused = run_cli("queues", "pause", "emails", "--database-url", url)
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout == "queue emails: paused (1 pending, 0 active)\n"
    listed = run_cli("queues", "list", "--json", "--database-url", url)
    (row,) = json.loads(listed.stdout)
    assert row == {
        "name": "emails",
        "pending": 1,
        "active": 0,
        "delayed": 0,
        "failed_last_hour": 0,
        "oldest_pending_age_seconds": row["oldest_pending_age_seconds"],
        "paused": True,
        "max_active": None,
    }
    table = run_cli("queues", "list", "--database-url", url)
    assert table.stdout.splitlines()[0].split() == [
        "queue", "pending", "active", "delayed", "failed", "1h", "oldest", "pending", "max",
        "active", "paused",
    ]  # fmt: skip
    assert table.stdout.splitlines()[1].split()[-1] == "yes"
    resumed = run_cli("queues", "resume", "emails", "--json", "--database-url", url)
    assert json.loads(resumed.stdout)["paused"] is False
    unknown = run_cli("queues", "pause", "emials", "--database-url", url)
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr == ("error: queue 'emials' not found (no job, task or setting uses it)\n")
    zero = run_cli("queues", "limit", "emails", "0", "--database-url", url)
    assert zero.returncode == 1
    assert zero.stderr == "error: a concurrency limit must be at least 1, got 0\n"
    assert queue.list_queues()[0].max_active is None
