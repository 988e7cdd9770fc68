"""Retention: finished jobs are deleted once past their keep, in bounded batches.

Jobs are made old by moving their timestamps back in the database (never by waiting).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from bench.sql_blocks import query as bench_query
from queueing import logs, sql
from queueing.cli.prune import prune as prune_command
from queueing.queue import JobRequest, Queue
from queueing.retention import DAY, Retention, RetentionPolicy, prune, prune_async
from queueing.worker import Worker
from tests.helpers import NO_DATABASE_ENV

HOUR = 3600.0
KEEP_ALL = RetentionPolicy(completed_age=None, completed_keep=None, failed_age=None)


def _make(
    queue: Queue,
    status: str,
    ages: list[float],
    *,
    queue_name: str = "default",
) -> list[int]:
    """One job per age, in ``status`` (procrastinate's name), finished ``age`` seconds ago."""
    jobs = queue.enqueue_many(JobRequest("noop", queue=queue_name) for _ in ages)
    ids = [job.id for job in jobs]
    with psycopg.connect(queue.database_url, autocommit=True) as conn:
        if status != "todo":
            conn.execute(
                "UPDATE procrastinate_jobs SET status = %s WHERE id = ANY(%s)", [status, ids]
            )
        for job_id, age in zip(ids, ages, strict=True):
            # Move every timestamp back by the same amount: their order still holds.
            conn.execute(
                """UPDATE procrastinate_jobs
                      SET created_at = created_at - make_interval(secs => %(age)s),
                          started_at = started_at - make_interval(secs => %(age)s),
                          finished_at = finished_at - make_interval(secs => %(age)s)
                    WHERE id = %(id)s""",
                {"age": age, "id": job_id},
            )
    return ids


def _left(queue: Queue) -> set[int]:
    with psycopg.connect(queue.database_url) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM procrastinate_jobs").fetchall()}


def test_completed_jobs_older_than_the_age_are_deleted(queue: Queue) -> None:
    old = _make(queue, "succeeded", [2 * DAY, 25 * HOUR])
    young = _make(queue, "succeeded", [23 * HOUR, 60.0, 0.0])
    deleted = prune(queue.database_url, RetentionPolicy(completed_keep=None))
    assert deleted == len(old)
    assert _left(queue) == set(young)
    # Nothing more to do: a second run deletes nothing.
    assert prune(queue.database_url, RetentionPolicy(completed_keep=None)) == 0


def test_completed_jobs_beyond_the_newest_n_of_their_queue_are_deleted(queue: Queue) -> None:
    # Ages 0..9 seconds: the newest three are those finished 0, 1 and 2 seconds ago.
    ids = _make(queue, "succeeded", [float(age) for age in range(10)])
    other = _make(queue, "succeeded", [5.0, 6.0], queue_name="other")
    policy = RetentionPolicy(completed_age=None, completed_keep=3, failed_age=None)
    assert prune(queue.database_url, policy) == 7
    # Per queue: "other" has two, within its keep of three.
    assert _left(queue) == set(ids[:3]) | set(other)


def test_keep_n_and_age_both_apply(queue: Queue) -> None:
    ids = _make(queue, "succeeded", [10.0, 20.0, 30.0, 2 * DAY])
    policy = RetentionPolicy(completed_age=DAY, completed_keep=10, failed_age=None)
    assert prune(queue.database_url, policy) == 1  # only the one past the age
    policy = RetentionPolicy(completed_age=DAY, completed_keep=2, failed_age=None)
    assert prune(queue.database_url, policy) == 1  # then the third newest
    assert _left(queue) == set(ids[:2])


def test_failed_and_cancelled_jobs_have_their_own_age(queue: Queue) -> None:
    failed_old = _make(queue, "failed", [8 * DAY])
    cancelled_old = _make(queue, "cancelled", [8 * DAY])
    aborted_old = _make(queue, "aborted", [8 * DAY])
    failed_young = _make(queue, "failed", [6 * DAY, 2 * DAY])
    # A completed job of the same age as the young failed ones goes (24 h default).
    completed = _make(queue, "succeeded", [2 * DAY])
    deleted = prune(queue.database_url)  # the defaults: 24 h / 1,000 / 7 days
    assert deleted == len(failed_old + cancelled_old + aborted_old + completed)
    assert _left(queue) == set(failed_young)
    # Failed ones are not subject to keep-N: only their age counts.
    assert prune(queue.database_url, RetentionPolicy(completed_keep=0)) == 0


def test_pending_and_active_jobs_are_never_touched(queue: Queue) -> None:
    pending = _make(queue, "todo", [30 * DAY, 0.0])
    busy = _make(queue, "todo", [30 * DAY, 30 * DAY], queue_name="busy")
    with psycopg.connect(queue.database_url, autocommit=True) as conn:
        # Active jobs: claimed by a registered worker.
        row = conn.execute(sql.query("register_worker"), {"host": "h", "pid": 1}).fetchone()
        assert row is not None
        worker_id = row[0]
        active = [
            row[0]
            for row in conn.execute(
                sql.query("claim_jobs"),
                {"queues": ["busy"], "worker_id": worker_id, "limit": 10, "idle": False},
            ).fetchall()
        ]
    assert active == busy
    done = _make(queue, "succeeded", [30 * DAY])
    everything = RetentionPolicy(completed_age=0, completed_keep=0, failed_age=0)
    assert prune(queue.database_url, everything) == len(done)
    assert _left(queue) == set(pending) | set(active)
    assert {j.status.value for j in queue.list_jobs()} == {"pending", "active"}


def test_per_queue_policies(queue: Queue) -> None:
    reports = _make(queue, "succeeded", [2 * HOUR, 10.0], queue_name="reports")
    emails = _make(queue, "succeeded", [2 * HOUR, 10.0], queue_name="emails")
    audit_failed = _make(queue, "failed", [30 * DAY], queue_name="audit")
    retention = Retention(
        default=RetentionPolicy(completed_age=HOUR, completed_keep=None),
        per_queue={
            "reports": RetentionPolicy(completed_age=None, completed_keep=None),  # keep all
            "audit": KEEP_ALL,
        },
    )
    assert prune(queue.database_url, retention) == 1
    assert _left(queue) == set(reports) | {emails[1]} | set(audit_failed)
    # Only one queue, with that queue's policy.
    assert prune(queue.database_url, Retention(), queue="reports") == 0
    assert prune(queue.database_url, RetentionPolicy(completed_keep=1), queue="reports") == 1
    assert _left(queue) == {reports[1], emails[1], *audit_failed}


class _CountingConnection(psycopg.Connection[Any]):
    """Records what each ``prune_jobs`` statement deleted (see ``_CountingCursor``)."""

    batches: list[int]


class _CountingCursor(psycopg.Cursor[Any]):
    """The cursor of a ``_CountingConnection``: whichever way prune() runs its statements
    (``conn.execute`` or a cursor of its own), each goes through here."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        super().execute(query, params, **kwargs)
        if query == sql.query("prune_jobs"):
            assert isinstance(self.connection, _CountingConnection)
            assert self.pgresult is not None
            self.connection.batches.append(int(self.pgresult.get_value(0, 0) or b"0"))
        return self


def test_prune_deletes_in_bounded_batches(queue: Queue) -> None:
    doomed = _make(queue, "succeeded", [2 * DAY] * 35)
    kept = _make(queue, "succeeded", [0.0] * 3)
    with _CountingConnection.connect(
        queue.database_url, autocommit=True, cursor_factory=_CountingCursor
    ) as conn:
        conn.batches = []
        deleted = prune(conn, RetentionPolicy(completed_keep=None), batch_size=10)
        assert conn.batches == [10, 10, 10, 5]  # each batch its own transaction
    assert deleted == len(doomed)
    assert _left(queue) == set(kept)


def test_a_prune_batch_reads_its_batch_and_the_keep_not_every_finished_job(
    queue: Queue,
) -> None:
    # 3,000 completed jobs, the newest 100 kept, batches of 10: a batch reads about the
    # keep and the batch. (queueing_prune_v1 ranked all 3,000 for every batch.)
    with psycopg.connect(queue.database_url, autocommit=True) as conn:
        conn.execute(bench_query("finished_jobs"), {"n": 3000})
        conn.execute("ANALYZE procrastinate_jobs")
    with psycopg.connect(queue.database_url) as conn:  # one transaction: its own counters
        (deleted,) = conn.execute(
            sql.query("prune_jobs"),
            {
                "queue": None,
                "completed_age": None,
                "completed_keep": 100,
                "failed_age": None,
                "limit": 10,
            },
        ).fetchone() or (None,)
        (read,) = conn.execute(
            "SELECT seq_tup_read + idx_tup_fetch FROM pg_stat_xact_user_tables"
            " WHERE relname = 'procrastinate_jobs'"
        ).fetchone() or (None,)
        conn.commit()
    assert deleted == 10
    assert read is not None and read < 300, read
    # An age that dooms none of them (and the failed jobs' age): the cut-offs bound the
    # index scans, so nothing is read past them.
    with psycopg.connect(queue.database_url) as conn:
        (deleted,) = conn.execute(
            sql.query("prune_jobs"),
            {
                "queue": None,
                "completed_age": 2 * DAY,
                "completed_keep": None,
                "failed_age": 7 * DAY,
                "limit": 10,
            },
        ).fetchone() or (None,)
        (read,) = conn.execute(
            "SELECT seq_tup_read + idx_tup_fetch FROM pg_stat_xact_user_tables"
            " WHERE relname = 'procrastinate_jobs'"
        ).fetchone() or (None,)
        conn.commit()
    assert deleted == 0
    assert read is not None and read < 50, read


def test_a_prune_batch_reads_its_batch_when_the_statistics_predate_the_backlog(
    empty_database: str,
) -> None:
    # The table analyzed while it held 10 finished jobs, then 20,000 more (a pruner that
    # fell behind, autovacuum off): planned as "about one row", the batch was a sort of
    # every finished job past the cut before its LIMIT (queueing_jobs_finished_idx gave
    # finished_at's order, not (finished_at, id)). Measured: 216-250 ms a batch of 500 at
    # 3 million jobs, and the pruner never caught up. The index's order is the read's now.
    Queue(empty_database).migrate()
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(bench_query("finished_jobs"), {"n": 10})
        conn.execute("VACUUM ANALYZE procrastinate_jobs")
        conn.execute(bench_query("finished_jobs"), {"n": 20_000})
    params = {
        "queue": None,
        "completed_age": None,
        "completed_keep": 100,
        "failed_age": None,
        "limit": 100,
    }
    reads: list[int] = []
    seen = 0
    with psycopg.connect(empty_database) as conn:
        # Batch after batch on one session, as the pruner's round: PL/pgSQL switches to
        # the statement's generic plan after its fifth run.
        for _ in range(8):
            (deleted,) = conn.execute(sql.query("prune_jobs"), params).fetchone() or (None,)
            assert deleted == 100
            # The session's counts so far (PostgreSQL 15 keeps those of its earlier
            # transactions until it reports them, at most once a second): a batch's are
            # the difference, or all of them just after a report.
            (read,) = conn.execute(
                "SELECT seq_tup_read + idx_tup_fetch FROM pg_stat_xact_user_tables"
                " WHERE relname = 'procrastinate_jobs'"
            ).fetchone() or (0,)
            conn.commit()
            reads.append(read - seen if read >= seen else read)
            seen = read
    # A batch reads about the keep and the batch; a sort of the backlog reads 20,000.
    assert all(read < 1_000 for read in reads), reads


def test_exclusive_prune_yields_to_the_holder_of_the_maintenance_lock(queue: Queue) -> None:
    _make(queue, "succeeded", [2 * DAY] * 3)
    with psycopg.connect(queue.database_url) as holder:
        holder.execute(sql.query("try_maintenance_lock"), {"service": 2})
        # Another worker is pruning: an exclusive prune leaves it to that one.
        assert prune(queue.database_url, exclusive=True) == 0
        holder.rollback()
    assert prune(queue.database_url, exclusive=True) == 3


async def test_prune_async_on_the_workers_connection(queue: Queue) -> None:
    _make(queue, "succeeded", [2 * DAY] * 3, queue_name="a")
    _make(queue, "failed", [2 * DAY], queue_name="b")
    async with await psycopg.AsyncConnection.connect(queue.database_url, autocommit=True) as conn:
        retention = Retention(per_queue={"a": RetentionPolicy(completed_age=3 * DAY)})
        assert await prune_async(conn, retention, batch_size=2, exclusive=True) == 0
        assert await prune_async(conn, Retention(), batch_size=2, exclusive=True) == 3


class _EventSeen(logging.Handler):
    """Sets ``seen`` when queueing logs ``event``."""

    def __init__(self, event: str) -> None:
        super().__init__()
        self.event = event
        self.seen = asyncio.Event()
        self.fields: dict[str, Any] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.event:
            self.fields = getattr(record, "fields", {})
            self.seen.set()


@contextlib.contextmanager
def _watch_log(event: str) -> Iterator[_EventSeen]:
    handler = _EventSeen(event)
    level = logs.logger.level
    logs.logger.addHandler(handler)
    logs.logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logs.logger.removeHandler(handler)
        logs.logger.setLevel(level)


async def test_a_worker_prunes_every_prune_interval(queue: Queue) -> None:
    doomed = _make(queue, "succeeded", [2 * DAY] * 4)
    kept = _make(queue, "succeeded", [0.0])
    with _watch_log("jobs.pruned") as pruned:
        worker = Worker(queue, prune_interval=0.05, retention=Retention())
        running = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(pruned.seen.wait(), timeout=20)
        finally:
            worker.stop()
            await running
    assert pruned.fields == {"deleted": len(doomed)}
    assert _left(queue) == set(kept)


def test_retention_policy_is_a_frozen_validated_model() -> None:
    policy = RetentionPolicy()
    assert (policy.completed_age, policy.completed_keep, policy.failed_age) == (
        DAY,
        1000,
        7 * DAY,
    )
    with pytest.raises(ValueError, match="frozen"):
        policy.completed_keep = 3
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        RetentionPolicy(completed_keep=-1)
    assert Retention(per_queue={"x": KEEP_ALL}).for_queue("x") is KEEP_ALL
    assert Retention().for_queue("x") == RetentionPolicy()


# --- the CLI ---------------------------------------------------------------------------


@pytest.fixture
def cli() -> typer.Typer:
    """``prune`` as the lead registers it: a command of the ``queueing`` app."""
    app = typer.Typer()
    app.command()(prune_command)
    app.command("noop", hidden=True)(lambda: None)  # two commands: `prune` is named
    return app


def test_cli_prune_prints_how_many_it_deleted(queue: Queue, cli: typer.Typer) -> None:
    _make(queue, "succeeded", [2 * DAY, 3 * HOUR, 10.0])
    _make(queue, "succeeded", [3 * HOUR], queue_name="reports")
    _make(queue, "failed", [2 * DAY])
    runner = CliRunner(env=NO_DATABASE_ENV)
    url = ["--database-url", queue.database_url]

    result = runner.invoke(cli, ["prune", *url])
    assert result.exit_code == 0, result.output
    assert result.output == "deleted 1 finished job\n"

    args = ["prune", "--queue", "default", "--completed-age", "3600", "--failed-age", "86400"]
    result = runner.invoke(cli, [*args, *url])
    assert result.exit_code == 0, result.output
    assert result.output == "deleted 2 finished jobs from queue 'default'\n"

    result = runner.invoke(cli, ["prune", "--keep", "0", "-q", "reports", *url])
    assert result.exit_code == 0, result.output
    assert result.output == "deleted 1 finished job from queue 'reports'\n"
    assert {j.queue for j in queue.list_jobs()} == {"default"}
    assert len(queue.list_jobs()) == 1


def test_cli_prune_rejects_bad_options(queue: Queue, cli: typer.Typer) -> None:
    runner = CliRunner(env=NO_DATABASE_ENV)
    result = runner.invoke(cli, ["prune", "--keep", "-1", "--database-url", queue.database_url])
    assert result.exit_code != 0
    assert "--keep" in result.output


def test_cli_prune_on_a_database_without_the_schema_is_one_line(empty_database: str) -> None:
    from queueing.errors import SchemaNotMigrated

    with pytest.raises(SchemaNotMigrated, match="queueing db migrate"):
        prune(empty_database)


def test_prune_v2_deletes_exactly_what_prune_v1_deleted(queue: Queue) -> None:
    # queueing_prune_v2 (0013) replaced v1's ranking of every completed job; the rules
    # must not change. Seeded random jobs over queues of every mix, finished_at with
    # many ties, and a grid of policies: each function run to its end (batch after
    # batch, as the pruner does) in a savepoint, the jobs left compared.
    rng = random.Random(13)
    statuses = ["succeeded"] * 4 + ["failed", "cancelled", "aborted", "todo", "doing"]
    rows = []
    for name, choices in (
        ("a", statuses),
        ("b", statuses),
        ("failed_only", ["failed", "cancelled", "aborted"]),
        ("succeeded_only", ["succeeded"]),
        ("unfinished_only", ["todo", "doing"]),
    ):
        rows += [
            (name, rng.choice(choices), rng.randint(0, 12)) for _ in range(rng.randint(20, 60))
        ]
    with psycopg.connect(queue.database_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, status, created_at,"
            " started_at, finished_at, updated_at)"
            " VALUES (%(q)s, 't', %(s)s::procrastinate_job_status,"
            " now() - interval '2 days',"
            " CASE WHEN %(s)s::text <> 'todo' THEN now() - interval '47 hours' END,"
            " CASE WHEN %(s)s::text IN ('succeeded', 'failed', 'cancelled', 'aborted')"
            " THEN date_trunc('hour', now()) - %(h)s * interval '1 hour' END, now())",
            [{"q": q, "s": s, "h": h} for q, s, h in rows],
        )

        def left_after(function: str, args: tuple[Any, ...], limit: int) -> set[int]:
            conn.execute("SAVEPOINT p")
            while True:
                (deleted,) = conn.execute(
                    f"SELECT {function}(%s, %s::interval, %s, %s::interval, %s)",
                    (*args, limit),
                ).fetchone() or (0,)
                if deleted < limit:
                    break
            ids = {r[0] for r in conn.execute("SELECT id FROM procrastinate_jobs").fetchall()}
            conn.execute("ROLLBACK TO SAVEPOINT p")
            return ids

        ages = [None, "30 minutes", "3 hours 30 minutes", "20 hours"]
        compared = 0
        for args in itertools.product(
            [None, "a", "failed_only", "succeeded_only", "nowhere"], ages, [None, 0, 3, 20], ages
        ):
            if rng.random() < 0.7:
                continue
            for limit in (7, 500):
                assert left_after("queueing_prune_v2", args, limit) == left_after(
                    "queueing_prune_v1", args, limit
                ), (args, limit)
                compared += 1
        conn.rollback()
    assert compared > 50
