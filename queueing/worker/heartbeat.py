"""The heartbeat: proof to rescuers that this worker process is alive, from a thread.

Not a task on the event loop: an async handler that blocks the loop (a blocking call
where an ``await`` was meant) would stop a heartbeat there, and after ``stall_timeout``
a rescuer would give every job of this live worker to others, to run a second time.
So the heartbeat beats from a thread of its own on a connection of its own, and what
blocks the loop is reported by the ``LoopWatchdog`` instead (``worker.loop_blocked``).

A heartbeat says the process lives, not that each job progresses: a handler that hangs
is bounded by its task's ``timeout=``, not by rescue.

When the beat finds this worker's row gone, the thread tells the event loop
(``on_lost(worker_id)``), which registers again (``Registration.replace``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from queueing import drivers, logs, sql
from queueing.config import CONNECT_TIMEOUT, connect_options
from queueing.worker.backoff import ReconnectBackoff

#: How long ``stop`` waits for a beat in flight to end.
STOP_TIMEOUT = CONNECT_TIMEOUT + 1.0


class Heartbeat:
    """Beats every ``interval`` seconds (and at once on ``beat_now``) from a thread."""

    def __init__(
        self,
        database_url: str,
        interval: float,
        worker_id: Callable[[], int],
        on_lost: Callable[[int], None],
    ) -> None:
        self._url = database_url
        self._interval = interval
        self._worker_id = worker_id
        self._on_lost = on_lost
        self._now = threading.Event()
        self._stopping = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._failures = ReconnectBackoff()  # counts failed beats; the interval stays
        #: When the last beat succeeded (time.monotonic()); None before the first.
        self.last_success: float | None = None
        self._thread = threading.Thread(target=self._run, name="queueing-heartbeat", daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start beating; ``on_lost`` is called on ``loop``."""
        self._loop = loop
        self._thread.start()

    def beat_now(self) -> None:
        """Beat now, not at the end of the interval (the database is back)."""
        self._now.set()

    async def stop(self) -> None:
        """Stop beating (after the running jobs are done: a draining worker is alive)."""
        self._stopping.set()
        self._now.set()
        if self._thread.ident is not None:  # it was started
            await asyncio.to_thread(self._thread.join, STOP_TIMEOUT)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._beat()
                self._now.wait(self._interval)
                self._now.clear()
        finally:
            if self._conn is not None:
                self._conn.close()

    def _beat(self) -> None:
        worker_id = self._worker_id()
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._url, autocommit=True, **connect_options())
            alive = self._conn.execute(
                sql.query("heartbeat_alive"), {"worker_id": worker_id}
            ).fetchall()
        except psycopg.Error as exc:
            self._failed(exc)  # the database is away; the next beat tries again
            return
        self.last_success = time.monotonic()
        self._failures.recovered("worker.heartbeat_recovered")
        if not alive:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the worker stopped
                self._loop.call_soon_threadsafe(self._on_lost, worker_id)

    def _failed(self, exc: psycopg.Error) -> None:
        self._failures.next()
        logs.event(
            "worker.heartbeat_failed",
            logging.WARNING,
            error=drivers.first_line(exc),
            failures=self._failures.failures,
        )
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
