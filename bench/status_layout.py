"""Where should a job's status record live? Two layouts, measured the same way.

A  "columns on the job row" (the chosen design): procrastinate's schema plus our real
   migration (``sql/migrations/0001_job_status.sql``, applied by ``Queue.migrate()``). The
   status record is a set of extra columns on ``procrastinate_jobs``; a BEFORE UPDATE trigger
   stamps started_at / finished_at / updated_at, an AFTER UPDATE trigger sends the
   ``queueing_job_changed_v1`` hint, and ``queueing_jobs`` is a view over the one table.

B  "1:1 status table written in the same statement": procrastinate's schema unchanged plus
   ``job_status`` (one row per job, primary key = foreign key to ``procrastinate_jobs``, ON
   DELETE CASCADE) holding the same columns under the same CHECK constraints. The stamping
   and notify triggers move to ``job_status``; ``queueing_jobs`` becomes a join. The three
   functions keep their names and signatures and write both tables in ONE statement each
   (data-modifying CTEs): enqueue inserts both rows, claim updates both rows, finish updates
   both rows behind the same (status, worker, attempt) fence, locking both rows.

Because B defines ``queueing_enqueue_v1`` / ``queueing_claim_v1`` / ``queueing_finish_v1``
with A's signatures, the client side is identical for both: the named queries ``enqueue``,
``claim_jobs`` and ``finish_jobs`` of ``sql/queries.sql``, run by one psycopg connection in
autocommit mode (one transaction per call).

Each run of a layout gets its own database, ``bench_layout_<a|b>_<pid>``, created from
``--admin-url`` and dropped afterwards:

Bulk enqueue
    ``--jobs`` jobs (default 20,000) in calls of ``--enqueue-batch`` (1,000), each call's
    records fetched as the library does. Figure: jobs/s over all calls.
Drain
    ``ANALYZE`` of the layout's tables (as autovacuum would on a live queue; not timed), then a
    single-connection loop: claim ``--claim-batch`` (100) jobs, finish them all as
    ``succeeded`` with a ``null`` result (what a no-op handler returns), until a claim returns
    nothing. No Python handler runs: the figure is the two SQL round trips per batch.
Server CPU
    The CPU time (user + system) the server process behind the connection spent in each phase,
    read from ``/proc/<pg_backend_pid()>/stat`` when the server runs on this machine (else
    "n/a"), per 1,000 jobs. Triggers, index maintenance and constraint checks all run in that
    process, so this is the work each layout costs; unlike jobs/s it hardly moves when other
    processes compete for the CPU.
Size
    ``pg_total_relation_size`` (heap + indexes + TOAST) of the tables holding the status record
    and queue state (A: ``procrastinate_jobs``; B: ``procrastinate_jobs`` + ``job_status``),
    after the enqueue and after the drain. ``procrastinate_events`` gets the same rows in both
    layouts and is printed per run only.

Before measuring, a small behavioural check runs the same scenario (success, failure, retry,
interrupted attempt, cancel requested while running, stale attempt and wrong worker fenced
out) through both layouts and compares the records they end with, so that B is a fair
equivalent of A. Known differences, by construction of B: its status is only right while every
write goes through these functions (procrastinate's own functions or an operator's UPDATE of
``procrastinate_jobs`` leave ``job_status`` behind), and its ``updated_at`` moves only when
``job_status`` is written (A's trigger fires for any update of the job row).

Runs alternate A, B, A, B, ... (``--runs``, default 3) and the table shows the median of each
figure. Run ``python -m bench.status_layout`` from the repository root.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from procrastinate.schema import SchemaManager
from psycopg import sql as pgsql
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

import queueing
from queueing import sql

__all__ = ["LAYOUTS", "Layout", "Run", "format_table", "main", "measure"]

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# Layout B: procrastinate's schema is left as it is; everything below is added next to it.
# Names, signatures and comments mirror sql/migrations/0001_job_status.sql; only the place of
# the status record differs.
LAYOUT_B_SQL = r"""
CREATE TABLE job_status (
    job_id          bigint      PRIMARY KEY REFERENCES procrastinate_jobs ON DELETE CASCADE,
    tenant_id       text,
    user_id         text,
    status          text        NOT NULL DEFAULT 'pending',
    progress        smallint    NOT NULL DEFAULT 0,
    progress_detail jsonb,
    result          jsonb,
    error           jsonb,
    max_attempts    integer     NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT job_status_known
        CHECK (status IN ('pending', 'active', 'completed', 'failed', 'cancelled')),
    CONSTRAINT queueing_progress_range
        CHECK (progress BETWEEN 0 AND 100),
    CONSTRAINT queueing_max_attempts_positive
        CHECK (max_attempts >= 1),
    CONSTRAINT queueing_started_after_created
        CHECK (started_at IS NULL OR created_at <= started_at),
    CONSTRAINT queueing_finished_after_started
        CHECK (finished_at IS NULL OR (created_at <= finished_at
                                       AND (started_at IS NULL OR started_at <= finished_at))),
    CONSTRAINT queueing_finished_iff_terminal
        CHECK ((finished_at IS NOT NULL) = (status IN ('completed', 'failed', 'cancelled')))
);

