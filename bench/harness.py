"""The benchmark: queueing, stock procrastinate and PgQueuer, side by side on one machine.

All three systems are measured the same way on the same machine, each in a database of its own
(``bench_<system>_<pid>``, created from ``admin_url``, given the system's own schema, dropped at
the end). The jobs are no-op handlers, so every figure is queue overhead.

Bulk enqueue
    ``n_bulk`` jobs in batches of 1000, one round trip per batch (procrastinate's
    ``Task.batch_defer_async``, PgQueuer's list form of ``Queries.enqueue``), one client.
Single enqueue
    ``n_single`` jobs, one call (one round trip, one commit) each, sequential, one client.
Drain
    ``n_drain`` no-op jobs are enqueued (then ``ANALYZE``, as autovacuum would on a live queue),
    then 1 or 2 real worker processes are started (``python -m bench.harness worker ...``).
    Each process imports the system, opens its connections and reports ``ready`` on stdout;
    it then waits for ``go`` on stdin. The clock starts when ``go`` is written and stops when
    the harness, polling every 20 ms, sees no unfinished job left (procrastinate: no ``todo`` /
    ``doing`` row; PgQueuer: the queue table is empty, i.e. every job has been logged as done).
    Nothing is subtracted: worker registration, LISTEN, schema checks and the final status
    writes are inside the window. Interpreter start-up and imports are not (they are printed
    separately as the ``spawn->done`` time for reference).
Latency
    One worker, LISTEN/NOTIFY on (both systems' default, and the fair setting). A warm-up job
    is run first so the worker is idle and listening. Then ``n_latency`` jobs are enqueued one
    at a time at ~50 jobs/s; the harness takes ``time.time()`` right after each enqueue call
    returns (i.e. after its commit), and the handler appends ``time.time()`` taken at its start
    to a file. Latency is handler start minus enqueue return, p50 and p99 in ms. A pick-up can
    beat the enqueue call's return by a fraction of a round trip, so very small or slightly
    negative samples are possible and kept.

Worker settings (printed at run time) are the best reasonable ones found on a 2-core machine
that also runs the PostgreSQL server: see ``PROCRASTINATE_CONCURRENCY`` and
``PGQUEUER_BATCH_SIZE``. Each worker runs on the event loop its own CLI uses: plain asyncio for
procrastinate (``procrastinate worker``), uvloop when installed for PgQueuer (``pgq run``).
PgQueuer uses its psycopg driver (one connection per worker process).

Each figure comes from one run. On a shared 2-core machine the drain figures move by up to 2x
from run to run with the load from other processes (the 1/5/15-minute load average is printed
at the start of each system's bench); compare figures taken in the same run.

Run ``python -m bench`` from the repository root to print all three sets of figures
(``--only``, ``--n-*``, ``--procrastinate-concurrency`` and ``--pgqueuer-batch-size`` adjust it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.queueing_system import METRICS_SYSTEM, QUEUEING_CONCURRENCY

if TYPE_CHECKING:
    from pgqueuer import Queries
    from procrastinate import App

__all__ = ["Figures", "bench_pgqueuer", "bench_procrastinate", "bench_queueing"]

# Worker settings. procrastinate runs one fetch query and one finish query (each its own
# commit) per job, and a worker fetches one job at a time; concurrency lets the finish of one
# job overlap the fetch of the next. 1, 4, 10, 20 and 40 were tried: 10 was at least as good
# as any other (1 was clearly worse), so 10 it is. The pool holds one connection per
# concurrent job plus the LISTEN connection and one spare. PgQueuer dequeues a batch per query
# and buffers completions, so its batch size is the throughput knob: 10 (its default) drained
# at about half the rate of 100..1000, which were alike within noise; 200 is used.
PROCRASTINATE_CONCURRENCY = 10
PGQUEUER_BATCH_SIZE = 200

BULK_BATCH = 1000
LATENCY_RATE_PER_S = 50.0
POLL_INTERVAL_S = 0.02
WORKER_READY_TIMEOUT_S = 60.0
WORKER_STOP_TIMEOUT_S = 30.0
REPO_ROOT = Path(__file__).resolve().parent.parent

Stamp = Callable[[str, float], None]


@dataclass
class Figures:
    system: str  # "procrastinate" / "pgqueuer"
    bulk_enqueue_per_s: float  # jobs enqueued in batches of 1000 (one round trip per batch)
    single_enqueue_per_s: float  # jobs enqueued one call each (sequential, one client)
    drain_1proc_per_s: float  # noop jobs drained by 1 worker process
    drain_2proc_per_s: float  # same with 2 worker processes
    latency_p50_ms: float  # pick-up latency at ~50 jobs/s: enqueue return -> handler start
    latency_p99_ms: float


# --------------------------------------------------------------------------------------------
# The two systems, as seen by the harness (enqueueing client) and by the worker processes.
# --------------------------------------------------------------------------------------------


def _procrastinate_app(conninfo: str, pool_size: int, stamp: Stamp | None) -> App:
    """A procrastinate App over ``conninfo`` with the ``noop`` and ``stamp`` tasks."""
    import procrastinate

    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=conninfo, min_size=pool_size, max_size=pool_size
        )
    )

    @app.task(name="noop")
    async def noop() -> None:
        return None

    @app.task(name="stamp")
    async def stamp_task(key: str) -> None:
        started = time.time()
        if stamp is not None:
            stamp(key, started)

    return app


class _System(Protocol):
    """What the harness needs from a queue: a client, its schema and a few table queries."""

    name: str
    worker_setting: int
    settings_text: str
    clear_sql: str
    pending_sql: str  # one boolean: is any enqueued job not finished yet?
    done_sql: str  # one integer: how many jobs finished successfully
    analyze_sql: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def install(self) -> None: ...
    async def enqueue_batch(self, n: int) -> None: ...
    async def enqueue_one(self) -> None: ...
    async def enqueue_stamp(self, key: str) -> None: ...


class _Procrastinate:
    name = "procrastinate"
    clear_sql = "TRUNCATE procrastinate_jobs RESTART IDENTITY CASCADE"
    pending_sql = (
        "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing'))"
    )
    done_sql = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
    analyze_sql = "ANALYZE procrastinate_jobs"

    def __init__(self, conninfo: str, concurrency: int = PROCRASTINATE_CONCURRENCY) -> None:
        self.app = _procrastinate_app(conninfo, pool_size=2, stamp=None)
        self.worker_setting = concurrency
        self.settings_text = (
            f"procrastinate worker: concurrency={concurrency}, psycopg pool "
            f"min=max={concurrency + 2}, listen_notify=True, fetch_job_polling_interval=5.0 "
            "(default), delete_jobs=never (default), asyncio loop"
        )

    async def open(self) -> None:
        await self.app.open_async()

    async def close(self) -> None:
        await self.app.close_async()

    async def install(self) -> None:
        await self.app.schema_manager.apply_schema_async()

    async def enqueue_batch(self, n: int) -> None:
        await self.app.tasks["noop"].batch_defer_async(*({} for _ in range(n)))

    async def enqueue_one(self) -> None:
        await self.app.tasks["noop"].defer_async()

    async def enqueue_stamp(self, key: str) -> None:
        await self.app.tasks["stamp"].defer_async(key=key)


class _PgQueuer:
    name = "pgqueuer"
    clear_sql = "TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics RESTART IDENTITY"
    pending_sql = "SELECT EXISTS (SELECT 1 FROM pgqueuer)"
    done_sql = "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'"
    analyze_sql = "ANALYZE pgqueuer"

    def __init__(self, conninfo: str, batch_size: int = PGQUEUER_BATCH_SIZE) -> None:
        self.conninfo = conninfo
        self.worker_setting = batch_size
        self.settings_text = (
            f"pgqueuer worker: PgQueuer.run(batch_size={batch_size}, max_concurrent_tasks=None, "
            "dequeue_timeout=30s), psycopg driver (1 connection), LISTEN on, durable tables, "
            f"{'uvloop' if _has_uvloop() else 'asyncio'} loop"
        )
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._queries: Queries | None = None

    async def open(self) -> None:
        from pgqueuer import Queries

        self._conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        self._queries = Queries.from_psycopg_connection(self._conn)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    @property
    def queries(self) -> Queries:
        if self._queries is None:
            raise RuntimeError("open() first")
        return self._queries

    async def install(self) -> None:
        await self.queries.install()

    async def enqueue_batch(self, n: int) -> None:
        await self.queries.enqueue(["noop"] * n, [None] * n, [0] * n)

    async def enqueue_one(self) -> None:
        await self.queries.enqueue("noop", None)

    async def enqueue_stamp(self, key: str) -> None:
        await self.queries.enqueue("stamp", key.encode())


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Worker processes: started by the harness, driven by lines on stdin ("go", then "stop").
# --------------------------------------------------------------------------------------------


def _stamper(path: str) -> tuple[Stamp, Callable[[], None]]:
    """An appender of ``key time`` lines to ``path`` (line-buffered) and its closer."""
    handle = open(path, "a", buffering=1)  # noqa: SIM115 - closed by the returned closer

    def stamp(key: str, started: float) -> None:
        handle.write(f"{key} {started:.6f}\n")

    return stamp, handle.close


async def _ready_then_go() -> None:
    print("ready", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit(f"worker expected 'go' on stdin, got {line!r}")


async def _until_stop(run: asyncio.Task[None]) -> None:
    """Return when the harness writes ``stop`` (or closes stdin); re-raise if ``run`` dies."""
    stop = asyncio.ensure_future(asyncio.to_thread(sys.stdin.readline))
    done, _ = await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
    if run in done:
        run.result()
        raise SystemExit("worker stopped on its own")


async def _procrastinate_worker(conninfo: str, concurrency: int, stamp: Stamp) -> None:
    app = _procrastinate_app(conninfo, pool_size=concurrency + 2, stamp=stamp)
    async with app.open_async():
        await _ready_then_go()
        run: asyncio.Task[None] = asyncio.create_task(
            app.run_worker_async(
                concurrency=concurrency,
                listen_notify=True,
                install_signal_handlers=False,
                wait=True,
            )
        )
        await _until_stop(run)
        # Cancelling run_worker_async is procrastinate's graceful stop: it finishes the
        # running jobs, unregisters the worker, then re-raises the cancellation.
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run


async def _pgqueuer_worker(conninfo: str, batch_size: int, stamp: Stamp) -> None:
    from pgqueuer import Job, PgQueuer

    conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    try:
        pgq = PgQueuer.from_psycopg_connection(conn)

        async def noop(job: Job) -> None:
            return None

        async def stamp_entrypoint(job: Job) -> None:
            started = time.time()
            stamp((job.payload or b"").decode(), started)

        # Registered by call rather than as decorators: where pgqueuer is not installed
        # (CI installs the `test` extra only) mypy sees an untyped decorator otherwise.
        pgq.entrypoint("noop")(noop)
        pgq.entrypoint("stamp")(stamp_entrypoint)

        await _ready_then_go()
        run: asyncio.Task[None] = asyncio.create_task(
            pgq.run(batch_size=batch_size, max_concurrent_tasks=None)
        )
        await _until_stop(run)
        pgq.shutdown.set()  # graceful: in-flight jobs finish, buffers flush
        await run
    finally:
        await conn.close()


def _worker_main(system: str, conninfo: str, setting: int, stamp_file: str) -> None:
    stamp, close = _stamper(stamp_file)
    try:
        if system == "procrastinate":
            asyncio.run(_procrastinate_worker(conninfo, setting, stamp))
        elif system in ("queueing", METRICS_SYSTEM):
            from bench.queueing_system import queueing_worker

            coro = queueing_worker(
                conninfo, setting, stamp, _ready_then_go, _until_stop,
                metrics=system == METRICS_SYSTEM,
            )  # fmt: skip
            asyncio.run(coro)
        elif system == "pgqueuer":
            pgq = _pgqueuer_worker(conninfo, setting, stamp)
            if _has_uvloop():
                import uvloop

                uvloop.run(pgq)
            else:
                asyncio.run(pgq)
        else:
            raise SystemExit(f"unknown system {system!r}")
    finally:
        close()


# --------------------------------------------------------------------------------------------
# Harness.
# --------------------------------------------------------------------------------------------


class _Worker:
    """One worker subprocess of the harness."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def spawn(cls, system: str, conninfo: str, setting: int, stamp_file: str) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.harness",
            "worker",
            system,
            conninfo,
            "--setting",
            str(setting),
            "--stamp-file",
            stamp_file,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
        )
        worker = cls(proc)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), WORKER_READY_TIMEOUT_S)
        if line.strip() != b"ready":
            await worker.kill()
            raise RuntimeError(f"{system} worker did not start (said {line!r})")
        return worker

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    def alive(self) -> bool:
        return self.proc.returncode is None

    async def stop(self) -> None:
        """Ask for a graceful stop; kill only if it does not come within the timeout."""
        if self.alive():
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await self.send("stop")
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            code = await asyncio.wait_for(self.proc.wait(), WORKER_STOP_TIMEOUT_S)
        except TimeoutError:
            await self.kill()
            raise RuntimeError(f"worker {self.proc.pid} did not stop within timeout") from None
        if code != 0:
            raise RuntimeError(f"worker {self.proc.pid} exited with code {code}")

    async def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        await self.proc.wait()


