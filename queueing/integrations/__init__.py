"""Enqueue inside your ORM's transaction: what ``connection=`` accepts, and how it is joined.

``Queue.enqueue(..., connection=X)`` (and ``enqueue_many``, ``get_job``,
``queueing.rls.set_actor``) take, besides a psycopg ``Connection``:

- a SQLAlchemy ``Session``, ``scoped_session`` or ``Connection`` on ``postgresql+psycopg``;
- Django's ``connection`` (or ``connections[alias]``) on psycopg 3 (Django >= 4.2);

and their ``queue.aio`` twins (and ``set_actor_async``) take the async ones: a psycopg
``AsyncConnection``, or a SQLAlchemy ``AsyncSession``, ``async_scoped_session`` or
``AsyncConnection`` on ``postgresql+psycopg_async``.

The job is written on the very psycopg connection under that object, in its current
transaction (or savepoint): it commits and rolls back with the caller's business rows.
Anything else raises ``UnusableConnection`` before anything is written; the queue never
falls back to a connection of its own, which would commit the job on its own.

Nothing here imports SQLAlchemy or Django until an object of theirs is passed: the
object's class says which framework it comes from, and that framework is then already
imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import psycopg

from queueing.errors import UnusableConnection


class DjangoConnection(Protocol):
    """Django's ``connection`` or ``connections[alias]``, as the type checker sees it
    (Django ships no type hints, so this names the two attributes the check reads)."""

    alias: str
    vendor: str


if TYPE_CHECKING:
    import sqlalchemy
    import sqlalchemy.ext.asyncio
    import sqlalchemy.orm

    Joinable: TypeAlias = (
        psycopg.Connection[Any]
        | sqlalchemy.Connection
        | sqlalchemy.orm.Session
        | sqlalchemy.orm.scoped_session[Any]
        | DjangoConnection
    )
    """What ``connection=`` takes in the sync API."""

    AsyncJoinable: TypeAlias = (
        psycopg.AsyncConnection[Any]
        | sqlalchemy.ext.asyncio.AsyncConnection
        | sqlalchemy.ext.asyncio.AsyncSession
        | sqlalchemy.ext.asyncio.async_scoped_session[Any]
    )
    """What ``connection=`` takes in the async API (``queue.aio``)."""

__all__ = ["DjangoConnection", "joined", "joined_async"]


SUPPORTED = (
    "a psycopg Connection, a SQLAlchemy Session or Connection on postgresql+psycopg, "
    "or Django's connection on psycopg 3"
)
SUPPORTED_ASYNC = (
    "a psycopg AsyncConnection, or a SQLAlchemy AsyncSession or AsyncConnection "
    "on postgresql+psycopg_async"
)


def framework(obj: object) -> str | None:
    """``"sqlalchemy"`` or ``"django"`` when ``obj``'s class (or a base) comes from there."""
    for cls in type(obj).__mro__:
        top = cls.__module__.partition(".")[0]
        if top in ("sqlalchemy", "django"):
            return top
    return None


def describe(obj: object) -> str:
    """How an error names what it was given: ``sqlalchemy.orm.session.Session``."""
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


@contextlib.contextmanager
def joined(connection: Joinable) -> Iterator[psycopg.Connection[Any]]:
    """The psycopg connection under ``connection``, in the caller's transaction.

    UnusableConnection, before any write, for anything that is not PostgreSQL through
    psycopg 3, or is closed, or async (use ``queue.aio``)."""
    if isinstance(connection, psycopg.Connection):
        yield connection
        return
    match framework(connection):
        case "sqlalchemy":
            from queueing.integrations import sqlalchemy

            yield sqlalchemy.connection_of(connection)
        case "django":
            from queueing.integrations import django

            with django.joined(connection) as conn:
                yield conn
        case _:
            hint = " (use queue.aio)" if isinstance(connection, psycopg.AsyncConnection) else ""
            raise UnusableConnection(
                f"connection= takes {SUPPORTED}; got {describe(connection)}{hint}"
            )


@contextlib.asynccontextmanager
async def joined_async(connection: AsyncJoinable) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """``joined`` for the async API."""
    if isinstance(connection, psycopg.AsyncConnection):
        yield connection
        return
    match framework(connection):
        case "sqlalchemy":
            from queueing.integrations import sqlalchemy

            yield await sqlalchemy.async_connection_of(connection)
        case "django":
            raise UnusableConnection(
                "Django's transactions are sync only: enqueue on the sync Queue, "
                "from sync code (e.g. through asgiref's sync_to_async)"
            )
        case _:
            hint = " (use the sync Queue)" if isinstance(connection, psycopg.Connection) else ""
            raise UnusableConnection(
                f"queue.aio's connection= takes {SUPPORTED_ASYNC}; got {describe(connection)}{hint}"
            )
