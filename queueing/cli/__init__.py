"""The ``queueing`` command: a thin typer front over the library.

Start-up time matters here (a person waits for every call; scripts call it in loops), so
this package imports only typer, the option types and the error classes; each command
imports what it uses (the queue, procrastinate, rich, the worker) when it runs. See
docs/cli_startup.md for the figures.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from queueing.cli import db, jobs, metrics, queues, schedules
from queueing.cli.dashboard import dashboard
from queueing.cli.options import App, DatabaseUrl, Json, read_args
from queueing.cli.prune import prune
from queueing.cli.render import job_json, job_line, print_json, stats_table
from queueing.cli.worker import worker
from queueing.errors import QueueingError

app = typer.Typer(
    name="queueing",
    help="A PostgreSQL job queue whose job status is never wrong.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(jobs.app, name="jobs")
app.add_typer(metrics.app, name="metrics")
app.add_typer(queues.app, name="queues")
app.add_typer(schedules.app, name="schedules")
app.command()(worker)
app.command()(prune)
app.command()(dashboard)


DedupeKey = Annotated[
    str | None,
    typer.Option(help="Return the pending or active job with this key instead of a new one."),
]
DedupeFor = Annotated[
    float | None,
    typer.Option(min=0, help="With --dedupe-key: also a job completed this many seconds ago."),
]
Delay = Annotated[
    float | None, typer.Option(min=0, help="Run no sooner than this many seconds from now.")
]
ConcurrencyKeyOption = Annotated[
    str | None,
    typer.Option(
        "--concurrency-key", help="With --concurrency-limit: at most that many of its jobs run."
    ),
]
ConcurrencyLimit = Annotated[
    int | None, typer.Option(help="Jobs of the --concurrency-key active at once (>= 1).")
]


@app.command()
def enqueue(
    task: Annotated[str, typer.Argument(help="Task name.")],
    args: Annotated[
        str,
        typer.Option(
            "--args",
            help="Arguments as a JSON object; @FILE reads it from FILE, - from stdin.",
        ),
    ] = "{}",
    tenant: Annotated[str | None, typer.Option(help="Tenant (organization) id.")] = None,
    user: Annotated[str | None, typer.Option(help="User id.")] = None,
    queue: Annotated[
        str | None, typer.Option(help="Queue (default: the task's, else 'default').")
    ] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first.")] = None,
    dedupe_key: DedupeKey = None,
    dedupe_for: DedupeFor = None,
    delay: Delay = None,
    concurrency_key: ConcurrencyKeyOption = None,
    concurrency_limit: ConcurrencyLimit = None,
    app_path: App = None,
    database_url: DatabaseUrl = None,
    as_json: Json = False,
) -> None:
    """Enqueue one job and print it."""
    from queueing.queue import Queue

    parsed = read_args(args)
    if app_path:
        from queueing.worker.daemon import load_queue  # (brings the worker's modules)

        q = load_queue(app_path)
    else:
        q = Queue()
    if database_url:
        q.database_url = database_url
    with q:
        job = q.enqueue(
            task,
            parsed,
            tenant_id=tenant,
            user_id=user,
            queue=queue,
            priority=priority,
            delay=delay,
            dedupe_key=dedupe_key,
            dedupe_for=dedupe_for,
            concurrency_key=concurrency_key,
            concurrency_limit=concurrency_limit,
        )
    if as_json:
        print_json(job_json(job))
    else:
        job_line(job)


@app.command()
def stats(database_url: DatabaseUrl = None, as_json: Json = False) -> None:
    """Job counts per queue and status."""
    from queueing.queue import Queue

    with Queue(database_url) as q:
        counts = q.stats()
    if as_json:
        print_json([c.model_dump(mode="json") for c in counts])
    else:
        stats_table(counts)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)  # noqa: T201 - one line, no traceback
    return 1


def _database_error(exc: Exception) -> str | None:
    """The one line for a psycopg error, or None for any other exception.

    psycopg is not imported to find out: a command that never imported it cannot have
    raised one of its errors, and importing it would cost every command's start-up.
    """
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(exc, psycopg.Error):
        return None
    from queueing.drivers import first_line

    return f"database error: {first_line(exc)}"


def main() -> None:
    """Entry point: a mistake prints one line on stderr and exits non-zero, never a traceback."""
    try:
        rc = app(prog_name="queueing", standalone_mode=False)
    except typer.Exit as exc:
        rc = exc.exit_code
    except typer.Abort:
        rc = _fail("aborted")
    except typer.TyperException as exc:  # usage errors: bad option, missing argument...
        message = exc.format_message()
        if message:  # (empty when typer already printed the help, e.g. no arguments)
            print(f"error: {message} (see --help)", file=sys.stderr)  # noqa: T201
        rc = exc.exit_code
    except QueueingError as exc:
        rc = _fail(str(exc))
    except Exception as exc:
        database_error = _database_error(exc)
        if database_error is None and os.environ.get("QUEUEING_DEBUG"):
            raise
        rc = _fail(
            database_error
            or f"unexpected {type(exc).__name__}: {exc} (set QUEUEING_DEBUG=1 for the traceback)"
        )
    sys.exit(rc if isinstance(rc, int) else 0)
