"""``python -m bench.profile``: where a 2-process queueing drain spends its time.

Fills ``--jobs`` no-op jobs, releases ``--processes`` worker processes (2), and during the first
``--seconds`` of the drain, at once:

- py-spy records one worker process (``--idle``: the samples where its event loop waits are
  kept, so their share says how much of the time the process had nothing to do); the
  collapsed stacks are summed into the top frames by own time and by total time, and the
  speedscope file is written beside the text output;
- pg_stat_activity is sampled every 50 ms: each client backend's state, wait event and
  statement, counted;
- CPU time (utime + stime from /proc) of the worker processes and of every PostgreSQL
  backend serving the database, so that the CPU split between Python and the server shows;
  and the machine's busy cores (``/proc/stat``: all but idle and iowait), which bounds
  what more processes can add (one process that keeps 1.6 of 2 cores busy leaves 1.25x
  for a second one).

pg_stat_statements needs ``shared_preload_libraries`` (a server restart), so it is used
only when it is loaded; otherwise the statement samples above stand in for it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.context import QUICK, Context, Sizes, add_admin_url, system_database
from bench.procs import Fleet, cpu_seconds
from bench.scenarios import fill
from bench.sql_blocks import query

SAMPLE_EVERY_S = 0.05


async def _sample_activity(
    conninfo: str, seconds: float
) -> tuple[collections.Counter[tuple[str, ...]], set[int], int]:
    counts: collections.Counter[tuple[str, ...]] = collections.Counter()
    backends: set[int] = set()
    samples = 0
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            cur = await conn.execute(query("activity_sample"))
            for pid, state, wtype, wevent, text in await cur.fetchall():
                backends.add(pid)
                one_line = " ".join((text or "").split())[:90]
                counts[(state or "?", f"{wtype or 'CPU'}:{wevent or '-'}", one_line)] += 1
            cur = await conn.execute(query("lock_waits"))
            for locktype, on, objid, mode in await cur.fetchall():
                counts[("lock wait", f"{locktype} on {on} objid {objid}", mode)] += 1
            samples += 1
            await asyncio.sleep(SAMPLE_EVERY_S)
    return counts, backends, samples


async def _py_spy(pid: int, seconds: float, out: Path) -> Path:
    """py-spy record of ``pid`` as collapsed stacks (its ``raw`` format)."""
    raw = out / "worker.collapsed"
    proc = await asyncio.create_subprocess_exec(
        "py-spy", "record", "--idle", "-p", str(pid), "-d", str(int(seconds)),
        "-r", "200", "-f", "raw", "-o", str(raw),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await proc.wait()
    return raw


async def _scalar(conn: psycopg.AsyncConnection[Any], name: str) -> Any:
    cur = await conn.execute(query(name))
    row = await cur.fetchone()
    return row[0] if row else None


async def _pgss_start(conn: psycopg.AsyncConnection[Any]) -> bool:
    if not await _scalar(conn, "pgss_loaded"):
        return False
    await conn.execute(query("pgss_create"))
    await conn.execute(query("pgss_reset"))
    return True


async def _pgss_top(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    cur = await conn.execute(query("pgss_top"))
    return [
        f"  {calls:8d} calls {total:10.1f} ms total {mean:8.3f} ms mean {rows:9d} rows  {text}"
        for calls, total, mean, rows, text in await cur.fetchall()
    ]


def top_frames(collapsed: Path, n: int = 25) -> str:
    """Top frames by own and by total samples from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        # "function (file:line)" -> "function (file)": a function's lines summed
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        if not any("run_forever" in f for f in frames):
            continue  # another thread: the heartbeat, the watchdog, the stdin reader
        samples += k
        own[frames[-1]] += k
        for frame in set(frames):
            total[frame] += k
    out = [f"{samples} samples of the event loop's thread (200/s, idle included)", "", "own time:"]
    out += [f"  {100 * c / samples:5.1f} %  {f}" for f, c in own.most_common(n)]
    out += ["", "total time (on the stack), queueing's and psycopg's functions:"]
    ours = [(f, c) for f, c in total.most_common() if "queueing/" in f or "psycopg/" in f]
    out += [f"  {100 * c / samples:5.1f} %  {f}" for f, c in ours[:n]]
    return "\n".join(out)


