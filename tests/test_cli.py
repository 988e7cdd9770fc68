"""The ``queueing`` command line: every command through typer's CliRunner, and every error
case in a real subprocess (one line on stderr, non-zero exit, never a traceback)."""

from __future__ import annotations

import datetime as dt
import gc
import json
import subprocess
import threading
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

from queueing.cli import app
from queueing.errors import InvalidPayload, InvalidTransition, UnknownTask
from queueing.models import Job, JobStatus
from queueing.queue import Queue
from queueing.testing import drain
from tests.apps import tasks_app
from tests.helpers import APP, NO_DATABASE_ENV, run_cli

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x?connect_timeout=5"
MISSING_ID = "987654321"
JOB_FIELDS = {
    "id", "task_name", "queue", "tenant_id", "user_id", "status", "progress",
    "progress_detail", "args", "result", "error", "attempts", "max_attempts", "priority",
    "created_at", "scheduled_at", "started_at", "finished_at", "updated_at",
}  # fmt: skip
TIMESTAMPS = ("created_at", "scheduled_at", "started_at", "finished_at", "updated_at")


# --- fixtures and helpers ------------------------------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env=NO_DATABASE_ENV)


@pytest.fixture
def url(queue: Queue, queueing_database_url: str) -> str:
    """This session's database, emptied (through the ``queue`` fixture)."""
    return queueing_database_url


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
    assert printed == json.loads(job.model_dump_json()) | {"created": True}


def test_enqueue_defaults_and_human_output(runner: CliRunner, url: str, queue: Queue) -> None:
    result = ok(runner, url, "enqueue", "anything")
    [job] = queue.list_jobs()
    assert result.stdout.strip() == f"job {job.id} anything on default: pending (created)"
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
    # A task whose one argument is a model takes it under the parameter's name.
    payload = '{"payload": {"name": "ada"}}'
    greeted = ok_json(runner, url, "enqueue", "greet", "--args", payload, "--app", APP)
    assert queue.get_job(greeted["id"]).args == {"payload": {"name": "ada", "times": 1}}


def test_enqueue_with_app_rejects_a_bad_payload_and_writes_nothing(
    runner: CliRunner, url: str, app_queue: Queue, queue: Queue
) -> None:
    result = invoke(runner, url, "enqueue", "add", "--args", '{"a": "not a number"}', "--app", APP)
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
    assert [j["id"] for j in jobs] == sorted(
        (j.id for j in jobs_of_every_kind.values()), reverse=True
    )
    by_id = {j["id"]: j for j in jobs}
    expected = {
        "added": "completed", "failed": "failed", "nooped": "completed",
        "pending": "pending", "cancelled": "cancelled",
    }  # fmt: skip
    for key, status in expected.items():
        assert by_id[jobs_of_every_kind[key].id]["status"] == status
    assert all(set(j) >= JOB_FIELDS for j in jobs)


def test_jobs_list_filters(runner: CliRunner, url: str, jobs_of_every_kind: dict[str, Job]) -> None:
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
    assert set(shown) >= JOB_FIELDS
    assert set(shown) == set(Job.model_fields) - {"created"} | {"history"}
    assert shown["history"] == []
    assert shown["id"] == job.id
    assert shown["task_name"] == "x"
    assert shown["queue"] == "default"
    assert shown["tenant_id"] == "acme"
    assert shown["user_id"] == "ann"
    assert shown["status"] == "pending"
    assert shown["progress"] == 0
    assert shown["args"] == {"k": [1, "two"]}
    assert shown["result"] is None
    assert shown["error"] is None
    assert shown["attempts"] == 0
    assert shown["max_attempts"] == job.max_attempts >= 1
    assert shown["priority"] == 3
    assert shown["started_at"] is None
    assert shown["finished_at"] is None
    for key in ("created_at", "scheduled_at", "updated_at"):
        parsed = dt.datetime.fromisoformat(shown[key])
        assert parsed.tzinfo is not None
        assert parsed == getattr(job, key)


