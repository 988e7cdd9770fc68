"""SQLAlchemy (2.0+): the psycopg connection under a Session or Connection, sync or async.

Install with ``pip install 'queueing[sqlalchemy]'`` and pass what you hold::

    with Session(engine) as session, session.begin():
        session.add(order)
        queue.enqueue(send_receipt, {"order": 42}, connection=session)

The engine must be ``postgresql+psycopg://`` (sync) or ``postgresql+psycopg_async://``
(async): those run on psycopg 3, whose connection the job is written on.

"Closed" is SQLAlchemy's word: a ``Connection`` after ``close()``, or a ``Session`` made
with ``close_resets_only=False`` after ``close()``, is refused. A default ``Session`` may
be used again after ``close()`` (SQLAlchemy's design): the job then joins the new
transaction that session begins, and is written when that one commits.
"""

from __future__ import annotations

from typing import Any

import psycopg
import sqlalchemy
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_scoped_session,
)
from sqlalchemy.orm import Session, scoped_session

from queueing.drivers import first_line
from queueing.errors import UnusableConnection
from queueing.integrations import SUPPORTED, SUPPORTED_ASYNC, describe

__all__ = ["async_connection_of", "connection_of", "engine_url"]

DRIVER = "psycopg"
"""``dialect.driver`` of both ``postgresql+psycopg`` and ``postgresql+psycopg_async``."""


def connection_of(obj: object) -> psycopg.Connection[Any]:
    """The psycopg connection under a SQLAlchemy ``Session``, ``scoped_session`` or
    ``Connection``, in its transaction.

    The session's transaction (or the innermost ``begin_nested()`` savepoint) is begun if
    it was not yet, as any statement would, so the session's commit or rollback decides
    the job too. UnusableConnection for another driver or database, a closed connection,
    a session that must be rolled back, or an async object (use ``queue.aio``)."""
    if isinstance(obj, scoped_session):
        obj = obj()  # the session of the current scope
    if isinstance(obj, AsyncSession | AsyncConnection | async_scoped_session):
        raise UnusableConnection(f"{describe(obj)} is async: use queue.aio's enqueue")
    try:
        if isinstance(obj, Session):
            _check_dialect(obj.get_bind().dialect, obj)
            # session.connection(), not the engine: it joins the session's transaction
            # and emits a savepoint begun with begin_nested() that is still pending.
            connection = obj.connection()
        elif isinstance(obj, sqlalchemy.Connection):
            _check_dialect(obj.dialect, obj)
            connection = obj
            if not connection.in_transaction():
                # What the next statement would do (autobegin): without it, a
                # commit-as-you-go connection's commit() would not commit our job.
                connection.begin()
        else:
            raise UnusableConnection(
                f"connection= takes {SUPPORTED}; got {describe(obj)}{_hint(obj)}"
            )
        raw = connection.connection.driver_connection
    except sa_exc.DBAPIError:
        raise  # the database itself failed: not a mistake in what was passed
    except sa_exc.SQLAlchemyError as exc:
        raise UnusableConnection(f"cannot join {describe(obj)}: {first_line(exc)}") from exc
    if not isinstance(raw, psycopg.Connection):
        raise UnusableConnection(f"{describe(obj)} is not on a psycopg 3 Connection")
    return raw


async def async_connection_of(obj: object) -> psycopg.AsyncConnection[Any]:
    """``connection_of`` for an ``AsyncSession``, ``async_scoped_session`` or
    ``AsyncConnection`` on ``postgresql+psycopg_async``: the psycopg ``AsyncConnection``
    under SQLAlchemy's adapter."""
    if isinstance(obj, async_scoped_session):
        obj = obj()
    try:
        if isinstance(obj, AsyncSession):
            _check_dialect(obj.sync_session.get_bind().dialect, obj)
            connection = await obj.connection()
        elif isinstance(obj, AsyncConnection):
            _check_dialect(obj.sync_engine.dialect, obj)  # known before it is started
            connection = obj
            if not connection.in_transaction():
                await connection.begin()  # see connection_of
        else:
            sync = isinstance(obj, Session | sqlalchemy.Connection)
            hint = " (use the sync Queue)" if sync else ""
            raise UnusableConnection(
                f"queue.aio's connection= takes {SUPPORTED_ASYNC}; got {describe(obj)}"
                f"{hint or _hint(obj)}"
            )
        raw = (await connection.get_raw_connection()).driver_connection
    except sa_exc.DBAPIError:
        raise
    except sa_exc.SQLAlchemyError as exc:
        raise UnusableConnection(f"cannot join {describe(obj)}: {first_line(exc)}") from exc
    if not isinstance(raw, psycopg.AsyncConnection):
        raise UnusableConnection(f"{describe(obj)} is not on a psycopg 3 AsyncConnection")
    return raw


def engine_url(database_url: str, *, asynchronous: bool = False) -> sqlalchemy.URL:
    """A libpq URL or ``key=value`` conninfo (what ``Queue`` takes) as a SQLAlchemy URL
    on psycopg 3, so an application keeps one database setting for both::

        engine = create_engine(engine_url(queue.database_url))
        async_engine = create_async_engine(engine_url(url, asynchronous=True))
    """
    params = psycopg.conninfo.conninfo_to_dict(database_url)
    user, password = params.pop("user", None), params.pop("password", None)
    dbname = params.pop("dbname", None)
    host = params.get("host")
    # A Unix socket directory or several hosts stay query parameters, which the dialect
    # passes to psycopg as they are.
    simple_host = isinstance(host, str) and host and not host.startswith("/") and "," not in host
    port = params.get("port")
    simple_port = simple_host and isinstance(port, (str, int)) and str(port).isdigit()
    return sqlalchemy.URL.create(
        "postgresql+psycopg_async" if asynchronous else "postgresql+psycopg",
        username=None if user is None else str(user),
        password=None if password is None else str(password),
        host=str(params.pop("host")) if simple_host else None,
        port=int(str(params.pop("port"))) if simple_port else None,
        database=None if dbname is None else str(dbname),
        query={key: str(value) for key, value in params.items()},
    )


def _hint(obj: object) -> str:
    """An engine is the common mistake: it has no transaction for the job to join."""
    if isinstance(obj, sqlalchemy.Engine | AsyncEngine):
        return " (an engine has no transaction: pass the Session or Connection you write with)"
    return ""


def _check_dialect(dialect: Dialect, obj: object) -> None:
    """Refuse another database or driver before anything touches the database."""
    if dialect.name != "postgresql" or dialect.driver != DRIVER:
        raise UnusableConnection(
            f"{describe(obj)} is on {dialect.name}+{dialect.driver}: queueing joins "
            "transactions on PostgreSQL through psycopg 3 only "
            "(postgresql+psycopg:// or postgresql+psycopg_async://)"
        )
