"""LISTEN for procrastinate's queue notifications and turn them into wake-ups.

A notification is a hint ("look at the database now"), never a fact: a job-inserted
hint wakes the claim loop, an abort hint makes the worker *query* which of its jobs
were asked to stop. Garbage payloads are ignored. When the connection drops, it
reconnects with backoff and wakes the loop, whose polling covers the gap.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql as pgsql

from queueing import logs, sql
from queueing.drivers import first_line

ANY_QUEUE_CHANNEL = "procrastinate_any_queue_v1"


def channels(queues: Sequence[str] | None) -> list[str]:
    if not queues:
        return [ANY_QUEUE_CHANNEL]
    return [f"procrastinate_queue_v1#{q}" for q in queues]


class Listener:
    def __init__(
        self,
        database_url: str,
        queues: Sequence[str] | None,
        on_job: Callable[[], None],
        on_abort: Callable[[], None],
    ) -> None:
        self._url = database_url
        self._channels = channels(queues)
        self._on_job = on_job
        self._on_abort = on_abort
        self.connected = asyncio.Event()
        self.reconnects = 0

    async def run(self) -> None:
        backoff = 0.05
        first = True
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                async with conn:
                    for channel in self._channels:
                        await conn.execute(
                            sql.query("listen_channel").format(channel=pgsql.Identifier(channel))
                        )
                    self.connected.set()
                    if not first:
                        self.reconnects += 1
                        logs.event(
                            "worker.listener_reconnected",
                            logging.WARNING,
                            reconnects=self.reconnects,
                        )
                        self._on_job()  # we may have missed hints while away
                    first = False
                    backoff = 0.05
                    async for notify in conn.notifies():
                        self._dispatch(notify.payload)
            except psycopg.OperationalError as exc:
                self.connected.clear()
                logs.event(
                    "worker.listener_lost", logging.WARNING, error=first_line(exc), retry_in=backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _dispatch(self, payload: str) -> None:
        try:
            message: Any = json.loads(payload)
            kind = message.get("type") if isinstance(message, dict) else None
        except ValueError:
            kind = None
        if kind == "abort_job_requested":
            self._on_abort()
        else:
            # job_inserted, or anything we do not understand: looking costs one query.
            self._on_job()
