"""What job-change hints for every change cost a fleet (migration 0015): drains with the
hints on demand (the v3 trigger: sent only while a wait or a dashboard is registered,
none here) and with every change hinted (the v2 trigger, as release 14 had and as a
database upgraded from schema 14 keeps), alternated, at 2, 8 and 32 worker processes.

PostgreSQL 15 wakes every session of the database that LISTENs on any channel at each
commit that notified: with every change hinted, each worker's listener backend is woken
by every other worker's claims and finishes, although it listens only for new jobs.
``python -m bench hints-ab``.
"""

from __future__ import annotations

import statistics
from typing import Any

import psycopg
from psycopg import sql

from bench.context import Context
from bench.scenarios import drain
from bench.sql_blocks import query

#: (worker processes, concurrency): the 2-process drain's best setting (else 200), a fleet
#: of 8 at the default, and the issue's 32 small workers.
FLEETS = ((2, None), (8, 100), (32, 10))
#: Every change hinted (v2), hints on demand (v3, the default), and no trigger at all
#: (what the trigger itself costs, hints or not; not a product setting).
SIDES = ("always", "on_demand", "none")


def set_change_hints(side: str) -> list[sql.SQL]:
    """The statements that give the jobs table the job-change trigger of ``side`` (one of
    SIDES), whichever it has now."""
    drop = query("queueing_change_hints_none")
    return [drop] if side == "none" else [drop, query(f"queueing_change_hints_{side}")]


async def _set(ctl: psycopg.AsyncConnection[Any], side: str) -> None:
    for statement in set_change_hints(side):
        await ctl.execute(statement)


async def scenario_hints_ab(ctx: Context) -> None:
    """Each fleet drains ``claimers_n`` jobs on each side of SIDES, ``metrics_rounds``
    times, the order rotating."""
    db = ctx.dbs["queueing"]
    out: list[dict[str, Any]] = []
    for procs, setting in FLEETS:
        chosen = setting or (ctx.best_setting("queueing", 2) if "drain" in ctx.results else 200)
        rates: dict[str, list[float]] = {side: [] for side in SIDES}
        for round_ in range(ctx.sizes.metrics_rounds):
            # Each side takes each place in the order once every 3 rounds: in a round the
            # first drain runs on a machine the previous fleet just left.
            for side in SIDES[round_ % 3 :] + SIDES[: round_ % 3]:
                await _set(db.ctl, side)
                try:
                    run = await drain(db, ctx.sizes.claimers_n, procs, chosen)
                finally:
                    await _set(db.ctl, "on_demand")
                rates[side].append(run.rate)
        always, on_demand, none = (statistics.median(rates[k]) for k in SIDES)
        out.append({"procs": procs, "setting": chosen, **rates})
        print(
            f"  hints A/B, {procs} procs x concurrency {chosen}: every change hinted "
            f"{always:,.0f}/s, on demand {on_demand:,.0f}/s ({on_demand / always:.2f}x), "
            f"no trigger {none:,.0f}/s ({none / always:.2f}x)",
            flush=True,
        )
    ctx.results["hints_ab"] = out
