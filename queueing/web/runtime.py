"""What every request of one dashboard app shares: the queue, the settings, the pools
and the change feed (``app.state.web``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request

from queueing import drivers, ops
from queueing.config import CONNECT_TIMEOUT
from queueing.errors import ConfigurationError
from queueing.models import Actor
from queueing.ops import Op, T
from queueing.queue import Queue
from queueing.rls import set_actor_async
from queueing.web.feed import ChangeFeed

Operator = Callable[[Request], str | None]
"""Who the operator of a request is (their name, recorded with each action), or None:
not signed in (401)."""

ActorResolver = Callable[[Request], Actor | None]
"""Who an end-user request acts for: ``Actor.user(user, tenant)`` or
``Actor.admin(tenant)`` (from the host app's session), or None: not signed in (401)."""


@dataclass(frozen=True)
class EndUsers:
    """The end-user view: who each request acts for, and a database URL whose role is a
    member of ``queueing_app`` (and nothing else): every read and cancel goes through the
    row-level-security API on it (docs/row_level_security.md)."""

    actor: ActorResolver
    database_url: str


class Pool:
    """An async connection pool opened on first use, in the loop that uses it."""

    def __init__(self, url: Callable[[], str], name: str, check_schema: bool) -> None:
        self._url, self._name, self._check_schema = url, name, check_schema
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._lock: asyncio.Lock | None = None

    async def _get(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        if self._pool is not None:
            return self._pool
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._pool is None:
                url = self._url()
                if self._check_schema:
                    await drivers.run_async_at(url, ops.check_schema())
                pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
                    url,
                    min_size=1,
                    max_size=5,
                    open=False,
                    name=self._name,
                    configure=drivers.fast_json_async,
                    check=drivers.check_pooled_async,
                    kwargs={"connect_timeout": CONNECT_TIMEOUT, "autocommit": True},
                )
                await pool.open()
                self._pool = pool
        return self._pool

    async def run(self, op: Op[T], actor: Actor | None = None) -> T:
        """Run ``op``; with ``actor``, in a transaction acting for it (row-level security)."""
        pool = await self._get()
        async with drivers.async_translate_errors(), pool.connection() as conn:
            if actor is None:
                return await drivers.run_async(op, conn)
            async with conn.transaction():
                await set_actor_async(conn, actor)
                return await drivers.run_async(op, conn)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


@dataclass
class Web:
    """One dashboard app's shared state."""

    queue: Queue
    read_only: bool
    operator: Operator | None
    end_users: EndUsers | None
    reader: Pool = field(init=False)
    user_reader: Pool | None = field(init=False)
    feed: ChangeFeed = field(init=False)

    def __post_init__(self) -> None:
        self.reader = Pool(lambda: self.queue.database_url, "queueing-web", check_schema=True)
        end_users = self.end_users
        self.user_reader = (
            None
            if end_users is None
            else Pool(lambda: end_users.database_url, "queueing-web-users", check_schema=False)
        )
        self.feed = ChangeFeed(self._feed_url)

    def _feed_url(self) -> str:
        # The end-user view alone listens as the web role (LISTEN needs no privilege).
        if self.operator is None and self.end_users is not None:
            return self.end_users.database_url
        return self.queue.database_url

    def users(self) -> Pool:
        if self.user_reader is None:
            raise ConfigurationError("the end-user view is not enabled (create_app(end_users=))")
        return self.user_reader

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The app's lifespan: close the pools and stop listening at shutdown."""
        try:
            yield
        finally:
            await self.feed.stop()
            await self.reader.close()
            if self.user_reader is not None:
                await self.user_reader.close()
            await self.queue.aio.close()


def web(request: Request) -> Web:
    """The dashboard state of the app serving ``request``."""
    state: Web = request.app.state.web
    return state
