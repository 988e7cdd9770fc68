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

When the database goes away (a restart, a failover, a killed connection) the worker
stays up: the claim loop retries with an exponential backoff (``ReconnectBackoff``), cut short
when the listener gets through again; jobs already running go on, and their outcomes
wait in the finisher until they can be written. Every side task catches the database's
errors itself, and a side task that dies anyway is logged and started again
(``_supervise``), so no part of the worker is lost to an outage.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
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
from queueing.worker.backoff import ReconnectBackoff
from queueing.worker.execute import (
    Cancelled,
    Claimed,
    ClaimLost,
    Interrupted,
    Outcome,
    error_json,
    execute,
)
from queueing.worker.finisher import Finisher
from queueing.worker.listener import Listener
from queueing.worker.maintenance import Pruner, Rescuer

#: How long a progress report may wait for the database (as long as psycopg_pool's
#: default wait for a connection) before the handler gets the error.
PROGRESS_TIMEOUT = 30.0
#: After a forced stop, how long outcomes may still take to be written before they are
#: abandoned (the database is away; a rescuer gives their jobs back).
FORCED_FLUSH_TIMEOUT = 2.0


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
        # One connect at a time: the claim loop, the heartbeat and the abort watch share
        # the connection, and two racing reconnects would leak one of them.
        self._conn_lock = asyncio.Lock()
        self._claim_backoff = ReconnectBackoff()
        # The claim connection was lost: a claim may have committed unseen (see
        # _give_back_lost_claims).
        self._claim_maybe_lost = False
        self._beat_now = asyncio.Event()
        self._listener_ran = False
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
            _spawn("queueing-listener", functools.partial(self._listen, listener)),
            _spawn("queueing-heartbeat", self._heartbeat),
            _spawn("queueing-aborts", self._abort_watch),
            _spawn("queueing-rescuer", rescuer.run),
        ]
        if self.retention is not None:
            pruner = Pruner(self._connect, interval=self.prune_interval, retention=self.retention)
            side.append(_spawn("queueing-pruner", pruner.run))
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
            flushed = await self._shutdown()
            finishers = list(self._finishers)
            for task in side:
                # Finishers stop by themselves once flushed; all else (and finishers
                # whose outcomes were abandoned) is cancelled.
                if not flushed or not task.get_name().startswith("queueing-finisher"):
                    task.cancel()
            for finisher in finishers:
                finisher.close()
            await asyncio.gather(*side, return_exceptions=True)
            if flushed:
                # Not when outcomes were abandoned: unregistering would leave their jobs
                # active under no worker (the rescuer gives those back at once, but the
                # heartbeat's silence says the same within stall_timeout anyway).
                with contextlib.suppress(psycopg.Error):
                    await self._execute("unregister_worker", {"worker_id": self.worker_id})
            if self._conn is not None:
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
        self._side.append(_spawn(f"queueing-finisher-{worker_id}", finisher.run))
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
                try:
                    claimed = await self._claim(limit)
                except psycopg.Error as exc:
                    await self._claim_failed(exc)
                    continue
                self._claim_succeeded()
                for job in claimed:
                    self._start(job, finisher)
                if self._claim_maybe_lost and await self._give_back_lost_claims(finisher):
                    continue  # they are pending again: claim them
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

    async def _shutdown(self) -> bool:
        """Drain the running jobs, then wait until their outcomes are written.

        During a database outage the outcomes wait for the database; a forced stop
        (a second signal) gives up on them instead. Returns whether all were written.
        """
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
        finishers = list(self._finishers)
        await _first(_all_flushed(finishers), self._force.wait())
        if any(f.pending for f in finishers):
            # Forced: the outcomes get one prompt try more (enough whenever the database
            # answers, as the interrupted jobs' must be written to go back to pending).
            for finisher in finishers:
                finisher.retry_now()
            await _first(_all_flushed(finishers), timeout=FORCED_FLUSH_TIMEOUT)
        abandoned = sum(f.pending for f in finishers)
        if abandoned:
            # The database is away: these jobs stay active under this worker, whose
            # heartbeat stops, so a rescuer gives them back once it looks stalled.
            logs.event("worker.outcomes_abandoned", logging.ERROR, jobs=abandoned)
        return not abandoned

    async def _listen(self, listener: Listener) -> None:
        """Run the listener; when it is run again after it died (see ``_supervise``),
        wake the claim loop once it listens: hints sent while it was dead were lost."""
        if not self._listener_ran:
            self._listener_ran = True
            await listener.run()
            return
        listener.connected.clear()  # it may have died with it set
        waker = asyncio.create_task(self._wake_when_listening(listener))
        try:
            await listener.run()
        finally:
            waker.cancel()

    async def _wake_when_listening(self, listener: Listener) -> None:
        await listener.connected.wait()
        logs.event("worker.listener_restarted", logging.WARNING)
        self._wake.set()

    # --- cancel requests ------------------------------------------------------

    async def _abort_watch(self) -> None:
        while True:
            await self._abort_check.wait()
            self._abort_check.clear()
            if not self._running:
                continue
            try:
                rows = await self._fetch("cancel_requested", {"ids": list(self._running)})
            except psycopg.Error:
                continue  # the heartbeat sets _abort_check again on its next beat
            for row in rows:
                running = self._running.get(row["id"])
                if running is not None and running.stop_reason is None:
                    running.stop_reason = Cancelled
                    running.ctx._cancelled.set()
                    running.task.cancel()
                    logs.event("job.cancel_requested", job_id=row["id"], task=running.job.task_name)

    async def _heartbeat(self) -> None:
        failures = ReconnectBackoff()  # counts the failed beats; the interval stays the same
        while True:
            # The claim loop asks for a beat as soon as the database is back, so that
            # this worker looks alive again before any rescuer looks (see Rescuer).
            await _first(self._beat_now.wait(), timeout=self.heartbeat_interval)
            self._beat_now.clear()
            worker_id = self.worker_id
            try:
                alive = await self._fetch("heartbeat_alive", {"worker_id": worker_id})
            except psycopg.Error as exc:
                alive = None  # the database is away; the next beat tries again
                failures.next()
                logs.event(
                    "worker.heartbeat_failed",
                    logging.WARNING,
                    error=first_line(exc),
                    failures=failures.failures,
                )
            else:
                ended = failures.reset()
                if ended is not None:
                    logs.event(
                        "worker.heartbeat_recovered", failures=ended[0], outage_s=round(ended[1], 3)
                    )
            if alive == []:
                assert worker_id is not None
                with contextlib.suppress(psycopg.Error):
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
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        async with self._conn_lock:
            if self._conn is None or self._conn.closed:
                self._conn = await self._connect()
                # The connection was lost (run() made the first one): whichever of the
                # claim, heartbeat or abort watch met the loss first, a claim may have
                # committed unseen on it.
                self._claim_maybe_lost = True
            return self._conn

    async def _drop_conn(self) -> None:
        """Close the shared connection after a connection-level error (it may be half
        broken, e.g. cut mid-reply); the next user connects again."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def _fetch(self, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        conn = await self._ensure_conn()
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.query(name), params or {})
            return await cur.fetchall()

    async def _execute(self, name: str, params: dict[str, Any]) -> None:
        conn = await self._ensure_conn()
        await conn.execute(sql.query(name), params)

    async def _claim(self, limit: int) -> list[Claimed]:
        """Claim up to ``limit`` due jobs. Raises the database's errors (see _claim_failed)."""
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

    async def _claim_failed(self, exc: psycopg.Error) -> None:
        """Wait out a failed claim: the backoff's next delay, or less if the listener
        gets through (the database is back) or we are asked to stop."""
        delay = self._claim_backoff.next()
        connection_lost = isinstance(exc, psycopg.OperationalError)
        logs.event(
            "worker.claim_failed",
            logging.WARNING if connection_lost else logging.ERROR,
            error=first_line(exc),
            error_type=type(exc).__name__,
            failures=self._claim_backoff.failures,
            retry_in=round(delay, 3),
        )
        if connection_lost:
            self._claim_maybe_lost = True
            await self._drop_conn()
        # _wake was cleared before the claim: set since, it is the listener reconnecting
        # (or a notification reaching it), so the database answers again.
        await _first(self._stop.wait(), self._wake.wait(), timeout=delay)

    def _claim_succeeded(self) -> None:
        ended = self._claim_backoff.reset()
        if ended is None:
            return
        failures, outage = ended
        logs.event("worker.claim_recovered", failures=failures, outage_s=round(outage, 3))
        # The database is back: outcomes held during the outage are written now and the
        # heartbeat beats now, rather than each when its own backoff or interval ends.
        self._beat_now.set()
        for finisher in self._finishers:
            finisher.retry_now()

    async def _give_back_lost_claims(self, finisher: Finisher) -> int:
        """Give back the jobs claimed for this worker by a claim whose reply was lost.

        A claim is one autocommitted statement: when its connection dies it may have
        committed without the worker seeing the rows, and those jobs would stay active
        under a worker that heartbeats and never runs them. So after the connection was
        lost the claim loop asks the database what it holds for this worker; whatever is neither
        running here nor awaiting its outcome goes back to pending as "interrupted"
        (which does not use up an attempt). Only the claim loop claims, and it is here,
        so no claim can be in flight. Returns how many were given back.
        """
        known = set(self._running).union(*(f.job_ids() for f in self._finishers))
        try:
            rows = await self._fetch("claimed_by_worker", {"worker_id": self.worker_id})
        except psycopg.Error:
            return 0  # still set: the next successful claim asks again
        self._claim_maybe_lost = False
        lost = [Claimed(**row) for row in rows if row["id"] not in known]
        for job in lost:
            logs.event("job.claim_lost", logging.WARNING, job_id=job.id, task=job.task_name)
            reason = ClaimLost("the claim committed but its reply was lost")
            finisher.submit(
                Outcome(job, "interrupted", error_json=error_json(reason), error_type="ClaimLost")
            )
        if lost:
            await finisher.flushed()
        return len(lost)

    async def _next_due_in(self) -> float | None:
        try:
            rows = await self._fetch("next_due_in", {"queues": self.queues})
        except psycopg.Error:
            return None  # the next claim finds out what is wrong, and backs off
        seconds = rows[0]["seconds"] if rows else None
        return None if seconds is None else float(seconds)

    async def _write_progress(self, job: Claimed, percent: int, detail: JSON | None) -> None:
        """Write one progress report; return once it is committed.

        A pool of its own: many handlers may report at once, and the claim loop's
        connection must stay free. A connection is held for one statement only, never
        across a handler's work, so ``concurrency`` reporters share the pool's few
        connections however long their jobs run.

        A connection that died while idle in the pool (the database restarted) fails
        on first use; the pool drops it and the report is tried again, on a fresh
        connection, with a backoff while the database is away, for up to
        ``PROGRESS_TIMEOUT`` seconds; then the handler gets the error.
        """
        assert self._progress_pool is not None
        params = {
            "id": job.id,
            "attempt": job.attempts,
            "progress": percent,
            "detail": psycopg.types.json.Jsonb(detail) if detail is not None else None,
        }
        deadline = time.monotonic() + PROGRESS_TIMEOUT
        backoff = ReconnectBackoff(cap=1.0)
        while True:
            try:
                remaining = max(deadline - time.monotonic(), 0.001)
                async with self._progress_pool.connection(timeout=remaining) as conn:
                    await conn.execute(sql.query("set_progress"), params)
                break
            except psycopg.OperationalError:
                delay = backoff.next()
                if time.monotonic() + delay >= deadline:
                    raise
                await asyncio.sleep(delay)
        logs.event("job.progress", job_id=job.id, task=job.task_name, progress=percent)


