"""The queue and its task (a worker runs them: ``queueing worker --app exports.jobs:queue``)."""

from __future__ import annotations

from queueing import JobContext, Queue

queue = Queue()  # QUEUEING_DATABASE_URL (or DATABASE_URL): the app's own database

STAGES = ("query", "render", "compress", "upload")


@queue.task(name="build_export", queue="exports")
async def build_export(ctx: JobContext, kind: str) -> dict[str, object]:
    """Builds one export in four stages, reporting its progress after each."""
    for n, stage in enumerate(STAGES, start=1):
        ...  # the work of one stage
        await ctx.set_progress(round(100 * n / len(STAGES)), {"stage": stage})
    return {"kind": kind, "file": f"exports/{ctx.job_id}-{kind}.csv"}
