"""The app under test: on the plugin's test database (one per xdist worker), reading jobs
as a reader role made for this session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from exports.app import create_app
from fastapi.testclient import TestClient
from psycopg import sql
from psycopg.conninfo import make_conninfo

from queueing import Queue


@pytest.fixture(scope="session")
def reader_url(queueing_database_url: str) -> Iterator[str]:
    """A LOGIN role that is a member of ``queueing_app`` and nothing else (what the app
    reads jobs as in production); roles are per server, so its name has the worker's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"exports_reader_{worker}_{os.getpid()}"
    role = sql.Identifier(name)
    with psycopg.connect(queueing_database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS").format(role))
        conn.execute(sql.SQL("GRANT queueing_app TO {}").format(role))
    yield make_conninfo(queueing_database_url, user=name)
    with psycopg.connect(queueing_database_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
            [name],
        )
        conn.execute(sql.SQL("DROP ROLE {}").format(role))


@pytest.fixture
def client(queue: Queue, reader_url: str) -> Iterator[TestClient]:
    """The app, started (its lifespan creates its table); the queue's tables and its own
    emptied first."""
    with TestClient(create_app(reader_url=reader_url)) as client:
        with psycopg.connect(queue.database_url) as conn:
            conn.execute("DELETE FROM exports")
        yield client
