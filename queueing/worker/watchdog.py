"""Tells when something blocks the worker's event loop, and which job it is.

An async handler that calls a blocking function stops every other async job, the claim
loop and the listener of its worker for as long as it blocks. The heartbeat runs in a
thread and goes on (``heartbeat.py``), so the worker is not taken for dead; this
watchdog makes the block visible instead: a thread pings the loop every ``PING_EVERY``
seconds, and when a ping has waited ``BLOCKED_AFTER`` seconds it logs
``worker.loop_blocked`` with the job whose task holds the loop, then
``worker.loop_unblocked`` with how long it lasted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from queueing import logs
from queueing.worker.running import JOB_TASK_PREFIX

PING_EVERY = 0.1
BLOCKED_AFTER = 1.0


class LoopWatchdog:
    """Watches one event loop from a thread of its own."""

    def __init__(self, blocked_after: float = BLOCKED_AFTER) -> None:
        self.blocked_after = blocked_after
        self._stopping = threading.Event()
        self._answered = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="queueing-watchdog", daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._answered = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def waited(self) -> float:
        """Seconds since the loop last answered a ping (~``PING_EVERY`` while it runs;
        readable from any thread)."""
        return time.monotonic() - self._answered

    def _pong(self) -> None:
        self._answered = time.monotonic()

    def _run(self) -> None:
        blocked_since: float | None = None
        while not self._stopping.wait(PING_EVERY):
            try:
                self._loop.call_soon_threadsafe(self._pong)
            except RuntimeError:
                return  # the loop is closed
            waited = time.monotonic() - self._answered
            if blocked_since is None and waited >= self.blocked_after:
                blocked_since = self._answered
                self._report_blocked(waited)
            elif blocked_since is not None and waited < self.blocked_after:
                logs.event(
                    "worker.loop_unblocked",
                    logging.WARNING,
                    blocked_s=round(self._answered - blocked_since, 3),
                )
                blocked_since = None

    def _report_blocked(self, waited: float) -> None:
        # Read from this thread while the loop is stuck inside that task's step; a dict
        # lookup, safe under the GIL.
        task = asyncio.current_task(self._loop)
        name = task.get_name() if task is not None else None
        job_id = (
            int(name[len(JOB_TASK_PREFIX) :]) if name and name.startswith(JOB_TASK_PREFIX) else None
        )
        logs.event(
            "worker.loop_blocked",
            logging.WARNING,
            job_id=job_id,
            task=name,
            blocked_s=round(waited, 3),
        )