async def _scalar(conn: psycopg.AsyncConnection[Any], query: str) -> Any:
    cur = await conn.execute(query)
    row = await cur.fetchone()
    assert row is not None
    return row[0]


async def _fill(system: _System, n: int) -> None:
    for start in range(0, n, BULK_BATCH):
        await system.enqueue_batch(min(BULK_BATCH, n - start))


async def _bulk_enqueue(system: _System, n: int) -> float:
    started = time.perf_counter()
    await _fill(system, n)
    return n / (time.perf_counter() - started)


async def _single_enqueue(system: _System, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await system.enqueue_one()
    return n / (time.perf_counter() - started)


async def _drain(
    system: _System,
    ctl: psycopg.AsyncConnection[Any],
    conninfo: str,
    n: int,
    procs: int,
    stamp_file: str,
) -> float:
    await ctl.execute(system.clear_sql)
    await _fill(system, n)
    await ctl.execute(system.analyze_sql)
    spawned = time.perf_counter()
    workers = [
        await _Worker.spawn(system.name, conninfo, system.worker_setting, stamp_file)
        for _ in range(procs)
    ]
    try:
        started = time.perf_counter()
        for worker in workers:
            await worker.send("go")
        deadline = started + max(120.0, n / 100)
        while await _scalar(ctl, system.pending_sql):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{system.name}: drain of {n} jobs timed out")
            if not all(worker.alive() for worker in workers):
                raise RuntimeError(f"{system.name}: a worker died during the drain")
            await asyncio.sleep(POLL_INTERVAL_S)
        finished = time.perf_counter()
    finally:
        for worker in workers:
            await worker.stop()
    done = await _scalar(ctl, system.done_sql)
    if done != n:
        raise RuntimeError(f"{system.name}: {done} of {n} jobs recorded as done")
    print(
        f"  drain {procs} proc: {n} jobs in {finished - started:.2f} s "
        f"({n / (finished - started):,.0f}/s; spawn->done {finished - spawned:.2f} s)"
    )
    return n / (finished - started)


def _read_stamps(path: str) -> dict[str, float]:
    stamps: dict[str, float] = {}
    with open(path) as handle:
        for line in handle:
            key, _, value = line.strip().partition(" ")
            if value:
                stamps[key] = float(value)
    return stamps


def _reset_file(path: str) -> None:
    with open(path, "w"):
        pass


async def _wait_for_stamps(path: str, keys: set[str], limit_s: float) -> dict[str, float]:
    deadline = time.perf_counter() + limit_s
    while True:
        stamps = _read_stamps(path)
        if keys <= stamps.keys():
            return stamps
        if time.perf_counter() > deadline:
            missing = len(keys - stamps.keys())
            raise RuntimeError(f"{missing} latency jobs never started")
        await asyncio.sleep(POLL_INTERVAL_S)


async def _latency(
    system: _System,
    ctl: psycopg.AsyncConnection[Any],
    conninfo: str,
    n: int,
    stamp_file: str,
) -> tuple[float, float]:
    await ctl.execute(system.clear_sql)
    _reset_file(stamp_file)
    worker = await _Worker.spawn(system.name, conninfo, system.worker_setting, stamp_file)
    try:
        await worker.send("go")
        # Warm-up: once this job has run, the worker is idle and waiting on LISTEN.
        await system.enqueue_stamp("warmup")
        await _wait_for_stamps(stamp_file, {"warmup"}, 30.0)
        await asyncio.sleep(0.5)
        enqueued: dict[str, float] = {}
        started = time.perf_counter()
        for i in range(n):
            delay = started + i / LATENCY_RATE_PER_S - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            key = str(i)
            await system.enqueue_stamp(key)
            enqueued[key] = time.time()
        stamps = await _wait_for_stamps(stamp_file, set(enqueued), 30.0)
    finally:
        await worker.stop()
    samples = [(stamps[key] - at) * 1000 for key, at in enqueued.items()]
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    print(
        f"  latency: {n} jobs at {LATENCY_RATE_PER_S:.0f}/s: min {min(samples):.2f} ms, "
        f"p50 {cuts[49]:.2f} ms, p99 {cuts[98]:.2f} ms, max {max(samples):.2f} ms"
    )
    return cuts[49], cuts[98]


async def _bench(
    system: _System,
    conninfo: str,
    n_bulk: int,
    n_single: int,
    n_drain: int,
    n_latency: int,
) -> Figures:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"[{system.name}] {system.settings_text}")
    print(f"  machine: {os.cpu_count()} CPUs, load average {load} (1/5/15 min) at start")
    with tempfile.TemporaryDirectory(prefix="bench_baselines_") as tmp:
        stamp_file = str(Path(tmp) / "stamps")
        _reset_file(stamp_file)
        ctl = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        await system.open()
        try:
            await system.install()
            bulk = await _bulk_enqueue(system, n_bulk)
            print(f"  bulk enqueue: {n_bulk} jobs, {bulk:,.0f}/s")
            await ctl.execute(system.clear_sql)
            single = await _single_enqueue(system, n_single)
            print(f"  single enqueue: {n_single} jobs, {single:,.0f}/s")
            drain1 = await _drain(system, ctl, conninfo, n_drain, 1, stamp_file)
            drain2 = await _drain(system, ctl, conninfo, n_drain, 2, stamp_file)
            p50, p99 = await _latency(system, ctl, conninfo, n_latency, stamp_file)
        finally:
            await system.close()
            await ctl.close()
    return Figures(system.name, bulk, single, drain1, drain2, p50, p99)


