"""Notifications are hints, never commands.

Any role that can connect may NOTIFY on any channel: no privilege guards it. So a
worker treats a notification as "look at the database now" and never as the fact
itself. These tests send forged and garbage notifications from a freshly created role
with no privileges at all (``notifier``), exactly as an attacker with a login would,
to real worker processes:

- a forged ``abort_job_requested`` for a running job aborts nothing: the job completes
  (while a genuine cancel, in the same worker, is obeyed at once);
- no payload, however broken, kills the listener: after a barrage of garbage, a new job
  is still picked up promptly, by NOTIFY (the worker polls only once a minute, so only a
  living listener can explain a prompt pick-up), and the garbage is logged as a count,
  never as text;
- a forged ``queueing_jobs_changed_v2`` does not make ``Queue.wait_for`` return early.

Nothing sleeps: the tests wait on the worker's log lines, on a thread with a deadline,
or on a polled condition with a deadline.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from queueing.errors import WaitTimeout
from queueing.models import JobStatus
from queueing.ops import JOB_CHANGED_CHANNEL
from queueing.queue import Queue
from queueing.testing import databases
from queueing.worker.listener import ANY_QUEUE_CHANNEL, MAX_HINT_LENGTH, Listener, hint_kind
from tests.apps import tasks_app
from tests.helpers import WorkerProcess, unique_name, worker_process

DEFAULT_QUEUE_CHANNEL = "procrastinate_queue_v1#default"
# Long enough that nothing but a NOTIFY can explain a prompt reaction: the worker polls
# for jobs once a minute, and re-checks cancel requests (heartbeat) once a minute.
HINTS_ONLY = (
    "--poll-interval", "60", "--heartbeat-interval", "60", "--stall-timeout", "120",
    "--rescue-interval", "60", "--prune-interval", "0",
)  # fmt: skip
PROMPT_S = 15.0
"""Well under the one-minute poll: a reaction within this came from a notification."""
MARKER = "GARBAGE-" + uuid.uuid4().hex[:8]


# --- the low-privilege role ------------------------------------------------------------


@dataclass(frozen=True)
class Notifier:
    """A login role with no privilege, connected to the test database."""

    role: str
    url: str

    def notify(self, channel: str, payload: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, %s)", [channel, payload])

    def notify_many(self, channels: list[str], payloads: list[str]) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            for payload in payloads:
                for channel in channels:
                    conn.execute("SELECT pg_notify(%s, %s)", [channel, payload])

    def forge_abort(self, channel: str, job_id: int) -> None:
        """procrastinate's own payload, built the way its trigger builds it."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_notify(%s, json_build_object("
                "'type', 'abort_job_requested', 'job_id', %s::bigint)::text)",
                [channel, job_id],
            )


@pytest.fixture
def notifier(queueing_database_url: str, queue: Queue) -> Iterator[Notifier]:
    """A fresh role (LOGIN NOSUPERUSER NOBYPASSRLS, granted nothing) on the test database.

    Roles are cluster-wide and xdist workers run at once: the name is unique per test,
    and the role is dropped afterwards whatever happened.
    """
    admin = databases.server_url()
    role = unique_name("queueing_notifier")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            pgsql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS").format(pgsql.Identifier(role))
        )
    try:
        params = conninfo_to_dict(queueing_database_url)
        params["user"] = role
        params.pop("password", None)
        url = make_conninfo("", **params)
        _assert_unprivileged(url, role)
        yield Notifier(role, url)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                [role],
            )
            conn.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(pgsql.Identifier(role)))


