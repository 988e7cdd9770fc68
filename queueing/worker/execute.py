"""Run one claimed job's handler and turn what happened into an Outcome."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pydantic_core

from queueing.context import JobContext
from queueing.errors import UnknownTask
from queueing.tasks import Task

MAX_TRACEBACK = 8000


@dataclass(frozen=True)
class Claimed:
    """A job as the claim returns it."""

    id: int
    task_name: str
    queue_name: str
    args: dict[str, Any]
    attempts: int
    max_attempts: int
    tenant_id: str | None
    user_id: str | None


@dataclass
class Outcome:
    """What became of one attempt, to be written by the finisher.

    kind: 'succeeded' | 'failed' | 'retry' | 'cancelled' | 'interrupted'
    """

    job: Claimed
    kind: str
    result_json: str | None = None
    error_json: str | None = None
    error_type: str | None = None
    retry_in: float | None = None
    duration: float = 0.0


def error_json(exc: BaseException) -> str:
    """The stored error: type, message, traceback tail, always storable as jsonb."""
    tb = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK:]
    return pydantic_core.to_json(
        {
            "type": type(exc).__qualname__,
            "message": _storable(str(exc)),
            "traceback": _storable(tb),
        }
    ).decode()


def _storable(text: str) -> str:
    """``text`` without what jsonb cannot hold: NUL, and lone surrogates (which cannot
    be UTF-8). An exception's message may quote hostile input; the job must still end."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode()


class ClaimLost(Exception):
    """The claim committed but its reply was lost with the connection: the job never ran
    here, and goes back to pending without using up an attempt."""


class Interrupted(Exception):
    """The worker shut down and its grace period ended before the job finished."""


class Cancelled(Exception):
    """The job was cancelled while it ran."""


async def execute(
    job: Claimed,
    task: Task | None,
    ctx: JobContext,
    threads: concurrent.futures.Executor,
    stop_reason: Callable[[], type[Exception] | None],
) -> Outcome:
    """Run the handler; never raises. ``stop_reason`` tells why we were cancelled, if we were."""
    started = time.perf_counter()
    try:
        if task is None:
            raise UnknownTask(f"no task named {job.task_name!r} in this worker's app")
        kwargs = task.handler_kwargs(job.args)
        if task.context_param:
            kwargs[task.context_param] = ctx
        result = await _call(task, kwargs, threads)
        result_json = pydantic_core.to_json(result).decode()
    except asyncio.CancelledError:
        reason = stop_reason()
        if reason is None:
            raise
        kind = "cancelled" if reason is Cancelled else "interrupted"
        message = (reason.__doc__ or kind).strip()
        return Outcome(
            job,
            kind,
            error_json=error_json(reason(message)),
            error_type=reason.__name__,
            duration=time.perf_counter() - started,
        )
    except Exception as exc:
        duration = time.perf_counter() - started
        if task is not None and task.retry.should_retry(exc, job.attempts, job.max_attempts):
            return Outcome(
                job,
                "retry",
                error_json=error_json(exc),
                error_type=type(exc).__qualname__,
                retry_in=task.retry.delay_after(job.attempts),
                duration=duration,
            )
        return Outcome(
            job,
            "failed",
            error_json=error_json(exc),
            error_type=type(exc).__qualname__,
            duration=duration,
        )
    finally:
        # Whatever happened, the attempt is over: a sync handler still running in its
        # thread (timed out, abandoned at shutdown) sees ctx.cancelled and can stop.
        ctx._cancelled.set()
    return Outcome(
        job, "succeeded", result_json=result_json, duration=time.perf_counter() - started
    )


async def _call(task: Task, kwargs: dict[str, Any], threads: concurrent.futures.Executor) -> Any:
    if task.is_async:
        awaitable: Awaitable[Any] = task.handler(**kwargs)
    else:
        loop = asyncio.get_running_loop()
        awaitable = loop.run_in_executor(threads, functools.partial(task.handler, **kwargs))
    if task.timeout is None:
        return await awaitable
    async with asyncio.timeout(task.timeout):
        return await awaitable
