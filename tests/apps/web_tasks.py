"""The dashboard tests' app (``--app tests.apps.web_tasks:queue``): a job whose progress
advances slowly enough for a page to show it move, and one that fails."""

from __future__ import annotations

import asyncio

from queueing import JobContext, Queue, RetryPolicy

queue = Queue()


@queue.task(name="slow_stages")
async def slow_stages(ctx: JobContext, stages: int = 20, seconds: float = 0.4) -> dict[str, int]:
    for stage in range(1, stages + 1):
        await asyncio.sleep(seconds)  # allowed-sleep: simulates one stage of work
        await ctx.set_progress(
            round(100 * stage / stages), {"stage": stage, "message": f"stage {stage}/{stages}"}
        )
    return {"stages": stages}


@queue.task(name="fail", retry=RetryPolicy(max_attempts=1))
def fail(message: str) -> None:
    raise ValueError(message)


@queue.task(name="add")
def add(a: int, b: int) -> int:
    return a + b
