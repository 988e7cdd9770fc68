"""What the job-change hints cost a fleet: drains with ``queueing_notify_jobs_changed_v2``
(the NOTIFY at the end of every statement that changes jobs, for ``Queue.wait`` and the
dashboard) on and off, alternated, at 2, 8 and 32 worker processes.

PostgreSQL 15 wakes every session of the database that LISTENs on any channel at each
commit that notified: each worker's listener backend is woken by every other worker's
claims and finishes, although it listens only for new jobs. The B side is not a
product setting (waits and the dashboard rely on these hints): it measures what they
cost, for docs/benchmarks.md. ``python -m bench hints-ab``.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.context import Context
from bench.scenarios import drain
from bench.sql_blocks import query

#: (worker processes, concurrency): the 2-process drain's best setting (else 200), a fleet
#: of 8 at the default, and the issue's 32 small workers.
FLEETS = ((2, None), (8, 100), (32, 10))


async def scenario_hints_ab(ctx: Context) -> None:
    """Each fleet drains ``claimers_n`` jobs with the hints on and off, ``metrics_rounds``
    times, the order alternating (on-off, off-on, ...)."""
    db = ctx.dbs["queueing"]
    out: list[dict[str, Any]] = []
    for procs, setting in FLEETS:
        chosen = setting or (ctx.best_setting("queueing", 2) if "drain" in ctx.results else 200)
        rates: dict[str, list[float]] = {"on": [], "off": []}
        for round_ in range(ctx.sizes.metrics_rounds):
            for side in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                await db.ctl.execute(query(f"queueing_change_hints_{side}"))
                try:
                    run = await drain(db, ctx.sizes.claimers_n, procs, chosen)
                finally:
                    await db.ctl.execute(query("queueing_change_hints_on"))
                rates[side].append(run.rate)
        on, off = (statistics.median(rates[k]) for k in ("on", "off"))
        out.append({"procs": procs, "setting": chosen, "on": rates["on"], "off": rates["off"]})
        print(
            f"  hints A/B, {procs} procs x concurrency {chosen}: on {on:,.0f}/s, "
            f"off {off:,.0f}/s (off/on {off / on:.2f}x)",
            flush=True,
        )
    ctx.results["hints_ab"] = out
