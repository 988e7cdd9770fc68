"""The scenarios measured for every system: drain (swept), enqueue, pick-up; and for queueing
alone: many claimers, worker memory, the metrics A/B. (Large tables: bench/large_table.py;
sustained load: bench/sustained.py.)

Each scenario stores plain numbers under its name in ``ctx.results`` (the ``--json`` file,
rendered by bench/report.py) and prints them as it goes.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from bench.context import BULK_BATCH, Context, SystemDb, default_setting
from bench.procs import Fleet, FleetRun, rss_kib
from bench.queueing_system import METRICS_SYSTEM

DRAIN_SYSTEMS = ("queueing", "pgqueuer", "procrastinate")


async def fill(db: SystemDb, n: int) -> None:
    """``n`` no-op jobs through the system's own bulk enqueue, then ANALYZE (as autovacuum
    would on a live queue)."""
    for start in range(0, n, BULK_BATCH):
        await db.client.enqueue_batch(min(BULK_BATCH, n - start))
    await db.tables.analyze()


async def drain(
    db: SystemDb,
    n: int,
    procs: int,
    setting: int,
    *,
    queues: str | None = None,
    prefilled: bool = False,
    system: str | None = None,
) -> FleetRun:
    """``n`` queued no-op jobs drained by ``procs`` worker processes released together."""
    if not prefilled:
        await db.tables.clear()
        await fill(db, n)
    fleet = Fleet(system or db.name, db.conninfo, setting, procs, queues=queues)
    await fleet.start()
    try:
        await fleet.go()
        await fleet.wait_handled(n, max(120.0, n / 50))
    finally:
        run = await fleet.stop()
    await db.tables.wait_finished(30.0)
    if run.handled != n:
        raise RuntimeError(f"{db.name}: {run.handled} jobs handled, {n} enqueued")
    print(f"  {db.name} drain, {procs} proc, setting {setting}: {n} jobs, {run.rate:,.0f}/s")
    return run


def _drain_jobs(ctx: Context, system: str) -> int:
    return ctx.sizes.procrastinate_drain_n if system == "procrastinate" else ctx.sizes.drain_n


def _sweep_settings(ctx: Context, system: str) -> list[int]:
    sweep = {
        "queueing": ctx.sizes.queueing_sweep,
        "pgqueuer": ctx.sizes.pgqueuer_sweep,
        "procrastinate": (ctx.sizes.procrastinate_concurrency,),
    }[system]
    return sorted({default_setting(system), *sweep})


async def scenario_drain(ctx: Context) -> None:
    """Drain with 1 and 2 processes, every setting of the system's sweep, ``drain_rounds``
    times; a point's figure is the median of its rounds, and each system's best point is
    its figure. The systems take turns within a round (this machine's speed drifts by
    more than the differences measured: a ratio compares runs minutes apart otherwise)."""
    rates: dict[tuple[str, int, int], list[float]] = {}
    for name, db in ctx.dbs.items():
        print(f"[drain] {db.client.settings_text(default_setting(name))}")
    for round_ in range(ctx.sizes.drain_rounds):
        for procs in (1, 2):
            for name, db in ctx.dbs.items():
                n = (
                    ctx.sizes.procrastinate_drain_n
                    if name == "procrastinate"
                    else ctx.sizes.drain_n
                )
                for setting in _sweep_settings(ctx, name):
                    run = await drain(db, n, procs, setting)
                    rates.setdefault((name, procs, setting), []).append(run.rate)
        print(f"  drain round {round_ + 1} of {ctx.sizes.drain_rounds} done")
    out: dict[str, Any] = {}
    for name, db in ctx.dbs.items():
        n = _drain_jobs(ctx, name)
        rows: list[dict[str, Any]] = []
        best: dict[str, dict[str, Any]] = {}
        for procs in (1, 2):
            for setting in _sweep_settings(ctx, name):
                runs = rates[(name, procs, setting)]
                row = {
                    "procs": procs,
                    "setting": setting,
                    "rate": statistics.median(runs),
                    "rates": runs,
                    "jobs": n,
                    "default": setting == default_setting(name),
                }
                rows.append(row)
                if row["rate"] > best.get(str(procs), {}).get("rate", -1.0):
                    best[str(procs)] = row
        out[name] = {
            "sweep": rows,
            "best": best,
            "rounds": ctx.sizes.drain_rounds,
            "default_setting": default_setting(name),
            "settings_text": db.client.settings_text(best["1"]["setting"]),
        }
    ctx.results["drain"] = out


async def scenario_enqueue(ctx: Context) -> None:
    """Bulk enqueue (batches of 5,000, one client) and single enqueue (one call and one
    commit each, sequential, one client), ``enqueue_rounds`` times with the systems taking
    turns; the medians."""
    bulk: dict[str, list[float]] = {}
    single: dict[str, list[float]] = {}
    for _ in range(ctx.sizes.enqueue_rounds):
        for name, db in ctx.dbs.items():
            await db.tables.clear()
            bulk.setdefault(name, []).append(await timed_bulk(db, ctx.sizes.bulk_n))
            await db.tables.clear()
            single.setdefault(name, []).append(await timed_single(db, ctx.sizes.single_n))
            await db.tables.clear()
    out: dict[str, Any] = {}
    for name in ctx.dbs:
        out[name] = {
            "bulk": statistics.median(bulk[name]),
            "single": statistics.median(single[name]),
            "bulk_rates": bulk[name],
            "single_rates": single[name],
            "rounds": ctx.sizes.enqueue_rounds,
            "bulk_jobs": ctx.sizes.bulk_n,
            "single_jobs": ctx.sizes.single_n,
            "bulk_batch": BULK_BATCH,
        }
        print(
            f"  {name} enqueue: bulk {out[name]['bulk']:,.0f}/s, "
            f"single {out[name]['single']:,.0f}/s (medians of {ctx.sizes.enqueue_rounds})"
        )
    ctx.results["enqueue"] = out


async def timed_bulk(db: SystemDb, n: int) -> float:
    started = time.perf_counter()
    for start in range(0, n, BULK_BATCH):
        await db.client.enqueue_batch(min(BULK_BATCH, n - start))
    return n / (time.perf_counter() - started)


async def timed_single(db: SystemDb, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await db.client.enqueue_one()
    return n / (time.perf_counter() - started)


def read_stamps(files: list[Path]) -> list[tuple[float, float]]:
    """(time before the enqueue call, handler start) pairs from the workers' stamp files;
    the warm-up job (enqueued with time 0) left out."""
    pairs = []
    for path in files:
        for line in path.read_text().splitlines():
            enqueued, _, started = line.partition(" ")
            if started and float(enqueued) > 0:
                pairs.append((float(enqueued), float(started)))
    return pairs


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {"p50": cuts[49], "p99": cuts[98], "max": max(samples_ms), "n": len(samples_ms)}


async def _paced_enqueues(db: SystemDb, rate: int, n: int, clients: int) -> float:
    """``n`` stamp jobs, one call each, started at ``rate`` per second by up to ``clients``
    concurrent callers; each carries the time taken right before its call. Returns the
    rate at which the calls were actually made."""
    slots = asyncio.Semaphore(clients)
    calls: list[float] = []

    async def one() -> None:
        async with slots:
            t = time.time()
            calls.append(t)
            await db.client.enqueue_stamps(t, 1)

    tasks = []
    started = time.perf_counter()
    for i in range(n):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return (n - 1) / (max(calls) - min(calls)) if n > 1 else float("nan")


async def pickup(
    db: SystemDb, ctx: Context, rate: int, n: int, setting: int, round_: int = 0
) -> dict[str, Any]:
    """One idle, listening worker; ``n`` jobs enqueued one call each at ``rate`` jobs/s.
    Pick-up = handler start - time right before the enqueue call."""
    from bench.systems import ENQUEUE_CLIENTS

    await db.tables.clear()
    stamp_dir = ctx.tmp / f"pickup_{db.name}_{rate}_{round_}"
    stamp_dir.mkdir(exist_ok=True)
    fleet = Fleet(db.name, db.conninfo, setting, 1, stamp_dir=stamp_dir)
    await fleet.start()
    try:
        await fleet.go()
        # Warm-up: once this job has run, the worker is idle and waiting on LISTEN.
        await db.client.enqueue_stamps(0.0, 1)
        await fleet.wait_handled(1, 60.0)
        await asyncio.sleep(0.5)
        achieved = await _paced_enqueues(db, rate, n, ENQUEUE_CLIENTS if rate > 50 else 1)
        await fleet.wait_handled(n + 1, 60.0 + n / 50)
    finally:
        await fleet.stop()
    pairs = read_stamps(fleet.stamp_files())
    figures = percentiles([(s - e) * 1000 for e, s in pairs])
    figures.update(rate=rate, achieved_rate=achieved, setting=setting)
    print(
        f"  {db.name} pick-up at {rate}/s (achieved {achieved:,.0f}/s): "
        f"p50 {figures['p50']:.2f} ms, p99 {figures['p99']:.2f} ms, max {figures['max']:.1f} ms"
    )
    return figures


def pickup_medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One rate's figure from its rounds: the medians of p50 and of p99, the largest max,
    the slowest achieved enqueue rate (the report flags a rate any round fell short of),
    the samples of all rounds, and each round's own figures under ``rounds``."""
    first = rounds[0]
    return {
        "p50": statistics.median(r["p50"] for r in rounds),
        "p99": statistics.median(r["p99"] for r in rounds),
        "max": max(r["max"] for r in rounds),
        "n": sum(r["n"] for r in rounds),
        "rate": first["rate"],
        "achieved_rate": min(r["achieved_rate"] for r in rounds),
        "setting": first["setting"],
        "rounds": rounds,
    }


