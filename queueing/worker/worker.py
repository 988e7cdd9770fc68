"""The worker: builds its services, wires them together, runs the claim loop, stops cleanly.

Which service owns what, and who wakes whom, is drawn in docs/design.md ("The worker").
Each service lives in a module of its own; this one holds no rule of theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import EllipsisType

import psycopg

from queueing import drivers, logs, ops
from queueing.errors import ConfigurationError
from queueing.queue import Queue, check_queue_name
from queueing.retention import Retention
from queueing.schedules import Schedule
from queueing.worker.abort_watch import AbortWatch
from queueing.worker.claim_loop import ClaimLoop
from queueing.worker.connection import Connection
from queueing.worker.health import Health
from queueing.worker.heartbeat import Heartbeat
from queueing.worker.listener import Listener
from queueing.worker.metrics import WorkerMetrics
from queueing.worker.outcome import Interrupted
from queueing.worker.progress import ProgressWriter
from queueing.worker.pruner import Pruner
from queueing.worker.registration import Registration, where_this_runs
from queueing.worker.rescuer import Rescuer
from queueing.worker.running import RunningJobs, WorkerStats
from queueing.worker.scheduler import Scheduler
from queueing.worker.services import Services, first
from queueing.worker.status_server import StatusServer
from queueing.worker.vacuumer import Vacuumer
from queueing.worker.watchdog import LoopWatchdog

#: After a forced stop, how long outcomes may still take to be written before they are
#: abandoned (the database is away; a rescuer gives their jobs back).
FORCED_FLUSH_TIMEOUT = 2.0


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker runs (see ``Worker``); checked once, when it is built."""

    concurrency: int = 100
    queues: Sequence[str] | None = None
    poll_interval: float = 1.0
    shutdown_timeout: float = 30.0
    heartbeat_interval: float = 5.0
    stall_timeout: float = 30.0
    rescue_interval: float = 10.0
    retention: Retention | None = field(default_factory=Retention)
    prune_interval: float = 10.0
    batch_size: int = 100
    #: Serve /metrics, /healthz and /readyz on this port (0: any free one; None: no server).
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"  # all interfaces: Prometheus scrapes from other hosts
    #: The scheduler's longest wait between rounds (it wakes at each tick anyway).
    schedule_interval: float = 10.0
    #: Look this often whether the queue's tables need a VACUUM (None: never; see
    #: queueing/worker/vacuumer.py).
    vacuum_interval: float | None = 10.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        intervals = [self.heartbeat_interval, self.rescue_interval, self.prune_interval]
        intervals.append(self.schedule_interval)
        if self.vacuum_interval is not None:
            intervals.append(self.vacuum_interval)
        if min(intervals) <= 0:
            raise ValueError(
                "heartbeat, rescue, prune, schedule and vacuum intervals must be positive"
            )
        if self.stall_timeout <= self.heartbeat_interval:
            raise ValueError(
                f"stall_timeout ({self.stall_timeout}s) must exceed heartbeat_interval "
                f"({self.heartbeat_interval}s), or live workers would be rescued"
            )
        if self.queues:
            object.__setattr__(self, "queues", [check_queue_name(q) for q in self.queues])


