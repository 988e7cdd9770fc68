"""One worker process of the benchmark: ``python -m bench.worker SYSTEM CONNINFO ...``.

Started by the harness (bench/procs.py), it talks over stdin/stdout, one line each:

- it imports its system, connects, and prints ``ready``;
- it waits for ``go`` (every process of a run gets it at once), then runs its system's
  worker; while it runs it prints ``n <handled>`` at most every 50 ms when the count moved;
- on ``stop`` (or stdin closed) it stops its worker gracefully (running jobs finish,
  outcomes are written) and prints ``done <handled> <first start> <last start>``.

Every system runs the same two handlers. ``noop`` does nothing but note its start time;
``stamp`` also writes ``<time before the enqueue call> <handler start>`` to this process's
stamp file (buffered: one write per few hundred jobs), for the pick-up figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO, Any

import psycopg

from bench.queueing_system import METRICS_SYSTEM

REPORT_INTERVAL_S = 0.05


@dataclass
class Recorder:
    """What the handlers of one worker process saw: how many, first and last start."""

    stamps: IO[str] | None
    handled: int = 0
    first: float = 0.0
    last: float = 0.0
    _reported: int = field(default=-1, repr=False)

    def started(self) -> float:
        now = time.time()
        if not self.handled:
            self.first = now
        self.last = now
        self.handled += 1
        return now

    def stamp(self, enqueued_at: float) -> None:
        started = self.started()
        if self.stamps is not None:
            self.stamps.write(f"{enqueued_at:.6f} {started:.6f}\n")

    def report(self) -> None:
        if self.handled != self._reported:
            self._reported = self.handled
            print(f"n {self.handled}", flush=True)

    def final(self) -> str:
        return f"done {self.handled} {self.first:.6f} {self.last:.6f}"


async def _read_line() -> str:
    """The next line from the harness. Read in a daemon thread, not the loop's executor: a
    worker that ends on its own (raising SystemExit) must exit while a read is pending,
    and asyncio.run waits for its executor's threads (the harness then waited for a
    process stuck in that wait until its drain timed out)."""
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str] = loop.create_future()

    def deliver(text: str) -> None:
        if not line.done():
            line.set_result(text)

    def read() -> None:
        text = sys.stdin.readline()
        with contextlib.suppress(RuntimeError):  # the loop is closed: the worker ended
            loop.call_soon_threadsafe(deliver, text)

    threading.Thread(target=read, name="bench-stdin", daemon=True).start()
    return (await line).strip()


async def _wait_go() -> None:
    print("ready", flush=True)
    line = await _read_line()
    if line != "go":
        raise SystemExit(f"worker expected 'go' on stdin, got {line!r}")


async def _run_until_stop(recorder: Recorder, run: Awaitable[Any]) -> None:
    """Run ``run`` (the system's worker) until ``stop`` arrives; report counts meanwhile.
    Returns once stop was asked for; raises if the worker ended on its own first."""
    worker = asyncio.ensure_future(run)
    stop = asyncio.ensure_future(_read_line())
    while True:
        done, _ = await asyncio.wait({worker, stop}, timeout=REPORT_INTERVAL_S)
        recorder.report()
        if worker in done:
            worker.result()
            raise SystemExit("worker stopped on its own")
        if stop in done:
            return


# --------------------------------------------------------------------------------------------
# The three systems' workers.
# --------------------------------------------------------------------------------------------


async def _queueing(
    conninfo: str, concurrency: int, queues: list[str] | None, rec: Recorder, metrics: bool
) -> None:
    from bench.queueing_system import bench_queue
    from queueing import logs
    from queueing.worker import Worker

    # Warnings and errors (a finish retried, a claim lost) with their fields, to stderr.
    logs.configure("warning")
    queue = bench_queue(conninfo, rec)
    # As `queueing worker --concurrency N` builds it: every other setting is the default.
    # metrics: its Prometheus metrics on and served on a free port, as in production
    # (nothing scrapes it: a scrape every 15 s costs nothing a drain can see).
    worker = Worker(
        queue,
        concurrency=concurrency,
        queues=queues,
        metrics_port=0 if metrics else None,
        metrics_host="127.0.0.1",
    )
    await _wait_go()
    run = asyncio.create_task(worker.run())
    try:
        await _run_until_stop(rec, asyncio.shield(run))
    finally:
        worker.stop()
        await run
        await queue.aio.close()
        queue.close()


def procrastinate_app(conninfo: str, pool_size: int, rec: Recorder | None) -> Any:
    import procrastinate

    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=conninfo, min_size=pool_size, max_size=pool_size
        )
    )

    @app.task(name="noop")
    async def noop() -> None:
        if rec is not None:
            rec.started()

    @app.task(name="stamp")
    async def stamp(t: float) -> None:
        if rec is not None:
            rec.stamp(t)

    return app


async def _procrastinate(conninfo: str, concurrency: int, rec: Recorder) -> None:
    # The pool holds one connection per concurrent job plus the LISTEN one and a spare.
    app = procrastinate_app(conninfo, concurrency + 2, rec)
    async with app.open_async():
        await _wait_go()
        run = asyncio.create_task(
            app.run_worker_async(
                concurrency=concurrency, listen_notify=True, install_signal_handlers=False
            )
        )
        try:
            await _run_until_stop(rec, asyncio.shield(run))
        finally:
            # Cancelling run_worker_async is procrastinate's graceful stop: running jobs
            # finish, the worker unregisters, then the cancellation is re-raised.
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run


def asyncpg_params(conninfo: str) -> dict[str, Any]:
    """asyncpg.connect() keywords for a libpq conninfo string."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    names = {
        "host": "host",
        "port": "port",
        "user": "user",
        "password": "password",
        "dbname": "database",
    }
    return {names[k]: (int(str(v)) if k == "port" else v) for k, v in params.items() if k in names}


