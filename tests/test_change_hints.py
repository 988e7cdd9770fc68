"""Job-change hints are sent only while a session registered for them (migration 0015).

A change made while no one is registered sends nothing; a registration waits for the
transactions that changed jobs unannounced, so a wait that registers and then reads the
job cannot miss their changes; a registration that would wait too long gives way to
polling; a database upgraded from schema 14 keeps hinting every change for release 14's
clients, which LISTEN without registering.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from procrastinate.schema import SchemaManager
from psycopg import sql as pgsql

from queueing import Queue, drivers, ops, sql
from queueing.models import Job, JobStatus
from queueing.web.feed import ChangeFeed
from tests.helpers import poll

CHANNEL = ops.JOB_CHANGED_CHANNEL
DEADLINE = 20.0
#: A wait's own timeout, well past DEADLINE: a wait that has not seen the change by then
#: missed it (at its timeout it would read the job once more and find it).
WAIT_TIMEOUT = 120.0


@pytest.fixture
def plain_listener(queue: Queue) -> Iterator[psycopg.Connection[Any]]:
    """A session that LISTENs on the channel without registering (as release 14 did)."""
    with psycopg.connect(queue.database_url, autocommit=True) as conn:
        conn.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(CHANNEL)))
        yield conn


def registrations(url: str) -> int:
    """Sessions holding a registration's slots in this database."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT pid) FROM pg_locks WHERE locktype = 'advisory'"
            " AND mode = 'ShareLock' AND database = (SELECT oid FROM pg_database"
            "  WHERE datname = current_database())"
        ).fetchone()
    assert row is not None
    return int(row[0])


def next_payload(conn: psycopg.Connection[Any]) -> str:
    for notify in conn.notifies(timeout=DEADLINE, stop_after=1):
        return notify.payload
    raise AssertionError(f"no notification within {DEADLINE:g}s")


def marker(url: str) -> None:
    """A notification of the test's own: received after every hint committed before it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, 'marker')", [CHANNEL])


def test_a_change_sends_no_hint_while_no_one_is_registered(
    queue: Queue, plain_listener: psycopg.Connection[Any]
) -> None:
    assert registrations(queue.database_url) == 0
    job = queue.enqueue("t")
    queue.cancel(job.id)
    marker(queue.database_url)
    assert next_payload(plain_listener) == "marker"  # the cancel said nothing


def test_a_change_is_hinted_while_a_session_is_registered(
    queue: Queue, plain_listener: psycopg.Connection[Any]
) -> None:
    job = queue.enqueue("t")
    with psycopg.connect(queue.database_url, autocommit=True) as registered:
        assert drivers.run_sync(ops.listen_job_changes(5.0), registered) is True
        queue.cancel(job.id)
        assert next_payload(plain_listener) == str(job.id)
        assert next_payload(registered) == str(job.id)
    # The registration ends with its session.
    other = queue.enqueue("t")
    poll("the registration released", lambda: registrations(queue.database_url) == 0 or None, 10)
    queue.cancel(other.id)
    marker(queue.database_url)
    assert next_payload(plain_listener) == "marker"


def _unannounced_change(url: str, job: Job) -> psycopg.Connection[Any]:
    """A transaction, left open, that changed ``job`` while no one was registered."""
    conn = psycopg.connect(url)
    conn.execute("UPDATE procrastinate_jobs SET progress = 40 WHERE id = %s", [job.id])
    return conn


def _waiting_on_a_slot(url: str) -> bool | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
        ).fetchone()
    return True if row is not None and row[0] > 0 else None


@contextlib.contextmanager
def wait_behind_an_unannounced_change(
    queue: Queue,
) -> Iterator[tuple[psycopg.Connection[Any], Future[Job]]]:
    """A ``wait_for_change`` on a job that an open transaction changed while no one was
    registered, once the wait's registration is seen waiting for that transaction's slot:
    the transaction (to commit) and the wait's future."""
    job = queue.get_job(queue.enqueue("t").id)
    url = queue.database_url
    changing = _unannounced_change(url, job)
    with changing, ThreadPoolExecutor(1) as pool:
        waited = pool.submit(queue.wait_for_change, job, timeout=WAIT_TIMEOUT)
        poll("the wait registering", lambda: _waiting_on_a_slot(url), 10)
        yield changing, waited


