"""The ``queueing`` command: a thin typer front over the library."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import psycopg
import typer

from queueing import limits
from queueing.cli import db, jobs, metrics
from queueing.cli.options import App, DatabaseUrl, Json
from queueing.cli.prune import prune
from queueing.cli.render import job_json, job_line, print_json, stats_table
from queueing.cli.worker import worker
from queueing.drivers import first_line
from queueing.errors import InvalidPayload, QueueingError
from queueing.queue import Queue
from queueing.worker.daemon import load_queue

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
app.command()(worker)
app.command()(prune)


@app.command()
def enqueue(
    task: Annotated[str, typer.Argument(help="Task name.")],
    args: Annotated[str, typer.Option("--args", help="Arguments as a JSON object.")] = "{}",
    tenant: Annotated[str | None, typer.Option(help="Tenant (organization) id.")] = None,
    user: Annotated[str | None, typer.Option(help="User id.")] = None,
    queue: Annotated[
        str | None, typer.Option(help="Queue (default: the task's, else 'default').")
    ] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first.")] = None,
    dedupe_key: Annotated[
        str | None,
        typer.Option(help="Return the pending or active job with this key instead of a new one."),
    ] = None,
    dedupe_for: Annotated[
        float | None,
        typer.Option(min=0, help="With --dedupe-key: also a job completed this many seconds ago."),
    ] = None,
    delay: Annotated[
        float | None, typer.Option(min=0, help="Run no sooner than this many seconds from now.")
    ] = None,
    app_path: App = None,
    database_url: DatabaseUrl = None,
    as_json: Json = False,
) -> None:
    """Enqueue one job and print it."""
    try:
        parsed: Any = json.loads(args)
    except ValueError as exc:
        raise InvalidPayload(f"--args is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # the json module recurses once per nesting level
        raise InvalidPayload(
            f"--args nests deeper than {limits.MAX_NESTING} levels (far deeper)"
        ) from exc
    if not isinstance(parsed, dict):
        raise InvalidPayload('--args must be a JSON object, e.g. \'{"name": "x"}\'')
    q = load_queue(app_path) if app_path else Queue()
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
        )
    if as_json:
        print_json(job_json(job))
    else:
        job_line(job)


@app.command()
def stats(database_url: DatabaseUrl = None, as_json: Json = False) -> None:
    """Job counts per queue and status."""
    with Queue(database_url) as q:
        counts = q.stats()
    if as_json:
        print_json([c.model_dump(mode="json") for c in counts])
    else:
        stats_table(counts)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)  # noqa: T201 - one line, no traceback
    return 1


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
    except psycopg.Error as exc:
        rc = _fail(f"database error: {first_line(exc)}")
    except Exception as exc:
        if os.environ.get("QUEUEING_DEBUG"):
            raise
        rc = _fail(
            f"unexpected {type(exc).__name__}: {exc} (set QUEUEING_DEBUG=1 for the traceback)"
        )
    sys.exit(rc if isinstance(rc, int) else 0)