async def _pgqueuer(conninfo: str, batch_size: int, rec: Recorder) -> None:
    import asyncpg
    from pgqueuer import Job, PgQueuer

    conn = await asyncpg.connect(**asyncpg_params(conninfo))
    try:
        pgq = PgQueuer.from_asyncpg_connection(conn)

        async def noop(job: Job) -> None:
            rec.started()

        async def stamp(job: Job) -> None:
            rec.stamp(float(job.payload or b"0"))

        # Registered by call rather than as decorators: where pgqueuer is not installed
        # (CI installs the `test` extra only) mypy sees an untyped decorator otherwise.
        pgq.entrypoint("noop")(noop)
        pgq.entrypoint("stamp")(stamp)
        await _wait_go()
        run = asyncio.create_task(pgq.run(batch_size=batch_size, max_concurrent_tasks=None))
        try:
            await _run_until_stop(rec, asyncio.shield(run))
        finally:
            pgq.shutdown.set()  # graceful: in-flight jobs finish, buffers flush
            await run
    finally:
        await conn.close()


def _main(args: argparse.Namespace) -> None:
    stamps = open(args.stamp_file, "w") if args.stamp_file else None  # noqa: SIM115
    rec = Recorder(stamps)
    queues = args.queues.split(",") if args.queues else None
    runners: dict[str, Callable[[], Awaitable[None]]] = {
        "queueing": lambda: _queueing(args.conninfo, args.setting, queues, rec, False),
        METRICS_SYSTEM: lambda: _queueing(args.conninfo, args.setting, queues, rec, True),
        "procrastinate": lambda: _procrastinate(args.conninfo, args.setting, rec),
        "pgqueuer": lambda: _pgqueuer(args.conninfo, args.setting, rec),
    }
    try:
        coro = runners[args.system]()
        if args.system == "pgqueuer":
            # PgQueuer's own CLI (`pgq run`) and its benchmark run on uvloop.
            import uvloop

            uvloop.run(coro)  # type: ignore[arg-type, unused-ignore]  # typed only with the bench extra
        else:
            asyncio.run(coro)  # type: ignore[arg-type]
    finally:
        if stamps is not None:
            stamps.close()
    print(rec.final(), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    parser.add_argument("system", choices=["queueing", METRICS_SYSTEM, "procrastinate", "pgqueuer"])
    parser.add_argument("conninfo")
    parser.add_argument("--setting", type=int, required=True, help="concurrency / batch size")
    parser.add_argument("--queues", help="queueing: serve only these (comma-separated)")
    parser.add_argument("--stamp-file", help="where the stamp handler writes its times")
    _main(parser.parse_args(argv))


if __name__ == "__main__":
    # Run the importable module's main, so that procrastinate's App is created in
    # ``bench.worker`` rather than ``__main__`` (procrastinate warns about the latter).
    from bench.worker import main as _entry

    _entry()