T = TypeVar("T")


def _with_database(admin_url: str, system: str, run: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    """Run ``run(conninfo)`` against a fresh database that is dropped afterwards."""
    dbname = f"bench_{system}_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        return asyncio.run(run(make_conninfo(admin_url, dbname=dbname)))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )


def bench_queueing(
    admin_url: str,
    *,
    n_bulk: int = 20000,
    n_single: int = 2000,
    n_drain: int = 20000,
    n_latency: int = 300,
    concurrency: int = QUEUEING_CONCURRENCY,
) -> Figures:
    """Measure queueing, with full status tracking (same method as the baselines)."""
    from bench.queueing_system import QueueingSystem

    return _with_database(
        admin_url,
        "queueing",
        lambda conninfo: _bench(
            QueueingSystem(conninfo, concurrency), conninfo, n_bulk, n_single, n_drain, n_latency
        ),
    )


def bench_procrastinate(
    admin_url: str,
    *,
    n_bulk: int = 20000,
    n_single: int = 2000,
    n_drain: int = 20000,
    n_latency: int = 300,
    concurrency: int = PROCRASTINATE_CONCURRENCY,
) -> Figures:
    """Measure stock procrastinate (see the module docstring for the method)."""
    return _with_database(
        admin_url,
        "procrastinate",
        lambda conninfo: _bench(
            _Procrastinate(conninfo, concurrency), conninfo, n_bulk, n_single, n_drain, n_latency
        ),
    )


def bench_pgqueuer(
    admin_url: str,
    *,
    n_bulk: int = 20000,
    n_single: int = 2000,
    n_drain: int = 20000,
    n_latency: int = 300,
    batch_size: int = PGQUEUER_BATCH_SIZE,
) -> Figures:
    """Measure PgQueuer (see the module docstring for the method)."""
    return _with_database(
        admin_url,
        "pgqueuer",
        lambda conninfo: _bench(
            _PgQueuer(conninfo, batch_size), conninfo, n_bulk, n_single, n_drain, n_latency
        ),
    )


async def _metrics_ab(
    conninfo: str, n_drain: int, rounds: int, concurrency: int
) -> dict[str, list[float]]:
    """Drain ``n_drain`` jobs with one worker process, metrics off then on, ``rounds``
    times each, in the order off-on, on-off, off-on...: so that a drift of the machine's
    load weighs on both alike. The drain figures (jobs/s) of each."""
    from bench.queueing_system import QueueingSystem

    off = QueueingSystem(conninfo, concurrency)
    on = QueueingSystem(conninfo, concurrency, metrics=True)
    figures: dict[str, list[float]] = {off.name: [], on.name: []}
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"[metrics A/B] {on.settings_text}")
    print(f"  machine: {os.cpu_count()} CPUs, load average {load} (1/5/15 min) at start")
    with tempfile.TemporaryDirectory(prefix="bench_metrics_") as tmp:
        stamp_file = str(Path(tmp) / "stamps")
        _reset_file(stamp_file)
        ctl = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        try:
            await off.install()
            for round_ in range(rounds):
                for system in (off, on) if round_ % 2 == 0 else (on, off):
                    print(f"  round {round_ + 1}, {system.name}:")
                    drained = await _drain(system, ctl, conninfo, n_drain, 1, stamp_file)
                    figures[system.name].append(drained)
        finally:
            await off.close()
            await on.close()
            await ctl.close()
    return figures


