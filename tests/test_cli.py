"""The ``queueing`` command line: every command through typer's CliRunner, and every error
case in a real subprocess (one line on stderr, non-zero exit, never a traceback)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql
from typer.testing import CliRunner, Result

from queueing import sql
from queueing.cli import app
from queueing.errors import InvalidPayload, InvalidTransition, UnknownTask
from queueing.models import Job, JobStatus
from queueing.queue import Queue
from queueing.testing import databases, drain
from tests.apps import tasks_app
from tests.helpers import ROOT

APP = "tests.apps.tasks_app:queue"
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x?connect_timeout=5"
MISSING_ID = "987654321"
JOB_FIELDS = {
    "id", "task_name", "queue", "tenant_id", "user_id", "status", "progress",
    "progress_detail", "args", "result", "error", "attempts", "max_attempts", "priority",
    "created_at", "scheduled_at", "started_at", "finished_at", "updated_at",
}  # fmt: skip
TIMESTAMPS = ("created_at", "scheduled_at", "started_at", "finished_at", "updated_at")
# Never let the environment choose the database: every invocation passes --database-url.
NO_DATABASE_ENV: dict[str, str | None] = {"QUEUEING_DATABASE_URL": None, "DATABASE_URL": None}


# --- fixtures and helpers ------------------------------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env=NO_DATABASE_ENV)


@pytest.fixture
def url(queue: Queue, queueing_database_url: str) -> str:
    """This session's database, emptied (through the ``queue`` fixture)."""
    return queueing_database_url


