"""The app's queue and tasks (a worker runs them: ``queueing worker --app reports.jobs:queue``)."""

from __future__ import annotations

from queueing import JobContext, Queue, RetryPolicy

queue = Queue()  # the database comes from QUEUEING_DATABASE_URL; tests use their own

STAGES = ("fetch", "clean", "analyse", "chart", "render", "upload")


@queue.task(name="generate_report", queue="reports")
async def generate_report(ctx: JobContext, report_id: int) -> dict[str, object]:
    """A six-stage pipeline that reports its progress after each stage."""
    for n, stage in enumerate(STAGES, start=1):
        await ctx.set_progress(round(100 * n / len(STAGES)), {"stage": stage, "n": n})
    return {"report_id": report_id, "stages": len(STAGES)}


class SmtpDown(ConnectionError):
    """The mail server refused the connection."""


FAIL_FIRST: dict[str, int] = {}
"""Recipients whose next N sends fail (tests set it to simulate an outage)."""


@queue.task(name="send_email", retry=RetryPolicy(max_attempts=3, delay=5))
def send_email(ctx: JobContext, to: str) -> str:
    """Sends a mail; retried after 5 s, then 10 s, if the mail server is down."""
    if FAIL_FIRST.get(to, 0) > 0:
        FAIL_FIRST[to] -= 1
        raise SmtpDown(f"smtp unavailable (attempt {ctx.attempt})")
    return f"sent to {to}"
