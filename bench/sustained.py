"""Sustained load (``--sustained MINUTES``): queueing's workers under enqueues that arrive
continuously at ~80 % of its best drain rate.

Two worker processes at the best concurrency of this run's drain (or the default). A
client enqueues a batch of stamp jobs every 100 ms, each carrying the time before its
call. Per minute: jobs whose handler started in that minute (throughput), their pick-up
p50/p99, and the workers' resident memory; at the end, the job tables' and indexes' sizes,
dead rows and autovacuum runs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.context import Context, SystemDb
from bench.procs import Fleet, rss_kib
from bench.scenarios import percentiles, read_stamps, scenario_drain
from bench.sql_blocks import query

TICK_S = 0.1
SHARE_OF_BEST = 0.8


async def _rate(ctx: Context, given: float | None) -> float:
    if given:
        return given
    if "drain" not in ctx.results:
        print("  sustained: no drain in this run; sweeping queueing's drain first")
        await scenario_drain(ctx)
    best = ctx.results["drain"]["queueing"]["best"]["2"]
    return SHARE_OF_BEST * float(best["rate"])


async def _enqueue_for(db: SystemDb, rate: float, seconds: float) -> int:
    """Enqueue at ``rate`` jobs/s for ``seconds``, a batch each tick; returns jobs enqueued."""
    sent = 0
    started = time.perf_counter()
    tick = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        due = int(rate * elapsed) - sent
        if due > 0:
            await db.client.enqueue_stamps(time.time(), due)
            sent += due
        tick += 1
        delay = started + tick * TICK_S - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    return sent


async def _sample_rss(fleet: Fleet, minute_s: float, minutes: int, into: list[list[int]]) -> None:
    for _ in range(minutes):
        await asyncio.sleep(minute_s)
        into.append([rss_kib(w.pid) for w in fleet.workers])


async def _sizes(db: SystemDb) -> dict[str, Any]:
    tables = await (await db.ctl.execute(query("table_sizes"))).fetchall()
    indexes = await (await db.ctl.execute(query("index_sizes"))).fetchall()
    names = (
        "table",
        "table_bytes",
        "index_bytes",
        "total_bytes",
        "live_rows",
        "dead_rows",
        "autovacuum_count",
        "vacuum_count",
        "last_autovacuum",
    )
    return {
        "tables": [dict(zip(names, row, strict=True)) for row in tables],
        "indexes": {name: size for name, size in indexes},
    }


def _per_minute(
    pairs: list[tuple[float, float]], start: float, minute_s: float, minutes: int
) -> list[dict[str, Any]]:
    buckets: list[list[float]] = [[] for _ in range(minutes)]
    for enqueued, started in pairs:
        index = int((started - start) // minute_s)
        if 0 <= index < minutes:
            buckets[index].append((started - enqueued) * 1000)
    rows = []
    for i, samples in enumerate(buckets):
        row: dict[str, Any] = {
            "minute": i + 1,
            "jobs": len(samples),
            "rate": len(samples) / minute_s,
        }
        if len(samples) > 1:
            row.update(percentiles(samples))
        rows.append(row)
    return rows


async def scenario_sustained(ctx: Context, minutes: int, rate: float | None) -> None:
    db = ctx.dbs["queueing"]
    target = await _rate(ctx, rate)
    setting = ctx.best_setting("queueing", 2)
    await db.tables.clear()
    stamp_dir = ctx.tmp / "sustained"
    stamp_dir.mkdir(exist_ok=True)
    fleet = Fleet("queueing", db.conninfo, setting, 2, stamp_dir=stamp_dir)
    await fleet.start()
    rss_ready = [rss_kib(w.pid) for w in fleet.workers]
    rss: list[list[int]] = []
    print(
        f"  sustained: {minutes} x {ctx.sizes.minute_s:.0f} s at {target:,.0f} jobs/s, "
        f"2 processes x concurrency {setting}"
    )
    try:
        await fleet.go()
        start = time.time()
        seconds = minutes * ctx.sizes.minute_s
        sampler = asyncio.create_task(_sample_rss(fleet, ctx.sizes.minute_s, minutes, rss))
        sent = await _enqueue_for(db, target, seconds)
        await sampler
        try:
            await fleet.wait_handled(sent, 120.0)
        except RuntimeError as exc:  # the workers fell behind: say by how much, keep going
            print(f"  sustained: {exc}")
        left = sent - fleet.handled
    finally:
        await fleet.stop()
    rows = _per_minute(read_stamps(fleet.stamp_files()), start, ctx.sizes.minute_s, minutes)
    for row, sample in zip(rows, rss, strict=False):
        row["rss_kib"] = sample
        print(
            f"    minute {row['minute']}: {row['rate']:,.0f}/s, p50 "
            f"{row.get('p50', float('nan')):.1f} ms, p99 {row.get('p99', float('nan')):.1f} ms,"
            f" rss {[round(k / 1024, 1) for k in sample]} MiB"
        )
    ctx.results["sustained"] = {
        "minutes": minutes,
        "minute_s": ctx.sizes.minute_s,
        "target_rate": target,
        "setting": setting,
        "processes": 2,
        "enqueued": sent,
        "unhandled_after_wait": left,
        "per_minute": rows,
        "rss_ready_kib": rss_ready,
        "sizes_end": await _sizes(db),
    }
