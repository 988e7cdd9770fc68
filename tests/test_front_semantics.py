"""The front door tells the truth: behaviour a user would otherwise have to guess.

Results that are not JSON, ``Job.created``, ``cancelled_by``, the test helper's timeout,
the retention a Queue declares, old test templates, and what the test fixtures return.
Real PostgreSQL, no mocks; every wait is on a notification or a log line, with a deadline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql
from pydantic import BaseModel
from typer.testing import CliRunner

from queueing import JobStatus, Queue, RetryPolicy, sql
from queueing.cli import app as cli
from queueing.errors import (
    ConfigurationError,
    InvalidResult,
    QueueingError,
    WaitTimeout,
)
from queueing.limits import MAX_NESTING, MAX_PAYLOAD_BYTES
from queueing.models import Actor, EnqueuedJob, Job
from queueing.queue import AsyncQueue, JobRequest
from queueing.retention import Retention, RetentionPolicy
from queueing.testing import (
    JobWaitTimeout,
    QueueClock,
    QueueWorker,
    databases,
    wait_for,
    wait_for_async,
)
from tests.helpers import NO_DATABASE_ENV, pointed_at, unique_name, worker_process

# --- 1. results that are not JSON ------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"


class Summary(BaseModel):
    pages: int
    tags: set[str]


@dataclasses.dataclass
class Point:
    x: int
    at: dt.date


WHEN = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
CONVERTED: list[tuple[Any, Any]] = [
    (WHEN, "2024-05-01T12:30:00Z"),
    (dt.date(2024, 5, 1), "2024-05-01"),
    (dt.time(12, 30), "12:30:00"),
    (dt.timedelta(hours=1, minutes=30), "PT1H30M"),
    (uuid.UUID(int=7), "00000000-0000-0000-0000-000000000007"),
    (decimal.Decimal("1.10"), "1.10"),
    (Colour.RED, "red"),
    ((1, "two"), [1, "two"]),
    (frozenset({3}), [3]),
    (Summary(pages=6, tags={"q4"}), {"pages": 6, "tags": ["q4"]}),
    (Point(1, dt.date(2024, 1, 2)), {"x": 1, "at": "2024-01-02"}),
    ({"nested": [{"when": WHEN}]}, {"nested": [{"when": "2024-05-01T12:30:00Z"}]}),
    ({"n": None, "f": 1.5, "b": True}, {"n": None, "f": 1.5, "b": True}),
]


def test_results_of_the_documented_types_are_stored_converted(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    values = [value for value, _ in CONVERTED]

    @queue.task(name="convert")
    async def convert(index: int) -> Any:
        return values[index]

    jobs = queue.enqueue_many(JobRequest(convert, {"index": i}) for i in range(len(values)))
    queueing_worker.drain()
    for job, (value, stored) in zip(jobs, CONVERTED, strict=True):
        done = queue.get_job(job.id)
        assert (done.status, done.result) == (JobStatus.COMPLETED, stored), value


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


class Opaque:
    pass


REFUSED = [
    pytest.param(b"bytes", "result is of type bytes", id="bytes"),
    pytest.param({"a": [1, Opaque()]}, "result['a'][1] is of type Opaque", id="object-inside"),
    pytest.param(float("nan"), "NaN and Infinity have no JSON form", id="nan"),
    pytest.param({1: "x"}, "a key of type int", id="int-key"),
    pytest.param("a\x00b", "NUL character", id="nul"),
    pytest.param("\ud800", "lone surrogate", id="surrogate"),
    pytest.param("x" * (MAX_PAYLOAD_BYTES + 1), "the limit is 262144", id="too-large"),
    pytest.param(_nested(MAX_NESTING + 1), "nested deeper than 32", id="too-deep"),
]


@pytest.mark.parametrize(("value", "fragment"), REFUSED)
@pytest.mark.parametrize("kind", ["async", "sync"])
def test_an_unstorable_result_fails_its_job_at_once_without_retry(
    queue: Queue, queueing_worker: QueueWorker, value: Any, fragment: str, kind: str
) -> None:
    def returns() -> Any:
        return value

    async def returns_async() -> Any:
        return value

    handler = returns_async if kind == "async" else returns
    # Three attempts allowed, retried on any error: the result is still never retried.
    task = queue.task(name="unstorable", retry=RetryPolicy(max_attempts=3, delay=0))(handler)
    job = queue.enqueue(task)
    assert [run.outcome for run in queueing_worker.drain()] == ["failed"]
    failed = queue.get_job(job.id)
    assert (failed.status, failed.attempts, failed.result) == (JobStatus.FAILED, 1, None)
    assert failed.error is not None and failed.error.type == "InvalidResult"
    assert failed.error.message.startswith("task 'unstorable' returned an unstorable result: ")
    assert fragment in failed.error.message


def test_invalid_result_is_a_typed_error() -> None:
    assert issubclass(InvalidResult, QueueingError)
    assert InvalidResult.http_status == 500


# --- 2. Job.created --------------------------------------------------------------------


def test_created_is_a_bool_on_what_enqueue_returns_and_none_on_records_read_back(
    queue: Queue,
) -> None:
    first = queue.enqueue("generate", dedupe_key="k")
    again = queue.enqueue("generate", dedupe_key="k")
    [many] = queue.enqueue_many([JobRequest("other")])
    assert isinstance(first, EnqueuedJob) and isinstance(many, EnqueuedJob)
    assert (first.created, again.created, many.created) == (True, False, True)
    assert again.id == first.id
    read = queue.get_job(first.id)
    assert type(read) is Job and read.created is None
    assert all(type(j) is Job and j.created is None for j in queue.list_jobs())
    assert queue.cancel(first.id).created is None
    # The record is the same, but for what the enqueue call did.
    assert read.model_dump(exclude={"created"}) == first.model_dump(exclude={"created"})


async def test_created_on_the_async_twin(aqueue: AsyncQueue) -> None:
    first = await aqueue.enqueue("generate", dedupe_key="k")
    again = await aqueue.enqueue("generate", dedupe_key="k")
    [many] = await aqueue.enqueue_many([JobRequest("other")])
    assert isinstance(many, EnqueuedJob)
    assert (first.created, again.created, many.created) == (True, False, True)
    assert (await aqueue.get_job(first.id)).created is None


# --- 3. cancelled_by -------------------------------------------------------------------


def test_cancelled_by_names_the_actor_as_stored(queue: Queue) -> None:
    by_system = queue.enqueue("x", tenant_id="acme", user_id="ada")
    by_admin = queue.enqueue("x", tenant_id="acme", user_id="ada")
    by_user = queue.enqueue("x", tenant_id="acme", user_id="ada:1")
    admin, user = Actor.admin("acme"), Actor.user("ada:1", tenant_id="acme")
    cancelled = {
        "system": queue.cancel(by_system.id),
        "admin:acme": queue.cancel(by_admin.id, actor=admin),
        "user:ada:1": queue.cancel(by_user.id, actor=user),
    }
    for stored, job in cancelled.items():
        assert queue.get_job(job.id).cancelled_by == job.cancelled_by == stored
    assert cancelled["system"].cancelled_by_actor == Actor.system()
    assert cancelled["admin:acme"].cancelled_by_actor == admin
    assert cancelled["user:ada:1"].cancelled_by_actor == user
    assert by_system.cancelled_by is None and by_system.cancelled_by_actor is None
    retried = queue.retry(by_admin.id)
    assert (retried.cancelled_by, retried.cancelled_at) == (None, None)
    with pytest.raises(ValueError, match="is not an actor"):
        _ = retried.model_copy(update={"cancelled_by": "robot"}).cancelled_by_actor


# --- 4. the test helper's timeout -----------------------------------------------------


def test_the_helpers_timeout_is_a_wait_timeout_and_a_test_failure(queue: Queue) -> None:
    job = queue.enqueue("never_run")
    with pytest.raises(WaitTimeout) as caught:
        wait_for(queue, job, JobStatus.COMPLETED, timeout=0.2)
    error = caught.value
    assert isinstance(error, JobWaitTimeout) and isinstance(error, AssertionError)
    assert isinstance(error, TimeoutError) and error.http_status == 504
    assert str(error).startswith(f"waited 0.2s: expected completed, job {job.id} is pending")
    assert error.job.status is JobStatus.PENDING and error.history == ()
    # The library's own stays a plain WaitTimeout: not a test failure in application code.
    with pytest.raises(WaitTimeout) as library:
        queue.wait_for(job.id, timeout=0.2)
    assert not isinstance(library.value, AssertionError)


async def test_the_async_helpers_timeout_likewise(aqueue: AsyncQueue) -> None:
    job = await aqueue.enqueue("never_run")
    with pytest.raises(AssertionError) as caught:
        await wait_for_async(aqueue, job, timeout=0.2)
    assert isinstance(caught.value, WaitTimeout)
    assert "expected cancelled or completed or failed" in str(caught.value)


# --- 5. retention declared on the Queue -----------------------------------------------

#: Nothing is kept forever but the jobs of "short": completed ones a minute.
KEEP_ALL = RetentionPolicy(completed_age=None, completed_keep=None, failed_age=None)
SHORT = RetentionPolicy(completed_age=60, completed_keep=None, failed_age=None)
RETAINING = Queue(retention=Retention(default=KEEP_ALL, per_queue={"short": SHORT}))
"""An app's Queue that declares its retention (``--app tests.test_front_semantics:RETAINING``)."""


