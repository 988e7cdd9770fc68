"""Run the operations of ``queueing.ops`` over a sync or an async psycopg connection.

These two small loops are the only place where sync and async differ.
"""

from __future__ import annotations

import contextlib
import select
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pydantic_core
from psycopg import sql as pgsql
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from queueing import sql
from queueing.errors import DatabaseUnavailable, QueueingError, SchemaNotMigrated
from queueing.ops import Effect, Listen, Op, Query, Script, WaitNotify


def fast_json(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    """Decode json/jsonb columns with pydantic-core's parser (Rust) instead of the stdlib's.

    Used as the pools' ``configure`` hook and on the worker's connections: the stdlib
    decoder was ~6 us a value when enqueueing or claiming in bulk.
    """
    set_json_loads(pydantic_core.from_json, conn)


async def fast_json_async(conn: psycopg.AsyncConnection[Any]) -> None:
    fast_json(conn)


def _server_has_spoken(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle connection's socket holds something: when the server ends a
    connection (restart, crash, pg_terminate_backend) it sends an error and closes, so
    the socket turns readable although no query is in flight."""
    if conn.closed or conn.broken:
        return True
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    return bool(readable)


def check_pooled(conn: psycopg.Connection[Any]) -> None:
    """The pools' ``check``: raise for a connection that died while idle in the pool.

    psycopg_pool then drops it and hands out another, so the first call after a
    database restart succeeds. Costs a ``select()``, not a round trip, unless the
    socket holds something: then psycopg_pool's own check (an empty query) tells.
    """
    if _server_has_spoken(conn):
        ConnectionPool.check_connection(conn)


async def check_pooled_async(conn: psycopg.AsyncConnection[Any]) -> None:
    """``check_pooled`` for the async pools."""
    if _server_has_spoken(conn):
        await AsyncConnectionPool.check_connection(conn)


def _listen_statement(channel: str) -> pgsql.Composed:
    return sql.query("listen_channel").format(channel=pgsql.Identifier(channel))


def run_sync(op: Op, conn: psycopg.Connection[Any]) -> Any:
    """Drive ``op`` to completion on a sync connection; return its result."""
    with translate_errors():
        result: Any = None
        while True:
            try:
                effect: Effect = op.send(result)
            except StopIteration as stop:
                return stop.value
            with conn.cursor(row_factory=dict_row) as cur:
                if isinstance(effect, Query):
                    cur.execute(sql.query(effect.name), effect.params)
                    result = cur.fetchall() if cur.description else []
                elif isinstance(effect, Script):
                    cur.execute(pgsql.SQL(effect.text))
                    result = None
                elif isinstance(effect, Listen):
                    cur.execute(_listen_statement(effect.channel))
                    result = None
                else:
                    # One packet may carry several notifications: keep them all.
                    result = [
                        n.payload for n in conn.notifies(timeout=effect.timeout, stop_after=1)
                    ]


async def run_async(op: Op, conn: psycopg.AsyncConnection[Any]) -> Any:
    """Drive ``op`` to completion on an async connection; return its result."""
    with translate_errors():
        result: Any = None
        while True:
            try:
                effect: Effect = op.send(result)
            except StopIteration as stop:
                return stop.value
            async with conn.cursor(row_factory=dict_row) as cur:
                if isinstance(effect, Query):
                    await cur.execute(sql.query(effect.name), effect.params)
                    result = await cur.fetchall() if cur.description else []
                elif isinstance(effect, Script):
                    await cur.execute(pgsql.SQL(effect.text))
                    result = None
                elif isinstance(effect, Listen):
                    await cur.execute(_listen_statement(effect.channel))
                    result = None
                else:
                    assert isinstance(effect, WaitNotify)
                    result = [
                        n.payload async for n in conn.notifies(timeout=effect.timeout, stop_after=1)
                    ]


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn psycopg's errors that mean a user mistake into our typed, one-line errors."""
    try:
        yield
    except QueueingError:
        raise
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction) as exc:
        raise SchemaNotMigrated(
            f"database is missing the queue's schema ({first_line(exc)}): run `queueing db migrate`"
        ) from exc
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"database unavailable: {first_line(exc)}") from exc


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (psycopg's run over several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.asynccontextmanager
async def async_translate_errors() -> AsyncIterator[None]:
    with translate_errors():
        yield
