"""LISTEN for procrastinate's queue notifications and turn them into wake-ups.

A notification is a hint ("look at the database now"), never a fact: a job-inserted
hint wakes the claim loop, an abort hint makes the worker *query* which of its jobs
were asked to stop. Any role may NOTIFY, so a payload is never trusted: one that is not
procrastinate's shape is logged (without its text) and wakes both looks, and no
payload can raise out of the listener. When the connection drops, it
reconnects with backoff and wakes the loop, whose polling covers the gap; so does a
listener started again by its supervisor after it died.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql as pgsql

from queueing import logs, sql
from queueing.drivers import first_line
from queueing.worker.backoff import ReconnectBackoff
from queueing.worker.connection import connect

ANY_QUEUE_CHANNEL = "procrastinate_any_queue_v1"
KNOWN_HINTS = frozenset({"job_inserted", "abort_job_requested"})
MAX_HINT_LENGTH = 200
"""procrastinate's payloads are under 80 characters: a longer one is not decoded at all."""
WARN_EVERY = 60.0
"""Seconds between two warnings about unrecognized payloads (each counts all so far)."""


def channels(queues: Sequence[str] | None) -> list[str]:
    if not queues:
        return [ANY_QUEUE_CHANNEL]
    return [f"procrastinate_queue_v1#{q}" for q in queues]


class Listener:
    """LISTENs on the served queues' channels; calls ``on_job`` for a job hint (and after
    any gap in listening) and ``on_abort`` for an abort hint."""

    name = "queueing-listener"

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
        self.unrecognized = 0
        self._warned_at: float | None = None
        self._listened = False  # it listened before: any new start follows a gap

    async def run(self) -> None:
        """Listen until cancelled; reconnect with backoff after any database error."""
        backoff = ReconnectBackoff()
        self.connected.clear()  # a start after the supervisor restarted it
        while True:
            try:
                async with await connect(self._url) as conn:
                    for channel in self._channels:
                        await conn.execute(
                            sql.query("listen_channel").format(channel=pgsql.Identifier(channel))
                        )
                    self._listening()
                    backoff.reset()
                    async for notify in conn.notifies():
                        self._dispatch(notify.payload)
            except psycopg.Error as exc:
                # Connection lost, or refused in another way (a LISTEN on a standby
                # not yet promoted is ReadOnlySqlTransaction): retry all the same.
                self.connected.clear()
                delay = backoff.next()
                logs.event(
                    "worker.listener_lost",
                    logging.WARNING,
                    error=first_line(exc),
                    retry_in=round(delay, 3),
                )
                await asyncio.sleep(delay)

    def _listening(self) -> None:
        self.connected.set()
        if self._listened:
            self.reconnects += 1
            logs.event("worker.listener_reconnected", logging.WARNING, reconnects=self.reconnects)
            self._on_job()  # hints sent while it was not listening are lost: look now
        self._listened = True

    def _dispatch(self, payload: str) -> None:
        """Turn one notification into a wake-up; never raises, whatever the payload.

        Anyone who can connect may NOTIFY on these channels, so the payload is only
        used to choose which look to take: an abort hint makes the worker query which
        of its jobs were asked to stop, a job hint wakes the claim loop. A payload that
        is not procrastinate's shape takes both looks (each costs one query, and a
        burst of hints is one look), and is logged by its length, never its text, at
        most once per ``WARN_EVERY`` seconds so that a flood cannot flood the logs.
        """
        kind = hint_kind(payload)
        if kind != "abort_job_requested":
            self._on_job()
        if kind != "job_inserted":
            self._on_abort()
        if kind is None:
            self._warn_unrecognized(len(payload))

    def _warn_unrecognized(self, length: int) -> None:
        self.unrecognized += 1
        now = time.monotonic()
        if self._warned_at is not None and now - self._warned_at < WARN_EVERY:
            return
        self._warned_at = now
        logs.event(
            "worker.notification_unrecognized",
            logging.WARNING,
            payload_length=length,
            unrecognized=self.unrecognized,
        )


def hint_kind(payload: str) -> str | None:
    """The ``type`` of a procrastinate notification, or None if the payload is not one.

    procrastinate sends ``{"type": "job_inserted" | "abort_job_requested", "job_id": N}``.
    Nothing else is trusted: the job id is never used (the database is asked instead),
    and the payload is not even decoded when it is longer than any real one, since
    decoding a hostile one may raise anything (a ``[[[[...`` of 8000 bytes raises
    RecursionError in the json module).
    """
    if len(payload) > MAX_HINT_LENGTH or not payload.startswith("{"):
        return None
    try:
        message: Any = json.loads(payload)
    except Exception:  # ValueError, RecursionError, MemoryError...: garbage all the same
        return None
    if not isinstance(message, dict):
        return None
    kind = message.get("type")
    job_id = message.get("job_id")
    if not isinstance(kind, str) or kind not in KNOWN_HINTS:
        return None  # (a list or an object is not even hashable)
    if not isinstance(job_id, int) or isinstance(job_id, bool):
        return None
    return kind