CREATE FUNCTION queueing_status_name_v1(s procrastinate_job_status)
    RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE s
        WHEN 'todo'      THEN 'pending'
        WHEN 'doing'     THEN 'active'
        WHEN 'aborting'  THEN 'active'
        WHEN 'succeeded' THEN 'completed'
        WHEN 'failed'    THEN 'failed'
        WHEN 'cancelled' THEN 'cancelled'
        WHEN 'aborted'   THEN 'cancelled'
    END
$$;

-- A's stamping trigger, on the status table (its status holds our names).
CREATE FUNCTION queueing_stamp_job_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := GREATEST(clock_timestamp(), OLD.updated_at);
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        IF NEW.status = 'active' THEN
            NEW.started_at := GREATEST(clock_timestamp(), NEW.created_at);
            NEW.finished_at := NULL;
        ELSIF NEW.status IN ('completed', 'failed', 'cancelled') THEN
            NEW.finished_at := GREATEST(clock_timestamp(), NEW.created_at,
                                        COALESCE(NEW.started_at, NEW.created_at));
        ELSE
            NEW.finished_at := NULL;
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER queueing_stamp_job_v1
    BEFORE UPDATE ON job_status
    FOR EACH ROW EXECUTE FUNCTION queueing_stamp_job_v1();

CREATE FUNCTION queueing_notify_job_changed_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('queueing_job_changed_v1', NEW.job_id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER queueing_notify_job_changed_v1
    AFTER UPDATE OF status, progress, progress_detail ON job_status
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.progress IS DISTINCT FROM NEW.progress
          OR OLD.progress_detail IS DISTINCT FROM NEW.progress_detail)
    EXECUTE FUNCTION queueing_notify_job_changed_v1();

-- The same three indexes as A, each on the table that now holds its columns.
CREATE INDEX queueing_jobs_tenant_user_id_idx ON job_status (tenant_id, user_id, job_id DESC);
CREATE INDEX queueing_jobs_status_id_idx ON job_status (status, job_id DESC);
CREATE INDEX queueing_jobs_due_idx ON procrastinate_jobs (scheduled_at)
    WHERE status = 'todo' AND scheduled_at IS NOT NULL;

CREATE VIEW queueing_jobs AS
SELECT j.id,
       j.task_name,
       j.queue_name AS queue,
       s.tenant_id,
       s.user_id,
       s.status,
       s.progress,
       s.progress_detail,
       j.args,
       s.result,
       s.error,
       j.attempts,
       s.max_attempts,
       j.priority,
       j.abort_requested AS cancel_requested,
       j.worker_id,
       s.created_at,
       COALESCE(j.scheduled_at, s.created_at) AS scheduled_at,
       s.started_at,
       s.finished_at,
       s.updated_at
  FROM procrastinate_jobs AS j
  JOIN job_status AS s ON s.job_id = j.id;

