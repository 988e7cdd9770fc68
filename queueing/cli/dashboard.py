"""`queueing dashboard`: serve the web dashboard (needs the `web` extra)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from queueing.cli.options import DatabaseUrl
from queueing.errors import ConfigurationError

USER_ENV, PASSWORD_ENV = "QUEUEING_DASHBOARD_USER", "QUEUEING_DASHBOARD_PASSWORD"


def dashboard(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="0: any free port.")] = 8080,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Show everything, change nothing.")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    database_url: DatabaseUrl = None,
) -> None:
    """Serve the operators' dashboard until SIGTERM or Ctrl-C.

    Off a loopback address it needs basic auth: set QUEUEING_DASHBOARD_USER and
    QUEUEING_DASHBOARD_PASSWORD (on loopback too, if set)."""
    try:
        from queueing.web import serve
    except ImportError as exc:
        raise ConfigurationError(
            f"the dashboard needs the web extra: pip install 'queueing[web]' ({exc.name} missing)"
        ) from None
    from queueing import logs
    from queueing.config import resolve_database_url
    from queueing.queue import Queue

    operator = serve.operator_for(host, os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV))
    logs.configure(log_level)
    queue = Queue(resolve_database_url(database_url))
    serve.check_schema(queue)
    serve.run(queue, operator=operator, host=host, port=port, read_only=read_only)
