"""Row-level security: show job records to end users straight from PostgreSQL.

Migration 0005 ships a read API for applications whose end users query the database
themselves (Supabase-style) or whose server code reads jobs with the end user's rights:

- the view ``queueing_api_jobs`` (and the function ``queueing_api_jobs_v1(job_id)``)
  lists the jobs the current actor may see, newest first;
- ``queueing_api_cancel_v1(job_id)`` cancels one of them (same rules as
  ``Queue.cancel``) and returns the outcome as text.

Grant the NOLOGIN role ``queueing_app`` to the application's role (``GRANT queueing_app
TO web_user``); it holds nothing else. Then, in every transaction that reads jobs on an
end user's behalf, call :func:`set_actor` first. With no actor set, the API shows no
rows and cancels nothing: it fails closed.

The actor is a setting of the transaction, so it is gone at commit or rollback: a
pooled connection never carries one request's actor into the next request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from queueing import drivers, integrations, ops
from queueing.errors import ConfigurationError
from queueing.limits import check_id
from queueing.models import Actor

if TYPE_CHECKING:
    from queueing.integrations import AsyncJoinable, Joinable

__all__ = ["set_actor", "set_actor_async"]


def set_actor(conn: Joinable, actor: Actor) -> None:
    """Act for ``actor`` (a tenant's admin or user) until the current transaction ends.

    ``conn`` must be in a transaction (``with conn.transaction():``, or a connection
    without autocommit): outside one, the setting would end with this very statement.
    It may be a SQLAlchemy Session or Connection, or Django's connection, as for
    ``Queue.enqueue(connection=...)`` (``queueing.integrations``).
    """
    with integrations.joined(conn) as lent:
        _check(actor, autocommit=lent.autocommit, status=lent.info.transaction_status)
        drivers.run_sync(ops.set_actor(actor), lent, lent=True)


async def set_actor_async(conn: AsyncJoinable, actor: Actor) -> None:
    """:func:`set_actor` for an async connection (or a SQLAlchemy AsyncSession)."""
    async with integrations.joined_async(conn) as lent:
        _check(actor, autocommit=lent.autocommit, status=lent.info.transaction_status)
        await drivers.run_async(ops.set_actor(actor), lent, lent=True)


def _check(actor: Actor, *, autocommit: bool, status: psycopg.pq.TransactionStatus) -> None:
    if actor.rights == "system":
        raise ConfigurationError(
            f"the {actor.kind} actor does not read through the row-level security API: "
            "connect as the queue's owner role instead"
        )
    if actor.tenant_id is None:
        raise ConfigurationError(f"a {actor.kind} actor needs a tenant_id")
    if actor.kind == "user" and actor.user_id is None:
        raise ConfigurationError("a user actor needs a user_id")
    check_id("tenant_id", actor.tenant_id)
    check_id("user_id", actor.user_id)
    if autocommit and status == psycopg.pq.TransactionStatus.IDLE:
        raise ConfigurationError(
            "set_actor needs a transaction: call it inside `with conn.transaction():`"
        )