def test_jobs_show_json_of_finished_jobs(runner: CliRunner, url: str, app_queue: Queue) -> None:
    added = app_queue.enqueue("add", {"a": 2, "b": 3})
    failed = app_queue.enqueue("fail", {"message": "it broke"})
    staged = app_queue.enqueue("stages", {"count": 4})
    drain(app_queue)

    done = ok_json(runner, url, "jobs", "show", str(added.id))
    assert done["status"] == "completed"
    assert done["result"] == 5
    assert done["error"] is None
    assert done["attempts"] == 1
    assert done["progress"] == 100
    stamps = {k: dt.datetime.fromisoformat(done[k]) for k in TIMESTAMPS}
    assert stamps["created_at"] <= stamps["started_at"] <= stamps["finished_at"]
    assert stamps["finished_at"] <= stamps["updated_at"]

    broken = ok_json(runner, url, "jobs", "show", str(failed.id))
    assert broken["status"] == "failed"
    assert broken["result"] is None
    assert broken["error"]["type"] == "ValueError"
    assert broken["error"]["message"] == "it broke"
    assert broken["attempts"] == broken["max_attempts"] == 1
    for key in TIMESTAMPS:
        dt.datetime.fromisoformat(broken[key])

    progressed = ok_json(runner, url, "jobs", "show", str(staged.id))
    assert progressed["status"] == "completed"
    assert progressed["progress"] == 100
    assert progressed["progress_detail"] == {"stage": 4, "of": 4, "message": "stage 4/4"}
    assert progressed["result"] == {"stages": 4}


def test_jobs_show_human_output(runner: CliRunner, url: str, app_queue: Queue) -> None:
    failed = app_queue.enqueue("fail", {"message": "it broke"}, tenant_id="acme")
    drain(app_queue)
    out = ok(runner, url, "jobs", "show", str(failed.id)).stdout
    record, history = out.strip().split("\nhistory", 1)
    fields = {line.split()[0]: line.split(None, 1)[1] for line in record.splitlines()}
    assert set(fields) == set(Job.model_fields) - {"created"}
    assert "failed" in history
    assert "ValueError: it broke" in history
    assert fields["status"] == "failed"
    assert fields["tenant_id"] == "acme"
    assert fields["user_id"] == "-"
    assert fields["error"] == "ValueError: it broke"
    assert json.loads(fields["args"]) == {"message": "it broke"}


# --- jobs cancel / retry / run-now ----------------------------------------------------


def test_jobs_cancel_a_pending_job(runner: CliRunner, url: str, queue: Queue) -> None:
    job = queue.enqueue("x")
    result = ok(runner, url, "jobs", "cancel", str(job.id))
    assert result.stdout.strip() == f"job {job.id} x on default: cancelled"
    assert queue.get_job(job.id).status is JobStatus.CANCELLED


def test_jobs_cancel_json(runner: CliRunner, url: str, queue: Queue) -> None:
    job = queue.enqueue("x")
    printed = ok_json(runner, url, "jobs", "cancel", str(job.id))
    assert printed["id"] == job.id
    assert printed["status"] == "cancelled"
    assert printed["finished_at"] is not None


def test_jobs_cancel_a_completed_job_is_an_error(
    runner: CliRunner, url: str, app_queue: Queue
) -> None:
    job = app_queue.enqueue("noop")
    drain(app_queue)
    result = invoke(runner, url, "jobs", "cancel", str(job.id))
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidTransition)
    assert "completed" in str(result.exception)
    assert app_queue.get_job(job.id).status is JobStatus.COMPLETED


