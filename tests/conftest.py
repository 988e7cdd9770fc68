"""Fixtures shared by the suite (the queueing pytest plugin provides the database and the
``queue`` fixture)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql as pgsql

from queueing import Queue, sql
from queueing.testing import databases
from tests.apps import tasks_app
from tests.helpers import many_connections, pointed_at, unique_name


@pytest.fixture(autouse=True)
def _connection_budget(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests marked ``many_connections`` run one at a time across the suite's processes,
    from before their first fixture opens a connection until the last one closed."""
    if request.node.get_closest_marker("many_connections") is None:
        yield
        return
    with many_connections():
        yield


@pytest.fixture
def app_queue(queue: Queue) -> Iterator[Queue]:
    """The sample app's Queue (what ``--app tests.apps.tasks_app:queue`` loads) on this
    test's database, its tables emptied (by ``queue``)."""
    with pointed_at(tasks_app.queue, queue.database_url) as app:
        yield app


@pytest.fixture
def empty_database() -> Iterator[str]:
    """The URL of a database of this test's own with no schema at all (not migrated);
    dropped after the test."""
    admin = databases.server_url()
    name = unique_name("queueing_empty")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.query("create_database").format(name=pgsql.Identifier(name)))
    try:
        yield databases.with_database(admin, name)
    finally:
        databases.drop_database(admin, name)