async def _all_flushed(finishers: Sequence[Finisher]) -> None:
    for finisher in finishers:
        await finisher.flushed()


def _spawn(name: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
    """Start a side task under ``_supervise``."""
    return asyncio.create_task(_supervise(name, run), name=name)


async def _supervise(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run a side task; if it dies of an error, log it and start it again (with backoff).

    Each side task handles the database's errors itself; this is for the ones nobody
    foresaw. A dead listener, heartbeat or finisher would otherwise go unnoticed while
    the worker kept claiming: jobs picked up late, the worker taken for dead, outcomes
    never written.
    """
    backoff = ReconnectBackoff(initial=0.5, cap=10.0)
    while True:
        started = time.monotonic()
        try:
            await run()
            return
        except Exception as exc:
            if time.monotonic() - started > backoff.cap:
                backoff.reset()  # it ran well for a while: this is a new failure
            delay = backoff.next()
            logs.event(
                "worker.side_task_failed",
                logging.ERROR,
                task=name,
                error=first_line(exc),
                error_type=type(exc).__name__,
                traceback="".join(traceback.format_exception(exc))[-4000:],
                retry_in=round(delay, 3),
            )
            await asyncio.sleep(delay)


async def _first(*aws: Any, timeout: float | None = None) -> None:
    """Return when the first of ``aws`` completes (or at ``timeout``); cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
