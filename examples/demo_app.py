"""The demo's tasks: what a user's app module looks like.

Run a worker for it with ``queueing worker --app examples.demo_app:queue``.
"""

from __future__ import annotations

import asyncio
import random

from pydantic import BaseModel

from queueing import JobContext, Queue, RetryPolicy

queue = Queue()


class Report(BaseModel):
    """The payload of a report job (validated when it is enqueued)."""

    title: str
    pages: int = 6


@queue.task(name="generate_report", queue="reports", timeout=120)
async def generate_report(ctx: JobContext, report: Report) -> dict[str, object]:
    """A six-stage pipeline that reports its progress after each stage."""
    for stage in range(1, report.pages + 1):
        await asyncio.sleep(random.uniform(0.2, 0.5))  # allowed-sleep: simulates work
        await ctx.set_progress(
            round(100 * stage / report.pages),
            {"stage": stage, "of": report.pages, "message": f"stage {stage}/{report.pages}"},
        )
    return {"title": report.title, "pages": report.pages}


@queue.task(name="send_email", retry=RetryPolicy(max_attempts=3, delay=0.5))
def send_email(ctx: JobContext, to: str) -> str:
    """Fails on its first attempt, to show a retry with backoff."""
    if ctx.attempt == 1:
        raise ConnectionError("smtp server unavailable")
    return f"sent to {to}"
