"""Whether a worker is alive (``/healthz``) and ready (``/readyz``), asked from another
thread (the status server's).

Alive: the event loop answered the watchdog's last ping within the watchdog's bound (an
async handler blocking the loop stops every other job, the claims and the listener), and
the heartbeat succeeded within ``stall_timeout`` (past it, rescuers take this worker's
jobs). Ready: the database answers, with the schema this worker needs, and the worker is
not draining. A database outage makes a worker unready, not dead: a restart would not
bring the database back, and the worker rides outages out by itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from queueing import drivers, ops
from queueing.config import CONNECT_TIMEOUT, connect_options
from queueing.errors import SchemaNotMigrated
from queueing.worker.heartbeat import Heartbeat
from queueing.worker.watchdog import LoopWatchdog

#: How long a readiness probe waits for the database (a probe's own timeout is ~1 s).
READY_CONNECT_TIMEOUT = min(CONNECT_TIMEOUT, 2)


class Health:
    """The liveness and readiness of one worker (see the module doc)."""

    def __init__(
        self,
        database_url: str,
        watchdog: LoopWatchdog,
        heartbeat: Heartbeat,
        *,
        stall_timeout: float,
        draining: Callable[[], bool],
    ) -> None:
        self._url = database_url
        self._watchdog = watchdog
        self._heartbeat = heartbeat
        self._stall_timeout = stall_timeout
        self._draining = draining
        # Until the first beat, the heartbeat is as fresh as the worker.
        self._started = time.monotonic()

    def live(self) -> tuple[bool, str]:
        waited = self._watchdog.waited()
        if waited >= self._watchdog.blocked_after:
            return False, f"event loop blocked for {waited:.1f}s"
        beat = self._heartbeat.last_success
        age = time.monotonic() - (beat if beat is not None else self._started)
        if age >= self._stall_timeout:
            return False, f"no successful heartbeat for {self._stall_timeout:g}s or more"
        return True, f"ok: loop answered {waited:.3f}s ago, heartbeat {age:.1f}s ago"

    def ready(self) -> tuple[bool, str]:
        if self._draining():
            return False, "draining: claims nothing more"
        try:
            options = {**connect_options(), "connect_timeout": READY_CONNECT_TIMEOUT}
            with psycopg.connect(self._url, autocommit=True, **options) as conn:
                state = drivers.run_sync(ops.check_schema(), conn, translate=False)
        except psycopg.Error as exc:
            return False, f"database: {drivers.first_line(exc)}"
        except SchemaNotMigrated as exc:
            return False, str(exc)
        return True, f"ok: schema version {state.current_version}"
