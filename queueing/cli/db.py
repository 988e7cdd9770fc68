"""`queueing db ...`: schema migrations, and the embedded server."""

from __future__ import annotations

import typer

from queueing.cli.options import DatabaseUrl, Json
from queueing.cli.render import console, print_json

app = typer.Typer(help="Create and check the queue's schema.", no_args_is_help=True)


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Apply procrastinate's schema and queueing's migrations (idempotent)."""
    from queueing.queue import Queue

    with Queue(database_url) as q:
        applied = q.migrate()
    if applied:
        console().print(f"applied migrations {', '.join(map(str, applied))}: schema is current")
    else:
        console().print("schema is current: nothing to do")


@app.command()
def status(database_url: DatabaseUrl = None, as_json: Json = False) -> None:
    """Show the schema version the database has and the one this queueing needs."""
    from queueing.queue import Queue

    with Queue(database_url) as q:
        state = q.schema_status()
    if as_json:
        print_json(state.model_dump(mode="json") | {"up_to_date": state.up_to_date})
    else:
        console().print(
            f"procrastinate schema: {'present' if state.has_procrastinate_schema else 'missing'}"
        )
        console().print(
            f"queueing schema: version {state.current_version} (needs {state.expected_version})"
        )
        for version, name, applied_at in state.applied:
            console().print(
                f"  {version:04d} {name}  applied {applied_at.isoformat(timespec='seconds')}"
            )
        console().print(
            "up to date" if state.up_to_date else "not up to date: run `queueing db migrate`"
        )
    if not state.up_to_date:
        raise typer.Exit(1)


embedded_app = typer.Typer(
    help="See and stop the embedded PostgreSQL (used when no database URL is configured).",
    no_args_is_help=True,
)
app.add_typer(embedded_app, name="embedded")


@embedded_app.command("status")
def embedded_status(as_json: Json = False) -> None:
    """Where the embedded server keeps its data, and whether it runs (its pid, port, URL)."""
    from queueing import embedded

    server = embedded.status()
    if as_json:
        print_json(server.model_dump(mode="json"))
        return
    state = f"running (pid {server.pid})" if server.running else "not running"
    lines = [f"embedded PostgreSQL: {state}", f"data directory: {server.data_dir}"]
    if not server.initialized:
        lines[-1] += " (not created yet)"
    if server.running:
        lines += [f"port: {server.port}", f"socket directory: {server.socket_dir}"]
        lines += [f"url: {server.url}"]
    for line in lines:
        console().print(line, markup=False)


@embedded_app.command("stop")
def embedded_stop() -> None:
    """Stop the embedded server (the next command that needs it starts it again)."""
    from queueing import embedded

    stopped = embedded.stop()
    if stopped is None:
        message = f"the embedded PostgreSQL in {embedded.data_dir()} is not running"
    else:
        message = f"stopped the embedded PostgreSQL in {stopped.data_dir} (pid {stopped.pid})"
    console().print(message, markup=False)