-- Both rows in one statement: ids are drawn first so each status row can name its job;
-- the foreign key is checked at the end of the statement, when both rows exist.
CREATE FUNCTION queueing_enqueue_v1(
    p_queues       character varying[],
    p_tasks        character varying[],
    p_priorities   integer[],
    p_args         jsonb[],
    p_scheduled_at timestamptz[],
    p_tenant_ids   text[],
    p_user_ids     text[],
    p_max_attempts integer[]
)
    RETURNS SETOF queueing_jobs
    LANGUAGE plpgsql
AS $$
DECLARE
    _ids bigint[];
BEGIN
    WITH input AS MATERIALIZED (
        SELECT nextval('procrastinate_jobs_id_seq'::regclass) AS id, q, t, p, a, s, tn, u, m
          FROM unnest(p_queues, p_tasks, p_priorities, p_args, p_scheduled_at,
                      p_tenant_ids, p_user_ids, p_max_attempts)
               WITH ORDINALITY AS j(q, t, p, a, s, tn, u, m, n)
         ORDER BY n
    ), job AS (
        INSERT INTO procrastinate_jobs (id, queue_name, task_name, priority, args, scheduled_at)
        SELECT id, q, t, p, a, s FROM input ORDER BY id
        RETURNING id
    ), record AS (
        INSERT INTO job_status (job_id, tenant_id, user_id, max_attempts)
        SELECT id, tn, u, m FROM input ORDER BY id
        RETURNING job_id
    )
    SELECT array_agg(id) INTO _ids FROM job;
    RETURN QUERY SELECT * FROM queueing_jobs WHERE id = ANY(_ids) ORDER BY id;
END;
$$;

CREATE FUNCTION queueing_claim_v1(
    p_queues    character varying[],
    p_worker_id bigint,
    p_limit     integer
)
    RETURNS TABLE (id bigint, task_name character varying, queue_name character varying,
                   args jsonb, attempts integer, max_attempts integer,
                   tenant_id text, user_id text)
    LANGUAGE sql
    SET enable_seqscan = off
    SET enable_bitmapscan = off
AS $$
    WITH candidate AS (
        SELECT j.id
          FROM procrastinate_jobs AS j
         WHERE j.status = 'todo'
           AND (p_queues IS NULL OR j.queue_name = ANY(p_queues))
           AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
         ORDER BY j.priority DESC, j.id ASC
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE procrastinate_jobs AS j
           SET status = 'doing', worker_id = p_worker_id, attempts = j.attempts + 1
          FROM candidate
         WHERE j.id = candidate.id
        RETURNING j.id, j.task_name, j.queue_name, j.args, j.attempts
    ), record AS (
        UPDATE job_status AS s
           SET status = 'active'
          FROM candidate
         WHERE s.job_id = candidate.id
        RETURNING s.job_id, s.max_attempts, s.tenant_id, s.user_id
    )
    SELECT c.id, c.task_name, c.queue_name, c.args, c.attempts,
           r.max_attempts, r.tenant_id, r.user_id
      FROM claimed AS c
      JOIN record AS r ON r.job_id = c.id
$$;

CREATE FUNCTION queueing_finish_v1(
    p_worker_id bigint,
    p_ids       bigint[],
    p_attempts  integer[],
    p_outcomes  text[],
    p_results   jsonb[],
    p_errors    jsonb[],
    p_retry_at  timestamptz[]
)
    RETURNS TABLE (id bigint, status text)
    LANGUAGE sql
