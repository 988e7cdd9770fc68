"""pytest plugin (entry point ``pytest11``): a throwaway queue database per session and
per pytest-xdist worker, emptied before each test that asks for it.

Fixtures:
- ``queueing_database_url``: URL of this session's (this xdist worker's) database.
- ``queueing_app``: the application's ``Queue`` named by the ``queueing_app`` ini
  option (``package.module:attribute``), or None; a conftest may override it.
- ``queue``: the app's Queue (else a fresh ``Queue``) on that database, tables emptied.
- ``aqueue``: ``queue.aio`` for async tests; its connection pool is closed afterwards.
- ``queueing_worker``: a ``QueueWorker``: ``drain()`` runs the queue's jobs until it is
  idle and returns what ran; ``with background():`` runs a worker in a thread.
- ``queue_clock``: a ``QueueClock``: ``advance(seconds)`` makes delayed jobs and retry
  backoffs due without waiting.

Isolation between tests is a DELETE of every queue table, not a rolled-back
transaction: the worker runs on connections of its own, which cannot see a test's
uncommitted jobs (see ``queueing.testing.measure_isolation``).

Option ``--queueing-keep-db`` keeps the database after a failing run.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar, cast

import pytest

from queueing.queue import AsyncQueue, Queue
from queueing.testing import databases
from queueing.testing.clock import QueueClock
from queueing.testing.workers import QueueWorker

F = TypeVar("F", bound=Callable[..., Any])


def async_fixture(fn: F) -> F:
    """A fixture run by pytest-asyncio (strict or auto mode) if installed, else a plain
    one (anyio's plugin runs those for anyio tests)."""
    decorator: Any = pytest.fixture
    try:
        import pytest_asyncio
    except ImportError:
        pass
    else:
        decorator = pytest_asyncio.fixture
    return cast(F, decorator(fn))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("queueing")
    group.addoption(
        "--queueing-keep-db",
        action="store_true",
        default=False,
        help="keep the throwaway queue database(s) after a failing run, and print their URLs",
    )
    parser.addini(
        "queueing_app",
        "the application's Queue as package.module:attribute; the `queue` fixture "
        "points it at the test database",
        default="",
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


@pytest.fixture(scope="session")
def queueing_app(request: pytest.FixtureRequest) -> Queue | None:
    """The application's Queue (ini option ``queueing_app = package.module:attribute``).

    None when the option is unset: ``queue`` is then a fresh Queue with no tasks.
    Override this fixture in a conftest to return the app's Queue another way.
    """
    spec = str(request.config.getini("queueing_app")).strip()
    if not spec:
        return None
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise pytest.UsageError(f"queueing_app must be package.module:attribute, got {spec!r}")
    found = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(found, Queue):
        raise pytest.UsageError(f"queueing_app {spec!r} is a {type(found).__name__}, not a Queue")
    return found


@pytest.fixture
def queue(queueing_database_url: str, queueing_app: Queue | None) -> Iterator[Queue]:
    """A Queue on this session's database, with every queue table emptied first.

    It is the app's Queue (``queueing_app``) pointed at the test database, so its tasks
    run in ``queueing_worker``; else a fresh Queue on which a test may declare tasks.
    """
    databases.reset(queueing_database_url)
    if queueing_app is None:
        q = Queue(queueing_database_url)
    else:
        q = queueing_app
        q.database_url = queueing_database_url  # closes a previous test's pool
    try:
        yield q
    finally:
        q.close()


@async_fixture
async def aqueue(queue: Queue) -> AsyncIterator[AsyncQueue]:
    """``queue.aio`` (the asyncio API) for async tests; its pool is closed afterwards.

    With pytest-asyncio. (Under anyio while pytest-asyncio is in auto mode, the fixture
    would run on pytest-asyncio's loop: use ``queue.aio`` in the test and close it.)
    """
    try:
        yield queue.aio
    finally:
        await queue.aio.close()


@pytest.fixture
def queueing_worker(queue: Queue) -> QueueWorker:
    """Runs the queue's jobs in-process: ``drain()`` until idle, or ``background()``."""
    return QueueWorker(queue)


@pytest.fixture
def queue_clock(queue: Queue) -> QueueClock:
    """Moves the queue's clock: ``advance(seconds)`` makes delayed jobs due now."""
    return QueueClock(queue)
