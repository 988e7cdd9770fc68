"""Run a Worker as a process: load the app, wire SIGTERM/SIGINT, exit 0 after a clean stop."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
import threading
from collections.abc import Sequence

from queueing import logs
from queueing.errors import ConfigurationError
from queueing.queue import Queue
from queueing.retention import Retention
from queueing.worker.execute import JOB_THREAD_PREFIX
from queueing.worker.worker import Worker


def load_queue(path: str) -> Queue:
    """Import ``module:attribute`` and return the Queue it names."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"--app must look like 'package.module:queue', got {path!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the app lives beside the user
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from exc
    queue = getattr(module, attribute, None)
    if not isinstance(queue, Queue):
        raise ConfigurationError(f"{path!r} is not a queueing.Queue (got {type(queue).__name__})")
    return queue


def run_worker(
    queue: Queue,
    *,
    concurrency: int,
    queues: Sequence[str] | None,
    shutdown_timeout: float,
    poll_interval: float,
    heartbeat_interval: float = 5.0,
    stall_timeout: float = 30.0,
    rescue_interval: float = 10.0,
    prune_interval: float | None = 10.0,
    vacuum_interval: float | None = 10.0,
    retention: Retention | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "0.0.0.0",
    schedule_interval: float = 10.0,
) -> None:
    """Run until SIGTERM or SIGINT: the first stops gracefully, a second skips the grace period.

    ``prune_interval`` ``None`` (or 0): this worker never prunes; ``retention``: the
    policy it prunes with, given explicitly (it wins); by default the one the Queue
    declares (``Queue(retention=...)``, itself ``Retention()`` by default). ``metrics_port``:
    serve the worker's metrics and probes there (see ``Worker``). ``vacuum_interval``
    ``None``: this worker never vacuums the queue's tables. ``schedule_interval``: how long
    its scheduler waits at most between rounds.
    """
    try:
        worker = Worker(
            queue,
            concurrency=concurrency,
            queues=queues,
            shutdown_timeout=shutdown_timeout,
            poll_interval=poll_interval,
            heartbeat_interval=heartbeat_interval,
            stall_timeout=stall_timeout,
            rescue_interval=rescue_interval,
            retention=(queue.retention if retention is None else retention)
            if prune_interval
            else None,
            prune_interval=prune_interval or 10.0,
            vacuum_interval=vacuum_interval,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            schedule_interval=schedule_interval,
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc

    asyncio.run(_run_until_signalled(worker))
    if any(t.name.startswith(JOB_THREAD_PREFIX) for t in threading.enumerate()):
        # A sync handler ignored its cancellation and still runs in its thread. Its job
        # is already back to pending in the database; do not let it hold the exit.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


async def _run_until_signalled(worker: Worker) -> None:
    """Run ``worker``; the first SIGTERM/SIGINT stops it gracefully, a second forces it."""
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        logs.event("worker.signal", signal=signal.Signals(signum).name, graceful=signals_seen == 1)
        worker.stop(force=signals_seen > 1)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    await worker.run()
