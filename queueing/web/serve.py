"""Serving the dashboard from the CLI (``queueing dashboard``): authentication by
address, the listening socket, uvicorn."""

from __future__ import annotations

import getpass
import socket

import uvicorn

from queueing import logs
from queueing.errors import ConfigurationError, SchemaNotMigrated
from queueing.queue import Queue
from queueing.web.app import create_app
from queueing.web.auth import basic_auth, is_loopback, local_operator
from queueing.web.runtime import Operator

GRACEFUL_SHUTDOWN_SECONDS = 2
"""Open event streams never end by themselves: at shutdown they get this long."""


def operator_for(host: str, user: str | None, password: str | None) -> Operator:
    """Basic auth when a user and password are set; else the local user, on a loopback
    address only. Off loopback without them: ConfigurationError (the dashboard changes
    jobs, and anyone who can reach the port would)."""
    if user or password:
        if not (user and password):
            raise ConfigurationError(
                "set both QUEUEING_DASHBOARD_USER and QUEUEING_DASHBOARD_PASSWORD, or neither"
            )
        return basic_auth(user, password)
    if not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve the dashboard on {host} without authentication: set "
            "QUEUEING_DASHBOARD_USER and QUEUEING_DASHBOARD_PASSWORD (basic auth)"
        )
    return local_operator(getpass.getuser())


def check_schema(queue: Queue) -> None:
    """Fail at start, with the command that fixes it, on a database without the schema."""
    state = queue.schema_status()
    if not state.up_to_date:
        raise SchemaNotMigrated(
            f"database schema is version {state.current_version}, queueing needs version "
            f"{state.expected_version}: run `queueing db migrate`"
        )


def run(queue: Queue, *, operator: Operator, host: str, port: int, read_only: bool) -> None:
    """Serve until SIGTERM/SIGINT. The socket is bound first, so the start line names
    the real port (with ``--port 0``) and a client may connect as soon as it is logged."""
    app = create_app(queue, operator=operator, read_only=read_only)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    config = uvicorn.Config(
        app,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        access_log=False,
    )
    logs.event("dashboard.started", url=f"http://{shown}:{bound}/", read_only=read_only)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        queue.close()
        logs.event("dashboard.stopped")
