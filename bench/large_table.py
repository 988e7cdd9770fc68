"""queueing when the job table holds more than the jobs being measured.

Cases: the table also holds (a) 1,000,000 finished jobs with their attempt rows, (b)
100,000 jobs due tomorrow at priority 10 (the measured jobs are priority 0), (c) 100,000
pending jobs in a queue no running worker serves. Each case and the empty table are
measured the same way, in the same run: fill (bench/fill.sql) and VACUUM ANALYZE; bulk
enqueue of the jobs to drain (timed); EXPLAIN (ANALYZE, BUFFERS) of one claim; drain by one
worker process serving queue ``default`` only; single enqueue (timed). Drain and enqueue
are reported as ratios to the empty table.
"""

from __future__ import annotations

import inspect
from typing import Any

import psycopg

from bench.context import Context, SystemDb
from bench.scenarios import drain, timed_bulk, timed_single
from bench.sql_blocks import claim_function, claim_query, query

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


async def _fill_case(db: SystemDb, block: str | None, rows: int) -> None:
    await db.tables.clear()
    if block is not None:
        await db.ctl.execute(query(block), {"n": rows})
    await db.ctl.execute(query("vacuum_analyze_jobs"))


async def _measure(
    ctx: Context, db: SystemDb, case: str, block: str | None, rows: int
) -> dict[str, Any]:
    n, concurrency = ctx.sizes.large_drain_n, ctx.sizes.large_concurrency
    await _fill_case(db, block, rows)
    bulk = await timed_bulk(db, n)
    await db.tables.analyze()
    plan = await explain_claim(db.conninfo)
    run = await drain(db, n, 1, concurrency, queues="default", prefilled=True)
    single = await timed_single(db, ctx.sizes.large_single_n)
    print(
        f"  large table, {case} ({rows} rows): drain {run.rate:,.0f}/s, "
        f"bulk {bulk:,.0f}/s, single {single:,.0f}/s"
    )
    return {"rows": rows, "drain": run.rate, "bulk": bulk, "single": single, "explain": plan}


async def scenario_large_table(ctx: Context) -> None:
    """Each case right after an empty-table run of its own (the machine's load drifts over
    a run; a pair measured back to back shares it), and its ratios to that run."""
    db = ctx.dbs["queueing"]
    out: dict[str, Any] = {
        "concurrency": ctx.sizes.large_concurrency,
        "jobs": ctx.sizes.large_drain_n,
        "cases": {},
    }
    for case, block, attr in CASES[1:]:
        empty = await _measure(ctx, db, "empty", None, 0)
        figures = await _measure(ctx, db, case, block, getattr(ctx.sizes, attr))
        for key in ("drain", "bulk", "single"):
            figures[f"empty_{key}"] = empty[key]
            figures[f"{key}_ratio"] = figures[key] / empty[key]
        figures["empty_explain"] = empty["explain"]
        out["cases"][case] = figures
    await db.tables.clear()
    ctx.results["large_table"] = out
