"""The library's front: declare tasks, enqueue, read, wait, cancel, retry, migrate.

``Queue`` is the sync API; ``Queue.aio`` (an ``AsyncQueue``) is the same API for
asyncio. Both run the operations of ``queueing.ops`` through ``queueing.drivers``;
neither holds any rule of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import re
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack, overload

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from pydantic import BaseModel

from queueing import concurrency, drivers, integrations, limits, models, ops, queues
from queueing.concurrency import ConcurrencyKey
from queueing.config import connect_options, listen_database_url, resolve_database_url
from queueing.errors import ConfigurationError, InvalidPayload, UnknownTask
from queueing.models import SYSTEM, Actor, EnqueuedJob, Job, JobStatus
from queueing.ops import JobFilter, NewJob, Op
from queueing.queues import QueueInfo
from queueing.retention import Retention, RetentionPolicy
from queueing.retry import DEFAULT_RETRY, RetryPolicy
from queueing.schedules import Schedule, ScheduleInfo, build_schedule, list_schedules
from queueing.tasks import Task, build_task

if TYPE_CHECKING:  # annotations only: see Queue.blueprint
    import procrastinate

    from queueing.integrations import AsyncJoinable, Joinable

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

DEFAULT_QUEUE = "default"
QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")
"""Queue names become part of a LISTEN channel, ``procrastinate_queue_v1#<queue>``, hence
the narrow alphabet, and at most 40 characters: PostgreSQL refuses channel names over 63
bytes, and the prefix takes 23."""

MAX_DELAY = dt.timedelta(days=3650)
PRIORITY_MIN, PRIORITY_MAX = -(2**31), 2**31 - 1  # procrastinate's column is an integer


@dataclass(frozen=True)
class JobRequest:
    """One job to enqueue with ``enqueue_many``."""

    task: Task | str
    args: Mapping[str, Any] | BaseModel | None = None
    tenant_id: str | None = None
    user_id: str | None = None
    priority: int | None = None
    queue: str | None = None
    delay: float | dt.timedelta | None = None
    run_at: dt.datetime | None = None
    dedupe_key: str | None = None
    dedupe_for: float | dt.timedelta | None = None
    #: This job's concurrency key and limit, over its task's (see ``Queue.task``).
    concurrency_key: str | None = None
    concurrency_limit: int | None = None


class JobOptions(TypedDict, total=False):
    """The keyword options of ``enqueue`` (sync and async): ``JobRequest``'s, but the task
    and its arguments."""

    tenant_id: str | None
    user_id: str | None
    priority: int | None
    queue: str | None
    delay: float | dt.timedelta | None
    run_at: dt.datetime | None
    dedupe_key: str | None
    dedupe_for: float | dt.timedelta | None
    concurrency_key: str | None
    concurrency_limit: int | None


class Queue:
    """A job queue in one PostgreSQL database.

    ``database_url``: the argument, else ``QUEUEING_DATABASE_URL``, else
    ``DATABASE_URL``, else an embedded server (see ``queueing.embedded``). Nothing
    connects until the first call that needs the database.

    Calls share a pool of at most ``pool_size`` connections. A call waits up to
    ``pool_timeout`` seconds for one (all busy, or the database away), then raises
    DatabaseUnavailable. A pooled connection that died while idle (the server
    restarted) is replaced before use, so the first call after an outage succeeds.

    ``retention``: how long this queue's finished jobs are kept (a ``Retention``, with
    per-queue overrides, or one ``RetentionPolicy`` for every queue; default
    ``Retention()``: completed 24 h / newest 1,000 per queue, failed and cancelled 7 days).
    Workers of this queue (``queueing worker --app``, ``run_worker``) prune with it, and
    so does ``queueing prune --app``; a retention given to those explicitly wins.
    ConfigurationError for anything else, or a per-queue name no queue can have.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        pool_size: int = 10,
        pool_timeout: float = 30.0,
        retention: Retention | RetentionPolicy | None = None,
    ) -> None:
        self.retention = retention
        self._database_url = database_url
        self._pool_size = pool_size
        self._pool_timeout = pool_timeout
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        # Threads making their first call at once must share one pool, not open one each.
        self._pool_lock = threading.Lock()
        self._schema_checked = False
        self.tasks: dict[str, Task] = {}
        #: The periodic jobs this app declares (``schedule``), by name.
        self.schedules: dict[str, Schedule] = {}
        self.aio = AsyncQueue(self)

    # --- configuration --------------------------------------------------------

    @functools.cached_property
    def blueprint(self) -> procrastinate.Blueprint:
        """procrastinate's task registry; add it to a procrastinate App to interoperate.

        Made on first use (the first task declared): a process that only reads jobs, like
        ``queueing jobs show``, never imports procrastinate (CLI start-up time)."""
        import procrastinate

        return procrastinate.Blueprint()

    @property
    def database_url(self) -> str:
        """The resolved URL (may start the embedded server)."""
        if self._database_url is None:
            self._database_url = resolve_database_url(None)
        return self._database_url

    @database_url.setter
    def database_url(self, url: str) -> None:
        """Point the queue at another database (before first use, e.g. from the CLI)."""
        self.close()
        self._database_url = url

    @property
    def listen_database_url(self) -> str | None:
        """Where ``wait_for``, ``jobs watch`` and the worker LISTEN: QUEUEING_LISTEN_DATABASE_URL
        (a direct URL past a transaction-mode pooler, docs/pooling.md), else the queue's
        URL; None when that setting is ``off``: they poll instead."""
        return listen_database_url(self.database_url)

    @property
    def retention(self) -> Retention:
        """The retention this queue's workers and ``queueing prune --app`` apply."""
        return self._retention

    @retention.setter
    def retention(self, retention: Retention | RetentionPolicy | None) -> None:
        self._retention = _checked_retention(retention)

    @overload
    def task(self, handler: F, /) -> Task: ...
    @overload
    def task(
        self,
        /,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        retry: RetryPolicy | int | None = None,
        timeout: float | None = None,
        concurrency_key: ConcurrencyKey | None = None,
        concurrency_limit: int | None = None,
    ) -> Callable[[F], Task]: ...
    def task(
        self,
        handler: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        retry: RetryPolicy | int | None = None,
        timeout: float | None = None,
        concurrency_key: ConcurrencyKey | None = None,
        concurrency_limit: int | None = None,
    ) -> Task | Callable[[F], Task]:
        """Declare a task (decorator). ``retry`` is a RetryPolicy or a max attempt count.

        ``concurrency_key`` and ``concurrency_limit``: at most that many of the jobs whose
        key is the same run at once, across all workers (``queueing.concurrency``: the key
        is a template over the arguments, ``tenant_id`` and ``user_id``, or a callable of
        the arguments).
        """
        check_queue_name(queue)
        policy = (
            DEFAULT_RETRY
            if retry is None
            else retry
            if isinstance(retry, RetryPolicy)
            else RetryPolicy(max_attempts=retry)
        )

        def register(fn: Callable[..., Any]) -> Task:
            label = str(name or getattr(fn, "__name__", "?"))
            concurrency.check_declared(concurrency_key, concurrency_limit, task=label)
            registered = self.blueprint.task(name=name, queue=queue, priority=priority)(fn)
            task = build_task(
                fn, registered, retry=policy, timeout=timeout,
                concurrency_key=concurrency_key, concurrency_limit=concurrency_limit,
            )  # fmt: skip
            if task.name in self.tasks:
                raise ConfigurationError(f"task {task.name!r} is declared twice")
            self.tasks[task.name] = task
            return task

        return register(handler) if handler is not None else register

    def schedule(
        self,
        task: Task,
        cron: str,
        *,
        args: Mapping[str, Any] | BaseModel | None = None,
        timezone: str = "UTC",
        name: str | None = None,
        catch_up: int = 1,
    ) -> Schedule:
        """Run ``task`` with ``args`` at every tick of ``cron`` (five fields, read in
        ``timezone``): exactly one job per tick, whatever the number of workers.

        Every worker of this app runs the schedules it declares. ``name`` identifies the
        schedule across deploys (default: the task, the cron and the arguments); a task
        may have several schedules. ``catch_up``: after an outage across several ticks,
        how many of the most recent missed ones run (default 1, at most 100). The job of
        a tick is an ordinary job; its handler reads the tick as ``ctx.schedule_tick``.
        ConfigurationError for a bad cron, timezone, catch_up or a second schedule of
        the same name; InvalidPayload for arguments the task refuses.
        """
        if not isinstance(task, Task) or self.tasks.get(task.name) is not task:
            raise ConfigurationError(f"schedule: {task!r} is not a task declared on this queue")
        built = build_schedule(
            task, cron, args=args, timezone=timezone, name=name, catch_up=catch_up
        )
        if built.name in self.schedules:
            raise ConfigurationError(
                f"schedule {built.name!r} is declared twice (give each a distinct name=)"
            )
        self.schedules[built.name] = built
        return built

    def prepare(self, requests: Iterable[JobRequest]) -> list[NewJob]:
        """Validate requests and turn them into rows (no I/O). Raises before any write."""
        now = dt.datetime.now(dt.UTC)
        return [self._prepare_one(r, now) for r in requests]

    def _prepare_one(self, r: JobRequest, now: dt.datetime) -> NewJob:
        task = self._resolve_task(r.task)
        if task is not None:
            args = task.validate_args(r.args)
            name, queue, priority, attempts = (
                task.name,
                task.queue,
                task.priority,
                task.retry.max_attempts,
            )
        else:
            args = _undeclared_task_args(r.args)
            limits.check_task_name(str(r.task))
            name, queue, priority, attempts = (
                str(r.task),
                DEFAULT_QUEUE,
                0,
                DEFAULT_RETRY.max_attempts,
            )
        queue = check_queue_name(queue if r.queue is None else r.queue)
        args_exact = limits.check_payload(args)
        limits.check_id("tenant_id", r.tenant_id)
        limits.check_id("user_id", r.user_id)
        scheduled_at = _scheduled_at(r.delay, r.run_at, now)
        if r.priority is not None:
            priority = _checked_priority(r.priority)
        dedupe_for = _dedupe_window(r.dedupe_key, r.dedupe_for)
        limits.check_id("dedupe_key", r.dedupe_key)
        key, limit = _concurrency(task, r, args)
        return NewJob(
            task_name=name,
            queue=queue,
            priority=priority,
            args=args,
            scheduled_at=scheduled_at,
            tenant_id=r.tenant_id,
            user_id=r.user_id,
            max_attempts=attempts,
            dedupe_key=r.dedupe_key,
            dedupe_for=dedupe_for,
            concurrency_key=key,
            concurrency_limit=limit,
            args_exact=args_exact,
        )

    def _resolve_task(self, task: Task | str) -> Task | None:
        if isinstance(task, Task):
            return task
        if task in self.tasks:
            return self.tasks[task]
        if self.tasks:
            # The registry is known: refuse names it does not hold, rather than
            # enqueue a job no worker of this app can run.
            raise UnknownTask(f"unknown task {task!r} (known: {', '.join(sorted(self.tasks))})")
        if not task:
            raise UnknownTask("a task name is required")
        return None

    # --- connections ----------------------------------------------------------

    def _get_pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        if self._pool is not None:
            return self._pool
        with self._pool_lock:
            if self._pool is not None:
                return self._pool
            url = self.database_url
            drivers.run_sync_at(url, ops.check_schema())
            self._pool = ConnectionPool(
                url,
                min_size=1,
                max_size=self._pool_size,
                timeout=self._pool_timeout,
                open=True,
                name="queueing",
                configure=drivers.fast_json,
                # A connection that died while idle (the server restarted) is replaced
                # before use instead of failing the caller's first call after an outage.
                check=drivers.check_pooled,
                # Autocommit: every operation is one statement (a function call), so it is
                # atomic on its own, and a BEGIN/COMMIT pair would triple its round trips.
                kwargs={**connect_options(), "autocommit": True},
            )
        return self._pool

    def _run(self, op: Op[T], connection: Joinable | None = None) -> T:
        if connection is None:
            with drivers.translate_errors(), self._get_pool().connection() as conn:
                return drivers.run_sync(op, conn)
        # The caller's transaction (or their ORM's): the caller commits.
        with drivers.translate_errors(), integrations.joined(connection) as lent:
            return drivers.run_sync(op, lent, lent=True)

    def _run_waiting(self, wait: Callable[[bool], Op[T]]) -> T:
        """Run the wait ``wait(listen)`` on a connection of its own: one to the listen URL,
        LISTENing; or, when listening is off, one to the queue's URL, polling."""
        self._get_pool()  # the schema check
        listen_url = self.listen_database_url
        op = wait(listen_url is not None)
        return drivers.run_sync_at(listen_url or self.database_url, op, autocommit=True)

    def close(self) -> None:
        """Close the connection pool (the queue may be used again: it reopens)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the API --------------------------------------------------------------

    def enqueue(
        self,
        task: Task | str,
        args: Mapping[str, Any] | BaseModel | None = None,
        *,
        connection: Joinable | None = None,
        **options: Unpack[JobOptions],
    ) -> EnqueuedJob:
        """Enqueue one job; its status record exists once this (or ``connection``'s
        transaction) commits. Bad arguments raise before anything is written.

        With ``dedupe_key``: while a job with that key (in the same tenant) is pending or
        active, that job is returned (``created=False``) instead of a second one; with
        ``dedupe_for`` (seconds or timedelta) also one completed within that window.
        The options are ``JobOptions``' (``JobRequest``'s fields). The record returned is
        an ``EnqueuedJob``: ``created`` says what this call did.

        ``connection``: your transaction, which the job joins (it is written on that very
        connection, and commits or rolls back with it): a psycopg ``Connection``, a
        SQLAlchemy ``Session`` or ``Connection`` on ``postgresql+psycopg``, or Django's
        ``connection`` (``queueing.integrations``). Anything else raises
        ``UnusableConnection`` and writes nothing.
        """
        request = JobRequest(task, args, **options)
        return self._run(ops.enqueue(self.prepare([request])), connection)[0]

    def enqueue_many(
        self, requests: Iterable[JobRequest], *, connection: Joinable | None = None
    ) -> list[Job]:
        """Enqueue many jobs; all or none. Up to ``ops.ENQUEUE_CHUNK`` (500) jobs go in
        one statement; more in statements of that many, pipelined in one transaction
        (each chunk is validated while the server inserts the one before: a bad request
        rolls back the chunks already sent, and raises).

        Each record is an ``EnqueuedJob`` (``created`` is a bool), in request order.
        (Typed ``list[Job]``: a list is invariant, and callers annotate ``list[Job]``.)
        """
        op = self._enqueue_op(requests, connection)
        return [] if op is None else list(self._run(op, connection))

    def _enqueue_op(
        self, requests: Iterable[JobRequest], connection: object
    ) -> Op[list[EnqueuedJob]] | None:
        """The operation that enqueues ``requests``: one statement, or for more than
        ``ops.ENQUEUE_CHUNK`` jobs, pipelined chunks in one transaction, each validated
        while the server inserts the one before. On a connection we were lent, every
        chunk is validated first: a bad request must not leave earlier chunks in the
        caller's transaction for them to commit. None for no request: nothing to run."""
        listed = list(requests)
        if len(listed) <= ops.ENQUEUE_CHUNK or connection is not None:
            rows = self.prepare(listed)
            if len(rows) <= ops.ENQUEUE_CHUNK:
                return ops.enqueue(rows) if rows else None
            return ops.enqueue_chunks(_chunks(rows))
        return ops.enqueue_chunks(self.prepare(part) for part in _chunks(listed))

    def get_job(self, job_id: int, *, connection: Joinable | None = None) -> Job:
        """The job's record; JobNotFound if there is none."""
        return self._run(ops.get_job(job_id), connection)

    def list_jobs(self, filters: JobFilter | None = None, /, **kwargs: Any) -> list[Job]:
        """Newest first. Filters: a JobFilter or its fields as keywords."""
        return self._run(ops.list_jobs(filters or JobFilter(**kwargs)))

    def stats(self) -> list[models.QueueCount]:
        """Job counts per queue and status."""
        return self._run(ops.stats())

    def wait_for(
        self,
        job_id: int,
        statuses: Collection[JobStatus] = models.TERMINAL_STATUSES,
        *,
        timeout: float = 30.0,
    ) -> Job:
        """Block until the job is in one of ``statuses`` (default: any terminal one).

        Woken by LISTEN/NOTIFY on ``listen_database_url``; when that is off, the job is
        read every ``ops.WAIT_POLL_INTERVAL`` seconds. WaitTimeout after ``timeout`` seconds.
        """
        return self._run_waiting(
            lambda listen: ops.wait_for(job_id, statuses, timeout, listen=listen)
        )

    def wait_for_change(self, job: Job, *, timeout: float) -> Job:
        """The job's record once it differs from ``job`` (status, progress), or at the deadline."""
        return self._run_waiting(
            lambda listen: ops.wait_for_change(job.id, job, timeout, listen=listen)
        )

    def cancel(self, job_id: int, *, actor: Actor = SYSTEM) -> Job:
        """Cancel a pending job, or ask an active one to stop. InvalidTransition if terminal."""
        return self._run(ops.cancel(job_id, actor))

    def retry(self, job_id: int, *, actor: Actor = SYSTEM) -> Job:
        """Re-run a failed or cancelled job (same id, attempts continue)."""
        return self._run(ops.retry(job_id, actor))

    def attempts(self, job_id: int) -> list[models.Attempt]:
        """The job's attempt history, oldest first."""
        return self._run(ops.attempts(job_id))

    def run_now(self, job_id: int) -> Job:
        """Make a delayed job, or one waiting out a retry backoff, due now."""
        return self._run(ops.run_now(job_id))

    def list_schedules(self) -> list[ScheduleInfo]:
        """The schedules registered in the database and those this app declares: next run,
        last tick run, its job and that job's status."""
        return self._run(list_schedules(self.schedules))

    def list_queues(self) -> list[QueueInfo]:
        """Every queue holding a job or a setting: jobs pending, active, delayed, failed in
        the last hour, the oldest pending job's age, paused, max_active."""
        return self._run(queues.list_queues())

    def pause_queue(self, name: str) -> QueueInfo:
        """Stop every worker from claiming this queue's jobs (decided in the claim);
        enqueueing goes on, running jobs finish. QueueNotFound for an unknown queue."""
        return self._run(self._queue_change(name, paused=True))

    def resume_queue(self, name: str) -> QueueInfo:
        """Let workers claim this queue's jobs again; they are woken at once."""
        return self._run(self._queue_change(name, paused=False))

    def set_queue_limit(self, name: str, max_active: int | None) -> QueueInfo:
        """At most ``max_active`` jobs of this queue active at once across all workers
        (None: no limit). InvalidPayload for a limit under 1."""
        return self._run(self._queue_change(name, max_active=max_active, set_limit=True))

    def _queue_change(self, name: str, **change: Any) -> Op[QueueInfo]:
        """The operation changing a queue's settings (the name is checked now)."""
        declared = check_queue_name(name) in {t.queue for t in self.tasks.values()}
        return queues.change(name, declared=declared, **change)

    def migrate(self) -> list[int]:
        """Apply the schema; returns the migration versions applied (none if current)."""
        return drivers.run_sync_at(self.database_url, ops.migrate())

    def schema_status(self) -> models.MigrationState:
        """Which schema version the database has, and which this code needs."""
        return drivers.run_sync_at(self.database_url, ops.schema_state())


