"""Enqueue inside Django transactions (queueing/integrations/django.py): the job is written
on Django's own psycopg connection, so it commits with ``transaction.atomic()``, rolls
back with it, and disappears with a nested ``atomic()`` (a savepoint) that rolls back.

Django runs in-process with settings configured here (tests/django_setup.py), its
``default`` database being this xdist worker's test database.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection, connections, models, transaction
from django.db.transaction import TransactionManagementError
from django.test import override_settings

from queueing import InvalidPayload, JobStatus, Queue, UnusableConnection
from queueing.testing import QueueWorker
from tests.django_setup import django_on


class Boom(Exception):
    """Raised inside an atomic block by the tests."""


@functools.cache
def order_model() -> Any:
    """The business model (made once per process: Django registers every model class)."""

    class Order(models.Model):  # type: ignore[misc]  # Django has no type hints
        id = models.BigIntegerField(primary_key=True)

        class Meta:
            app_label = "integration"
            db_table = "integration_django_orders"

    return Order


@pytest.fixture
def orders(queue: Queue) -> Iterator[Any]:
    with django_on(queue.database_url):
        model = order_model()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {model._meta.db_table}")
        with connection.schema_editor() as editor:
            editor.create_model(model)
        yield model


def committed(queue: Queue, order: Any) -> tuple[list[int], list[str]]:
    """Order ids and job task names visible from outside (a connection of its own)."""
    with psycopg.connect(queue.database_url) as conn:
        table = order._meta.db_table
        orders = [r[0] for r in conn.execute(f"SELECT id FROM {table} ORDER BY id")]
    return orders, sorted(job.task_name for job in queue.list_jobs())


def test_atomic_commits_the_job_with_the_order(queue: Queue, orders: Any) -> None:
    with transaction.atomic():
        orders.objects.create(id=1)
        job = queue.enqueue("ship", {"order": 1}, connection=connection)
        # Read back through Django's connection, whose loaders are Django's (jsonb as text).
        assert queue.get_job(job.id, connection=connection).args == {"order": 1}
        assert committed(queue, orders) == ([], [])  # not before the block commits
    assert committed(queue, orders) == ([1], ["ship"])
    assert queue.get_job(job.id).status is JobStatus.PENDING


def test_rollback_and_exception_leave_neither(queue: Queue, orders: Any) -> None:
    with transaction.atomic():
        queue.enqueue("first_statement", connection=connection)  # nothing begun before it
        transaction.set_rollback(True)
    with transaction.atomic():
        orders.objects.create(id=1)
        queue.enqueue("rolled_back", connection=connection)
        transaction.set_rollback(True)

    def place_order() -> None:
        with transaction.atomic():
            orders.objects.create(id=2)
            queue.enqueue("raised", connection=connection)
            raise Boom

    with pytest.raises(Boom):
        place_order()
    assert committed(queue, orders) == ([], [])


def test_a_job_in_a_rolled_back_savepoint_disappears_with_it(
    queue: Queue,
    orders: Any,
) -> None:
    def add_in_savepoint() -> None:
        with transaction.atomic():  # nested: a savepoint
            orders.objects.create(id=2)
            queue.enqueue("dropped", connection=connection)
            raise Boom

    with transaction.atomic():
        orders.objects.create(id=1)
        queue.enqueue("kept", connection=connection)
        with pytest.raises(Boom):
            add_in_savepoint()
        savepoint = transaction.savepoint()
        queue.enqueue("dropped_too", connection=connection)
        transaction.savepoint_rollback(savepoint)
        with transaction.atomic():
            queue.enqueue("released", connection=connection)
    assert committed(queue, orders) == ([1], ["kept", "released"])


def test_outside_atomic_the_job_commits_at_once_like_any_django_write(
    queue: Queue,
    orders: Any,
) -> None:
    queue.enqueue("autocommitted", connection=connections["default"])
    assert committed(queue, orders) == ([], ["autocommitted"])


def test_records_read_the_same_without_use_tz(queue: Queue, orders: Any) -> None:
    """Without USE_TZ Django loads timestamptz as naive datetimes; the record's stay aware."""
    connection.close()
    with override_settings(USE_TZ=False), transaction.atomic():
        job = queue.enqueue("ship", connection=connection)
        read = queue.get_job(job.id, connection=connection)
    connection.close()
    assert job.created_at.tzinfo is not None and read.created_at == job.created_at


def test_a_worker_runs_the_committed_job(
    queue: Queue,
    orders: Any,
    queueing_worker: QueueWorker,
) -> None:
    @queue.task(name="ship")
    def ship(order: int) -> str:
        return f"shipped {order}"

    with transaction.atomic():
        orders.objects.create(id=7)
        job = queue.enqueue(ship, {"order": 7}, connection=connection)
    with transaction.atomic():
        queue.enqueue(ship, {"order": 8}, connection=connection)
        transaction.set_rollback(True)
    assert queueing_worker.drain().outcomes == {job.id: "completed"}
    assert queue.get_job(job.id).result == "shipped 7"


def test_a_database_error_marks_the_atomic_block_for_rollback(
    queue: Queue,
    orders: Any,
) -> None:
    """As an error in Django's own queries does: the block's next query is refused by
    Django itself, and the block rolls back."""
    with transaction.atomic():
        orders.objects.create(id=1)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL ROLE queueing_app")  # no privilege on the job table
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            queue.enqueue("ship", connection=connection)
        with pytest.raises(TransactionManagementError):
            orders.objects.count()
    assert committed(queue, orders) == ([], [])


def test_refusals_write_nothing(queue: Queue, orders: Any) -> None:
    with pytest.raises(UnusableConnection, match=r"'sqlite' is sqlite: .*PostgreSQL"):
        queue.enqueue("never", connection=connections["sqlite"])
    with pytest.raises(UnusableConnection, match=r"takes Django's connection .*Atomic"):
        queue.enqueue("never", connection=transaction.atomic())
    with transaction.atomic():
        orders.objects.create(id=1)
        with pytest.raises(InvalidPayload):  # bad input: raised before anything is written
            queue.enqueue("bad", {"n": 1}, priority=2**40, connection=connection)
        queue.enqueue("valid", connection=connection)
        transaction.set_rollback(True)
        with pytest.raises(UnusableConnection, match=r"'default': .*until the end of the"):
            queue.enqueue("never", connection=connection)
    assert committed(queue, orders) == ([], [])


async def test_the_async_api_refuses_djangos_connection(queue: Queue) -> None:
    with pytest.raises(UnusableConnection, match="Django's transactions are sync only"):
        await queue.aio.enqueue("never", connection=connection)
    assert queue.list_jobs() == []