class Worker:
    """Runs the jobs of a ``Queue``'s tasks.

    ``concurrency`` jobs at most run at once (async handlers on the event loop, plain
    functions in a thread each). ``queues`` limits which queues are served (default: all).
    On ``stop()`` it claims nothing more, lets running jobs finish for up to
    ``shutdown_timeout`` seconds, then cancels them and puts them back to pending; it
    keeps heartbeating while they finish.

    It heartbeats every ``heartbeat_interval`` seconds. Every ``rescue_interval``
    seconds it gives back the active jobs of workers silent for ``stall_timeout``
    seconds (one worker at a time does a round). Every ``prune_interval`` seconds it
    applies ``retention`` (default: the Queue's, ``Queue(retention=...)``; ``None``: this
    worker never prunes). Every ``vacuum_interval`` seconds it vacuums the queue's
    tables if they hold many dead rows and no vacuum ran since (``None``: never; see
    ``queueing.worker.vacuumer``). It runs the due ticks of the Queue's schedules
    (``Queue.schedule``), waking at each tick, or after ``schedule_interval`` seconds at
    most. Raises ValueError for
    settings that cannot work (see ``WorkerSettings``).

    ``metrics``: where it reports its Prometheus metrics (default: a ``WorkerMetrics`` of
    its own when ``metrics_port`` is set, else none). ``metrics_port``: serve them, and
    the ``/healthz`` and ``/readyz`` probes, over HTTP on ``metrics_host:metrics_port``.
    """

    def __init__(
        self,
        queue: Queue,
        *,
        concurrency: int = 100,
        queues: Sequence[str] | None = None,
        poll_interval: float = 1.0,
        shutdown_timeout: float = 30.0,
        heartbeat_interval: float = 5.0,
        stall_timeout: float = 30.0,
        rescue_interval: float = 10.0,
        retention: Retention | EllipsisType | None = ...,
        prune_interval: float = 10.0,
        batch_size: int = 100,
        metrics: WorkerMetrics | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "0.0.0.0",
        schedule_interval: float = 10.0,
        vacuum_interval: float | None = 10.0,
    ) -> None:
        self.queue = queue
        kept = queue.retention if retention is ... else retention
        self.settings = WorkerSettings(
            concurrency, queues, poll_interval, shutdown_timeout, heartbeat_interval,
            stall_timeout, rescue_interval, kept, prune_interval, batch_size,
            metrics_port, metrics_host, schedule_interval, vacuum_interval,
        )  # fmt: skip
        if metrics is None and metrics_port is not None:
            metrics = WorkerMetrics()
        self.metrics = metrics
        self.stats = WorkerStats()
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._registration: Registration | None = None

    @property
    def worker_id(self) -> int | None:
        """The current registration's worker id (None before ``run`` registered)."""
        return self._registration.current.worker_id if self._registration else None

    @property
    def worker_ids(self) -> list[int]:
        """Every worker id this worker has run under (it registers again if its row is lost)."""
        return [f.worker_id for f in self._registration.finishers] if self._registration else []

    def stop(self, *, force: bool = False) -> None:
        """Ask for a graceful stop (``force``: skip the grace period).

        Safe from a signal handler or another thread.
        """
        for ev in [self._stop, self._force] if force else [self._stop]:
            if self._loop is not None and self._loop.is_running():
                self._loop.call_soon_threadsafe(ev.set)
            else:
                ev.set()

    async def run(self, *, until_idle: bool = False) -> WorkerStats:
        """Run until ``stop()``; with ``until_idle``, until no job is due now and none runs."""
        self._loop = asyncio.get_running_loop()
        self._registration, parts = await _Parts.build(
            self.queue, self.settings, self.stats, self.metrics
        )
        place = where_this_runs()  # as registered: the dashboard's /workers shows them
        try:
            await parts.start(self._loop, self._stop)
            logs.event(
                "worker.started",
                worker_id=self.worker_id,
                host=place["host"],
                pid=place["pid"],
                concurrency=self.settings.concurrency,
                queues=self.settings.queues or "all",
                tasks=len(self.queue.tasks),
                metrics_port=parts.status.port if parts.status else None,
            )
            self.started.set()
            await parts.claim_loop.run(self._stop, until_idle=until_idle)
        finally:
            await parts.stop(self._force)
            logs.event(
                "worker.stopped",
                worker_id=self.worker_id,
                claimed=self.stats.claimed,
                finished=self._registration.written,
            )
        return self.stats