def machine_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every core since boot, from /proc/stat's ``cpu`` line;
    idle and iowait are the not-busy ones."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


async def _profile(
    ctx: Context,
    jobs: int,
    concurrency: int,
    processes: int,
    seconds: float,
    out: Path,
    *,
    spy: bool = True,
) -> str:
    db = ctx.dbs["queueing"]
    await db.tables.clear()
    await fill(db, jobs)
    pgss = await _pgss_start(db.ctl)
    fleet = Fleet("queueing", db.conninfo, concurrency, processes)
    await fleet.start()
    pids = [w.pid for w in fleet.workers]
    try:
        await fleet.go()
        await asyncio.sleep(0.5)  # past connect and the first claims
        cpu_before = {p: cpu_seconds(p) for p in pids}
        machine_before = machine_ticks()
        # The database's backends' CPU from here: the harness's own did the fill.
        pids_now = await (await db.ctl.execute(query("backend_pids"))).fetchall()
        pg_before = {pid: cpu_seconds(pid) for (pid,) in pids_now}
        # py-spy stops the process for each sample: it slows the worker it records, and
        # the drain with it (--no-py-spy for the CPU split of an undisturbed drain).
        spying = asyncio.create_task(_py_spy(pids[0], seconds, out)) if spy else None
        counts, backends, samples = await _sample_activity(db.conninfo, seconds)
        pg_cpu = {
            p: max(0.0, cpu_seconds(p) - pg_before.get(p, 0.0)) for p in backends | set(pg_before)
        }
        cpu = {p: cpu_seconds(p) - cpu_before[p] for p in pids}
        machine_after = machine_ticks()
        handled = fleet.handled
        raw = await spying if spying is not None else None
        await fleet.wait_handled(jobs, 600.0)
    finally:
        run = await fleet.stop()
    busy = machine_after[0] - machine_before[0]
    every = machine_after[1] - machine_before[1]
    cores = os.cpu_count() or 1
    lines = [
        f"{processes} worker process(es) x concurrency {concurrency}, {jobs} jobs, drain "
        f"{run.rate:,.0f}/s; {handled} handled when the {seconds:.0f} s window closed",
        f"machine over the window: {busy / every * cores:.2f} of {cores} cores busy",
        "",
        "CPU over the window (s of CPU per s of wall time):",
        *(f"  worker {p}: {c / seconds:.2f}" for p, c in cpu.items()),
        f"  its {len(backends)} PostgreSQL backends together: {sum(pg_cpu.values()) / seconds:.2f}",
        "",
        f"pg_stat_activity, {samples} samples every {SAMPLE_EVERY_S * 1000:.0f} ms "
        "(state, wait event, statement; and the ungranted locks): count",
    ]
    lines += [f"  {c:5d}  {s} | {w} | {q}" for (s, w, q), c in counts.most_common(25)]
    lines += ["", "pg_stat_statements, top statements by total time over the whole drain:"]
    lines += (
        await _pgss_top(db.ctl)
        if pgss
        else [
            "  not available: pg_stat_statements is not in shared_preload_libraries (it needs a"
            " server restart); the pg_stat_activity samples above stand in for it"
        ]
    )
    if raw is not None and raw.exists():
        lines += ["", "py-spy, worker " + str(pids[0]) + ":", top_frames(raw)]
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> None:
    sizes = QUICK if args.quick else Sizes()
    with tempfile.TemporaryDirectory(prefix="bench_profile_") as tmp:
        ctx = Context(sizes, args.quick, Path(tmp))
        async with system_database(args.admin_url, "queueing") as db:
            ctx.dbs["queueing"] = db
            args.out.mkdir(parents=True, exist_ok=True)
            text = await _profile(
                ctx,
                args.jobs,
                args.concurrency,
                args.processes,
                args.seconds,
                args.out,
                spy=not args.no_py_spy,
            )
    (args.out / "profile.txt").write_text(text + "\n")
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("bench_profile"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-py-spy", action="store_true", help="no py-spy (it slows the drain)")
    add_admin_url(parser)
    if shutil.which("py-spy") is None:
        parser.error("py-spy is not installed (pip install py-spy)")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