def bench_metrics_cost(
    admin_url: str,
    *,
    n_drain: int = 20000,
    rounds: int = 3,
    concurrency: int = QUEUEING_CONCURRENCY,
) -> dict[str, list[float]]:
    """What the worker's metrics cost: drain throughput with them off and on, alternated
    (``python -m bench run --only queueing --metrics-ab ROUNDS``)."""
    figures = _with_database(
        admin_url, "queueing", lambda c: _metrics_ab(c, n_drain, rounds, concurrency)
    )
    off, on = (statistics.median(figures[k]) for k in ("queueing", METRICS_SYSTEM))
    print()
    for name, runs in figures.items():
        listed = ", ".join(f"{r:,.0f}" for r in runs)
        print(f"{name:<18} drain 1p/s: {listed} (median {statistics.median(runs):,.0f})")
    print(f"metrics cost: {100 * (off - on) / off:+.1f} % of the median drain throughput")
    return figures


def format_table(rows: list[Figures]) -> str:
    """Both systems' figures as a plain-text table."""
    header = (
        f"{'system':<14} {'bulk enq/s':>11} {'single enq/s':>13} {'drain 1p/s':>11} "
        f"{'drain 2p/s':>11} {'lat p50 ms':>11} {'lat p99 ms':>11}"
    )
    lines = [header, "-" * len(header)]
    for f in rows:
        lines.append(
            f"{f.system:<14} {f.bulk_enqueue_per_s:>11,.0f} {f.single_enqueue_per_s:>13,.0f} "
            f"{f.drain_1proc_per_s:>11,.0f} {f.drain_2proc_per_s:>11,.0f} "
            f"{f.latency_p50_ms:>11.2f} {f.latency_p99_ms:>11.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.harness", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="measure both systems (the default)")
    run.add_argument(
        "--admin-url",
        default=os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    run.add_argument("--only", choices=["queueing", "procrastinate", "pgqueuer"])
    run.add_argument("--n-bulk", type=int, default=20000)
    run.add_argument("--n-single", type=int, default=2000)
    run.add_argument("--n-drain", type=int, default=20000)
    run.add_argument("--n-latency", type=int, default=300)
    run.add_argument("--queueing-concurrency", type=int, default=QUEUEING_CONCURRENCY)
    run.add_argument("--procrastinate-concurrency", type=int, default=PROCRASTINATE_CONCURRENCY)
    run.add_argument("--pgqueuer-batch-size", type=int, default=PGQUEUER_BATCH_SIZE)
    run.add_argument(
        "--metrics-ab",
        type=int,
        metavar="ROUNDS",
        help="with --only queueing: only the drain, metrics off and on alternately, "
        "ROUNDS times each (what the worker's metrics cost)",
    )
    worker = sub.add_parser("worker", help="internal: one worker process of the harness")
    worker.add_argument("system", choices=["queueing", METRICS_SYSTEM, "procrastinate", "pgqueuer"])
    worker.add_argument("conninfo")
    worker.add_argument("--setting", type=int, required=True)
    worker.add_argument("--stamp-file", required=True)
    args = parser.parse_args(argv if argv is not None else (sys.argv[1:] or ["run"]))

    if args.command == "worker":
        _worker_main(args.system, args.conninfo, args.setting, args.stamp_file)
        return

    if args.metrics_ab:
        if args.only != "queueing":
            parser.error("--metrics-ab measures queueing only: add --only queueing")
        bench_metrics_cost(
            args.admin_url,
            n_drain=args.n_drain,
            rounds=args.metrics_ab,
            concurrency=args.queueing_concurrency,
        )
        return

    sizes = {
        "n_bulk": args.n_bulk,
        "n_single": args.n_single,
        "n_drain": args.n_drain,
        "n_latency": args.n_latency,
    }
    rows: list[Figures] = []
    if args.only in (None, "queueing"):
        rows.append(bench_queueing(args.admin_url, **sizes, concurrency=args.queueing_concurrency))
    if args.only in (None, "procrastinate"):
        rows.append(
            bench_procrastinate(args.admin_url, **sizes, concurrency=args.procrastinate_concurrency)
        )
    if args.only in (None, "pgqueuer"):
        rows.append(bench_pgqueuer(args.admin_url, **sizes, batch_size=args.pgqueuer_batch_size))
    print()
    print(format_table(rows))


if __name__ == "__main__":
    # Run the importable module's main, so that procrastinate's App is created in
    # ``bench.harness`` rather than ``__main__`` (procrastinate warns about the latter).
    from bench.harness import main as _main

    _main()
