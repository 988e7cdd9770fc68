"""The worker's registration: its worker id, and the finisher that writes under that id.

A job's outcome must be written with the worker id that claimed it: the database fences
out any other (``queueing_finish_v4``). So an id and its finisher travel together, as one
``Registered`` value: the claim loop takes the current one *with* each claim and hands
the claimed jobs that finisher. When the worker's row is gone (a rescuer took this
worker for dead, or it was forgotten) ``replace`` registers again; jobs claimed under the
new id go to the new finisher, while the old finisher still writes what the jobs of the
old id produce (the database fences those out: their attempts were given back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass

import psycopg

from queueing import logs
from queueing.worker.connection import Connection
from queueing.worker.finisher import Finisher
from queueing.worker.metrics import WorkerMetrics
from queueing.worker.services import Services


def where_this_runs() -> dict[str, object]:
    """The host and process id a worker registers with (shown on the dashboard)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


@dataclass(frozen=True)
class Registered:
    """One registration: the worker id and the finisher that writes under it."""

    worker_id: int
    finisher: Finisher


class Registration:
    """Owns the worker's current registration and every finisher it has had."""

    def __init__(
        self,
        conn: Connection,
        database_url: str,
        services: Services,
        *,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._conn, self._url, self._services = conn, database_url, services
        self._lock = asyncio.Lock()
        self._all: list[Registered] = []
        self._replacing: set[asyncio.Task[None]] = set()
        self._metrics = metrics
        #: Set whenever a finisher committed outcomes of jobs a concurrency limit counted
        #: (``Claimed.limited``): they left "active" in the database, so their slots are
        #: free for a claim only now (a handler's end frees the worker's slot earlier).
        self.committed = asyncio.Event()

    @property
    def current(self) -> Registered:
        """The registration new claims are made under."""
        return self._all[-1]

    @property
    def finishers(self) -> list[Finisher]:
        return [r.finisher for r in self._all]

    async def register(self) -> Registered:
        """Register a new worker row and start its finisher."""
        rows = await self._conn.fetch("register_worker", where_this_runs())
        finisher = Finisher(rows[0]["worker_id"], self._url, self._metrics, self.committed)
        self._services.start(finisher)
        registered = Registered(finisher.worker_id, finisher)
        self._all.append(registered)
        return registered

    async def replace(self, lost_worker_id: int, *, running: int) -> Registered:
        """The row of ``lost_worker_id`` is gone: register again, once per loss.

        Several callers may find the loss (a claim's foreign-key error, the heartbeat);
        the first registers, the others get its registration. Raises the database's errors.
        """
        async with self._lock:
            if self.current.worker_id != lost_worker_id:
                return self.current
            registered = await self.register()
        logs.event(
            "worker.registration_lost",
            logging.WARNING,
            old_worker_id=lost_worker_id,
            worker_id=registered.worker_id,
            running=running,
        )
        return registered

    def replace_soon(self, lost_worker_id: int, *, running: int) -> None:
        """``replace`` in a task of its own (for the heartbeat, which must not wait);
        if the database refuses, the next beat finds the loss again."""
        task = asyncio.create_task(self._replace_quietly(lost_worker_id, running))
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _replace_quietly(self, lost_worker_id: int, running: int) -> None:
        with contextlib.suppress(psycopg.Error):
            await self.replace(lost_worker_id, running=running)

    # --- all finishers, for the claim loop and shutdown ---------------------------

    @property
    def written(self) -> int:
        """Outcomes committed so far, under every registration."""
        return sum(f.written for f in self.finishers)

    @property
    def pending(self) -> int:
        """Outcomes submitted and not yet committed."""
        return sum(f.pending for f in self.finishers)

    def job_ids(self) -> set[int]:
        """The jobs whose outcomes wait to be written."""
        return set().union(*(f.job_ids() for f in self.finishers))

    def retry_now(self) -> None:
        """The database answers again: every finisher retries its held outcomes now."""
        for finisher in self.finishers:
            finisher.retry_now()

    async def flushed(self) -> None:
        """Return once every submitted outcome is committed."""
        for finisher in self.finishers:
            await finisher.flushed()

    async def close(self) -> None:
        """Let every finisher write what it holds, and wait until they stopped."""
        finishers = self.finishers
        for finisher in finishers:
            finisher.close()
        await self._services.wait(finishers)

    async def unregister(self) -> None:
        """Delete the current worker row (a clean stop). Raises the database's errors.

        Once more on a new connection if the shared one turns out lost: at a stop after
        an outage it may have died with the old server while idle (the claim loop, which
        would have replaced it, has stopped), and its first use is what reports it
        (AdminShutdown). The row would stay until a rescuer took the worker for dead.
        """
        params = {"worker_id": self.current.worker_id}
        try:
            await self._conn.fetch("unregister_worker", params)
        except psycopg.OperationalError:
            await self._conn.drop()
            await self._conn.fetch("unregister_worker", params)