@RETAINING.task(name="noop")
async def noop() -> None:
    return None


def _finished_an_hour_ago(queue: Queue) -> dict[str, set[int]]:
    """Two completed jobs in "short" and two in "default", an hour old; their ids."""
    with pointed_at(RETAINING, queue.database_url) as app:
        jobs = app.enqueue_many(
            JobRequest(noop, queue=name) for name in ("short", "short", "default", "default")
        )
        assert len(QueueWorker(app).drain()) == 4
    QueueClock(queue).advance(3600)
    return {name: {j.id for j in jobs if j.queue == name} for name in ("short", "default")}


def _left(queue: Queue) -> set[int]:
    return {job.id for job in queue.list_jobs()}


def test_a_queue_checks_the_retention_it_is_given() -> None:
    assert Queue().retention == Retention()
    assert Queue(retention=SHORT).retention == Retention(default=SHORT)
    with pytest.raises(ConfigurationError, match="Retention or a RetentionPolicy"):
        Queue(retention=3600)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="invalid queue name"):
        Queue(retention=Retention(per_queue={"no spaces": SHORT}))


def test_a_worker_prunes_with_the_queues_per_queue_policy(queue: Queue) -> None:
    ids = _finished_an_hour_ago(queue)
    app = "tests.test_front_semantics:RETAINING"
    with worker_process(queue.database_url, "--app", app, "--prune-interval", "0.05") as worker:
        pruned = worker.wait_for_log("jobs.pruned")
        assert worker.stop() == 0
    assert pruned["deleted"] == 2
    assert _left(queue) == ids["default"]