def test_a_wait_registers_after_an_unannounced_change_commits_and_sees_it(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops, "REGISTER_WAIT", DEADLINE)  # it registers, however slow the machine
    with wait_behind_an_unannounced_change(queue) as (changing, waited):
        changing.commit()
        # Its hint was never sent: the wait sees the change by reading after registering.
        assert waited.result(DEADLINE).progress == 40


def test_a_wait_that_cannot_register_in_time_polls(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops, "REGISTER_WAIT", 3.0)  # long enough to be seen waiting
    with wait_behind_an_unannounced_change(queue) as (changing, waited):
        # It gives up registering after REGISTER_WAIT and reads the job every
        # WAIT_POLL_INTERVAL: the change, committed after that, is seen with no hint.
        url = queue.database_url
        poll("the wait giving up", lambda: None if _waiting_on_a_slot(url) else True, 10)
        changing.commit()
        assert waited.result(DEADLINE).progress == 40


def _triggers(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'procrastinate_jobs'::regclass"
            " AND tgname LIKE 'queueing_notify_jobs_changed%%' ORDER BY tgname"
        ).fetchall()
    return [name for (name,) in rows]


def test_a_fresh_database_hints_on_demand(queue: Queue) -> None:
    assert _triggers(queue.database_url) == ["queueing_notify_jobs_changed_v3"]


def test_a_database_upgraded_from_schema_14_keeps_hinting_every_change(
    empty_database: str,
) -> None:
    # Schema 14, as release 14 left it, in a transaction of its own.
    with psycopg.connect(empty_database) as conn:
        conn.execute(pgsql.SQL(SchemaManager.get_schema()))
        conn.execute(sql.query("ensure_migrations_table"))
        for migration in sql.migrations():
            if migration.version <= 14:
                conn.execute(pgsql.SQL(migration.text))
                conn.execute(
                    sql.query("record_migration"),
                    {"version": migration.version, "name": migration.name},
                )
    with Queue(empty_database) as queue:
        assert queue.migrate() == [v.version for v in sql.migrations() if v.version > 14]
        assert _triggers(empty_database) == ["queueing_notify_jobs_changed_v2"]
        # A release-14 waiter, listening without registering, is still told.
        with psycopg.connect(empty_database, autocommit=True) as listener:
            listener.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(CHANNEL)))
            job = queue.enqueue("t")
            queue.cancel(job.id)
            assert next_payload(listener) == str(job.id)


def test_a_registered_wait_is_woken_by_the_change_it_waits_for(queue: Queue) -> None:
    """The registered path end to end: a wait woken by the change it waits for."""
    job = queue.get_job(queue.enqueue("t").id)
    started = threading.Event()

    def wait() -> Job:
        started.set()
        return queue.wait_for_change(job, timeout=WAIT_TIMEOUT)

    with ThreadPoolExecutor(1) as pool:
        waited = pool.submit(wait)
        assert started.wait(DEADLINE)
        poll("the wait registered", lambda: registrations(queue.database_url) == 1 or None, 10)
        queue.cancel(job.id)
        assert waited.result(DEADLINE).status is JobStatus.CANCELLED


async def test_the_dashboard_feed_has_its_streams_look_while_it_cannot_register(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops, "REGISTER_WAIT", 0.2)
    job = queue.get_job(queue.enqueue("t").id)
    url = queue.database_url
    changing = _unannounced_change(url, job)
    feed = ChangeFeed(lambda: url)
    try:
        with changing:
            async with feed.subscribe() as subscription:
                # Held back by the open transaction's slot, the feed has its streams look
                # at everything, again and again, rather than go quiet.
                for _ in range(3):
                    changes = await subscription.next(DEADLINE)
                    assert changes is not None and changes.everything
                changing.commit()
                # Registered once that transaction ended: changes are hinted by id.
                with psycopg.connect(url, autocommit=True) as other:
                    for progress in range(1, 100):
                        other.execute(
                            "UPDATE procrastinate_jobs SET progress = %s WHERE id = %s",
                            [progress, job.id],
                        )
                        changes = await subscription.next(1.0)
                        if changes is not None and job.id in changes.ids:
                            break
                    else:
                        raise AssertionError("no hint by id after the transaction ended")
    finally:
        await feed.stop()
