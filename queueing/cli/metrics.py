"""`queueing metrics`: the queue-level Prometheus gauges, served from one process."""

from __future__ import annotations

from typing import Annotated

import typer

from queueing.cli.options import DatabaseUrl

app = typer.Typer(help="Queue-level Prometheus metrics (one server for the whole queue).")


@app.command()
def serve(
    port: Annotated[
        int,
        typer.Option(min=0, max=65535, envvar="QUEUEING_METRICS_PORT", help="0: any free port."),
    ] = 9465,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",
    cache_seconds: Annotated[
        float, typer.Option(min=0, help="Serve one database answer for this long.")
    ] = 5.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    database_url: DatabaseUrl = None,
) -> None:
    """Serve queueing_jobs{queue,status} and queueing_oldest_pending_age_seconds{queue}
    on /metrics, one query per scrape at most every --cache-seconds; until SIGTERM."""
    # Imported here: the CLI's other commands do not load the Prometheus client.
    from queueing import logs
    from queueing.config import resolve_database_url
    from queueing.metrics import serve as serve_metrics

    logs.configure(log_level)
    serve_metrics(
        resolve_database_url(database_url), port=port, host=host, cache_seconds=cache_seconds
    )