def test_cli_prune_applies_the_app_queues_policy_and_explicit_rules_win(queue: Queue) -> None:
    ids = _finished_an_hour_ago(queue)
    runner = CliRunner(env=NO_DATABASE_ENV)
    args = ["prune", "--app", "tests.test_front_semantics:RETAINING"]
    url = ["--database-url", queue.database_url]

    result = runner.invoke(cli, [*args, *url])
    assert (result.exit_code, result.output) == (0, "deleted 2 finished jobs\n")
    assert _left(queue) == ids["default"]

    # An explicit rule replaces that rule in every queue's policy (the default's too).
    result = runner.invoke(cli, [*args, "--completed-age", "1800", *url])
    assert (result.exit_code, result.output) == (0, "deleted 2 finished jobs\n")
    assert _left(queue) == set()


def test_with_rules_replaces_only_the_rules_given() -> None:
    declared = Retention(default=KEEP_ALL, per_queue={"short": SHORT})
    assert declared.with_rules() is declared
    changed = declared.with_rules(failed_age=0, completed_keep=None)
    assert changed.default == KEEP_ALL.model_copy(update={"failed_age": 0})
    assert changed.for_queue("short") == SHORT.model_copy(update={"failed_age": 0})


# --- 6. old test template databases ---------------------------------------------------


def _database_exists(admin: str, name: str) -> bool:
    with psycopg.connect(admin, autocommit=True) as conn:
        return conn.execute(sql.query("database_exists"), {"name": name}).fetchone() is not None


def test_templates_of_other_schemas_are_dropped_unless_in_use(queueing_database_url: str) -> None:
    admin = databases.server_url()
    old, building, in_use = (unique_name(f"queueing_template_{p}") for p in ("old", "b", "used"))
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in (old, building, in_use):
            conn.execute(sql.query("create_database").format(name=pgsql.Identifier(name)))
    try:
        with psycopg.connect(databases.with_database(admin, in_use)):
            current = databases.ensure_template(admin)
            assert current == databases.template_name()
            assert _database_exists(admin, current)
            assert not _database_exists(admin, old)
            assert not _database_exists(admin, building)
            assert _database_exists(admin, in_use)  # a session is connected: kept
        databases.ensure_template(admin)
        assert not _database_exists(admin, in_use)
    finally:
        for name in (old, building, in_use):
            databases.drop_database(admin, name)


# --- 7. what the test fixtures return -------------------------------------------------


def test_advance_returns_the_jobs_it_made_due(queue: Queue, queue_clock: QueueClock) -> None:
    soon = queue.enqueue("x", delay=60)
    queue.enqueue("x")  # due already: not listed
    queue.enqueue("x", delay=3600)  # still not due: not listed
    later = queue.enqueue("x", delay=90)
    assert queue_clock.advance(0) == []
    assert queue_clock.advance(dt.timedelta(seconds=100)) == [soon.id, later.id]
    assert queue_clock.advance(100) == []


def test_drain_with_concurrency_one_runs_by_priority_then_age(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    @queue.task(name="step")
    async def step() -> None:
        return None

    low, high, low_later = (queue.enqueue(step, priority=p) for p in (0, 5, 0))
    drained = queueing_worker.drain(concurrency=1)
    assert drained.job_ids == [high.id, low.id, low_later.id]
    assert drained.stats is not None and drained.stats.claimed == 3
    assert queueing_worker.drain().runs == ()


def test_ran_is_the_history_so_far_and_stats_once_stopped(
    queue: Queue, queueing_worker: QueueWorker
) -> None:
    @queue.task(name="step")
    async def step() -> None:
        return None

    with queueing_worker.background() as worker:
        job = queue.enqueue(step)
        wait_for(queue, job, JobStatus.COMPLETED)
        during = worker.ran()
    assert [(r.job_id, r.outcome) for r in during] == [(job.id, "completed")]
    assert during.stats is None
    assert worker.ran().stats is not None
