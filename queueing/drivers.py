"""Run operations (``queueing.ops.Op``) over a sync or an async psycopg connection.

The library's front (``Queue``/``AsyncQueue``, retention, the test helpers) does all its
database work as operations run here: ``run_sync``/``run_async`` and the
``_perform_sync``/``_perform_async`` they call are the only place in the front where
sync and async differ, and nothing else in the front keeps a sync/async pair.

The worker (``queueing/worker/``) is not written this way: it is async only, and runs its
own named queries directly on its connections. It comes here for the front's shared
operations it needs (the schema check, retention's prune) and for the connection helpers
(``fast_json``, ``translate_errors``, ``first_line``).
"""

from __future__ import annotations

import contextlib
import select
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Generic

import psycopg
import pydantic_core
from psycopg import sql as pgsql
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from queueing import sql
from queueing.config import connect_options
from queueing.errors import DatabaseUnavailable, QueueingError, SchemaNotMigrated
from queueing.ops import Effect, Listen, Op, Query, Script, T, Transaction, WaitNotify


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


def _statement(
    effect: Query | Script | Listen,
) -> tuple[pgsql.SQL | pgsql.Composed, Mapping[str, Any] | None]:
    """The statement an effect runs, and its parameters (None: a script, sent as is)."""
    if isinstance(effect, Query):
        return sql.query(effect.name), effect.params
    if isinstance(effect, Script):
        return pgsql.SQL(effect.text), None
    return sql.query("listen_channel").format(channel=pgsql.Identifier(effect.channel)), None


class _Stepper(Generic[T]):
    """Steps an operation: ``next()`` hands it ``result`` (the last effect's) and takes
    its next effect, None once it returned (its result then in ``value``). Both drivers'
    loops are this, with their own I/O between the steps."""

    def __init__(self, op: Op[T]) -> None:
        self._op = op
        self.result: Any = None
        self.value: T

    def next(self) -> Effect | None:
        try:
            return self._op.send(self.result)
        except StopIteration as stop:
            self.value = stop.value
            return None


def _errors(translate: bool) -> contextlib.AbstractContextManager[None]:
    """``translate_errors()``, or nothing for a caller that handles psycopg's errors
    itself (the worker: a ``psycopg.Error`` costs it one round)."""
    return translate_errors() if translate else contextlib.nullcontext()


def run_sync(op: Op[T], conn: psycopg.Connection[Any], *, translate: bool = True) -> T:
    """Drive ``op`` to completion on a sync connection; return its result."""
    with _errors(translate):
        steps = _Stepper(op)
        while (effect := steps.next()) is not None:
            steps.result = _perform_sync(effect, conn)
        return steps.value


def _perform_sync(effect: Effect, conn: psycopg.Connection[Any]) -> Any:
    if isinstance(effect, Transaction):
        with conn.transaction():
            return run_sync(effect.op, conn, translate=False)  # the outer run translates
    if isinstance(effect, WaitNotify):
        # One packet may carry several notifications: keep them all.
        return [n.payload for n in conn.notifies(timeout=effect.timeout, stop_after=1)]
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(*_statement(effect))
        return cur.fetchall() if cur.description else []


async def run_async(op: Op[T], conn: psycopg.AsyncConnection[Any], *, translate: bool = True) -> T:
    """``run_sync`` on an async connection."""
    with _errors(translate):
        steps = _Stepper(op)
        while (effect := steps.next()) is not None:
            steps.result = await _perform_async(effect, conn)
        return steps.value


async def _perform_async(effect: Effect, conn: psycopg.AsyncConnection[Any]) -> Any:
    if isinstance(effect, Transaction):
        async with conn.transaction():
            return await run_async(effect.op, conn, translate=False)  # the outer run translates
    if isinstance(effect, WaitNotify):
        return [n.payload async for n in conn.notifies(timeout=effect.timeout, stop_after=1)]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(*_statement(effect))
        return await cur.fetchall() if cur.description else []


def run_sync_at(url: str, op: Op[T], *, autocommit: bool = False) -> T:
    """Run ``op`` on a connection of its own to ``url``, closed after (and committed
    first, without ``autocommit``)."""
    with (
        translate_errors(),
        psycopg.connect(url, autocommit=autocommit, **connect_options()) as conn,
    ):
        return run_sync(op, conn)


async def run_async_at(url: str, op: Op[T], *, autocommit: bool = False) -> T:
    """``run_sync_at`` on an async connection."""
    with translate_errors():
        conn = await psycopg.AsyncConnection.connect(
            url, autocommit=autocommit, **connect_options()
        )
        async with conn:
            return await run_async(op, conn)


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
