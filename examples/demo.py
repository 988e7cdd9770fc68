"""The demo: start a worker process, enqueue jobs, show their progress live, stop the worker.

With no database configured it uses the embedded PostgreSQL, so it runs anywhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from examples.demo_app import Report, queue, send_email
from queueing import Job, JobRequest

ROOT = Path(__file__).resolve().parent.parent


def table(jobs: list[Job]) -> Table:
    t = Table(title="queueing demo: jobs and their status records")
    for column in ("id", "task", "status", "progress", "attempts", "detail / result / error"):
        t.add_column(column)
    for job in jobs:
        if job.error and job.status != "completed":
            info = f"{job.error.type}: {job.error.message}"
        elif job.result is not None:
            info = str(job.result)
        else:
            info = str((job.progress_detail or {}).get("message", ""))
        t.add_row(
            str(job.id),
            job.task_name,
            job.status,
            f"{job.progress}%",
            f"{job.attempts}/{job.max_attempts}",
            info,
        )
    return t


def main() -> None:
    console = Console()
    console.print("migrating the database ...")
    queue.migrate()
    console.print(f"database: {queue.database_url}")
    jobs = queue.enqueue_many(
        [
            JobRequest(
                "generate_report", Report(title=f"Q{n} report"), user_id="ada", tenant_id="acme"
            )
            for n in range(1, 4)
        ]
        + [JobRequest(send_email, {"to": "ada@example.com"}, user_id="ada", tenant_id="acme")]
    )
    console.print(f"enqueued {len(jobs)} jobs; their records exist before any worker runs:")
    console.print(table([queue.get_job(j.id) for j in jobs]))
    env = {**os.environ, "QUEUEING_DATABASE_URL": queue.database_url, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "queueing",
            "worker",
            "--app",
            "examples.demo_app:queue",
            "--concurrency",
            "4",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        current = [queue.get_job(j.id) for j in jobs]
        with Live(table(current), console=console, refresh_per_second=10) as live:
            while not all(j.status.is_terminal for j in current):
                # Wake on the first change of any unfinished job (LISTEN/NOTIFY), then redraw.
                pending = next(j for j in current if not j.status.is_terminal)
                queue.wait_for_change(pending, timeout=1.0)
                current = [queue.get_job(j.id) for j in jobs]
                live.update(table(current))
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
    console.print(f"worker stopped on SIGTERM with exit code {code}")
    console.print("try: queueing jobs list   |   queueing jobs show ID   |   queueing stats")


if __name__ == "__main__":
    main()