def _concurrency(
    task: Task | None, r: JobRequest, args: Mapping[str, Any]
) -> tuple[str | None, int | None]:
    """A job's concurrency key and limit: the request's, else its task's (None, None:
    no limit). InvalidPayload when one cannot be made or a key has no limit."""
    template: ConcurrencyKey | None = r.concurrency_key
    if template is None and task is not None:
        template = task.concurrency_key
    limit = r.concurrency_limit
    if limit is None and task is not None:
        limit = task.concurrency_limit
    if limit is not None:
        concurrency.check_limit(limit)
    if template is None:
        if r.concurrency_limit is not None:
            raise InvalidPayload("concurrency_limit needs a concurrency_key")
        return None, None
    if limit is None:
        raise InvalidPayload("a concurrency_key needs a concurrency_limit")
    key = concurrency.job_key(template, args, tenant_id=r.tenant_id, user_id=r.user_id)
    return key, limit


def _checked_retention(retention: object) -> Retention:
    """A Queue's retention: a Retention, one RetentionPolicy for every queue, or None for
    the default. ConfigurationError otherwise, or for a per-queue name no queue can have
    (its policy would never apply)."""
    if retention is None:
        return Retention()
    if isinstance(retention, RetentionPolicy):
        return Retention(default=retention)
    if not isinstance(retention, Retention):
        raise ConfigurationError(
            f"retention must be a Retention or a RetentionPolicy, got {type(retention).__name__}"
        )
    for name in retention.per_queue:
        try:
            check_queue_name(name)
        except InvalidPayload as exc:
            raise ConfigurationError(f"retention per_queue: {exc}") from None
    return retention