AS $$
    WITH outcome AS (
        SELECT * FROM unnest(p_ids, p_attempts, p_outcomes, p_results, p_errors, p_retry_at)
                 AS o(id, attempt, outcome, result, error, retry_at)
    ), decided AS (
        SELECT j.id, o.result, o.error, o.retry_at, o.outcome,
               (CASE
                    WHEN j.abort_requested OR o.outcome = 'cancelled' THEN 'aborted'
                    WHEN o.outcome = 'succeeded' THEN 'succeeded'
                    WHEN o.outcome = 'failed' THEN 'failed'
                    ELSE 'todo'
                END)::procrastinate_job_status AS new_status
          FROM outcome AS o
          JOIN procrastinate_jobs AS j ON j.id = o.id
          JOIN job_status AS s ON s.job_id = j.id
         WHERE j.status = 'doing' AND j.worker_id IS NOT DISTINCT FROM p_worker_id
           AND j.attempts = o.attempt
           FOR UPDATE OF j, s
    ), job AS (
        UPDATE procrastinate_jobs AS j
           SET status = d.new_status,
               abort_requested = false,
               worker_id = CASE WHEN d.new_status = 'todo' THEN NULL ELSE j.worker_id END,
               scheduled_at = CASE WHEN d.new_status = 'todo' THEN d.retry_at
                                   ELSE j.scheduled_at END,
               attempts = CASE WHEN d.new_status = 'todo' AND d.outcome = 'interrupted'
                               THEN j.attempts - 1 ELSE j.attempts END
          FROM decided AS d
         WHERE j.id = d.id
        RETURNING j.id
    ), record AS (
        UPDATE job_status AS s
           SET status = queueing_status_name_v1(d.new_status),
               result = CASE WHEN d.new_status = 'succeeded' THEN d.result END,
               error = CASE WHEN d.new_status = 'succeeded' THEN NULL
                            ELSE COALESCE(d.error, s.error) END,
               progress = CASE WHEN d.new_status = 'succeeded' THEN 100 ELSE s.progress END
          FROM decided AS d
         WHERE s.job_id = d.id
        RETURNING s.job_id, s.status
    )
    SELECT r.job_id, r.status FROM record AS r