def test_jobs_retry_a_failed_job(runner: CliRunner, url: str, app_queue: Queue) -> None:
    job = app_queue.enqueue("fail", {"message": "once"})
    drain(app_queue)
    assert app_queue.get_job(job.id).status is JobStatus.FAILED
    result = ok(runner, url, "jobs", "retry", str(job.id))
    assert result.stdout.strip() == f"job {job.id} fail on default: pending"
    retried = app_queue.get_job(job.id)
    assert retried.status is JobStatus.PENDING
    assert retried.attempts == 1  # attempts continue
    drain(app_queue)
    assert app_queue.get_job(job.id).status is JobStatus.FAILED


def test_jobs_retry_json_and_a_pending_job_is_an_error(
    runner: CliRunner, url: str, queue: Queue
) -> None:
    job = queue.enqueue("x")
    result = invoke(runner, url, "jobs", "retry", str(job.id))
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidTransition)
    assert "pending" in str(result.exception)
    queue.cancel(job.id)
    printed = ok_json(runner, url, "jobs", "retry", str(job.id))
    assert printed["status"] == "pending"
    assert queue.get_job(job.id).status is JobStatus.PENDING


def test_jobs_run_now_makes_a_delayed_job_due(
    runner: CliRunner, url: str, app_queue: Queue
) -> None:
    job = app_queue.enqueue("add", {"a": 20, "b": 22}, delay=3600)
    drain(app_queue)  # not due: nothing runs
    assert app_queue.get_job(job.id).status is JobStatus.PENDING
    printed = ok_json(runner, url, "jobs", "run-now", str(job.id))
    assert printed["status"] == "pending"
    assert dt.datetime.fromisoformat(printed["scheduled_at"]) <= dt.datetime.now(dt.UTC)
    drain(app_queue)
    done = app_queue.get_job(job.id)
    assert done.status is JobStatus.COMPLETED
    assert done.result == 42


def test_jobs_run_now_human_output(runner: CliRunner, url: str, queue: Queue) -> None:
    job = queue.enqueue("x", delay=3600)
    result = ok(runner, url, "jobs", "run-now", str(job.id))
    assert result.stdout.strip() == f"job {job.id} x on default: pending"
    assert queue.get_job(job.id).scheduled_at < job.scheduled_at


# --- jobs watch ----------------------------------------------------------------------


def test_jobs_watch_a_completed_job_exits_0(runner: CliRunner, url: str, app_queue: Queue) -> None:
    job = app_queue.enqueue("stages", {"count": 3})
    drain(app_queue)
    result = invoke(runner, url, "jobs", "watch", str(job.id))
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"job {job.id} completed" in result.stdout
    assert "100%" in result.stdout


def test_jobs_watch_a_failed_job_exits_non_zero(
    runner: CliRunner, url: str, app_queue: Queue
) -> None:
    job = app_queue.enqueue("fail", {"message": "no luck"})
    drain(app_queue)
    result = invoke(runner, url, "jobs", "watch", str(job.id))
    assert result.exit_code == 1
    assert f"job {job.id} failed" in result.stdout
    assert "ValueError: no luck" in result.stdout


def test_jobs_watch_a_cancelled_job_exits_non_zero(
    runner: CliRunner, url: str, queue: Queue
) -> None:
    job = queue.enqueue("x")
    queue.cancel(job.id)
    result = invoke(runner, url, "jobs", "watch", str(job.id))
    assert result.exit_code == 1
    assert f"job {job.id} cancelled" in result.stdout


def test_jobs_watch_gives_up_at_its_timeout(runner: CliRunner, url: str, queue: Queue) -> None:
    job = queue.enqueue("x", delay=3600)
    result = invoke(runner, url, "jobs", "watch", str(job.id), "--timeout", "0")
    assert result.exit_code == 1
    assert f"job {job.id} is still pending" in result.stdout


# --- stats ---------------------------------------------------------------------------