def check_queue_name(name: str) -> str:
    """Queue names are checked against QUEUE_NAME: they end up in LISTEN channel names."""
    # fullmatch: "$" would also match before a trailing newline.
    if not isinstance(name, str) or not QUEUE_NAME.fullmatch(name):
        raise InvalidPayload(
            f"invalid queue name {name!r}: use 1-40 letters, digits, '_', '-' or '.'"
        )
    return name


def _chunks(items: list[T]) -> Iterator[list[T]]:
    """``items`` in slices of ``ops.ENQUEUE_CHUNK``."""
    for start in range(0, len(items), ops.ENQUEUE_CHUNK):
        yield items[start : start + ops.ENQUEUE_CHUNK]


def _undeclared_task_args(args: Mapping[str, Any] | BaseModel | None) -> dict[str, Any]:
    """The arguments of a job of a task this queue does not declare: any JSON object."""
    if isinstance(args, BaseModel):
        return args.model_dump(mode="json")
    if args is None or isinstance(args, Mapping):
        return dict(args or {})
    raise InvalidPayload("job arguments must be a JSON object")


def _as_seconds(value: float | dt.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def _scheduled_at(
    delay: float | dt.timedelta | None, run_at: dt.datetime | None, now: dt.datetime
) -> dt.datetime | None:
    """When the job falls due: ``delay`` after ``now``, or at ``run_at``; None: now."""
    if delay is not None and run_at is not None:
        raise InvalidPayload("give a delay or a run-at time, not both")
    if delay is not None:
        seconds = _as_seconds(delay)
        if not 0 <= seconds <= MAX_DELAY.total_seconds():
            raise InvalidPayload(
                f"delay must be between 0 and {MAX_DELAY.days} days, got {seconds:g}s"
            )
        return now + dt.timedelta(seconds=seconds) if seconds else None
    if run_at is not None and run_at.tzinfo is None:
        raise InvalidPayload("run_at must be timezone-aware")
    return run_at


def _checked_priority(priority: object) -> int:
    """A priority the caller gave, checked (procrastinate's column is an integer)."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidPayload(f"priority must be an integer, got a {type(priority).__name__}")
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise InvalidPayload(
            f"priority must be between {PRIORITY_MIN} and {PRIORITY_MAX}, got {priority}"
        )
    return priority


def _dedupe_window(key: str | None, window: float | dt.timedelta | None) -> float | None:
    """``dedupe_for`` in seconds (None: no window); it needs a ``dedupe_key``."""
    if window is None:
        return None
    if key is None:
        raise InvalidPayload("dedupe_for needs a dedupe_key")
    seconds = _as_seconds(window)
    if not 0 <= seconds <= MAX_DELAY.total_seconds():
        raise InvalidPayload(f"dedupe_for must be between 0 and {MAX_DELAY.days} days")
    return seconds


class AsyncQueue:
    """The asyncio twin of ``Queue``'s API (``queue.aio``): same operations, awaited."""

    def __init__(self, queue: Queue) -> None:
        self._queue = queue
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Tasks making their first call at once must share one pool (one lock per loop).
        self._pool_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    async def _get_pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._loop is loop:
            return self._pool
        if self._pool_lock is None or self._pool_lock[0] is not loop:
            self._pool_lock = (loop, asyncio.Lock())
        async with self._pool_lock[1]:
            if self._pool is not None and self._loop is loop:
                return self._pool
            url = self._queue.database_url
            await drivers.run_async_at(url, ops.check_schema())
            self._pool = AsyncConnectionPool(
                url,
                min_size=1,
                max_size=self._queue._pool_size,
                timeout=self._queue._pool_timeout,
                open=False,
                name="queueing-async",
                configure=drivers.fast_json_async,
                check=drivers.check_pooled_async,
                # Autocommit: every operation is one statement (a function call), so it is
                # atomic on its own, and a BEGIN/COMMIT pair would triple its round trips.
                kwargs={**connect_options(), "autocommit": True},
            )
            await self._pool.open()
            self._loop = loop
        return self._pool

    async def _run(self, op: Op[T], connection: AsyncJoinable | None = None) -> T:
        if connection is None:
            pool = await self._get_pool()
            async with drivers.async_translate_errors(), pool.connection() as conn:
                return await drivers.run_async(op, conn)
        async with drivers.async_translate_errors(), integrations.joined_async(connection) as lent:
            return await drivers.run_async(op, lent, lent=True)

    async def _run_waiting(self, wait: Callable[[bool], Op[T]]) -> T:
        """``Queue._run_waiting``, awaited."""
        await self._get_pool()  # the schema check
        listen_url = self._queue.listen_database_url
        op = wait(listen_url is not None)
        url = listen_url or self._queue.database_url
        return await drivers.run_async_at(url, op, autocommit=True)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def enqueue(
        self,
        task: Task | str,
        args: Mapping[str, Any] | BaseModel | None = None,
        *,
        connection: AsyncJoinable | None = None,
        **options: Unpack[JobOptions],
    ) -> EnqueuedJob:
        """See ``Queue.enqueue``."""
        request = JobRequest(task, args, **options)
        op = ops.enqueue(self._queue.prepare([request]))
        return (await self._run(op, connection))[0]

    async def enqueue_many(
        self,
        requests: Iterable[JobRequest],
        *,
        connection: AsyncJoinable | None = None,
    ) -> list[Job]:
        """See ``Queue.enqueue_many``."""
        op = self._queue._enqueue_op(requests, connection)
        return [] if op is None else list(await self._run(op, connection))

    async def get_job(self, job_id: int, *, connection: AsyncJoinable | None = None) -> Job:
        return await self._run(ops.get_job(job_id), connection)

    async def list_jobs(self, filters: JobFilter | None = None, /, **kwargs: Any) -> list[Job]:
        return await self._run(ops.list_jobs(filters or JobFilter(**kwargs)))

    async def stats(self) -> list[models.QueueCount]:
        return await self._run(ops.stats())

    async def wait_for(
        self,
        job_id: int,
        statuses: Collection[JobStatus] = models.TERMINAL_STATUSES,
        *,
        timeout: float = 30.0,
    ) -> Job:
        return await self._run_waiting(
            lambda listen: ops.wait_for(job_id, statuses, timeout, listen=listen)
        )

    async def wait_for_change(self, job: Job, *, timeout: float) -> Job:
        return await self._run_waiting(
            lambda listen: ops.wait_for_change(job.id, job, timeout, listen=listen)
        )

    async def cancel(self, job_id: int, *, actor: Actor = SYSTEM) -> Job:
        return await self._run(ops.cancel(job_id, actor))

    async def retry(self, job_id: int, *, actor: Actor = SYSTEM) -> Job:
        return await self._run(ops.retry(job_id, actor))

    async def attempts(self, job_id: int) -> list[models.Attempt]:
        return await self._run(ops.attempts(job_id))

    async def run_now(self, job_id: int) -> Job:
        return await self._run(ops.run_now(job_id))

    async def list_queues(self) -> list[QueueInfo]:
        """See ``Queue.list_queues``."""
        return await self._run(queues.list_queues())

    async def pause_queue(self, name: str) -> QueueInfo:
        """See ``Queue.pause_queue``."""
        return await self._run(self._queue._queue_change(name, paused=True))

    async def resume_queue(self, name: str) -> QueueInfo:
        """See ``Queue.resume_queue``."""
        return await self._run(self._queue._queue_change(name, paused=False))

    async def set_queue_limit(self, name: str, max_active: int | None) -> QueueInfo:
        """See ``Queue.set_queue_limit``."""
        op = self._queue._queue_change(name, max_active=max_active, set_limit=True)
        return await self._run(op)

    async def list_schedules(self) -> list[ScheduleInfo]:
        """See ``Queue.list_schedules``."""
        return await self._run(list_schedules(self._queue.schedules))
