"""Exponential backoff between retries, shared by the worker's parts that retry the
database: the claim loop, the finisher, the listener, the heartbeat's failure count,
progress reports and the supervision of services; and the log lines of a failed try and
of the recovery that ends an outage."""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import psycopg

from queueing import logs
from queueing.drivers import first_line

#: Reconnection delays: the first retry after ~50 ms (a single dropped connection costs
#: almost nothing), doubling up to 5 s (a long outage costs one attempt every few
#: seconds per worker, and a restart is noticed at most ~5 s late).
BACKOFF_INITIAL = 0.05
BACKOFF_CAP = 5.0


class ReconnectBackoff:
    """Exponential delays between retries, with jitter, and the outage they span.

    (Not ``queueing.Backoff``, which names the shape of a task's retry policy: this one
    paces a worker's retries against an unavailable database.)

    Delay n is drawn from the upper half of ``initial * 2**n`` (capped at ``cap``): the
    jitter spreads the reconnections of many workers after a restart, and drawing from
    the upper half keeps the delays growing, so a long outage costs few attempts.
    """

    def __init__(self, initial: float = BACKOFF_INITIAL, cap: float = BACKOFF_CAP) -> None:
        self.initial = initial
        self.cap = cap
        self.failures = 0
        self._since: float | None = None

    def next(self) -> float:
        """Record one failure; the delay to wait before the next try."""
        if self._since is None:
            self._since = time.monotonic()
        ceiling = min(self.cap, self.initial * 2**self.failures)
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> tuple[int, float] | None:
        """Record a success: how many failures, over how many seconds, it ended (if any)."""
        if self._since is None:
            return None
        ended = (self.failures, time.monotonic() - self._since)
        self.failures = 0
        self._since = None
        return ended

    def failed(self, event: str, exc: psycopg.Error, **fields: Any) -> float:
        """Record a failed try that ``exc`` ended and log it as ``event`` (a warning for a
        lost connection, an error for any other refusal); the delay before the next try."""
        delay = self.next()
        logs.event(
            event,
            logging.WARNING if isinstance(exc, psycopg.OperationalError) else logging.ERROR,
            error=first_line(exc),
            error_type=type(exc).__name__,
            failures=self.failures,
            retry_in=round(delay, 3),
            **fields,
        )
        return delay

    def recovered(self, event: str, **fields: Any) -> None:
        """Record a success; if it ends failures, log ``event`` with how many and how long."""
        ended = self.reset()
        if ended is not None:
            logs.event(event, failures=ended[0], outage_s=round(ended[1], 3), **fields)