def test_stats(runner: CliRunner, url: str, queue: Queue) -> None:
    assert ok_json(runner, url, "stats") == []
    for _ in range(3):
        queue.enqueue("x", queue="alpha")
    cancelled = queue.enqueue("x", queue="alpha")
    queue.cancel(cancelled.id)
    queue.enqueue("y", queue="beta")
    counts = ok_json(runner, url, "stats")
    assert all(set(c) == {"queue", "status", "count"} for c in counts)
    nonzero = {(c["queue"], c["status"]): c["count"] for c in counts if c["count"]}
    assert nonzero == {("alpha", "pending"): 3, ("alpha", "cancelled"): 1, ("beta", "pending"): 1}

    table = ok(runner, url, "stats").stdout
    rows = [line.split() for line in table.strip().splitlines()]
    assert rows[0] == ["queue", "status", "count"]
    assert ["alpha", "pending", "3"] in rows
    assert ["alpha", "cancelled", "1"] in rows
    assert ["beta", "pending", "1"] in rows


# --- errors, in a real process: one line on stderr, non-zero exit, no traceback ------


def test_error_bad_json_in_args(url: str, queue: Queue) -> None:
    proc = run_cli("enqueue", "x", "--args", "{not json", "--database-url", url)
    assert_one_line_error(proc, "--args is not valid JSON")
    assert job_count(queue) == 0


@pytest.mark.parametrize("args", ["[1, 2]", '"text"', "3", "null", "true"])
def test_error_args_not_an_object(url: str, queue: Queue, args: str) -> None:
    proc = run_cli("enqueue", "x", "--args", args, "--database-url", url)
    assert_one_line_error(proc, "--args must be a JSON object")
    assert job_count(queue) == 0


@pytest.mark.parametrize("command", ["show", "cancel", "retry", "run-now", "watch"])
def test_error_unknown_job_id(url: str, queue: Queue, command: str) -> None:
    proc = run_cli("jobs", command, MISSING_ID, "--database-url", url)
    assert_one_line_error(proc, f"job {MISSING_ID} not found")


@pytest.mark.parametrize(
    "args",
    [
        ["enqueue", "x"],
        ["jobs", "list"],
        ["jobs", "show", "1"],
        ["stats"],
        ["db", "status"],
        ["db", "migrate"],
    ],
    ids=lambda a: "-".join(a),
)
def test_error_unreachable_database(args: list[str]) -> None:
    proc = run_cli(*args, "--database-url", UNREACHABLE)
    assert_one_line_error(proc, "database unavailable")