async def scenario_pickup(ctx: Context) -> None:
    """Pick-up at each rate, ``pickup_rounds`` times with the systems taking turns within a
    round (as the drain's); each rate's p50 and p99 are the medians of its rounds."""
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for round_ in range(ctx.sizes.pickup_rounds):
        for rate, n in ctx.sizes.pickup:
            for name, db in ctx.dbs.items():
                if name == "procrastinate" and rate > 100:
                    # It drains ~350 jobs/s: at 500/s its queue grows and the figure would
                    # be the backlog's age, not a pick-up.
                    continue
                figures = await pickup(db, ctx, rate, n, ctx.best_setting(name), round_)
                runs.setdefault((name, rate), []).append(figures)
        print(f"  pick-up round {round_ + 1} of {ctx.sizes.pickup_rounds} done")
    out: dict[str, Any] = {}
    for name in ctx.dbs:
        out[name] = {}
        for rate, _ in ctx.sizes.pickup:
            if (name, rate) not in runs:
                continue
            figures = pickup_medians(runs[(name, rate)])
            out[name][str(rate)] = figures
            print(
                f"  {name} pick-up at {rate}/s: p50 {figures['p50']:.2f} ms, "
                f"p99 {figures['p99']:.2f} ms (medians of {len(runs[(name, rate)])})"
            )
    ctx.results["pickup"] = out


