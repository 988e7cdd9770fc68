"""The worker's database connections: how they are opened, and the one that reconnects.

Every connection the worker opens comes from ``connect`` (autocommit, the options of
``queueing.config.connect_options``, pydantic-core's JSON decoder). A ``Connection``
holds one of them for a user that reconnects after a loss: the claim loop and the abort
watch share one; the finisher holds its own, so that a statement of one never waits
behind another's; the maintenance services (``periodic``) hold theirs for a round only
(docs/pooling.md counts a worker's connections).

``Connection.generation`` counts the connections it has opened. A user that must know
whether the connection was lost since it last looked compares generations instead of
being told through a flag: the claim loop does, because a claim may have committed on a
connection that died before its reply arrived (see ``lost_claims``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg
from psycopg.rows import dict_row

from queueing import drivers, sql
from queueing.config import connect_options

Row = dict[str, Any]


async def connect(database_url: str) -> psycopg.AsyncConnection[Any]:
    """A new autocommit connection, as every part of the worker uses them."""
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True, **connect_options())
    drivers.fast_json(conn)
    return conn


class Connection:
    """One autocommit connection, opened on first use and again after a loss."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: psycopg.AsyncConnection[Any] | None = None
        # One connect at a time: two users racing to reconnect would leak a connection.
        self._lock = asyncio.Lock()
        #: How many connections this holder has opened (0: none yet).
        self.generation = 0

    async def get(self) -> psycopg.AsyncConnection[Any]:
        """The open connection; a new one if there is none or it was closed."""
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        async with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = await connect(self._url)
                self.generation += 1
            return self._conn

    async def drop(self) -> None:
        """Close the connection after a connection-level error (it may be half broken,
        e.g. cut mid-reply); the next ``get`` opens a new one."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def drop_if_lost(self, exc: psycopg.Error) -> None:
        """``drop`` if ``exc`` says the connection itself failed."""
        if isinstance(exc, psycopg.OperationalError):
            await self.drop()

    async def fetch(self, name: str, params: Row | None = None) -> list[Row]:
        """Run the named query of sql/queries.sql; its rows as dicts."""
        conn = await self.get()
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.query(name), params or {})
            return await cur.fetchall() if cur.description else []

    async def close(self) -> None:
        await self.drop()
