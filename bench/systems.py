"""The systems under test as the harness's client sees them: enqueue, install, clear.

One protocol (``System``) for queueing (bench/queueing_system.py), stock procrastinate and
PgQueuer, so that every scenario measures all of them the same way. Their worker side is
bench/worker.py.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

import psycopg

from bench.queueing_system import QueueingSystem
from bench.sql_blocks import query
from bench.worker import asyncpg_params

if TYPE_CHECKING:
    from pgqueuer import Queries

#: Clients enqueueing at once in the pick-up scenarios (one call and commit per job): at
#: 500 jobs/s one sequential client cannot keep up with one commit per call.
ENQUEUE_CLIENTS = 8


class System(Protocol):
    """What the harness needs from a queue's client."""

    name: str
    label: str

    def settings_text(self, setting: int) -> str: ...
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def install(self) -> None: ...
    async def enqueue_batch(self, n: int) -> None: ...
    async def enqueue_one(self) -> None: ...
    async def enqueue_stamps(self, t: float, n: int) -> None:
        """``n`` stamp jobs carrying ``t`` (one call; safe to call concurrently)."""


class Procrastinate:
    name = "procrastinate"
    label = "procrastinate 3.10 (stock)"

    def __init__(self, conninfo: str) -> None:
        from bench.worker import procrastinate_app

        self.app = procrastinate_app(conninfo, ENQUEUE_CLIENTS, None)

    def settings_text(self, setting: int) -> str:
        return (
            f"procrastinate worker: concurrency={setting}, psycopg pool of {setting + 2}, "
            "listen_notify=True, asyncio loop"
        )

    async def open(self) -> None:
        await self.app.open_async()

    async def close(self) -> None:
        await self.app.close_async()

    async def install(self) -> None:
        await self.app.schema_manager.apply_schema_async()

    async def enqueue_batch(self, n: int) -> None:
        await self.app.tasks["noop"].batch_defer_async(*({} for _ in range(n)))

    async def enqueue_one(self) -> None:
        await self.app.tasks["noop"].defer_async()

    async def enqueue_stamps(self, t: float, n: int) -> None:
        task = self.app.tasks["stamp"]
        if n == 1:
            await task.defer_async(t=t)
        else:
            await task.batch_defer_async(*({"t": t} for _ in range(n)))


class PgQueuerSystem:
    """PgQueuer on asyncpg: one connection for the sequential figures, a pool for the
    concurrent enqueues of the pick-up scenarios."""

    name = "pgqueuer"
    label = "PgQueuer (asyncpg, uvloop)"

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._one: Queries | None = None
        self._pooled: Queries | None = None
        self._closers: list[Any] = []

    def settings_text(self, setting: int) -> str:
        return (
            f"pgqueuer worker: PgQueuer.run(batch_size={setting}, max_concurrent_tasks=None), "
            "AsyncpgDriver (1 connection), uvloop, LISTEN on (its fastest documented setup)"
        )

    async def open(self) -> None:
        import asyncpg
        from pgqueuer import AsyncpgDriver, AsyncpgPoolDriver, Queries

        params = asyncpg_params(self.conninfo)
        conn = await asyncpg.connect(**params)
        pool = await asyncpg.create_pool(
            min_size=ENQUEUE_CLIENTS, max_size=ENQUEUE_CLIENTS, **params
        )
        self._closers = [conn, pool]
        self._one = Queries(AsyncpgDriver(conn))
        self._pooled = Queries(AsyncpgPoolDriver(pool))

    async def close(self) -> None:
        for closer in self._closers:
            await closer.close()

    def _queries(self, pooled: bool = False) -> Queries:
        found = self._pooled if pooled else self._one
        if found is None:
            raise RuntimeError("open() first")
        return found

    async def install(self) -> None:
        await self._queries().install()

    async def enqueue_batch(self, n: int) -> None:
        await self._queries().enqueue(["noop"] * n, [None] * n, [0] * n)

    async def enqueue_one(self) -> None:
        await self._queries().enqueue("noop", None)

    async def enqueue_stamps(self, t: float, n: int) -> None:
        payload = f"{t:.6f}".encode()
        if n == 1:
            await self._queries(pooled=True).enqueue("stamp", payload)
        else:
            await self._queries(pooled=True).enqueue(["stamp"] * n, [payload] * n, [0] * n)


def make_system(name: str, conninfo: str) -> System:
    if name == "queueing":
        return QueueingSystem(conninfo)
    if name == "pgqueuer":
        return PgQueuerSystem(conninfo)
    if name == "procrastinate":
        return Procrastinate(conninfo)
    raise ValueError(f"unknown system {name!r}")


class Tables:
    """The harness's own look at a system's tables (bench/queries.sql): clear them between
    runs, count unfinished jobs, analyze after a fill."""

    def __init__(self, system: str, conn: psycopg.AsyncConnection[Any]) -> None:
        self.system = "queueing" if system.startswith("queueing") else system
        self.conn = conn

    async def clear(self) -> None:
        await self.conn.execute(query(f"{self.system}_clear"))

    async def analyze(self) -> None:
        await self.conn.execute(query(f"{self.system}_analyze"))

    async def unfinished(self) -> int:
        cur = await self.conn.execute(query(f"{self.system}_unfinished"))
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def wait_finished(self, limit_s: float) -> None:
        """Until no measured job is left unfinished (the workers have stopped: this only
        checks that they wrote every outcome)."""
        deadline = asyncio.get_running_loop().time() + limit_s
        while (left := await self.unfinished()) > 0:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"{self.system}: {left} jobs left unfinished")
            await asyncio.sleep(0.05)
