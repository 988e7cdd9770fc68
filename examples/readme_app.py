"""The README's example app: scripts/readme shows this file's code in the README and runs
the README's CLI session against it, so the code shown is the code run."""

from __future__ import annotations

from pydantic import BaseModel

from queueing import JobContext, Queue, RetryPolicy

queue = Queue()  # URL: argument, else QUEUEING_DATABASE_URL, else DATABASE_URL, else embedded


class Report(BaseModel):
    title: str
    pages: int = 6


@queue.task(name="generate_report", queue="reports", timeout=120)
async def generate_report(ctx: JobContext, report: Report) -> dict[str, object]:
    for stage in range(1, report.pages + 1):
        ...  # do the work of one stage
        await ctx.set_progress(
            round(100 * stage / report.pages), {"stage": stage, "of": report.pages}
        )
    return {"title": report.title, "pages": report.pages}


@queue.task(name="send_email", retry=RetryPolicy(max_attempts=5, delay=2))
def send_email(ctx: JobContext, to: str) -> str:  # plain functions run in a thread
    return f"sent to {to}"
