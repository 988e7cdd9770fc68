"""pytest plugin (entry point ``pytest11``): a throwaway queue database per session and
per pytest-xdist worker, emptied before each test that asks for it.

Fixtures:
- ``queueing_database_url``: URL of this session's (this xdist worker's) database.
- ``queue``: a fresh ``queueing.Queue`` on it, with empty tables.
Option ``--queueing-keep-db`` keeps the database after a failing run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from queueing.queue import Queue
from queueing.testing import databases


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("queueing")
    group.addoption(
        "--queueing-keep-db",
        action="store_true",
        default=False,
        help="keep the throwaway queue database(s) after a failing run, and print their URLs",
    )


@pytest.fixture(scope="session")
def queueing_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database of its own for this session (one per xdist worker)."""
    admin = databases.server_url()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"queueing_test_{worker}_{os.getpid()}"
    url = databases.create_database(admin, name)
    failed_before = request.session.testsfailed
    yield url
    if (
        request.config.getoption("--queueing-keep-db")
        and request.session.testsfailed > failed_before
    ):
        print(f"\nqueueing: kept test database {url}")  # noqa: T201 - the user asked for it
        return
    databases.drop_database(admin, name)


@pytest.fixture
def queue(queueing_database_url: str) -> Iterator[Queue]:
    """A Queue on this session's database, with every queue table emptied first."""
    databases.reset(queueing_database_url)
    q = Queue(queueing_database_url)
    yield q
    q.close()
