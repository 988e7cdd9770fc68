"""`queueing queues ...`: per-queue counts, pause, resume and a global limit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from queueing.cli.options import App, DatabaseUrl, Json
from queueing.cli.render import console, print_json

if TYPE_CHECKING:
    from queueing.queue import Queue
    from queueing.queues import QueueInfo

app = typer.Typer(help="Queues: counts, pause, resume, limits.", no_args_is_help=True)

QueueName = Annotated[str, typer.Argument(help="The queue's name.")]


@app.command("list")
def list_(database_url: DatabaseUrl = None, as_json: Json = False) -> None:
    """Per queue: pending (due now), active, delayed, failed in the last hour, the oldest
    pending job's age, paused, max_active."""
    from queueing.queue import Queue

    with Queue(database_url) as q:
        infos = q.list_queues()
    if as_json:
        print_json([i.model_dump(mode="json") for i in infos])
    else:
        _table(infos)


@app.command()
def pause(
    queue: QueueName, app_path: App = None, database_url: DatabaseUrl = None, as_json: Json = False
) -> None:
    """Stop all workers from claiming this queue's jobs (enqueue still works; running jobs
    finish)."""
    with _queue(app_path, database_url) as q:
        _print(q.pause_queue(queue), as_json)


@app.command()
def resume(
    queue: QueueName, app_path: App = None, database_url: DatabaseUrl = None, as_json: Json = False
) -> None:
    """Let workers claim this queue's jobs again (they are woken at once)."""
    with _queue(app_path, database_url) as q:
        _print(q.resume_queue(queue), as_json)


@app.command()
def limit(
    queue: QueueName,
    max_active: Annotated[
        int | None,
        typer.Argument(help="At most this many of its jobs active at once, across all workers."),
    ] = None,
    none: Annotated[bool, typer.Option("--none", help="Remove the queue's limit.")] = False,
    app_path: App = None,
    database_url: DatabaseUrl = None,
    as_json: Json = False,
) -> None:
    """Set (or with --none remove) the queue's global limit of active jobs."""
    from queueing.errors import InvalidPayload

    if (max_active is None) == (not none):
        raise InvalidPayload("give a limit (an integer of at least 1) or --none")
    with _queue(app_path, database_url) as q:
        _print(q.set_queue_limit(queue, max_active), as_json)


def _queue(app_path: str | None, database_url: str | None) -> Queue:
    """The --app Queue (its tasks' queues count as known), or a plain one."""
    from queueing.queue import Queue

    if not app_path:
        return Queue(database_url)
    from queueing.worker.daemon import load_queue  # (brings the worker's modules)

    q = load_queue(app_path)
    if database_url:
        q.database_url = database_url
    return q


def _print(info: QueueInfo, as_json: bool) -> None:
    if as_json:
        print_json(info.model_dump(mode="json"))
        return
    state = "paused" if info.paused else "running"
    limit = f", at most {info.max_active} active" if info.max_active is not None else ""
    console().print(
        f"queue {info.name}: {state}{limit} ({info.pending} pending, {info.active} active)"
    )


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f}s"


def _table(infos: list[QueueInfo]) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    numbers = ("pending", "active", "delayed", "failed 1h", "oldest pending", "max active")
    for column in ("queue", *numbers, "paused"):
        table.add_column(column, justify="right" if column in numbers else "left")
    for i in infos:
        table.add_row(
            i.name,
            str(i.pending),
            str(i.active),
            str(i.delayed),
            str(i.failed_last_hour),
            _age(i.oldest_pending_age_seconds),
            "-" if i.max_active is None else str(i.max_active),
            "yes" if i.paused else "no",
        )
    console().print(table if infos else "no queues")