def _assert_unprivileged(url: str, role: str) -> None:
    """The forger really is nobody: no superuser, no RLS bypass, no access to the jobs."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert row == (role, False, False)
        for statement in (
            "SELECT count(*) FROM procrastinate_jobs",
            "UPDATE procrastinate_jobs SET abort_requested = true",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


# --- helpers --------------------------------------------------------------------------


def _trouble(worker: WorkerProcess) -> list[dict[str, object]]:
    """Log lines that say a part of the worker failed or lost its connection."""
    return [
        line
        for line in worker.lines
        if line.get("level") in ("error", "critical")
        or str(line.get("event", "")).startswith(("worker.listener_", "worker.side_task"))
    ]


def _abort_requested(url: str, job_id: int) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT abort_requested FROM procrastinate_jobs WHERE id = %s", [job_id]
        ).fetchone()
    assert row is not None
    return bool(row[0])


# --- 1. a forged abort aborts nothing ------------------------------------------------------


def test_a_forged_abort_from_a_low_privilege_role_aborts_nothing(
    queueing_database_url: str, queue: Queue, notifier: Notifier
) -> None:
    url = queueing_database_url
    with worker_process(url, *HINTS_ONLY) as worker:
        # Long enough to still run through everything below on a busy machine.
        victim = queue.enqueue(tasks_app.work, {"seconds": 4.0})
        worker.wait_for_job_log("job.started", victim.id, timeout=PROMPT_S)
        for channel in (ANY_QUEUE_CHANNEL, DEFAULT_QUEUE_CHANNEL):
            notifier.forge_abort(channel, victim.id)

        # A genuine cancel of another job, in the same worker: abort hints are heard and
        # obeyed when the database says so (the heartbeat re-checks only once a minute).
        # Its job_inserted hint arrives after the forgeries (notifications are delivered
        # in commit order), so once it started the forgeries had been dispatched.
        control = queue.enqueue(tasks_app.work, {"seconds": 60.0})
        worker.wait_for_job_log("job.started", control.id, timeout=PROMPT_S)
        queue.cancel(control.id)
        worker.wait_for_job_log("job.cancelled", control.id, timeout=PROMPT_S)
        # Both abort hints were handled while the victim still ran.
        status = queue.get_job(victim.id).status
        assert status is not JobStatus.CANCELLED, "a forged abort cancelled the job"
        assert status is JobStatus.ACTIVE, (
            "the victim finished before the forged abort was surely handled: the test "
            "proves nothing on a machine this slow"
        )

        worker.wait_for_job_log("job.completed", victim.id, timeout=PROMPT_S)
        code = worker.stop(timeout=PROMPT_S)
    assert _trouble(worker) == []

    done = queue.get_job(victim.id)
    assert (done.status, done.result, done.error) == (JobStatus.COMPLETED, "done", None)
    assert not _abort_requested(url, victim.id)
    assert {line["job_id"] for line in worker.events("job.cancel_requested")} == {control.id}
    assert queue.get_job(control.id).status is JobStatus.CANCELLED
    assert code == 0


# --- 2. garbage does not kill the listener -----------------------------------------------

GARBAGE = [
    pytest.param("", id="empty"),
    pytest.param(f"not json {MARKER}", id="not-json"),
    pytest.param("{", id="truncated-object"),
    pytest.param(f'{{"type": "job_inserted", "job_id": 1, "x": "{MARKER}"', id="truncated"),
    pytest.param("[1, 2, 3]", id="array"),
    pytest.param("42", id="number"),
    pytest.param("-1e999", id="number-overflow"),
    pytest.param(f'"{MARKER}"', id="string"),
    pytest.param("null", id="null"),
    pytest.param("true", id="boolean"),
    pytest.param("{}", id="empty-object"),
    pytest.param('{"job_id": 1}', id="no-type"),
    pytest.param('{"type": "abort_job_requested", "job_id": "x"}', id="abort-bad-job-id"),
    pytest.param('{"type": "abort_job_requested"}', id="abort-no-job-id"),
    pytest.param('{"type": "abort_job_requested", "job_id": true}', id="abort-bool-job-id"),
    pytest.param('{"type": "job_inserted", "job_id": null}', id="inserted-null-job-id"),
    pytest.param('{"type": "job_inserted", "job_id": NaN}', id="nan-job-id"),
    pytest.param('{"type": ["abort_job_requested"], "job_id": 1}', id="type-unhashable-list"),
    pytest.param('{"type": {"a": 1}, "job_id": 1}', id="type-unhashable-object"),
    pytest.param('{"type": 5, "job_id": 1}', id="type-number"),
    pytest.param(f'{{"type": "{MARKER}", "job_id": 1}}', id="type-unknown"),
    pytest.param("[" * 7999, id="nested-array-7999"),
    pytest.param('{"a":' * 1599, id="nested-object-7995"),
    pytest.param("[" * 990 + "]" * 990, id="nested-array-valid-1980"),
    pytest.param('{"type": "job_inserted", "job_id": ' + "9" * 7900 + "}", id="huge-int"),
    pytest.param("🎉 مرحبا שלום \u202e", id="emoji-rtl"),
    pytest.param("\ufeff" + '{"type": "job_inserted", "job_id": 1}', id="bom"),
]
GARBAGE_PAYLOADS: list[str] = [str(p.values[0]) for p in GARBAGE]


@pytest.mark.parametrize("payload", GARBAGE)
def test_hint_kind_refuses_every_garbage_payload(payload: str) -> None:
    assert hint_kind(payload) is None


@pytest.mark.parametrize("payload", GARBAGE)
def test_dispatch_survives_garbage_and_takes_both_looks(payload: str) -> None:
    calls: list[str] = []
    listener = Listener(
        "postgresql://unused", None, lambda: calls.append("job"), lambda: calls.append("abort")
    )
    listener._dispatch(payload)
    assert sorted(calls) == ["abort", "job"]
    assert listener.unrecognized == 1


@pytest.mark.parametrize(
    ("payload", "kind", "calls"),
    [
        ('{"type" : "job_inserted", "job_id" : 7}', "job_inserted", ["job"]),
        ('{"type" : "abort_job_requested", "job_id" : 7}', "abort_job_requested", ["abort"]),
        ('{"type": "job_inserted", "job_id": 9223372036854775807}', "job_inserted", ["job"]),
    ],
)
def test_procrastinate_payloads_are_recognized(payload: str, kind: str, calls: list[str]) -> None:
    """The shapes procrastinate's and our triggers send (json_build_object spacing)."""
    assert len(payload) <= MAX_HINT_LENGTH
    assert hint_kind(payload) == kind
    seen: list[str] = []
    listener = Listener(
        "postgresql://unused", None, lambda: seen.append("job"), lambda: seen.append("abort")
    )
    listener._dispatch(payload)
    assert seen == calls
    assert listener.unrecognized == 0


