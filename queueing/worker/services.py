"""How the worker runs its services: each one a task, supervised, started and stopped together.

A service is anything with a ``name`` and an ``async run()`` that works until it is
cancelled (or returns when it has nothing left to do). ``Services`` starts each under
``supervise`` and stops them all; it holds no state of any service.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Iterable
from typing import Any, Protocol

from queueing import logs
from queueing.drivers import first_line
from queueing.worker.backoff import ReconnectBackoff


class Service(Protocol):
    """A part of the worker that runs beside the claim loop."""

    @property
    def name(self) -> str: ...

    async def run(self) -> None: ...


class Services:
    """The worker's running services: start each, stop some or all."""

    def __init__(self) -> None:
        self._tasks: dict[Service, asyncio.Task[None]] = {}

    def start(self, service: Service) -> None:
        """Run ``service`` under ``supervise`` as a task of its own."""
        self._tasks[service] = asyncio.create_task(supervise(service), name=service.name)

    async def wait(self, services: Iterable[Service]) -> None:
        """Return once these services' ``run`` returned by itself."""
        await asyncio.gather(*(self._tasks[s] for s in services), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel every service still running and wait until each has ended."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def supervise(service: Service) -> None:
    """Run a service; if it dies of an error, log it and start it again (with backoff).

    Each service handles the database's errors itself; this is for the ones nobody
    foresaw. A dead listener or finisher would otherwise go unnoticed while the worker
    kept claiming: jobs picked up late, outcomes never written.
    """
    backoff = ReconnectBackoff(initial=0.5, cap=10.0)
    while True:
        started = time.monotonic()
        try:
            await service.run()
            return
        except Exception as exc:
            if time.monotonic() - started > backoff.cap:
                backoff.reset()  # it ran well for a while: this is a new failure
            delay = backoff.next()
            logs.event(
                "worker.side_task_failed",
                logging.ERROR,
                task=service.name,
                error=first_line(exc),
                error_type=type(exc).__name__,
                traceback="".join(traceback.format_exception(exc))[-4000:],
                retry_in=round(delay, 3),
            )
            await asyncio.sleep(delay)


async def first(*aws: Awaitable[Any], timeout: float | None = None) -> None:
    """Return when the first of ``aws`` completes (or at ``timeout``); cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
