"""`queueing prune`: delete finished jobs past their retention, in bounded batches."""

from __future__ import annotations

from typing import Annotated

import typer

from queueing.cli.options import DatabaseUrl
from queueing.cli.render import console

#: ``queueing.retention.DAY``, repeated here because importing queueing.retention (psycopg,
#: procrastinate) would cost every command's start-up for the sake of two help defaults.
DAY = 24 * 3600.0


def prune(
    queue: Annotated[
        str | None, typer.Option("--queue", "-q", help="Only this queue (default: every queue).")
    ] = None,
    completed_age: Annotated[
        float,
        typer.Option(min=0, help="Delete completed jobs finished more than this many seconds ago."),
    ] = DAY,
    keep: Annotated[
        int,
        typer.Option(
            min=0, help="Delete completed jobs beyond the newest this many of their queue."
        ),
    ] = 1000,
    failed_age: Annotated[
        float,
        typer.Option(
            min=0, help="Delete failed and cancelled jobs finished more than this many seconds ago."
        ),
    ] = 7 * DAY,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete finished jobs past their keep (pending and active jobs are never touched)."""
    from queueing.queue import Queue, check_queue_name
    from queueing.retention import RetentionPolicy
    from queueing.retention import prune as prune_jobs

    if queue is not None:
        queue = check_queue_name(queue)
    policy = RetentionPolicy(
        completed_age=completed_age, completed_keep=keep, failed_age=failed_age
    )
    q = Queue(database_url)
    deleted = prune_jobs(q.database_url, policy, queue=queue)
    where = f" from queue {queue!r}" if queue else ""
    console().print(f"deleted {deleted} finished job{'' if deleted == 1 else 's'}{where}")
