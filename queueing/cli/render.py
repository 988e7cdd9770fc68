"""How the CLI prints jobs: rich tables for people, JSON for programs."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich and the models are imported when something is printed
    from rich.console import Console
    from rich.table import Table

    from queueing.models import Attempt, Job, QueueCount


@functools.cache
def console() -> Console:
    """The console every command prints through, made on first use (importing rich costs
    tens of milliseconds that ``--json`` output does not need)."""
    from rich.console import Console

    made = Console(highlight=False, soft_wrap=True)
    if not made.is_terminal:  # piped output keeps full lines (rich would wrap at 80 columns)
        made = Console(highlight=False, soft_wrap=True, width=200)
    return made


def _table(**options: Any) -> Table:
    from rich.table import Table

    return Table(box=None, pad_edge=False, **options)


_STYLE = {
    "pending": "yellow",
    "active": "cyan",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def job_json(job: Job) -> dict[str, Any]:
    """The record as JSON; ``created`` only where enqueue set it."""
    data = job.model_dump(mode="json")
    if data["created"] is None:
        del data["created"]
    return data


def print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False))  # noqa: T201 - machine output goes to stdout


def when(value: Any) -> str:
    """A time for a table cell: ISO 8601 to the second, "-" for none."""
    return value.isoformat(timespec="seconds") if value is not None else "-"


def jobs_table(jobs: Iterable[Job]) -> None:
    table = _table()
    for column in (
        "id",
        "task",
        "queue",
        "status",
        "progress",
        "attempts",
        "tenant",
        "user",
        "created",
    ):
        table.add_column(column, justify="right" if column in ("id", "progress") else "left")
    for job in jobs:
        table.add_row(
            str(job.id),
            job.task_name,
            job.queue,
            f"[{_STYLE[job.status]}]{job.status}[/]",
            f"{job.progress}%",
            f"{job.attempts}/{job.max_attempts}",
            job.tenant_id or "-",
            job.user_id or "-",
            when(job.created_at),
        )
    console().print(table)


def job_details(job: Job) -> None:
    data = job_json(job)
    width = max(len(k) for k in data)
    for key, value in data.items():
        if key == "error" and value:
            console().print(f"{key:<{width}}  {value['type']}: {value['message']}")
            continue
        if key == "status":
            value = f"[{_STYLE[job.status]}]{value}[/]"
        elif isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False)
        console().print(f"{key:<{width}}  {'-' if value is None else value}")


def job_line(job: Job) -> None:
    note = {True: " (created)", False: " (existing job with this dedupe key)", None: ""}
    console().print(
        f"job {job.id} {job.task_name} on {job.queue}: "
        f"[{_STYLE[job.status]}]{job.status}[/]{note[job.created]}"
    )


def attempts_table(history: Iterable[Attempt]) -> None:
    rows = list(history)
    if not rows:
        console().print("history           -")
        return
    table = _table(title="history", title_justify="left")
    for column in ("run", "attempt", "worker", "started", "finished", "outcome", "error"):
        table.add_column(column)
    for a in rows:
        table.add_row(
            str(a.run),
            str(a.attempt),
            "-" if a.worker_id is None else str(a.worker_id),
            when(a.started_at),
            when(a.finished_at),
            a.outcome,
            f"{a.error.type}: {a.error.message}" if a.error else "-",
        )
    console().print(table)


def stats_table(counts: Iterable[QueueCount]) -> None:
    table = _table()
    for column in ("queue", "status", "count"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for c in counts:
        table.add_row(c.queue, f"[{_STYLE[c.status]}]{c.status}[/]", str(c.count))
    console().print(table)