async def _backends(db: SystemDb) -> int:
    from bench.sql_blocks import query

    cur = await db.ctl.execute(query("backends"))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def scenario_claimers(ctx: Context) -> None:
    """queueing: 8 worker processes (best 1-process concurrency), and 32 at concurrency 10
    beside 2 at concurrency 10 (claims as small as the fleet's),
    against one database; total throughput and the connections each process holds."""
    db = ctx.dbs["queueing"]
    n = ctx.sizes.claimers_n
    out: list[dict[str, Any]] = []
    for procs, setting in ctx.sizes.claimers:
        chosen = setting if setting is not None else ctx.best_setting("queueing")
        await db.tables.clear()
        await fill(db, n)
        before = await _backends(db)
        fleet = Fleet("queueing", db.conninfo, chosen, procs)
        await fleet.start()
        held = 0
        try:
            await fleet.go()
            waiting = asyncio.create_task(fleet.wait_handled(n, max(180.0, n / 50)))
            while not waiting.done():  # the connections the workers hold while they run
                held = max(held, await _backends(db) - before)
                await asyncio.wait({waiting}, timeout=0.2)
            waiting.result()
        finally:
            run = await fleet.stop()
        await db.tables.wait_finished(30.0)
        out.append(
            {
                "procs": procs,
                "setting": chosen,
                "rate": run.rate,
                "jobs": n,
                "connections": held,
                "connections_per_process": held / procs,
            }
        )
        print(
            f"  claimers: {procs} procs x concurrency {chosen}: {run.rate:,.0f}/s, "
            f"{held} connections at most while running ({held / procs:.1f} per process)"
        )
    ctx.results["claimers"] = out


