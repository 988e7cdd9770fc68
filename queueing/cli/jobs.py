"""`queueing jobs ...`: inspect, watch, cancel and retry jobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from queueing.cli.options import DatabaseUrl, Json
from queueing.cli.render import (
    attempts_table,
    console,
    job_details,
    job_json,
    job_line,
    jobs_table,
    print_json,
)
from queueing.errors import InvalidPayload

# JobStatus types an option, which typer reads when it builds the command line; the rest
# (procrastinate, psycopg's pool, rich's progress bar) is imported by the commands that use it.
from queueing.models import Actor, Job, JobStatus

if TYPE_CHECKING:
    from queueing.queue import Queue

app = typer.Typer(help="Inspect and act on jobs.", no_args_is_help=True)

JobId = Annotated[int, typer.Argument(help="The job's id.", min=1)]


@app.command("list")
def list_(
    status: Annotated[
        list[JobStatus] | None, typer.Option(help="Only these statuses (repeatable).")
    ] = None,
    task: Annotated[str | None, typer.Option(help="Only this task.")] = None,
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    user: Annotated[str | None, typer.Option(help="Only this user.")] = None,
    before_id: Annotated[int | None, typer.Option(help="Page: jobs older than this id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    database_url: DatabaseUrl = None,
    as_json: Json = False,
) -> None:
    """List jobs, newest first."""
    from queueing.ops import JobFilter
    from queueing.queue import Queue

    with Queue(database_url) as q:
        jobs = q.list_jobs(
            JobFilter(
                statuses=status,
                task=task,
                queue=queue,
                tenant_id=tenant,
                user_id=user,
                before_id=before_id,
                limit=limit,
            )
        )
    if as_json:
        print_json([job_json(j) for j in jobs])
    else:
        jobs_table(jobs)


AsUser = Annotated[
    str | None, typer.Option("--as-user", help="Act as this user (with --tenant): own jobs only.")
]
Tenant = Annotated[
    str | None, typer.Option("--tenant", help="The acting user's or admin's tenant.")
]
Admin = Annotated[bool, typer.Option("--admin", help="Act as an admin of --tenant.")]


def _actor(as_user: str | None, tenant: str | None, admin: bool) -> Actor:
    """The CLI acts as the system unless told to act as a user or a tenant admin."""
    if admin and as_user:
        raise InvalidPayload("give --as-user or --admin, not both")
    if admin:
        if not tenant:
            raise InvalidPayload("--admin needs --tenant")
        return Actor.admin(tenant)
    if as_user:
        return Actor.user(as_user, tenant)
    if tenant:
        raise InvalidPayload("--tenant needs --as-user or --admin")
    return Actor.system()


@app.command()
def show(job_id: JobId, database_url: DatabaseUrl = None, as_json: Json = False) -> None:
    """Show every field of one job, and its attempt history."""
    from queueing.queue import Queue

    with Queue(database_url) as q:
        job = q.get_job(job_id)
        history = q.attempts(job_id)
    if as_json:
        print_json(job_json(job) | {"history": [a.model_dump(mode="json") for a in history]})
    else:
        job_details(job)
        attempts_table(history)


def _acting_command(
    name: str, act: Callable[[Queue, int, Actor], Job], doc: str
) -> Callable[..., None]:
    """Declare ``queueing jobs NAME``: ``act`` on a job as the actor the options give.

    The commands that act on a job (cancel, retry) take the same options and print the
    job the same way; only the action and the help differ.
    """

    def command(
        job_id: JobId,
        as_user: AsUser = None,
        tenant: Tenant = None,
        admin: Admin = False,
        database_url: DatabaseUrl = None,
        as_json: Json = False,
    ) -> None:
        from queueing.queue import Queue

        actor = _actor(as_user, tenant, admin)
        with Queue(database_url) as q:
            job = act(q, job_id, actor)
        if as_json:
            print_json(job_json(job))
        elif job.status is JobStatus.ACTIVE:  # only a cancel leaves a job active
            console().print(f"job {job.id} is active: asked it to stop")
        else:
            job_line(job)

    command.__name__ = command.__qualname__ = name
    command.__doc__ = doc
    return app.command(name)(command)


cancel = _acting_command(
    "cancel",
    lambda q, job_id, actor: q.cancel(job_id, actor=actor),
    """Cancel a pending job, or ask an active one to stop.

    As the system by default; --as-user U --tenant T may cancel only U's own jobs;
    --admin --tenant T any job of T.
    """,
)
retry = _acting_command(
    "retry",
    lambda q, job_id, actor: q.retry(job_id, actor=actor),
    """Re-run a failed or cancelled job (same id; attempts continue). Admins and system only.""",
)


@app.command("run-now")
def run_now(job_id: JobId, database_url: DatabaseUrl = None, as_json: Json = False) -> None:
    """Make a delayed job, or one waiting out a retry backoff, due now."""
    from queueing.queue import Queue

    with Queue(database_url) as q:
        job = q.run_now(job_id)
    if as_json:
        print_json(job_json(job))
    else:
        job_line(job)


@app.command()
def watch(
    job_id: JobId,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Show a live progress bar until the job ends. Exit 0 if it completed, 1 otherwise."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from queueing.queue import Queue

    with Queue(database_url) as q:
        job = q.get_job(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        with Progress(
            TextColumn("job {task.fields[job_id]} [bold]{task.fields[status]}[/]"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console(),
            transient=False,
        ) as bar:
            row = bar.add_task("", total=100, job_id=job.id, status=job.status, detail="")
            while True:
                detail = (
                    job.progress_detail.get("message", "")
                    if isinstance(job.progress_detail, dict)
                    else ""
                )
                bar.update(row, completed=job.progress, status=job.status, detail=detail)
                if job.status.is_terminal:
                    break
                step = 60.0 if deadline is None else min(deadline - time.monotonic(), 60.0)
                if step <= 0:
                    break
                job = q.wait_for_change(job, timeout=step)
        if job.error is not None and job.status is JobStatus.FAILED:
            console().print(f"{job.error.type}: {job.error.message}")
        if job.status is not JobStatus.COMPLETED:
            if not job.status.is_terminal:
                console().print(f"job {job.id} is still {job.status} after {timeout or 0:g}s")
            raise typer.Exit(1)