@pytest.mark.parametrize(
    "args",
    [
        ["enqueue", "x"],
        ["enqueue", "add", "--args", '{"a": 1, "b": 2}', "--app", APP],
        ["jobs", "list"],
        ["jobs", "show", "1"],
        ["jobs", "cancel", "1"],
        ["jobs", "watch", "1"],
        ["stats"],
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_error_unmigrated_database(empty_database: str, args: list[str]) -> None:
    proc = run_cli(*args, "--database-url", empty_database)
    assert_one_line_error(proc, "queueing db migrate")
    with psycopg.connect(empty_database) as conn:
        # nothing was created: not even procrastinate's tables
        assert conn.execute("select to_regclass('procrastinate_jobs')").fetchone() == (None,)


@pytest.mark.parametrize("name", ["a;b", "", "has space", "x" * 49, "drop table"])
def test_error_invalid_queue_name(url: str, queue: Queue, name: str) -> None:
    proc = run_cli("enqueue", "x", "--queue", name, "--database-url", url)
    assert_one_line_error(proc, "invalid queue name")
    assert job_count(queue) == 0


def test_error_bad_payload_with_app(url: str, queue: Queue) -> None:
    proc = run_cli(
        "enqueue", "add", "--args", '{"a": "x"}', "--app", APP, "--database-url", url
    )  # fmt: skip
    assert_one_line_error(proc)
    assert job_count(queue) == 0


def test_error_unknown_task_with_app(url: str, queue: Queue) -> None:
    proc = run_cli("enqueue", "no_such_task", "--app", APP, "--database-url", url)
    assert_one_line_error(proc, "unknown task 'no_such_task'")
    assert job_count(queue) == 0


@pytest.mark.parametrize("path", ["no_colon", "no.such.module:queue", "tests.apps.tasks_app:add"])
def test_error_bad_app_path(url: str, queue: Queue, path: str) -> None:
    proc = run_cli("enqueue", "add", "--app", path, "--database-url", url)
    assert_one_line_error(proc)
    assert job_count(queue) == 0


def test_error_cancel_a_completed_job_names_its_status(url: str, app_queue: Queue) -> None:
    job = app_queue.enqueue("noop")
    drain(app_queue)
    proc = run_cli("jobs", "cancel", str(job.id), "--database-url", url)
    assert_one_line_error(proc, f"job {job.id} is completed")
    assert app_queue.get_job(job.id).status is JobStatus.COMPLETED


def test_error_retry_a_pending_job(url: str, queue: Queue) -> None:
    job = queue.enqueue("x")
    proc = run_cli("jobs", "retry", str(job.id), "--database-url", url)
    assert_one_line_error(proc, f"job {job.id} is pending")
    assert queue.get_job(job.id).status is JobStatus.PENDING


def test_subprocess_success_writes_nothing_on_stderr(url: str, queue: Queue) -> None:
    proc = run_cli(
        "enqueue", "x", "--args", '{"n": 1}', "--tenant", "acme", "--json", "--database-url", url
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    printed = json.loads(proc.stdout)
    assert printed["status"] == "pending"
    assert queue.get_job(printed["id"]).tenant_id == "acme"


@pytest.mark.parametrize("delay", ["1e300", "inf", "315360001"])
def test_error_absurd_delay(url: str, queue: Queue, delay: str) -> None:
    proc = run_cli("enqueue", "x", "--delay", delay, "--database-url", url)
    line = assert_one_line_error(proc, "delay must be between 0 and")
    assert "unexpected" not in line
    assert job_count(queue) == 0


@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "show", "abc"],
        ["jobs", "show", "0"],
        ["jobs", "watch"],
        ["enqueue"],
        ["enqueue", "x", "--nope"],
        ["enqueue", "x", "--delay", "-1"],
        ["enqueue", "x", "--priority", "high"],
        ["jobs", "list", "--status", "exploded"],
        ["jobs", "list", "--limit", "0"],
    ],
    ids=lambda a: "-".join(a),
)
def test_usage_errors_are_one_line_exit_2(url: str, args: list[str]) -> None:
    proc = run_cli(*args, "--database-url", url)
    line = assert_one_line_error(proc, "error: ", "--help")
    assert proc.returncode == 2
    assert "╭" not in line
    assert proc.stdout == ""


def test_help_exits_0(url: str) -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    for command in ("enqueue", "jobs", "db", "stats", "worker"):
        assert command in proc.stdout


def test_watch_exit_codes_in_a_real_process(url: str, app_queue: Queue) -> None:
    done = app_queue.enqueue("noop")
    failed = app_queue.enqueue("fail", {"message": "nope"})
    drain(app_queue)
    completed_proc = run_cli("jobs", "watch", str(done.id), "--database-url", url)
    assert completed_proc.returncode == 0, completed_proc.stderr
    assert completed_proc.stderr == ""
    failed_proc = run_cli("jobs", "watch", str(failed.id), "--database-url", url)
    assert failed_proc.returncode == 1
    assert "ValueError: nope" in failed_proc.stdout
    assert "Traceback" not in failed_proc.stdout + failed_proc.stderr


def test_db_status_of_an_unmigrated_database_in_a_real_process(empty_database: str) -> None:
    proc = run_cli("db", "status", "--database-url", empty_database)
    assert proc.returncode == 1
    assert "not up to date: run `queueing db migrate`" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["stats"],
        ["jobs", "list"],
        ["jobs", "show", MISSING_ID],  # an error path
        ["jobs", "watch", MISSING_ID],
        ["enqueue", "x"],
        ["db", "status"],
    ],
    ids=lambda a: "-".join(a),
)
def test_commands_close_their_connection_pool(runner: CliRunner, url: str, args: list[str]) -> None:
    before = set(threading.enumerate())
    gc.disable()  # so that only the command itself can have closed its pool
    try:
        invoke(runner, url, *args)
        leaked = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
        assert leaked == []
    finally:
        gc.enable()
        gc.collect()


