"""A user's app, as the worker daemon imports it: ``--app tests.apps.tasks_app:queue``.

The database comes from QUEUEING_DATABASE_URL, as in production.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel

from queueing import JobContext, Queue, RetryPolicy

queue = Queue()


class Greeting(BaseModel):
    name: str
    times: int = 1


@queue.task(name="noop")
async def noop() -> None:
    return None


@queue.task(name="add")
def add(a: int, b: int) -> int:
    return a + b


@queue.task(name="greet")
async def greet(payload: Greeting) -> str:
    return " ".join([f"hello {payload.name}"] * payload.times)


@queue.task(name="fail", retry=RetryPolicy(max_attempts=1))
def fail(message: str) -> None:
    raise ValueError(message)


@queue.task(name="flaky", retry=RetryPolicy(max_attempts=3, delay=0))
def flaky(ctx: JobContext, succeed_on: int) -> int:
    if ctx.attempt < succeed_on:
        raise ConnectionError(f"attempt {ctx.attempt} failed")
    return ctx.attempt


@queue.task(name="work")
async def work(seconds: float) -> str:
    await asyncio.sleep(seconds)  # allowed-sleep: simulates work
    return "done"


@queue.task(name="sync_work")
def sync_work(ctx: JobContext, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not ctx.cancelled:
        time.sleep(0.01)  # allowed-sleep: simulates work, checking for cancellation
    return "stopped" if ctx.cancelled else "done"


@queue.task(name="stages")
async def stages(ctx: JobContext, count: int = 6) -> dict[str, int]:
    for stage in range(1, count + 1):
        await ctx.set_progress(
            round(100 * stage / count),
            {"stage": stage, "of": count, "message": f"stage {stage}/{count}"},
        )
    return {"stages": count}
