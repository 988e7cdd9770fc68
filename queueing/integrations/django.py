"""Django (4.2+, on psycopg 3): the psycopg connection under Django's ``connection``.

Install with ``pip install 'queueing[django]'`` and pass Django's connection::

    from django.db import connection, transaction

    with transaction.atomic():
        order = Order.objects.create(...)
        queue.enqueue(send_receipt, {"order": order.pk}, connection=connection)

Inside ``transaction.atomic()`` the job commits with the block, and a nested ``atomic()``
(a savepoint) that rolls back takes its jobs with it. Outside any ``atomic()`` Django runs
in autocommit, and the job, like every other write there, commits at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import django
import psycopg
from django.db import connections
from django.db.transaction import TransactionManagementError

from queueing.errors import UnusableConnection
from queueing.integrations import describe

__all__ = ["joined"]

MINIMUM = (4, 2)
"""The first Django with a psycopg 3 backend."""


@contextlib.contextmanager
def joined(obj: Any) -> Iterator[psycopg.Connection[Any]]:
    """The psycopg connection of Django's ``connection`` (a ``DatabaseWrapper``, or the
    ``django.db.connection`` proxy), in its current transaction.

    A database error in the block marks the enclosing ``atomic()`` for rollback, as an
    error in one of Django's own queries does. UnusableConnection for another database,
    psycopg2, an older Django, or an ``atomic()`` block already marked for rollback."""
    alias = getattr(obj, "alias", None)
    if not isinstance(alias, str):  # e.g. transaction.atomic() passed for the connection
        raise UnusableConnection(
            f"connection= takes Django's connection (django.db.connection or "
            f"connections[alias]); got {describe(obj)}"
        )
    wrapper = connections[alias]  # the proxy forwards; this is the wrapper itself
    if django.VERSION < MINIMUM:
        raise UnusableConnection("queueing joins Django's transactions from Django 4.2 on")
    if wrapper.vendor != "postgresql":
        raise UnusableConnection(
            f"Django database {wrapper.alias!r} is {wrapper.vendor}: queueing joins "
            "transactions on PostgreSQL through psycopg 3 only"
        )
    try:
        wrapper.validate_no_broken_transaction()
    except TransactionManagementError as exc:
        raise UnusableConnection(f"Django database {wrapper.alias!r}: {exc}") from exc
    wrapper.ensure_connection()
    raw = wrapper.connection
    if not isinstance(raw, psycopg.Connection):
        raise UnusableConnection(
            f"Django database {wrapper.alias!r} runs on {describe(raw)}: queueing needs "
            "psycopg 3 (pip install 'psycopg[binary]'; Django prefers it over psycopg2)"
        )
    try:
        yield raw
    except Exception:
        # Django learns of its own queries' errors through its cursor wrapper, not of ours:
        # tell it, so the atomic block rolls back instead of failing at the next query.
        broken = raw.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        if broken and wrapper.in_atomic_block:
            wrapper.set_rollback(True)
        raise
