"""The worker: claim due jobs in batches, run them, record outcomes in batches.

One loop, woken by whichever comes first: a NOTIFY hint, a freed slot, the next
delayed job falling due, the poll interval, or stop. Side tasks: the listener, the
finisher (batched outcome writes), the heartbeat (which also re-checks for cancel
requests, since notifications are only hints), and maintenance: the rescuer (gives
back the jobs of workers that stopped heartbeating) and the pruner (retention).

If the heartbeat finds this worker's row gone (it stalled and was rescued, or was
forgotten), the worker registers again: new claims use the new id, while the jobs
still running under the old one finish with it and are fenced out by the database
(their attempts were given back).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from queueing import drivers, logs, ops, sql
from queueing.context import JobContext
from queueing.drivers import first_line
from queueing.models import JSON
from queueing.queue import Queue, check_queue_name
from queueing.retention import Retention
from queueing.worker.execute import Cancelled, Claimed, Interrupted, Outcome, execute
from queueing.worker.finisher import Finisher
from queueing.worker.listener import Listener
from queueing.worker.maintenance import Pruner, Rescuer


@dataclass
class _Running:
    job: Claimed
    ctx: JobContext
    task: asyncio.Task[Outcome]
    stop_reason: type[Exception] | None = None


@dataclass
class WorkerStats:
    """What a worker did, for tests and the benchmark."""

    claimed: int = 0
    finished: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class Worker:
    """Runs the jobs of a ``Queue``'s tasks.

    ``concurrency`` jobs at most run at once (async handlers on the event loop, sync
    ones in a thread each). ``queues`` limits which queues are served (default: all).
    On ``stop()`` it claims nothing more, lets running jobs finish for up to
    ``shutdown_timeout`` seconds, then cancels them and puts them back to pending; it
    keeps heartbeating while they finish.

    It heartbeats every ``heartbeat_interval`` seconds. Every ``rescue_interval``
    seconds it gives back the active jobs of workers silent for ``stall_timeout``
    seconds (one worker at a time does a round). Every ``prune_interval`` seconds it
    applies ``retention`` (``None``: this worker never prunes).
    """

    def __init__(
        self,
        queue: Queue,
        *,
        concurrency: int = 10,
        queues: Sequence[str] | None = None,
        poll_interval: float = 1.0,
        shutdown_timeout: float = 30.0,
        heartbeat_interval: float = 5.0,
        stall_timeout: float = 30.0,
        rescue_interval: float = 10.0,
        retention: Retention | None = Retention(),  # frozen: one shared default is safe
        prune_interval: float = 60.0,
        batch_size: int = 100,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if heartbeat_interval <= 0 or rescue_interval <= 0 or prune_interval <= 0:
            raise ValueError("heartbeat, rescue and prune intervals must be positive")
        if stall_timeout <= heartbeat_interval:
            raise ValueError(
                f"stall_timeout ({stall_timeout}s) must exceed heartbeat_interval "
                f"({heartbeat_interval}s), or live workers would be rescued"
            )
        self.queue = queue
        self.concurrency = concurrency
        self.queues = [check_queue_name(q) for q in queues] if queues else None
        self.poll_interval = poll_interval
        self.shutdown_timeout = shutdown_timeout
        self.heartbeat_interval = heartbeat_interval
        self.stall_timeout = stall_timeout
        self.rescue_interval = rescue_interval
        self.retention = retention
        self.prune_interval = prune_interval
        self.batch_size = batch_size
        self.worker_id: int | None = None
        self.stats = WorkerStats()
        self._running: dict[int, _Running] = {}
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._abort_check = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="queueing-job"
        )
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._progress_pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._slot_freed = asyncio.Event()
        self._force = asyncio.Event()
        # One finisher per registration: a job's outcome is written with the worker id
        # that claimed it (the newest finisher takes new claims).
        self._finishers: list[Finisher] = []
        self._side: list[asyncio.Task[None]] = []
        self._register_lock = asyncio.Lock()
        self.started = asyncio.Event()

    # --- control --------------------------------------------------------------

    def stop(self, *, force: bool = False) -> None:
        """Ask for a graceful stop (``force``: skip the grace period).

        Safe from a signal handler or another thread.
        """
        events = [self._stop, self._force] if force else [self._stop]
        for ev in events:
            if self._loop is not None and self._loop.is_running():
                self._loop.call_soon_threadsafe(ev.set)
            else:
                ev.set()

    async def run(self, *, until_idle: bool = False) -> WorkerStats:
        """Run until ``stop()``; with ``until_idle``, until no job is due now and none runs."""
        self._loop = asyncio.get_running_loop()
        url = self.queue.database_url
        async with drivers.async_translate_errors():
            self._conn = await self._connect()
            try:
                await drivers.run_async(ops.check_schema(), self._conn)
                self.worker_id = (await self._fetch("register_worker"))[0]["worker_id"]
            except BaseException:
                await self._conn.close()
                raise
        self._progress_pool = AsyncConnectionPool(
            url,
            min_size=0,
            max_size=4,
            open=False,
            name="queueing-progress",
            kwargs={"autocommit": True, "connect_timeout": 5},
        )
        await self._progress_pool.open()
        self._add_finisher(self.worker_id)
        listener = Listener(url, self.queues, self._wake.set, self._abort_check.set)
        rescuer = Rescuer(
            self._connect, interval=self.rescue_interval, stall_timeout=self.stall_timeout
        )
        side = self._side
        side += [
            asyncio.create_task(listener.run(), name="queueing-listener"),
            asyncio.create_task(self._heartbeat(), name="queueing-heartbeat"),
            asyncio.create_task(self._abort_watch(), name="queueing-aborts"),
            asyncio.create_task(rescuer.run(), name="queueing-rescuer"),
        ]
        if self.retention is not None:
            pruner = Pruner(self._connect, interval=self.prune_interval, retention=self.retention)
            side.append(asyncio.create_task(pruner.run(), name="queueing-pruner"))
        # Start claiming only once LISTEN is active, so no hint is missed.
        await _first(listener.connected.wait(), self._stop.wait())
        logs.event(
            "worker.started",
            worker_id=self.worker_id,
            concurrency=self.concurrency,
            queues=self.queues or "all",
            tasks=len(self.queue.tasks),
        )
        self.started.set()
        try:
            await self._claim_loop(until_idle)
        finally:
            # The heartbeat keeps running while the running jobs drain: a draining
            # worker is alive and must not be rescued.
            await self._shutdown()
            finishers = list(self._finishers)
            for task in side:
                if not task.get_name().startswith("queueing-finisher"):
                    task.cancel()
            for finisher in finishers:
                finisher.close()
            await asyncio.gather(*side, return_exceptions=True)
            with contextlib.suppress(psycopg.Error):
                await self._execute("unregister_worker", {"worker_id": self.worker_id})
            await self._conn.close()
            await self._progress_pool.close()
            self._threads.shutdown(wait=False, cancel_futures=True)
            logs.event(
                "worker.stopped",
                worker_id=self.worker_id,
                claimed=self.stats.claimed,
                finished=sum(f.written for f in finishers),
            )
        return self.stats

    def _add_finisher(self, worker_id: int) -> Finisher:
        finisher = Finisher(worker_id, self._connect)
        self._finishers.append(finisher)
        self._side.append(
            asyncio.create_task(finisher.run(), name=f"queueing-finisher-{worker_id}")
        )
        return finisher

    # --- the loop -------------------------------------------------------------

    async def _claim_loop(self, until_idle: bool) -> None:
        slot_freed = self._slot_freed
        while not self._stop.is_set():
            finisher = self._finishers[-1]
            # Clear the wake-ups before looking, so one that fires while we look is kept.
            slot_freed.clear()
            free = self.concurrency - len(self._running)
            wait_for = self.poll_interval
            if free > 0:
                self._wake.clear()
                limit = min(free, self.batch_size)
                # Outcomes written from here on may make a job due (a retry without
                # delay) that this claim's snapshot cannot see.
                written_before = sum(f.written for f in self._finishers)
                claimed = await self._claim(limit)
                for job in claimed:
                    self._start(job, finisher)
                if len(claimed) == limit:
                    continue  # there may be more due right now
                if until_idle and not self._running and not claimed:
                    # Idle = nothing due now and nothing running. Outcomes written since
                    # the claim began may have made a job due: flush them, and claim
                    # once more unless none was written.
                    for pending in self._finishers:
                        await pending.flushed()
                    if sum(f.written for f in self._finishers) == written_before:
                        return
                    continue
                due_in = await self._next_due_in()
                if due_in is not None:
                    wait_for = min(wait_for, max(due_in, 0.0))
            await _first(self._wake.wait(), slot_freed.wait(), self._stop.wait(), timeout=wait_for)

    def _start(self, job: Claimed, finisher: Finisher) -> None:
        assert self._loop is not None
        ctx = JobContext(
            job_id=job.id,
            task_name=job.task_name,
            queue=job.queue_name,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            tenant_id=job.tenant_id,
            user_id=job.user_id,
            _write_progress=functools.partial(self._write_progress, job),
            _loop=self._loop,
        )
        task = self.queue.tasks.get(job.task_name)
        running: _Running
        coro = execute(job, task, ctx, self._threads, lambda: running.stop_reason)
        running = _Running(job, ctx, asyncio.create_task(coro, name=f"queueing-job-{job.id}"))
        self._running[job.id] = running
        self.stats.claimed += 1
        logs.event(
            "job.started",
            job_id=job.id,
            task=job.task_name,
            queue=job.queue_name,
            attempt=job.attempts,
        )
        running.task.add_done_callback(lambda t: self._done(job.id, t, finisher))

    def _done(self, job_id: int, task: asyncio.Task[Outcome], finisher: Finisher) -> None:
        self._running.pop(job_id, None)
        self._slot_freed.set()
        if task.cancelled():  # cannot happen: execute() turns cancellation into an outcome
            return
        outcome = task.result()
        self.stats.finished += 1
        self.stats.outcomes[outcome.kind] = self.stats.outcomes.get(outcome.kind, 0) + 1
        finisher.submit(outcome)

    async def _shutdown(self) -> None:
        if self._running:
            logs.event("worker.draining", running=len(self._running), grace_s=self.shutdown_timeout)
            tasks = [r.task for r in self._running.values()]
            await _first(asyncio.wait(tasks), self._force.wait(), timeout=self.shutdown_timeout)
            for running in list(self._running.values()):
                running.stop_reason = Interrupted
                running.ctx._cancelled.set()
                running.task.cancel()
            if self._running:
                await asyncio.wait([r.task for r in self._running.values()])
        for finisher in list(self._finishers):
            await finisher.flushed()

    # --- cancel requests ------------------------------------------------------

    async def _abort_watch(self) -> None:
        while True:
            await self._abort_check.wait()
            self._abort_check.clear()
            if not self._running:
                continue
            try:
                rows = await self._fetch("cancel_requested", {"ids": list(self._running)})
            except psycopg.OperationalError:
                continue  # the heartbeat re-checks
            for row in rows:
                running = self._running.get(row["id"])
                if running is not None and running.stop_reason is None:
                    running.stop_reason = Cancelled
                    running.ctx._cancelled.set()
                    running.task.cancel()
                    logs.event("job.cancel_requested", job_id=row["id"], task=running.job.task_name)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            worker_id = self.worker_id
            try:
                alive = await self._fetch("heartbeat_alive", {"worker_id": worker_id})
            except psycopg.OperationalError:
                alive = None  # the database is away; the next beat tries again
            if alive == []:
                assert worker_id is not None
                with contextlib.suppress(psycopg.OperationalError):
                    await self._reregister(worker_id)  # else the next beat tries again
            self._abort_check.set()

    async def _reregister(self, lost_id: int) -> None:
        """This worker's row is gone: register again (once per loss)."""
        async with self._register_lock:
            if self.worker_id != lost_id:
                return  # another caller already did
            worker_id: int = (await self._fetch("register_worker"))[0]["worker_id"]
            self.worker_id = worker_id
            self._add_finisher(worker_id)
            logs.event(
                "worker.registration_lost",
                logging.WARNING,
                old_worker_id=lost_id,
                worker_id=worker_id,
                running=len(self._running),
            )

    # --- database -------------------------------------------------------------

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(
            self.queue.database_url, autocommit=True, connect_timeout=5
        )
        drivers.fast_json(conn)
        return conn

    async def _ensure_conn(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await self._connect()
        return self._conn

    async def _fetch(self, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        conn = await self._ensure_conn()
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.query(name), params or {})
            return await cur.fetchall()

    async def _execute(self, name: str, params: dict[str, Any]) -> None:
        conn = await self._ensure_conn()
        await conn.execute(sql.query(name), params)

    async def _claim(self, limit: int) -> list[Claimed]:
        try:
            for _ in range(2):
                worker_id = self.worker_id
                assert worker_id is not None
                conn = await self._ensure_conn()
                try:
                    cur = await conn.execute(
                        sql.query("claim_jobs"),
                        {"queues": self.queues, "worker_id": worker_id, "limit": limit},
                    )
                    return [Claimed(*row) for row in await cur.fetchall()]
                except psycopg.errors.ForeignKeyViolation:
                    # Our worker row is gone (rescued or forgotten before the heartbeat
                    # noticed): the claim took nothing. Register again, claim once more.
                    await self._reregister(worker_id)
            return []
        except psycopg.OperationalError as exc:
            logs.event("worker.claim_failed", logging.WARNING, error=first_line(exc))
            self._conn = None
            await _first(self._stop.wait(), timeout=self.poll_interval)
            return []

    async def _next_due_in(self) -> float | None:
        try:
            rows = await self._fetch("next_due_in", {"queues": self.queues})
        except psycopg.OperationalError:
            return None
        seconds = rows[0]["seconds"] if rows else None
        return None if seconds is None else float(seconds)

    async def _write_progress(self, job: Claimed, percent: int, detail: JSON | None) -> None:
        assert self._progress_pool is not None
        # A pool of its own: many handlers may report at once, and the claim loop's
        # connection must stay free.
        async with self._progress_pool.connection() as conn:
            await conn.execute(
                sql.query("set_progress"),
                {
                    "id": job.id,
                    "attempt": job.attempts,
                    "progress": percent,
                    "detail": psycopg.types.json.Jsonb(detail) if detail is not None else None,
                },
            )
        logs.event("job.progress", job_id=job.id, task=job.task_name, progress=percent)


async def _first(*aws: Any, timeout: float | None = None) -> None:
    """Return when the first of ``aws`` completes (or at ``timeout``); cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
