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
from psycopg.abc import AdaptContext
from psycopg.rows import DictRow, dict_row
from psycopg.types.datetime import TimestamptzLoader
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from queueing import sql
from queueing.config import connect_options
from queueing.errors import DatabaseUnavailable, QueueingError, SchemaNotMigrated
from queueing.ops import (
    Effect,
    Fetch,
    Op,
    Pipeline,
    Query,
    Script,
    Send,
    T,
    Transaction,
    WaitNotify,
)

Row = DictRow


def fast_json(conn: AdaptContext) -> None:
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
    effect: Query | Script,
) -> tuple[pgsql.SQL | pgsql.Composed, Mapping[str, Any] | None]:
    """The statement an effect runs, and its parameters (None: a script, sent as is)."""
    if isinstance(effect, Query):
        return sql.query(effect.name), effect.params
    return pgsql.SQL(effect.text), None


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


def run_sync(
    op: Op[T], conn: psycopg.Connection[Any], *, translate: bool = True, lent: bool = False
) -> T:
    """Drive ``op`` to completion on a sync connection; return its result.

    ``lent``: the connection is the caller's (``connection=``), configured by them or by
    their ORM: the operation's cursors bring their own loaders (see ``own_loaders``)."""
    with _errors(translate):
        steps = _Stepper(op)
        while (effect := steps.next()) is not None:
            steps.result = _perform_sync(effect, conn, lent)
        return steps.value


def _perform_sync(effect: Effect, conn: psycopg.Connection[Any], lent: bool) -> Any:
    if isinstance(effect, Transaction):
        if lent and _would_commit_callers(conn):
            return run_sync(effect.op, conn, translate=False, lent=lent)
        with conn.transaction():
            return run_sync(effect.op, conn, translate=False, lent=lent)  # the outer run translates
    if isinstance(effect, Pipeline):
        if lent:  # the caller's connection: no mode of ours on it; each Send waits
            return run_sync(effect.op, conn, translate=False, lent=lent)
        with conn.pipeline():
            return run_sync(effect.op, conn, translate=False, lent=lent)
    if isinstance(effect, WaitNotify):
        # One packet may carry several notifications: keep them all.
        return [n.payload for n in conn.notifies(timeout=effect.timeout, stop_after=1)]
    if isinstance(effect, Send):
        cur = _cursor(conn, lent)
        cur.execute(*_statement(effect.query))
        return cur
    if isinstance(effect, Fetch):
        with effect.handle as sent:
            return sent.fetchall()
    with _cursor(conn, lent) as cur:
        cur.execute(*_statement(effect))
        return cur.fetchall() if cur.description else []


def _cursor(conn: psycopg.Connection[Any], lent: bool) -> psycopg.Cursor[Row]:
    if not lent:
        return conn.cursor(row_factory=dict_row)
    # Not conn.cursor(): Django's connections make client-side-binding cursors.
    cur = psycopg.Cursor(conn, row_factory=dict_row)
    own_loaders(cur)
    return cur


def _would_commit_callers(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether psycopg's ``transaction()`` would BEGIN and COMMIT rather than make a
    savepoint: on a connection outside autocommit with no transaction begun yet, which is
    how an ORM's session looks before its first statement. On a lent connection that
    COMMIT would commit the caller's transaction under them; there the operation runs in
    the transaction its first statement begins, which the caller commits or rolls back
    (an error in it leaves that transaction to be rolled back, as any failed statement)."""
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    return idle and not conn.autocommit


def own_loaders(cur: psycopg.Cursor[Row] | psycopg.AsyncCursor[Row]) -> None:
    """Give a cursor on a connection we were lent the loaders our records are read with.

    An ORM configures its connections for itself: Django loads jsonb as text (its
    JSONField decodes it) and timestamptz as naive datetimes without USE_TZ; SQLAlchemy
    may install the application's JSON decoder. Registered on the cursor, these loaders
    change nothing for the ORM's own queries on the same connection."""
    fast_json(cur)
    cur.adapters.register_loader("timestamptz", TimestamptzLoader)


async def run_async(
    op: Op[T], conn: psycopg.AsyncConnection[Any], *, translate: bool = True, lent: bool = False
) -> T:
    """``run_sync`` on an async connection."""
    with _errors(translate):
        steps = _Stepper(op)
        while (effect := steps.next()) is not None:
            steps.result = await _perform_async(effect, conn, lent)
        return steps.value


async def _perform_async(effect: Effect, conn: psycopg.AsyncConnection[Any], lent: bool) -> Any:
    if isinstance(effect, Transaction):
        if lent and _would_commit_callers(conn):
            return await run_async(effect.op, conn, translate=False, lent=lent)
        async with conn.transaction():
            # the outer run translates
            return await run_async(effect.op, conn, translate=False, lent=lent)
    if isinstance(effect, Pipeline):
        if lent:  # see _perform_sync
            return await run_async(effect.op, conn, translate=False, lent=lent)
        async with conn.pipeline():
            return await run_async(effect.op, conn, translate=False, lent=lent)
    if isinstance(effect, WaitNotify):
        return [n.payload async for n in conn.notifies(timeout=effect.timeout, stop_after=1)]
    if isinstance(effect, Send):
        sending = _async_cursor(conn, lent)
        await sending.execute(*_statement(effect.query))
        return sending
    if isinstance(effect, Fetch):
        async with effect.handle as sent:
            return await sent.fetchall()
    async with _async_cursor(conn, lent) as cur:
        await cur.execute(*_statement(effect))
        return await cur.fetchall() if cur.description else []


def _async_cursor(conn: psycopg.AsyncConnection[Any], lent: bool) -> psycopg.AsyncCursor[Row]:
    if not lent:
        return conn.cursor(row_factory=dict_row)
    cur = psycopg.AsyncCursor(conn, row_factory=dict_row)
    own_loaders(cur)
    return cur


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
