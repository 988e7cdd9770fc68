"""One LISTEN connection per process, fanned out to every open event stream.

The database notifies ``queueing_jobs_changed_v2`` (payload: the job ids) when a
statement changes jobs' status or progress, while a session registered for it
(``ops.listen_job_changes``), and ``procrastinate_any_queue_v1`` when jobs
are inserted or a cancel is asked of a running one (procrastinate's JSON hints). Each
open event stream holds a ``Subscription``: the ids hinted since it last looked,
coalesced, so a burst of progress reports is one look and a slow client never makes the
feed wait. Hints are only hints: streams re-read the database (the end-user stream
through the row-level-security API) before passing anything on. After a gap in listening
(start, reconnect) every subscription is told to look at everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql as pgsql

from queueing import drivers, ops, sql
from queueing.ops import JOB_CHANGED_CHANNEL, hinted_ids
from queueing.worker.backoff import ReconnectBackoff
from queueing.worker.connection import connect
from queueing.worker.listener import ANY_QUEUE_CHANNEL, hint_kind

MAX_PENDING_IDS = 1000
"""A subscription holding more hinted ids than this looks at everything instead."""


@dataclass(frozen=True)
class Changes:
    """What changed since a stream last looked: these job ids, or everything."""

    ids: frozenset[int]
    everything: bool


class Subscription:
    """The hints one event stream has not looked at yet."""

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._everything = False
        self._ready = asyncio.Event()

    def hint(self, job_id: int | None) -> None:
        """Note a change of ``job_id`` (None: of anything)."""
        if job_id is None or len(self._ids) >= MAX_PENDING_IDS:
            self._everything = True
        else:
            self._ids.add(job_id)
        self._ready.set()

    async def next(self, timeout: float) -> Changes | None:
        """The changes hinted since the last call, once there are any; None at the timeout."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return None
        changes = Changes(frozenset(self._ids), self._everything)
        self._ids.clear()
        self._everything = False
        self._ready.clear()
        return changes


class ChangeFeed:
    """LISTENs on one connection (started by the first subscriber, reconnecting with
    backoff) and hands every hint to every subscription."""

    def __init__(self, database_url: Callable[[], str]) -> None:
        self._url = database_url  # read when it starts: the URL may resolve late
        self._subscriptions: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._listening: asyncio.Event | None = None

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """A subscription for the time of the ``async with`` (an open event stream)."""
        listening = self._start()
        subscription = Subscription()
        self._subscriptions.add(subscription)
        try:
            # Hints sent before LISTEN took effect are lost: the stream starts once it has.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listening.wait(), 10.0)
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    def _start(self) -> asyncio.Event:
        if self._task is None or self._task.done():
            self._listening = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._run(self._listening), name="queueing-web-feed"
            )
        assert self._listening is not None
        return self._listening

    async def stop(self) -> None:
        """Stop listening (the app's shutdown)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, listening: asyncio.Event) -> None:
        backoff = ReconnectBackoff()
        while True:
            try:
                async with await connect(self._url()) as conn:
                    query = sql.query("listen_channel")
                    await conn.execute(query.format(channel=pgsql.Identifier(ANY_QUEUE_CHANNEL)))
                    backoff.recovered("web.listener_reconnected")
                    listening.set()
                    await self._register(conn)
                    self._publish(None)  # what changed while it was not listening
                    async for notify in conn.notifies():
                        for job_id in hinted_job_ids(notify.channel, notify.payload):
                            self._publish(job_id)
            except psycopg.Error as exc:
                listening.clear()
                await asyncio.sleep(backoff.failed("web.listener_lost", exc))

    async def _register(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Register for job-change hints (sent only while someone waits for them). While a
        transaction that changed jobs unannounced keeps that waiting (a long one, still
        open), the streams look at everything every ``REGISTER_WAIT`` seconds instead.
        Its errors stay psycopg's, for ``_run``'s reconnect loop."""
        register = ops.listen_job_changes
        while not await drivers.run_async(register(ops.REGISTER_WAIT), conn, translate=False):
            self._publish(None)

    def _publish(self, job_id: int | None) -> None:
        for subscription in self._subscriptions:
            subscription.hint(job_id)


def hinted_job_ids(channel: str, payload: str) -> list[int | None]:
    """The job ids a notification names; [None] (look at everything) for one it cannot
    read.

    Anyone who can connect may NOTIFY, so nothing here is trusted beyond choosing what
    to re-read: a forged id costs one read and shows nothing the reader may not see.
    """
    if channel == JOB_CHANGED_CHANNEL:
        ids = hinted_ids(payload)
        return [None] if ids is None else [*sorted(ids)]
    if hint_kind(payload) is None:
        return [None]
    job_id = json.loads(payload)["job_id"]
    return [job_id if isinstance(job_id, int) else None]
