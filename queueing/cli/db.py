"""`queueing db ...`: schema migrations."""

from __future__ import annotations

import typer

from queueing.cli.options import DatabaseUrl, Json
from queueing.cli.render import console, print_json
from queueing.queue import Queue

app = typer.Typer(help="Create and check the queue's schema.", no_args_is_help=True)


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Apply procrastinate's schema and queueing's migrations (idempotent)."""
    with Queue(database_url) as q:
        applied = q.migrate()
    if applied:
        console.print(f"applied migrations {', '.join(map(str, applied))}: schema is current")
    else:
        console.print("schema is current: nothing to do")


@app.command()
def status(database_url: DatabaseUrl = None, as_json: Json = False) -> None:
    """Show the schema version the database has and the one this queueing needs."""
    with Queue(database_url) as q:
        state = q.schema_status()
    if as_json:
        print_json(state.model_dump(mode="json") | {"up_to_date": state.up_to_date})
    else:
        console.print(
            f"procrastinate schema: {'present' if state.has_procrastinate_schema else 'missing'}"
        )
        console.print(
            f"queueing schema: version {state.current_version} (needs {state.expected_version})"
        )
        for version, name, applied_at in state.applied:
            console.print(
                f"  {version:04d} {name}  applied {applied_at.isoformat(timespec='seconds')}"
            )
        console.print(
            "up to date" if state.up_to_date else "not up to date: run `queueing db migrate`"
        )
    if not state.up_to_date:
        raise typer.Exit(1)
