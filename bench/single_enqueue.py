"""``python -m bench.single_enqueue``: where one enqueue call's time goes, beside PgQueuer's.

The ``enqueue`` scenario's single figure is one call and one commit per job, in a loop.
This splits such a call's wall time into the client's CPU (this process, which runs only
this loop), the server's CPU (the backend's utime + stime from /proc) and the rest
(waiting: the commit's WAL flush, the network, the scheduler), for:

- ``queueing``: the library's ``queue.aio.enqueue("noop")`` (pool of one connection);
- ``queueing statement``: the statement that call sends (``enqueue_new`` of
  sql/queries.sql, with the payload the library builds), on a bare psycopg connection;
- ``pgqueuer``: ``Queries.enqueue("noop", None)`` on asyncpg (its fastest setup);
- ``SELECT 1`` on psycopg and on asyncpg: each driver's round trip alone.

Everything runs under uvloop (PgQueuer's documented setup; psycopg runs on it too), each
loop ``--calls`` calls, the loops taking turns for ``--rounds`` rounds; medians printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import psycopg
import uvloop
from pgqueuer import AsyncpgDriver, Queries

from bench.context import add_admin_url, scratch_databases
from bench.procs import cpu_seconds
from bench.sql_blocks import query
from bench.worker import asyncpg_params
from queueing import JobRequest, Queue, ops
from queueing.sql import query as release_query

Call = Callable[[], Awaitable[Any]]


async def _loop(call: Call, calls: int, backend_pid: int) -> tuple[float, float, float]:
    """(wall, client CPU, server CPU) per call, in us."""
    for _ in range(20):  # warm: prepared statements, caches
        await call()
    wall, client, server = time.perf_counter(), time.process_time(), cpu_seconds(backend_pid)
    for _ in range(calls):
        await call()
    return (
        (time.perf_counter() - wall) / calls * 1e6,
        (time.process_time() - client) / calls * 1e6,
        (cpu_seconds(backend_pid) - server) / calls * 1e6,
    )


async def _measure(queueing_url: str, pgqueuer_url: str, args: argparse.Namespace) -> None:
    queue = Queue(queueing_url, pool_size=1)
    queue.migrate()
    library = queue.aio
    await library.enqueue("noop")
    pool = await library._get_pool()
    async with pool.connection() as pooled:
        library_pid = pooled.info.backend_pid

    bare = await psycopg.AsyncConnection.connect(queueing_url, autocommit=True)
    statement, _ = ops._enqueue_statement(queue.prepare([JobRequest("noop")]))

    async def queueing_statement() -> None:
        cur = await bare.execute(release_query(statement.name), statement.params)
        await cur.fetchall()

    async def psycopg_select() -> None:
        await bare.execute(query("select_one"))

    pgq_conn = await asyncpg.connect(**asyncpg_params(pgqueuer_url))
    pgqueuer = Queries(AsyncpgDriver(pgq_conn))
    await pgqueuer.install()

    async def pgqueuer_enqueue() -> None:
        await pgqueuer.enqueue("noop", None)

    async def asyncpg_select() -> None:
        await pgq_conn.fetch(query("select_one").as_string(None))

    loops: dict[str, tuple[Call, int]] = {
        "queueing (library)": (lambda: library.enqueue("noop"), library_pid),
        "queueing statement (bare psycopg)": (queueing_statement, bare.info.backend_pid),
        "pgqueuer (asyncpg)": (pgqueuer_enqueue, pgq_conn.get_server_pid()),
        "SELECT 1, psycopg": (psycopg_select, bare.info.backend_pid),
        "SELECT 1, asyncpg": (asyncpg_select, pgq_conn.get_server_pid()),
    }
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, (call, pid) in loops.items():
            figures[name].append(await _loop(call, args.calls, pid))
    await bare.close()
    await pgq_conn.close()
    await library.close()
    queue.close()

    print(f"{args.calls:,} calls a loop, {args.rounds} rounds, medians; us per call")
    print("| loop | wall | client CPU | server CPU | waiting (the rest) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, rounds in figures.items():
        wall, client, server = (statistics.median(r[i] for r in rounds) for i in range(3))
        rest = wall - client - server
        print(f"| {name} | {wall:.0f} | {client:.0f} | {server:.0f} | {rest:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.single_enqueue", description=__doc__)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    add_admin_url(parser)
    args = parser.parse_args()
    names = [f"bench_single_{system}_{os.getpid()}" for system in ("queueing", "pgqueuer")]
    with scratch_databases(args.admin_url, *names) as (queueing_url, pgqueuer_url):
        uvloop.run(_measure(queueing_url, pgqueuer_url, args))


if __name__ == "__main__":
    main()
