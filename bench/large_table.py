"""queueing when the job table holds more than the jobs being measured.

Cases: the table also holds (a) 1,000,000 finished jobs with their attempt rows, (b)
100,000 jobs due tomorrow at priority 10 (the measured jobs are priority 0), (c) 100,000
pending jobs in a queue no running worker serves. Each case and the empty table are
measured the same way, in the same run: bulk enqueue of the jobs to drain (timed); EXPLAIN
(ANALYZE, BUFFERS) of one claim (in the first round only); drain by one worker process
serving queue ``default`` only; single enqueue (timed). Drain and enqueue are reported as
ratios to the empty table.

A case is filled once (bench/fill.sql, then VACUUM ANALYZE) and kept for its
``Sizes.large_rounds`` rounds; the empty table is a second database of queueing's schema
beside the system's own (warmed up by one run not counted). Each round measures the empty
table, then the case (the machine's load drifts over a run: a pair measured back to back
shares it); a figure is the median of its rounds, a ratio the median of the rounds' own
ratios. Between rounds both tables lose the measured jobs (DELETE, then VACUUM ANALYZE)
and keep the rest.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import statistics
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.context import Context, SystemDb
from bench.scenarios import drain, timed_bulk, timed_single
from bench.sql_blocks import claim_function, claim_query, query
from bench.systems import Tables, make_system
from queueing.sql import query as release_query

#: The jobs a round adds (bulk and single enqueues: tasks noop and stamp in queue
#: ``default``) and the worker rows of its drain; the fills' jobs are other tasks or in
#: another queue. Their events go by the foreign key's cascade, their attempt rows by
#: queueing's delete trigger.
_DELETE_MEASURED = (
    sql.SQL(
        "DELETE FROM procrastinate_jobs"
        " WHERE queue_name = 'default' AND task_name IN ('noop', 'stamp')"
    ),
    sql.SQL("DELETE FROM procrastinate_workers"),
    sql.SQL("VACUUM (ANALYZE) procrastinate_jobs, queueing_attempts, procrastinate_events"),
)

MEASURED = ("drain", "bulk", "single")

#: (case, fill block, rows attribute of Sizes)
CASES = (
    ("empty", None, None),
    ("finished", "finished_jobs", "finished_rows"),
    ("delayed", "delayed_jobs", "delayed_rows"),
    ("other_queue", "other_queue_jobs", "other_queue_rows"),
)


def claim_limit() -> int:
    """What one claim asks for when a worker has its batch free: the worker's default
    batch_size (its concurrency is larger in this scenario)."""
    from queueing.worker import Worker

    return int(inspect.signature(Worker).parameters["batch_size"].default)


async def explain_claim(conninfo: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of one claim, as the worker calls it (the ``claim_jobs``
    block), with the plans of the statements inside the claim function (auto_explain);
    rolled back, so nothing is claimed."""
    from queueing.sql import query as queueing_query

    plans: list[str] = []
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        try:
            cur = await conn.execute(queueing_query("register_worker"), {"host": "bench", "pid": 0})
            row = await cur.fetchone()
            assert row is not None
            conn.add_notice_handler(lambda d: plans.append(d.message_primary or ""))
            await conn.execute(query("explain_setup"))
            await conn.execute(query("explain_settings"))
            params = {
                "queues": ["default"],
                "worker_id": row[0],
                "limit": claim_limit(),
                "idle": False,
            }
            cur = await conn.execute(
                psycopg.sql.SQL("EXPLAIN (ANALYZE, BUFFERS) {}").format(claim_query()), params
            )
            top = [r[0] for r in await cur.fetchall()]
        finally:
            await conn.rollback()
    return "\n".join(
        [
            f"-- claim: {claim_function()} (limit {claim_limit()}, idle false)",
            *top,
            "-- statements run inside it (auto_explain), each text once:",
            *_distinct(plans),
        ]
    )


def _distinct(plans: list[str]) -> list[str]:
    """auto_explain's plans, one per statement text: the per-row trigger and foreign-key
    statements run once per claimed row; the first plan is kept, with how often it ran."""
    seen: dict[str, list[str]] = {}
    for plan in plans:
        text = plan.partition("Query Text: ")[2].split("\n", 1)[0]
        if text.startswith("EXPLAIN"):
            continue  # the statement shown above
        seen.setdefault(text, []).append(plan)
    out = []
    for same in seen.values():
        runs = f" (ran {len(same)} times; the first shown)" if len(same) > 1 else ""
        out.append(same[0].replace("plan:", "plan" + runs + ":", 1))
    return out


