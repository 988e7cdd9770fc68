"""`queueing worker`: the worker daemon."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from queueing import logs
from queueing.cli.options import DatabaseUrl


def _seconds(help: str, *, minimum: float = 0.01) -> Any:
    """A duration option, in seconds: a timeout or an interval (0 is refused unless
    ``minimum`` allows it: a zero interval would spin)."""
    return typer.Option(min=minimum, help=help)


#: The worker's durations. Only the grace period and the prune and vacuum intervals may be
#: 0 (an interval of 0 would spin; a prune or vacuum interval of 0 means never).
ShutdownTimeout = Annotated[float, _seconds("Grace for running jobs after SIGTERM.", minimum=0)]
PollInterval = Annotated[float, _seconds("Seconds between polls when no notification comes.")]
HeartbeatInterval = Annotated[float, _seconds("Seconds between this worker's heartbeats.")]
StallTimeout = Annotated[float, _seconds("Silence after which a worker is lost (> heartbeat).")]
RescueInterval = Annotated[float, _seconds("Seconds between looks for lost workers' jobs.")]
PruneInterval = Annotated[float, _seconds("Seconds between prunes (0: never).", minimum=0)]
ScheduleInterval = Annotated[
    float, _seconds("Longest wait between looks for due schedule ticks (it wakes at each tick).")
]
VacuumInterval = Annotated[
    float, _seconds("Seconds between looks whether to VACUUM the queue (0: never).", minimum=0)
]


def worker(
    app: Annotated[str, typer.Option("--app", help="module:attribute of your Queue.")],
    concurrency: Annotated[int, typer.Option(min=1, max=10_000, help="Jobs run at once.")] = 100,
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", help="Serve only these queues (repeatable)."),
    ] = None,
    shutdown_timeout: ShutdownTimeout = 30.0,
    poll_interval: PollInterval = 1.0,
    heartbeat_interval: HeartbeatInterval = 5.0,
    stall_timeout: StallTimeout = 30.0,
    rescue_interval: RescueInterval = 10.0,
    prune_interval: PruneInterval = 10.0,
    schedule_interval: ScheduleInterval = 10.0,
    vacuum_interval: VacuumInterval = 10.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            envvar="QUEUEING_METRICS_PORT",
            help="Serve /metrics, /healthz and /readyz on this port (0: any free port).",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Address the metrics server listens on.")
    ] = "0.0.0.0",  # all interfaces: Prometheus scrapes from another host
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    database_url: DatabaseUrl = None,
) -> None:
    """Run jobs until SIGTERM/SIGINT; then stop claiming, let running jobs finish, exit 0."""
    from queueing.worker.daemon import load_queue, run_worker

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
        vacuum_interval=vacuum_interval or None,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        schedule_interval=schedule_interval,
    )