@pytest.mark.parametrize(
    ("queues", "channel"),
    [
        pytest.param((), ANY_QUEUE_CHANNEL, id="any-queue"),
        pytest.param(("--queue", "default"), DEFAULT_QUEUE_CHANNEL, id="queue-default"),
    ],
)
def test_garbage_does_not_kill_the_listener(
    queueing_database_url: str,
    queue: Queue,
    notifier: Notifier,
    queues: tuple[str, ...],
    channel: str,
) -> None:
    with worker_process(queueing_database_url, *HINTS_ONLY, *queues) as worker:
        # A running job, so that the abort hints (garbage takes both looks) query too.
        running = queue.enqueue(tasks_app.work, {"seconds": 60.0})
        worker.wait_for_job_log("job.started", running.id, timeout=PROMPT_S)
        notifier.notify_many([channel], GARBAGE_PAYLOADS)
        # Delivered after all the garbage: only a living listener can start it promptly.
        job = queue.enqueue(tasks_app.add, {"a": 20, "b": 22})
        worker.wait_for_job_log("job.completed", job.id, timeout=PROMPT_S)
        warnings = worker.events("worker.notification_unrecognized")
        # The garbage aborted nothing: the running job still runs.
        assert queue.get_job(running.id).status is JobStatus.ACTIVE
        assert worker.running
        queue.cancel(running.id)
        worker.wait_for_job_log("job.cancelled", running.id, timeout=PROMPT_S)
        code = worker.stop(timeout=PROMPT_S)

    assert queue.get_job(job.id).result == 42
    # The listener never died, nor was it restarted or reconnected (a supervisor that
    # restarts dead side tasks must not be what keeps it going).
    assert _trouble(worker) == []
    # Logged, as a count and a length, once however many came (no log flood) ...
    assert len(warnings) == 1, warnings
    assert warnings[0]["level"] == "warning"
    assert set(warnings[0]) == {"ts", "level", "event", "payload_length", "unrecognized"}
    assert warnings[0]["unrecognized"] == 1
    # ... and never by content.
    assert MARKER not in worker.stderr_text
    assert MARKER not in json.dumps(worker.lines)
    assert "[[[[" not in worker.stderr_text
    assert code == 0


def test_repeated_garbage_is_logged_once_and_every_round_still_wakes(
    queueing_database_url: str, queue: Queue, notifier: Notifier
) -> None:
    """The later garbage is counted (rate-limited logging), and each one still wakes."""
    with worker_process(queueing_database_url, *HINTS_ONLY) as worker:
        for round_ in range(3):
            notifier.notify_many([ANY_QUEUE_CHANNEL], GARBAGE_PAYLOADS)
            job = queue.enqueue(tasks_app.noop)
            worker.wait_for_job_log("job.completed", job.id, timeout=PROMPT_S)
            assert worker.running, f"round {round_}"
        code = worker.stop(timeout=PROMPT_S)
    assert _trouble(worker) == []
    assert len(worker.events("worker.notification_unrecognized")) == 1
    assert code == 0


# --- 3. Queue.wait_for re-reads the row ----------------------------------------------------


def test_a_forged_job_changed_hint_does_not_end_wait_for(queue: Queue, notifier: Notifier) -> None:
    job = queue.enqueue("never.runs")
    outcome: list[Any] = []

    def wait() -> None:
        try:
            outcome.append(queue.wait_for(job.id, timeout=2.0))
        except WaitTimeout as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait, name="forged-job-changed-waiter")
    waiter.start()
    sent = 0
    with psycopg.connect(notifier.url, autocommit=True) as conn:
        # Forge, every 50 ms, until the waiter gives up (at its 2 s deadline).
        while waiter.is_alive():
            conn.execute("SELECT pg_notify(%s, %s)", [JOB_CHANGED_CHANNEL, str(job.id)])
            sent += 1
            waiter.join(0.05)
    assert sent >= 10
    [result] = outcome
    assert isinstance(result, WaitTimeout), f"wait_for returned {result!r} on a forged hint"
    assert "still pending" in str(result)
    assert queue.get_job(job.id).status is JobStatus.PENDING