@contextlib.asynccontextmanager
async def empty_database(db: SystemDb) -> AsyncIterator[SystemDb]:
    """A second database with queueing's schema on ``db``'s server (created and dropped
    through ``db``'s control connection): the empty table, while ``db`` keeps a case's
    fill between rounds. As bench/context.py's ``system_database`` otherwise."""
    dbname = f"bench_queueing_empty_{os.getpid()}"
    ident = sql.Identifier(dbname)
    await db.ctl.execute(release_query("drop_database").format(name=ident))
    await db.ctl.execute(release_query("create_database").format(name=ident))
    conninfo = make_conninfo(db.conninfo, dbname=dbname)
    try:
        client = make_system("queueing", conninfo)
        ctl = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        try:
            await client.open()
            await client.install()
            yield SystemDb("queueing", conninfo, client, ctl, Tables("queueing", ctl))
        finally:
            await client.close()
            await ctl.close()
    finally:
        await db.ctl.execute(release_query("drop_database").format(name=ident))


async def _fill_case(db: SystemDb, block: str | None, rows: int) -> None:
    await db.tables.clear()
    if block is not None:
        await db.ctl.execute(query(block), {"n": rows})
    await db.ctl.execute(query("vacuum_analyze_jobs"))


async def _delete_measured(db: SystemDb) -> None:
    """Back to the fill alone: the jobs and workers of the last round deleted."""
    for statement in _DELETE_MEASURED:
        await db.ctl.execute(statement)


async def _measure(
    ctx: Context, db: SystemDb, case: str, rows: int, *, explain: bool
) -> tuple[dict[str, float], str | None]:
    """One round's figures on ``db`` as it is (its fill alone): bulk enqueue, the claim's
    plan (if ``explain``), drain, single enqueue; then the measured jobs deleted again."""
    n, concurrency = ctx.sizes.large_drain_n, ctx.sizes.large_concurrency
    bulk = await timed_bulk(db, n)
    await db.tables.analyze()
    plan = await explain_claim(db.conninfo) if explain else None
    run = await drain(db, n, 1, concurrency, queues="default", prefilled=True)
    single = await timed_single(db, ctx.sizes.large_single_n)
    await _delete_measured(db)
    print(
        f"  large table, {case} ({rows} rows): drain {run.rate:,.0f}/s, "
        f"bulk {bulk:,.0f}/s, single {single:,.0f}/s"
    )
    return {"drain": run.rate, "bulk": bulk, "single": single}, plan


def case_figures(rows: int, pairs: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    """A case's figures from its rounds' (``empty``, ``with``) pairs: each figure the median
    of the rounds', each ratio the median of the rounds' own ratios (not the ratio of the
    medians); the rounds, with their ratios, under ``rounds``."""
    rounds: list[dict[str, Any]] = [
        {**pair, **{f"{k}_ratio": pair["with"][k] / pair["empty"][k] for k in MEASURED}}
        for pair in pairs
    ]
    figures: dict[str, Any] = {"rows": rows}
    for key in MEASURED:
        figures[key] = statistics.median(r["with"][key] for r in rounds)
        figures[f"empty_{key}"] = statistics.median(r["empty"][key] for r in rounds)
        figures[f"{key}_ratio"] = statistics.median(r[f"{key}_ratio"] for r in rounds)
    figures["rounds"] = rounds
    return figures


async def _case(
    ctx: Context, db: SystemDb, empty: SystemDb, case: str, block: str, rows: int
) -> dict[str, Any]:
    """One case: filled once, then ``large_rounds`` rounds of (empty table, case)."""
    await _fill_case(db, block, rows)
    pairs: list[dict[str, dict[str, float]]] = []
    plans: dict[str, str | None] = {}
    for round_ in range(ctx.sizes.large_rounds):
        pair: dict[str, dict[str, float]] = {}
        for side, on, name, size in (("empty", empty, "empty", 0), ("with", db, case, rows)):
            pair[side], plan = await _measure(ctx, on, name, size, explain=round_ == 0)
            if plan is not None:
                plans[side] = plan
        pairs.append(pair)
    figures = case_figures(rows, pairs)
    figures |= {"explain": plans["with"], "empty_explain": plans["empty"]}
    print(
        f"  large table, {case}: drain {figures['drain_ratio']:.2f}x, bulk "
        f"{figures['bulk_ratio']:.2f}x, single {figures['single_ratio']:.2f}x of the empty "
        f"table (medians of {len(pairs)} rounds' ratios)"
    )
    return figures


async def scenario_large_table(ctx: Context) -> None:
    """Each case filled once and measured ``large_rounds`` times, each time right after an
    empty-table run of its own (a second database); its ratios: the medians of the rounds'."""
    db = ctx.dbs["queueing"]
    out: dict[str, Any] = {
        "concurrency": ctx.sizes.large_concurrency,
        "jobs": ctx.sizes.large_drain_n,
        "rounds": ctx.sizes.large_rounds,
        "cases": {},
    }
    try:
        async with empty_database(db) as empty:
            # Not counted: a new database's first use (the client's connections, the
            # server's caches of it) is slower than the runs that follow.
            await _measure(ctx, empty, "empty (warm-up, not counted)", 0, explain=False)
            for case, block, attr in CASES[1:]:
                assert block is not None and attr is not None
                out["cases"][case] = await _case(
                    ctx, db, empty, case, block, getattr(ctx.sizes, attr)
                )
    finally:
        await db.tables.clear()
    ctx.results["large_table"] = out