$$;
"""


# --------------------------------------------------------------------------------------------
# The two layouts.
# --------------------------------------------------------------------------------------------


def _apply_procrastinate_schema(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(pgsql.SQL(SchemaManager.get_schema()))


def _install_a(conninfo: str) -> None:
    _apply_procrastinate_schema(conninfo)
    with queueing.Queue(conninfo) as queue:
        queue.migrate()


def _install_b(conninfo: str) -> None:
    _apply_procrastinate_schema(conninfo)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(pgsql.SQL(LAYOUT_B_SQL))


@dataclass(frozen=True)
class Layout:
    key: str  # "a" / "b": part of the database name
    label: str
    install: Callable[[str], None]
    tables: tuple[str, ...]  # the tables holding the status record and the queue state


LAYOUTS: dict[str, Layout] = {
    "a": Layout("a", "A columns on job row", _install_a, ("procrastinate_jobs",)),
    "b": Layout("b", "B 1:1 status table", _install_b, ("procrastinate_jobs", "job_status")),
}


@contextlib.contextmanager
def _database(admin_url: str, layout: Layout) -> Iterator[str]:
    """A fresh database with ``layout`` installed; its conninfo. Dropped on exit."""
    name = f"bench_layout_{layout.key}_{os.getpid()}"
    ident = pgsql.Identifier(name)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        admin.execute(pgsql.SQL("CREATE DATABASE {}").format(ident))
    try:
        conninfo = make_conninfo(admin_url, dbname=name)
        layout.install(conninfo)
        yield conninfo
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))


# --------------------------------------------------------------------------------------------
# The client calls (identical for both layouts: the library's named queries).
# --------------------------------------------------------------------------------------------

Conn = psycopg.Connection[Any]


def _enqueue(conn: Conn, first: int, n: int) -> list[dict[str, Any]]:
    """Enqueue ``n`` no-op jobs numbered from ``first`` (ten tenants, a hundred users)."""
    numbers = range(first, first + n)
    params = {
        "queues": ["default"] * n,
        "tasks": ["noop"] * n,
        "priorities": [0] * n,
        "args": ["{}"] * n,
        "scheduled_at": [None] * n,
        "tenant_ids": [f"tenant-{i % 10}" for i in numbers],
        "user_ids": [f"user-{i % 100}" for i in numbers],
        "max_attempts": [1] * n,
    }
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql.query("enqueue"), params)
        return cur.fetchall()


def _claim(conn: Conn, worker_id: int, limit: int) -> list[tuple[Any, ...]]:
    cur = conn.execute(
        sql.query("claim_jobs"), {"queues": None, "worker_id": worker_id, "limit": limit}
    )
    return cur.fetchall()


@dataclass(frozen=True)
class _Outcome:
    job_id: int
    attempt: int
    kind: str  # 'succeeded' | 'failed' | 'retry' | 'cancelled' | 'interrupted'
    result: str | None = None
    error: str | None = None
    retry_at: dt.datetime | None = None


def _finish(conn: Conn, worker_id: int, outcomes: Sequence[_Outcome]) -> dict[int, str]:
    cur = conn.execute(
        sql.query("finish_jobs"),
        {
            "worker_id": worker_id,
            "ids": [o.job_id for o in outcomes],
            "attempts": [o.attempt for o in outcomes],
            "outcomes": [o.kind for o in outcomes],
            "results": [o.result for o in outcomes],
            "errors": [o.error for o in outcomes],
            "retry_at": [o.retry_at for o in outcomes],
        },
    )
    return {row[0]: row[1] for row in cur.fetchall()}


def _register_worker(conn: Conn) -> int:
    row = conn.execute(sql.query("register_worker")).fetchone()
    assert row is not None
    return int(row[0])


def _scalar(conn: Conn, query: str, params: Sequence[Any] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


class _BackendCpu:
    """CPU seconds used so far by the server process behind ``conn``.

    Readable only when the server runs on this machine (``available`` says whether it is).
    """

    def __init__(self, conn: Conn) -> None:
        pid = int(_scalar(conn, "SELECT pg_backend_pid()"))
        self._stat = f"/proc/{pid}/stat"
        self._tick = os.sysconf("SC_CLK_TCK")
        host = conn.info.host
        local = host.startswith("/") or host in _LOCAL_HOSTS
        self.available = local and self._comm() == "postgres" and self.read() is not None

    def _comm(self) -> str | None:
        try:
            with open(self._stat) as handle:
                return handle.read().partition("(")[2].rpartition(")")[0]
        except OSError:
            return None

    def read(self) -> float | None:
        try:
            with open(self._stat) as handle:
                fields = handle.read().rpartition(")")[2].split()
        except OSError:
            return None
        # proc(5): after "pid (comm)", utime and stime are the 12th and 13th fields.
        return (int(fields[11]) + int(fields[12])) / self._tick


def _sizes(conn: Conn, tables: Sequence[str]) -> dict[str, int]:
    return {
        t: int(_scalar(conn, "SELECT pg_total_relation_size(%s::regclass)", [t])) for t in tables
    }


# --------------------------------------------------------------------------------------------
# Behavioural check: the same scenario through both layouts must end in the same records.
# --------------------------------------------------------------------------------------------

_COMPARED = (
    "id",
    "status",
    "progress",
    "result",
    "error",
    "attempts",
    "max_attempts",
    "cancel_requested",
    "tenant_id",
    "user_id",
)


def _scenario(conninfo: str) -> list[dict[str, Any]]:
    """Run one fixed scenario; the records it ends with (timestamps reduced to their order)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        worker = _register_worker(conn)
        records = _enqueue(conn, 0, 7)
        assert [r["status"] for r in records] == ["pending"] * 7, records
        claimed = {row[0]: row for row in _claim(conn, worker, 10)}
        assert len(claimed) == 7, claimed
        ids = sorted(claimed)
        attempt = {i: claimed[i][4] for i in ids}
        conn.execute("UPDATE procrastinate_jobs SET abort_requested = true WHERE id = %s", [ids[4]])
        retry_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        error = '{"type": "Boom", "message": "boom"}'
        written = _finish(
            conn,
            worker,
            [
                _Outcome(ids[0], attempt[ids[0]], "succeeded", result='{"answer": 42}'),
                _Outcome(ids[1], attempt[ids[1]], "failed", error=error),
                _Outcome(ids[2], attempt[ids[2]], "retry", error=error, retry_at=retry_at),
                _Outcome(ids[3], attempt[ids[3]], "interrupted"),
                _Outcome(ids[4], attempt[ids[4]], "succeeded", result='"late"'),
                _Outcome(ids[5], attempt[ids[5]] + 1, "succeeded", result='"stale"'),
            ],
        )
        assert ids[5] not in written, written  # stale attempt: fenced out
        # A finish from another worker is fenced out too: ids[6] stays active.
        assert _finish(conn, worker + 1000, [_Outcome(ids[6], attempt[ids[6]], "succeeded")]) == {}
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute("SELECT * FROM queueing_jobs ORDER BY id")
            rows = cur.fetchall()
    out = []
    for row in rows:
        created, started, finished = row["created_at"], row["started_at"], row["finished_at"]
        assert started is None or created <= started
        assert finished is None or (started or created) <= finished
        reduced = {k: row[k] for k in _COMPARED}
        reduced["started"] = started is not None
        reduced["finished"] = finished is not None
        reduced["delayed"] = row["scheduled_at"] > row["created_at"]
        out.append(reduced)
    return out