@dataclass
class _Parts:
    """One run's services, wired. Built by ``build``; started and stopped as one."""

    url: str
    settings: WorkerSettings
    conn: Connection
    services: Services
    registration: Registration
    running: RunningJobs
    progress: ProgressWriter
    claim_loop: ClaimLoop
    #: None when listening is off (QUEUEING_LISTEN_DATABASE_URL=off): the loop polls.
    listener: Listener | None
    aborts: AbortWatch
    heartbeat: Heartbeat
    watchdog: LoopWatchdog
    metrics: WorkerMetrics | None
    schedules: dict[str, Schedule]
    status: StatusServer | None = None

    @classmethod
    async def build(
        cls, queue: Queue, s: WorkerSettings, stats: WorkerStats, metrics: WorkerMetrics | None
    ) -> tuple[Registration, _Parts]:
        """Check the schema and register (raising the typed error if either fails), then
        build every service and wire who wakes whom."""
        url = queue.database_url
        conn, services = Connection(url), Services()
        registration = Registration(conn, url, services, metrics=metrics)
        async with drivers.async_translate_errors():
            try:
                await drivers.run_async(ops.check_schema(), await conn.get())
                await registration.register()
            except BaseException:
                await conn.close()
                raise
        progress = ProgressWriter(url)
        running = RunningJobs(queue, progress, stats, metrics)

        heartbeat = Heartbeat(
            url,
            s.heartbeat_interval,
            worker_id=lambda: registration.current.worker_id,
            # Called on the loop (from the heartbeat's thread): this worker's row is gone.
            on_lost=lambda lost: registration.replace_soon(lost, running=len(running)),
        )

        def database_back() -> None:
            # Outcomes held during the outage are written now and the heartbeat beats
            # now, rather than each when its own backoff or interval ends.
            heartbeat.beat_now()
            registration.retry_now()

        claim_loop = ClaimLoop(
            conn, registration, running, queues=s.queues, concurrency=s.concurrency,
            batch_size=s.batch_size, poll_interval=s.poll_interval,
            on_database_back=database_back, metrics=metrics,
        )  # fmt: skip
        aborts = AbortWatch(conn, running, interval=s.heartbeat_interval)
        # Past a transaction-mode pooler, LISTEN needs a direct URL (docs/pooling.md).
        listen_url = queue.listen_database_url
        listener = (
            Listener(listen_url, s.queues, claim_loop.wake, aborts.look_now)
            if listen_url is not None
            else None
        )
        parts = cls(
            url, s, conn, services, registration, running, progress, claim_loop, listener,
            aborts, heartbeat, LoopWatchdog(), metrics, dict(queue.schedules),
        )  # fmt: skip
        return registration, parts

    async def start(self, loop: asyncio.AbstractEventLoop, stopping: asyncio.Event) -> None:
        """Start the services; return once LISTEN is active, so no hint is missed (at
        once when listening is off: the claim loop then polls every ``poll_interval``)."""
        s = self.settings
        await self.progress.open()
        self.heartbeat.start(loop)
        self.watchdog.start(loop)
        self._serve_status(stopping)
        self.services.start(self.aborts)
        self.services.start(
            Rescuer(
                self.url,
                interval=s.rescue_interval,
                stall_timeout=s.stall_timeout,
                metrics=self.metrics,
            )
        )
        if s.retention is not None:
            self.services.start(Pruner(self.url, interval=s.prune_interval, retention=s.retention))
        if s.vacuum_interval is not None:
            self.services.start(Vacuumer(self.url, interval=s.vacuum_interval))
        if self.schedules:
            self.services.start(Scheduler(self.url, self.schedules, interval=s.schedule_interval))
        if self.listener is None:
            logs.event("worker.not_listening", poll_interval=s.poll_interval)
            return
        self.services.start(self.listener)
        await first(self.listener.connected.wait(), stopping.wait())

    def _serve_status(self, stopping: asyncio.Event) -> None:
        """Start the metrics and probes server, if the settings ask for one."""
        s, metrics = self.settings, self.metrics
        if metrics is None:
            return
        metrics.watch(
            concurrency=s.concurrency,
            running=lambda: len(self.running),
            pending=lambda: self.registration.pending,
        )
        if s.metrics_port is None:
            return
        health = Health(
            self.url, self.watchdog, self.heartbeat,
            stall_timeout=s.stall_timeout, draining=stopping.is_set,
        )  # fmt: skip
        probes = {"/healthz": health.live, "/readyz": health.ready}
        try:
            self.status = StatusServer(s.metrics_host, s.metrics_port, metrics.registry, probes)
        except OSError as exc:  # the port is taken, or the address is not this host's
            raise ConfigurationError(
                f"cannot serve metrics on {s.metrics_host}:{s.metrics_port}: {exc.strerror}"
            ) from exc
        self.status.start()

    async def stop(self, force: asyncio.Event) -> None:
        """Drain the running jobs, write their outcomes, stop every service, unregister.

        The heartbeat beats on until the outcomes are written: a draining worker is
        alive and must not be rescued.
        """
        await self._drain(force)
        flushed = await self._flush(force)
        await self.heartbeat.stop()
        self.watchdog.stop()
        if self.status is not None:
            self.status.stop()
        if flushed:
            await self.registration.close()  # finishers end by themselves once flushed
        await self.services.stop()
        if flushed:
            # Not when outcomes were abandoned: unregistering would leave their jobs
            # active under no worker (the rescuer gives those back at once, but the
            # heartbeat's silence says the same within stall_timeout anyway).
            with contextlib.suppress(psycopg.Error):
                await self.registration.unregister()
        await self.conn.close()
        await self.progress.close()

    async def _drain(self, force: asyncio.Event) -> None:
        """Let running jobs finish for up to ``shutdown_timeout``, then interrupt them."""
        if len(self.running):
            logs.event(
                "worker.draining", running=len(self.running), grace_s=self.settings.shutdown_timeout
            )
            await first(self.running.wait(), force.wait(), timeout=self.settings.shutdown_timeout)
            for job_id in self.running.ids():
                self.running.stop(job_id, Interrupted)
            await self.running.wait()

    async def _flush(self, force: asyncio.Event) -> bool:
        """Wait until every outcome is written; False if some had to be abandoned."""
        registration = self.registration
        await first(registration.flushed(), force.wait())
        if registration.pending:
            # Forced: the outcomes get one prompt try more (enough whenever the database
            # answers, as the interrupted jobs' must be written to go back to pending).
            registration.retry_now()
            await first(registration.flushed(), timeout=FORCED_FLUSH_TIMEOUT)
        abandoned = registration.pending
        if abandoned:
            # The database is away: these jobs stay active under this worker, whose
            # heartbeat stops, so a rescuer gives them back once it looks stalled.
            logs.event("worker.outcomes_abandoned", logging.ERROR, jobs=abandoned)
        return not abandoned
