"""`queueing worker`: the worker daemon."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from queueing import logs
from queueing.cli.options import DatabaseUrl
from queueing.worker.daemon import load_queue, run_worker


def _seconds(help: str, *, minimum: float = 0.01) -> Any:
    """A duration option, in seconds: a timeout or an interval (0 is refused unless
    ``minimum`` allows it: a zero interval would spin)."""
    return typer.Option(min=minimum, help=help)


def worker(
    app: Annotated[str, typer.Option("--app", help="module:attribute of your Queue.")],
    concurrency: Annotated[int, typer.Option(min=1, max=10_000, help="Jobs run at once.")] = 10,
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", help="Serve only these queues (repeatable)."),
    ] = None,
    shutdown_timeout: Annotated[
        float, _seconds("Seconds running jobs get to finish after SIGTERM.", minimum=0)
    ] = 30.0,
    poll_interval: Annotated[
        float, _seconds("Seconds between polls when no notification comes.")
    ] = 1.0,
    heartbeat_interval: Annotated[
        float, _seconds("Seconds between this worker's heartbeats.")
    ] = 5.0,
    stall_timeout: Annotated[
        float,
        _seconds(
            "A worker silent this many seconds is lost: its jobs are given back "
            "(must exceed --heartbeat-interval)."
        ),
    ] = 30.0,
    rescue_interval: Annotated[
        float, _seconds("Seconds between looks for lost workers' jobs.")
    ] = 10.0,
    prune_interval: Annotated[
        float,
        _seconds("Seconds between retention rounds (0: this worker never prunes).", minimum=0),
    ] = 60.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    database_url: DatabaseUrl = None,
) -> None:
    """Run jobs until SIGTERM/SIGINT; then stop claiming, let running jobs finish, exit 0."""
    logs.configure(log_level)
    q = load_queue(app)
    if database_url:
        q.database_url = database_url
    run_worker(
        q,
        concurrency=concurrency,
        queues=queue,
        shutdown_timeout=shutdown_timeout,
        poll_interval=poll_interval,
        heartbeat_interval=heartbeat_interval,
        stall_timeout=stall_timeout,
        rescue_interval=rescue_interval,
        prune_interval=prune_interval,
    )