def check_equivalence(admin_url: str) -> None:
    """Raise if layouts A and B end the same scenario with different records."""
    ends = {}
    for layout in LAYOUTS.values():
        with _database(admin_url, layout) as conninfo:
            ends[layout.key] = _scenario(conninfo)
    if ends["a"] != ends["b"]:
        lines = [f"  A {a}\n  B {b}" for a, b in zip(ends["a"], ends["b"], strict=True) if a != b]
        raise RuntimeError("layouts A and B disagree:\n" + "\n".join(lines))
    statuses = ", ".join(str(r["status"]) for r in ends["a"])
    print(f"equivalence check: A and B end with the same records ({statuses})")


# --------------------------------------------------------------------------------------------
# Measurement.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    layout: str
    enqueue_per_s: float
    drain_per_s: float
    enqueue_cpu_ms: float | None  # server CPU per 1,000 jobs enqueued (None: not measurable)
    drain_cpu_ms: float | None  # server CPU per 1,000 jobs claimed and finished
    size_after_enqueue: int  # bytes, the layout's tables (heap + indexes + TOAST)
    size_after_drain: int
    detail: str  # per-table sizes after the drain


def measure(
    conninfo: str, layout: Layout, *, n_jobs: int, enqueue_batch: int, claim_batch: int
) -> Run:
    """One run of the bulk enqueue and the claim+finish drain on a fresh database."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        worker = _register_worker(conn)
        cpu = _BackendCpu(conn)

        cpu_started = cpu.read()
        started = time.perf_counter()
        for first in range(0, n_jobs, enqueue_batch):
            _enqueue(conn, first, min(enqueue_batch, n_jobs - first))
        enqueue_s = time.perf_counter() - started
        enqueue_cpu = _cpu_ms_per_1000(cpu, cpu_started, n_jobs)
        size_after_enqueue = sum(_sizes(conn, layout.tables).values())

        for table in layout.tables:
            conn.execute(pgsql.SQL("ANALYZE {}").format(pgsql.Identifier(table)))

        done = 0
        cpu_started = cpu.read()
        started = time.perf_counter()
        while True:
            claimed = _claim(conn, worker, claim_batch)
            if not claimed:
                break
            written = _finish(
                conn, worker, [_Outcome(row[0], row[4], "succeeded", "null") for row in claimed]
            )
            if len(written) != len(claimed):
                raise RuntimeError(f"{layout.label}: finished {len(written)} of {len(claimed)}")
            done += len(claimed)
        drain_s = time.perf_counter() - started
        drain_cpu = _cpu_ms_per_1000(cpu, cpu_started, n_jobs)

        completed = _scalar(
            conn,
            "SELECT count(*) FROM queueing_jobs WHERE status = 'completed'"
            " AND started_at <= finished_at AND created_at <= started_at",
        )
        succeeded = _scalar(
            conn, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
        )
        if not done == completed == succeeded == n_jobs:
            raise RuntimeError(
                f"{layout.label}: drained {done}, {completed} completed records, "
                f"{succeeded} succeeded jobs; expected {n_jobs}"
            )
        sizes = _sizes(conn, (*layout.tables, "procrastinate_events"))
    detail = ", ".join(f"{t} {_mb(b)}" for t, b in sizes.items())
    return Run(
        layout=layout.label,
        enqueue_per_s=n_jobs / enqueue_s,
        drain_per_s=n_jobs / drain_s,
        enqueue_cpu_ms=enqueue_cpu,
        drain_cpu_ms=drain_cpu,
        size_after_enqueue=size_after_enqueue,
        size_after_drain=sum(sizes[t] for t in layout.tables),
        detail=detail,
    )


def _cpu_ms_per_1000(cpu: _BackendCpu, started: float | None, n_jobs: int) -> float | None:
    now = cpu.read()
    if not cpu.available or started is None or now is None:
        return None
    return (now - started) * 1000 / n_jobs * 1000


def _median_or_none(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if len(known) == len(values) and known else None


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} ms"


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 1024 / 1024:.1f} MB"


def _median_run(runs: Sequence[Run]) -> Run:
    return Run(
        layout=runs[0].layout,
        enqueue_per_s=statistics.median(r.enqueue_per_s for r in runs),
        drain_per_s=statistics.median(r.drain_per_s for r in runs),
        enqueue_cpu_ms=_median_or_none([r.enqueue_cpu_ms for r in runs]),
        drain_cpu_ms=_median_or_none([r.drain_cpu_ms for r in runs]),
        size_after_enqueue=int(statistics.median(r.size_after_enqueue for r in runs)),
        size_after_drain=int(statistics.median(r.size_after_drain for r in runs)),
        detail="",
    )


def format_table(rows: Sequence[Run]) -> str:
    """The figures as a plain-text table (one row per layout)."""
    header = (
        f"{'layout':<21} {'enqueue':>9} {'claim+finish':>13} {'server CPU per 1k jobs':>23} "
        f"{'size after':>11} {'size after':>11}"
    )
    header2 = (
        f"{'':<21} {'jobs/s':>9} {'jobs/s':>13} {'enqueue':>11} {'claim+finish':>12} "
        f"{'enqueue':>11} {'drain':>11}"
    )
    lines = [header, header2, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.layout:<21} {r.enqueue_per_s:>9,.0f} {r.drain_per_s:>13,.0f} "
            f"{_ms(r.enqueue_cpu_ms):>11} {_ms(r.drain_cpu_ms):>12} "
            f"{_mb(r.size_after_enqueue):>11} {_mb(r.size_after_drain):>11}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.status_layout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--admin-url", default=os.environ.get("BENCH_ADMIN_URL", DEFAULT_ADMIN_URL))
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--enqueue-batch", type=int, default=1000)
    parser.add_argument("--claim-batch", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3, help="runs per layout; medians shown")
    parser.add_argument("--only", choices=sorted(LAYOUTS))
    parser.add_argument("--skip-check", action="store_true", help="skip the equivalence check")
    args = parser.parse_args(argv)

    if not args.skip_check:
        check_equivalence(args.admin_url)
    layouts = [LAYOUTS[args.only]] if args.only else list(LAYOUTS.values())
    print(
        f"{args.jobs} jobs, enqueue batches of {args.enqueue_batch}, "
        f"claim+finish batches of {args.claim_batch}, {args.runs} run(s) per layout, one "
        "connection, autocommit"
    )
    runs: dict[str, list[Run]] = {layout.key: [] for layout in layouts}
    for i in range(args.runs):
        for layout in layouts:
            with _database(args.admin_url, layout) as conninfo:
                run = measure(
                    conninfo,
                    layout,
                    n_jobs=args.jobs,
                    enqueue_batch=args.enqueue_batch,
                    claim_batch=args.claim_batch,
                )
            runs[layout.key].append(run)
            print(
                f"  run {i + 1} {layout.label}: enqueue {run.enqueue_per_s:,.0f}/s "
                f"(CPU {_ms(run.enqueue_cpu_ms)}/1k), claim+finish {run.drain_per_s:,.0f}/s "
                f"(CPU {_ms(run.drain_cpu_ms)}/1k), after enqueue "
                f"{_mb(run.size_after_enqueue)}; after drain {run.detail}"
            )
    print()
    print(f"median of {args.runs} run(s):" if args.runs > 1 else "single run:")
    print(format_table([_median_run(r) for r in runs.values()]))


if __name__ == "__main__":
    main()
