"""`queueing prune`: delete finished jobs past their retention, in bounded batches."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from queueing.cli.options import DatabaseUrl
from queueing.cli.render import console

if TYPE_CHECKING:
    from queueing.queue import Queue

#: ``queueing.retention.DAY``, repeated here because importing queueing.retention (psycopg,
#: procrastinate) would cost every command's start-up for the sake of two help defaults.
DAY = 24 * 3600.0


def _rule(help: str) -> Any:
    """A retention rule option: unset means the --app Queue's own rule (else the default)."""
    return typer.Option(min=0, help=help, show_default=False)


OnlyQueue = Annotated[
    str | None, typer.Option("--queue", "-q", help="Only this queue (default: every queue).")
]
CompletedAge = Annotated[
    float | None,
    _rule(
        "Delete completed jobs finished more than this many seconds ago "
        f"(default: the --app Queue's retention, else {DAY:g})."
    ),
]
Keep = Annotated[
    int | None,
    _rule(
        "Delete completed jobs beyond the newest this many of their queue "
        "(default: the --app Queue's retention, else 1000)."
    ),
]
FailedAge = Annotated[
    float | None,
    _rule(
        "Delete failed and cancelled jobs finished more than this many seconds ago "
        f"(default: the --app Queue's retention, else {7 * DAY:g})."
    ),
]
AppPath = Annotated[
    str | None,
    typer.Option(
        "--app",
        help="module:attribute of your Queue: prune with the retention it declares "
        "(per queue); a rule option given here replaces that rule for every queue.",
    ),
]


def prune(
    queue: OnlyQueue = None,
    completed_age: CompletedAge = None,
    keep: Keep = None,
    failed_age: FailedAge = None,
    app_path: AppPath = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete finished jobs past their keep (pending and active jobs are never touched)."""
    from queueing.queue import check_queue_name
    from queueing.retention import KEEP
    from queueing.retention import prune as prune_jobs

    if queue is not None:
        queue = check_queue_name(queue)
    q = _queue(app_path, database_url)
    retention = q.retention.with_rules(
        completed_age=KEEP if completed_age is None else completed_age,
        completed_keep=KEEP if keep is None else keep,
        failed_age=KEEP if failed_age is None else failed_age,
    )
    deleted = prune_jobs(q.database_url, retention, queue=queue)
    where = f" from queue {queue!r}" if queue else ""
    console().print(f"deleted {deleted} finished job{'' if deleted == 1 else 's'}{where}")


def _queue(app_path: str | None, database_url: str | None) -> Queue:
    """The --app Queue (with its retention), or a plain one."""
    from queueing.queue import Queue

    if not app_path:
        return Queue(database_url)
    # Imported here: only this option needs the worker package (CLI start-up time).
    from queueing.worker.daemon import load_queue

    q = load_queue(app_path)
    if database_url:
        q.database_url = database_url
    return q
