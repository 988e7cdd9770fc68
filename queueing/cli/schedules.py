"""`queueing schedules ...`: the periodic jobs, their next and last runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from queueing.cli.options import DatabaseUrl, Json
from queueing.cli.render import console, print_json, when

if TYPE_CHECKING:
    from queueing.queue import Queue
    from queueing.schedules import ScheduleInfo

app = typer.Typer(help="Periodic jobs (Queue.schedule).", no_args_is_help=True)

AppPath = Annotated[
    str | None,
    typer.Option(
        "--app",
        help="module:attribute of your Queue: show its declared schedules too, and which "
        "registered ones its code no longer declares.",
    ),
]


@app.command("list")
def list_(
    app_path: AppPath = None, database_url: DatabaseUrl = None, as_json: Json = False
) -> None:
    """List the schedules: task, cron, timezone, next run, last tick run and its job."""
    with _queue(app_path, database_url) as q:
        infos = q.list_schedules()
    if as_json:
        print_json([i.model_dump(mode="json") for i in infos])
    else:
        _table(infos)


def _queue(app_path: str | None, database_url: str | None) -> Queue:
    from queueing.queue import Queue

    if not app_path:
        return Queue(database_url)
    from queueing.worker.daemon import load_queue  # (brings the worker's modules)

    q = load_queue(app_path)
    if database_url:
        q.database_url = database_url
    return q


def _table(infos: list[ScheduleInfo]) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    columns = ["name", "task", "cron", "timezone", "next run", "last tick", "job", "status"]
    if any(i.declared is not None for i in infos):
        columns.append("in code")
    for column in columns:
        table.add_column(column, justify="right" if column == "job" else "left")
    for i in infos:
        row = [
            i.name,
            i.task_name,
            i.cron,
            i.timezone,
            when(i.next_run_at),
            when(i.last_tick_at),
            "-" if i.last_job_id is None else str(i.last_job_id),
            i.last_job_status or ("-" if i.last_job_id is None else "deleted"),
        ]
        if i.declared is not None:
            row.append("yes" if i.declared else "no (stopped)")
        table.add_row(*row)
    console().print(table if infos else "no schedules")