@pytest.fixture
def app_queue(url: str) -> Iterator[Queue]:
    """The sample app's Queue (a module-level singleton) pointed at this test's database."""
    tasks_app.queue.database_url = url
    yield tasks_app.queue
    tasks_app.queue.close()


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A database with no schema at all (not migrated); dropped after the test."""
    admin = databases.server_url()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"queueing_cli_empty_{worker}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.query("create_database").format(name=pgsql.Identifier(name)))
    try:
        yield databases.with_database(admin, name)
    finally:
        databases.drop_database(admin, name)


def invoke(runner: CliRunner, url: str, *args: str) -> Result:
    """``queueing ARGS --database-url URL`` in-process."""
    return runner.invoke(app, [*args, "--database-url", url])


def ok(runner: CliRunner, url: str, *args: str) -> Result:
    result = invoke(runner, url, *args)
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.exception is None
    return result


def ok_json(runner: CliRunner, url: str, *args: str) -> Any:
    return json.loads(ok(runner, url, *args, "--json").stdout)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m queueing ARGS`` in a real process (stdout and stderr really separate)."""
    env = {k: v for k, v in os.environ.items() if k not in NO_DATABASE_ENV}
    env.pop("QUEUEING_DEBUG", None)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "queueing", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The error contract: non-zero exit, exactly one line on stderr, no traceback anywhere."""
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def job_count(queue: Queue) -> int:
    return sum(c.count for c in queue.stats())


# --- db ------------------------------------------------------------------------------


def test_db_migrate_is_idempotent(runner: CliRunner, url: str) -> None:
    for _ in range(2):
        result = ok(runner, url, "db", "migrate")
        assert "nothing to do" in result.stdout


def test_db_migrate_an_empty_database_then_nothing_to_do(
    runner: CliRunner, empty_database: str
) -> None:
    first = ok(runner, empty_database, "db", "migrate")
    assert "applied migrations" in first.stdout
    assert "nothing to do" not in first.stdout
    second = ok(runner, empty_database, "db", "migrate")
    assert "nothing to do" in second.stdout
    assert ok_json(runner, empty_database, "db", "status")["up_to_date"] is True
    with Queue(empty_database) as q:
        assert q.list_jobs() == []


def test_db_status(runner: CliRunner, url: str) -> None:
    result = ok(runner, url, "db", "status")
    assert "procrastinate schema: present" in result.stdout
    assert "up to date" in result.stdout
    assert "not up to date" not in result.stdout


def test_db_status_json(runner: CliRunner, url: str) -> None:
    state = ok_json(runner, url, "db", "status")
    assert state["up_to_date"] is True
    assert state["has_procrastinate_schema"] is True
    assert state["current_version"] == state["expected_version"] >= 1
    assert len(state["applied"]) == state["current_version"]
    for version, name, applied_at in state["applied"]:
        assert isinstance(version, int)
        assert isinstance(name, str)
        dt.datetime.fromisoformat(applied_at)


def test_db_status_of_an_unmigrated_database_exits_non_zero(
    runner: CliRunner, empty_database: str
) -> None:
    result = invoke(runner, empty_database, "db", "status", "--json")
    assert result.exit_code != 0
    state = json.loads(result.stdout)
    assert state["up_to_date"] is False
    assert state["has_procrastinate_schema"] is False
    assert state["current_version"] == 0


# --- enqueue -------------------------------------------------------------------------


def test_enqueue_json_then_readable_through_the_library(
    runner: CliRunner, url: str, queue: Queue
) -> None:
    printed = ok_json(
        runner, url, "enqueue", "reports.build", "--args", '{"month": "2024-05", "n": 3}',
        "--tenant", "acme", "--user", "u-42", "--queue", "reports", "--priority", "7",
    )  # fmt: skip
    assert isinstance(printed["id"], int)
    assert printed["status"] == "pending"
    job = queue.get_job(printed["id"])
    assert job.status is JobStatus.PENDING
    assert job.task_name == "reports.build"
    assert job.args == {"month": "2024-05", "n": 3}
    assert job.tenant_id == "acme"
    assert job.user_id == "u-42"
    assert job.queue == "reports"
    assert job.priority == 7
    assert job.attempts == 0
    assert printed == json.loads(job.model_dump_json())


def test_enqueue_defaults_and_human_output(runner: CliRunner, url: str, queue: Queue) -> None:
    result = ok(runner, url, "enqueue", "anything")
    [job] = queue.list_jobs()
    assert result.stdout.strip() == f"job {job.id} anything on default: pending"
    assert job.queue == "default"
    assert job.args == {}
    assert job.tenant_id is None
    assert job.user_id is None
    assert job.priority == 0


def test_enqueue_delay_schedules_in_the_future(runner: CliRunner, url: str, queue: Queue) -> None:
    before = dt.datetime.now(dt.UTC)
    printed = ok_json(runner, url, "enqueue", "later", "--delay", "3600")
    job = queue.get_job(printed["id"])
    assert job.status is JobStatus.PENDING
    assert job.scheduled_at >= before + dt.timedelta(seconds=3600)
    assert job.scheduled_at <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3600)
    assert dt.datetime.fromisoformat(printed["scheduled_at"]) == job.scheduled_at


def test_enqueue_with_app_validates_and_applies_task_defaults(
    runner: CliRunner, url: str, app_queue: Queue, queue: Queue
) -> None:
    printed = ok_json(runner, url, "enqueue", "add", "--args", '{"a": 1, "b": 2}', "--app", APP)
    job = queue.get_job(printed["id"])
    assert job.task_name == "add"
    assert job.args == {"a": 1, "b": 2}
    assert job.max_attempts == tasks_app.add.retry.max_attempts
    greeted = ok_json(
        runner, url, "enqueue", "greet", "--args", '{"name": "ada"}', "--app", APP
    )
    assert queue.get_job(greeted["id"]).args == {"name": "ada", "times": 1}


def test_enqueue_with_app_rejects_a_bad_payload_and_writes_nothing(
    runner: CliRunner, url: str, app_queue: Queue, queue: Queue
) -> None:
    result = invoke(
        runner, url, "enqueue", "add", "--args", '{"a": "not a number"}', "--app", APP
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidPayload)
    assert queue.list_jobs() == []
    assert job_count(queue) == 0


def test_enqueue_with_app_rejects_an_unknown_task_and_writes_nothing(
    runner: CliRunner, url: str, app_queue: Queue, queue: Queue
) -> None:
    result = invoke(runner, url, "enqueue", "no_such_task", "--app", APP)
    assert result.exit_code != 0
    assert isinstance(result.exception, UnknownTask)
    assert "no_such_task" in str(result.exception)
    assert queue.list_jobs() == []


# --- jobs list -----------------------------------------------------------------------


@pytest.fixture
def jobs_of_every_kind(app_queue: Queue) -> dict[str, Job]:
    """completed, failed, pending and cancelled jobs of several tasks, tenants and users."""
    added = app_queue.enqueue("add", {"a": 1, "b": 2}, tenant_id="t1", user_id="u1")
    failed = app_queue.enqueue("fail", {"message": "boom"}, tenant_id="t1", user_id="u2")
    nooped = app_queue.enqueue("noop", tenant_id="t2", user_id="u1")
    drain(app_queue)
    pending = app_queue.enqueue("noop", tenant_id="t2", user_id="u2", delay=3600)
    cancelled = app_queue.enqueue("add", {"a": 3, "b": 4}, tenant_id="t3", user_id="u1")
    app_queue.cancel(cancelled.id)
    jobs = {
        "added": added, "failed": failed, "nooped": nooped,
        "pending": pending, "cancelled": cancelled,
    }  # fmt: skip
    return {k: app_queue.get_job(j.id) for k, j in jobs.items()}


def listed_ids(runner: CliRunner, url: str, *args: str) -> list[int]:
    return [j["id"] for j in ok_json(runner, url, "jobs", "list", *args)]


def test_jobs_list_json_is_newest_first(
    runner: CliRunner, url: str, jobs_of_every_kind: dict[str, Job]
) -> None:
    jobs = ok_json(runner, url, "jobs", "list")
    assert [j["id"] for j in jobs] == sorted((j.id for j in jobs_of_every_kind.values()), reverse=True)
    by_id = {j["id"]: j for j in jobs}
    expected = {
        "added": "completed", "failed": "failed", "nooped": "completed",
        "pending": "pending", "cancelled": "cancelled",
    }  # fmt: skip
    for key, status in expected.items():
        assert by_id[jobs_of_every_kind[key].id]["status"] == status
    assert all(JOB_FIELDS <= set(j) for j in jobs)


def test_jobs_list_filters(
    runner: CliRunner, url: str, jobs_of_every_kind: dict[str, Job]
) -> None:
    ids = {k: j.id for k, j in jobs_of_every_kind.items()}

    def newest_first(*keys: str) -> list[int]:
        return sorted((ids[k] for k in keys), reverse=True)

    assert listed_ids(runner, url, "--status", "completed") == newest_first("added", "nooped")
    assert listed_ids(runner, url, "--status", "failed", "--status", "cancelled") == newest_first(
        "failed", "cancelled"
    )
    assert listed_ids(runner, url, "--status", "pending") == newest_first("pending")
    assert listed_ids(runner, url, "--task", "add") == newest_first("added", "cancelled")
    assert listed_ids(runner, url, "--tenant", "t1") == newest_first("added", "failed")
    assert listed_ids(runner, url, "--user", "u1") == newest_first("added", "nooped", "cancelled")
    assert listed_ids(runner, url, "--task", "noop", "--user", "u1") == newest_first("nooped")
    assert listed_ids(runner, url, "--status", "completed", "--tenant", "t1") == newest_first(
        "added"
    )
    assert listed_ids(runner, url, "--tenant", "nobody") == []
    assert listed_ids(runner, url, "--limit", "2") == newest_first("pending", "cancelled")
    assert listed_ids(runner, url, "--queue", "default", "--limit", "1") == newest_first(
        "cancelled"
    )


def test_jobs_list_table(runner: CliRunner, url: str, jobs_of_every_kind: dict[str, Job]) -> None:
    out = ok(runner, url, "jobs", "list").stdout
    assert "task" in out.splitlines()[0]
    for job in jobs_of_every_kind.values():
        assert any(line.split()[:2] == [str(job.id), job.task_name] for line in out.splitlines())
    only_failed = ok(runner, url, "jobs", "list", "--status", "failed").stdout
    assert len(only_failed.strip().splitlines()) == 2  # the header and one row
    assert "fail" in only_failed


def test_jobs_list_rejects_an_unknown_status(runner: CliRunner, url: str) -> None:
    result = invoke(runner, url, "jobs", "list", "--status", "exploded")
    assert result.exit_code == 2


# --- jobs show -----------------------------------------------------------------------


def test_jobs_show_json_of_a_pending_job(runner: CliRunner, url: str, queue: Queue) -> None:
    job = queue.enqueue("x", {"k": [1, "two"]}, tenant_id="acme", user_id="ann", priority=3)
    shown = ok_json(runner, url, "jobs", "show", str(job.id))
    assert JOB_FIELDS <= set(shown)