# --- lifecycle: dedupe, cancel and retry as an actor, history ------------------------------


def test_enqueue_dedupe_key_returns_the_existing_job(
    runner: CliRunner, url: str, queue: Queue
) -> None:
    first = ok_json(runner, url, "enqueue", "generate", "--tenant", "acme", "--dedupe-key", "d1")
    again = ok_json(runner, url, "enqueue", "generate", "--tenant", "acme", "--dedupe-key", "d1")
    assert first["created"] is True
    assert (again["id"], again["created"]) == (first["id"], False)
    human = ok(runner, url, "enqueue", "generate", "--tenant", "acme", "--dedupe-key", "d1")
    assert "existing job with this dedupe key" in human.stdout
    assert job_count(queue) == 1


def test_cancel_as_user_admin_and_system(runner: CliRunner, url: str, queue: Queue) -> None:
    job = queue.enqueue("generate", tenant_id="acme", user_id="ada")
    refused = run_cli("jobs", "cancel", str(job.id), "--as-user", "bob", "--tenant", "acme",
                      "--database-url", url)  # fmt: skip
    assert_one_line_error(refused, f"not allowed to cancel job {job.id}")
    hidden = run_cli("jobs", "cancel", str(job.id), "--admin", "--tenant", "globex",
                     "--database-url", url)  # fmt: skip
    assert_one_line_error(hidden, f"job {job.id} not found")
    assert queue.get_job(job.id).status is JobStatus.PENDING
    done = ok_json(
        runner, url, "jobs", "cancel", str(job.id), "--as-user", "ada", "--tenant", "acme"
    )
    assert (done["status"], done["cancelled_by"]) == ("cancelled", "user:ada")
    other = queue.enqueue("generate", tenant_id="acme", user_id="bob")
    by_admin = ok_json(runner, url, "jobs", "cancel", str(other.id), "--admin", "--tenant", "acme")
    assert by_admin["cancelled_by"] == "admin:acme"
    third = queue.enqueue("generate")
    assert ok_json(runner, url, "jobs", "cancel", str(third.id))["cancelled_by"] == "system"


def test_retry_is_refused_to_users(runner: CliRunner, url: str, queue: Queue) -> None:
    job = queue.enqueue("generate", tenant_id="acme", user_id="ada")
    queue.cancel(job.id)
    refused = run_cli("jobs", "retry", str(job.id), "--as-user", "ada", "--tenant", "acme",
                      "--database-url", url)  # fmt: skip
    assert_one_line_error(refused, "not allowed to retry")
    retried = ok_json(runner, url, "jobs", "retry", str(job.id), "--admin", "--tenant", "acme")
    assert retried["status"] == "pending"


def test_actor_flags_must_make_sense(url: str) -> None:
    assert_one_line_error(run_cli("jobs", "cancel", "1", "--admin", "--database-url", url),
                          "--admin needs --tenant")  # fmt: skip
    assert_one_line_error(run_cli("jobs", "cancel", "1", "--tenant", "t", "--database-url", url),
                          "--tenant needs --as-user or --admin")  # fmt: skip


def test_show_includes_the_attempt_history(runner: CliRunner, url: str, app_queue: Queue) -> None:
    job = app_queue.enqueue("flaky", {"succeed_on": 2})
    drain(app_queue)
    shown = ok_json(runner, url, "jobs", "show", str(job.id))
    assert [(h["attempt"], h["outcome"]) for h in shown["history"]] == [
        (1, "retry"),
        (2, "completed"),
    ]
    assert shown["history"][0]["error"]["type"] == "ConnectionError"