async def scenario_rss(ctx: Context) -> None:
    """queueing: one worker at concurrency 1,000 draining 100,000 queued jobs; its resident
    memory when ready, its peak, and after the drain."""
    db = ctx.dbs["queueing"]
    n, concurrency = ctx.sizes.rss_jobs, ctx.sizes.rss_concurrency
    await db.tables.clear()
    await fill(db, n)
    fleet = Fleet("queueing", db.conninfo, concurrency, 1)
    await fleet.start()
    pid = fleet.workers[0].pid
    ready = rss_kib(pid)
    try:
        await fleet.go()
        await fleet.wait_handled(n, max(180.0, n / 50))
        await asyncio.sleep(1.0)  # the last finishes are written
        after, peak = rss_kib(pid), rss_kib(pid, "VmHWM")
    finally:
        run = await fleet.stop()
    await db.tables.wait_finished(30.0)
    ctx.results["rss"] = {
        "concurrency": concurrency,
        "jobs": n,
        "ready_kib": ready,
        "peak_kib": peak,
        "after_kib": after,
        "rate": run.rate,
    }
    print(
        f"  rss: concurrency {concurrency}, {n} jobs: ready {ready / 1024:.1f} MiB, "
        f"peak {peak / 1024:.1f} MiB, after {after / 1024:.1f} MiB"
    )


async def scenario_metrics_ab(ctx: Context) -> None:
    """What the worker's metrics cost: 1-process drains with metrics off and on, alternated
    (off-on, on-off, ...) so that a drift of the machine's load weighs on both alike."""
    db = ctx.dbs["queueing"]
    # The earlier A/Bs ran at concurrency 100; the best of this run's sweep if there was one.
    setting = ctx.best_setting("queueing") if "drain" in ctx.results else 100
    figures: dict[str, list[float]] = {"queueing": [], METRICS_SYSTEM: []}
    for round_ in range(ctx.sizes.metrics_rounds):
        order = ("queueing", METRICS_SYSTEM) if round_ % 2 == 0 else (METRICS_SYSTEM, "queueing")
        for system in order:
            run = await drain(db, ctx.sizes.drain_n, 1, setting, system=system)
            figures[system].append(run.rate)
    off, on = (statistics.median(figures[k]) for k in ("queueing", METRICS_SYSTEM))
    ctx.results["metrics_ab"] = {
        "off": figures["queueing"],
        "on": figures[METRICS_SYSTEM],
        "cost_percent": 100 * (off - on) / off,
        "setting": setting,
    }
    print(
        f"  metrics cost: {100 * (off - on) / off:+.1f} % of the median drain (off {off:,.0f}"
        f"/s, on {on:,.0f}/s)"
    )
