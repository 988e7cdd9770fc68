"""What every scenario gets: the sizes of this run, one database per system, the results.

Each system gets a database of its own for the whole run (``bench_<system>_<pid>``, created
from the admin URL, given the system's schema, dropped at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.systems import System, Tables, make_system
from queueing.sql import query as release_query

BULK_BATCH = 5000


def add_admin_url(parser: argparse.ArgumentParser) -> None:
    """``--admin-url``: the server to measure on (a database there is created per run)."""
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )


@contextlib.contextmanager
def scratch_databases(admin_url: str, *names: str) -> Iterator[list[str]]:
    """Empty databases of these names (each dropped first if left by a run before), their
    URLs; dropped afterwards. For the tools that install their schemas themselves. (The
    statements are sql/queries.sql's, as queueing.testing.databases runs them.)"""
    identifiers = [sql.Identifier(name) for name in names]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for name in identifiers:
            admin.execute(release_query("drop_database").format(name=name))
            admin.execute(release_query("create_database").format(name=name))
    try:
        yield [make_conninfo(admin_url, dbname=name) for name in names]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            for name in identifiers:
                admin.execute(release_query("drop_database").format(name=name))


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is: the full run's sizes, or ``--quick``'s for smoke tests."""

    # 20,000 drained in under a second at ~30,000 jobs/s: the start-up was part of the rate.
    drain_n: int = 60_000
    drain_rounds: int = 3  # each point's figure: the median of its rounds
    enqueue_rounds: int = 3
    queueing_sweep: tuple[int, ...] = (50, 100, 200, 400, 800)
    pgqueuer_sweep: tuple[int, ...] = (10, 50, 100, 250, 500, 1000)
    procrastinate_concurrency: int = 10  # 1, 4, 20 and 40 were no better (earlier runs)
    procrastinate_drain_n: int = 3_000  # ~350/s: the rate, not the size, is the figure
    bulk_n: int = 50_000
    single_n: int = 2_000
    pickup: tuple[tuple[int, int], ...] = ((20, 200), (500, 2_500))  # (jobs/s, jobs)
    pickup_rounds: int = 3  # p50 and p99: the medians of the rounds
    finished_rows: int = 1_000_000
    delayed_rows: int = 100_000
    other_queue_rows: int = 100_000
    large_drain_n: int = 40_000
    large_single_n: int = 500
    large_concurrency: int = 200
    large_rounds: int = 3  # each ratio: the median of its rounds' (empty, case) pairs
    # None: the best 1-process concurrency. (2, 10): the fleet of 32 at concurrency 10 set
    # beside 2 processes at the same concurrency, which claim in batches as small.
    claimers: tuple[tuple[int, int | None], ...] = ((8, None), (32, 10), (2, 10))
    claimers_n: int = 40_000
    rss_concurrency: int = 1_000
    rss_jobs: int = 100_000
    minute_s: float = 60.0
    metrics_rounds: int = 3


QUICK = Sizes(
    drain_n=2_000,
    drain_rounds=1,
    enqueue_rounds=1,
    queueing_sweep=(100,),
    pgqueuer_sweep=(10, 250),
    procrastinate_drain_n=300,
    bulk_n=10_000,
    single_n=200,
    pickup=((20, 40), (500, 250)),
    pickup_rounds=1,
    finished_rows=20_000,
    delayed_rows=5_000,
    other_queue_rows=5_000,
    large_drain_n=2_000,
    large_single_n=100,
    large_rounds=1,
    claimers=((4, None), (8, 10), (2, 10)),
    claimers_n=4_000,
    rss_concurrency=1_000,
    rss_jobs=5_000,
    minute_s=10.0,
    metrics_rounds=1,
)


@dataclass
class SystemDb:
    """One system's database, its client and the harness's control connection."""

    name: str
    conninfo: str
    client: System
    ctl: psycopg.AsyncConnection[Any]
    tables: Tables


@dataclass
class Context:
    sizes: Sizes
    quick: bool
    tmp: Path
    dbs: dict[str, SystemDb] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)

    def best_setting(self, system: str, procs: int = 1) -> int:
        """The system's best setting in this run's drain sweep (its default if none ran)."""
        best = self.results.get("drain", {}).get(system, {}).get("best", {}).get(str(procs))
        if best:
            return int(best["setting"])
        return default_setting(system)


def default_setting(system: str) -> int:
    if system.startswith("queueing"):
        from bench.queueing_system import default_concurrency

        return default_concurrency()
    if system == "pgqueuer":
        from pgqueuer import PgQueuer

        default = inspect.signature(PgQueuer.run).parameters["batch_size"].default
        return int(default)
    return Sizes().procrastinate_concurrency


@contextlib.asynccontextmanager
async def system_database(admin_url: str, system: str) -> AsyncIterator[SystemDb]:
    """A fresh database with ``system``'s schema, dropped afterwards."""
    dbname = f"bench_{system}_{os.getpid()}"
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        name = sql.Identifier(dbname)
        await admin.execute(release_query("drop_database").format(name=name))
        await admin.execute(release_query("create_database").format(name=name))
    conninfo = make_conninfo(admin_url, dbname=dbname)
    try:
        client = make_system(system, conninfo)
        ctl = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        try:
            await client.open()
            await client.install()
            yield SystemDb(system, conninfo, client, ctl, Tables(system, ctl))
        finally:
            await client.close()
            await ctl.close()
    finally:
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
            await admin.execute(release_query("drop_database").format(name=sql.Identifier(dbname)))
