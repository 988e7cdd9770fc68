"""Run one claimed job's handler and turn what happened into an Outcome.

Async handlers run on the worker's event loop; plain functions each in a thread of their
own, started for that attempt. Not a fixed pool: Python cannot stop a thread, so a plain
function that overruns its ``timeout=`` keeps its thread until it returns, and with a pool
of ``concurrency`` threads every later plain-function job waited for a thread until its
own timeout fired, failing without ever running. A thread per attempt costs ~0.1 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic_core

from queueing import tracing
from queueing.context import JobContext
from queueing.errors import UnknownTask
from queueing.tasks import Task
from queueing.worker.outcome import Cancelled, Claimed, Outcome, OutcomeKind, error_json

#: Threads running plain-function handlers are named so; the daemon looks for them at exit.
JOB_THREAD_PREFIX = "queueing-job"


async def execute(
    job: Claimed,
    task: Task | None,
    ctx: JobContext,
    stop_reason: Callable[[], type[Exception] | None],
) -> Outcome:
    """Run the handler, in the attempt's span if tracing is on (``queueing.tracing``);
    never raises. ``stop_reason`` tells why we were cancelled, if we were."""
    if not tracing.tracing():
        return await _run(job, task, ctx, stop_reason)
    with tracing.attempt_span(job) as span:
        outcome = await _run(job, task, ctx, stop_reason)
        tracing.record_outcome(span, outcome)
        return outcome


async def _run(
    job: Claimed,
    task: Task | None,
    ctx: JobContext,
    stop_reason: Callable[[], type[Exception] | None],
) -> Outcome:
    started = time.perf_counter()
    try:
        if task is None:
            raise UnknownTask(f"no task named {job.task_name!r} in this worker's app")
        kwargs = task.handler_kwargs(job.args)
        if task.context_param:
            kwargs[task.context_param] = ctx
        result = await _call(task, kwargs, job.id)
        result_json = pydantic_core.to_json(result).decode()
    except asyncio.CancelledError:
        reason = stop_reason()
        if reason is None:
            raise
        return _stopped(job, reason, time.perf_counter() - started)
    except Exception as exc:
        tracing.record_exception(exc)
        return _failed(job, task, exc, time.perf_counter() - started)
    return Outcome(
        job, OutcomeKind.SUCCEEDED, result_json=result_json, duration=time.perf_counter() - started
    )


def _stopped(job: Claimed, reason: type[Exception], duration: float) -> Outcome:
    """The outcome of an attempt the worker stopped: cancelled, or interrupted by shutdown."""
    kind = OutcomeKind.CANCELLED if reason is Cancelled else OutcomeKind.INTERRUPTED
    message = (reason.__doc__ or kind).strip()
    return Outcome(
        job,
        kind,
        error_json=error_json(reason(message)),
        error_type=reason.__name__,
        duration=duration,
    )


def _failed(job: Claimed, task: Task | None, exc: Exception, duration: float) -> Outcome:
    """The outcome of a handler that raised: a retry if its policy says so, else failed."""
    retry = task is not None and task.retry.should_retry(exc, job.attempts, job.max_attempts)
    return Outcome(
        job,
        OutcomeKind.RETRY if retry else OutcomeKind.FAILED,
        error_json=error_json(exc),
        error_type=type(exc).__qualname__,
        retry_in=task.retry.delay_after(job.attempts) if retry and task else None,
        duration=duration,
    )


async def _call(task: Task, kwargs: dict[str, Any], job_id: int) -> Any:
    """Await the handler, within its timeout (which covers the handler's run only)."""
    if task.is_async:
        # Awaited in the job's own task (named for the job: the loop watchdog reads it).
        awaitable: Awaitable[Any] = task.handler(**kwargs)
    else:
        awaitable = _in_thread(task.handler, kwargs, f"{JOB_THREAD_PREFIX}-{job_id}")
    if task.timeout is None:
        return await awaitable
    try:
        async with asyncio.timeout(task.timeout):
            return await awaitable
    except TimeoutError:
        raise TimeoutError(
            f"task {task.name!r} ran past its timeout of {task.timeout:g}s "
            f"({'cancelled' if task.is_async else 'its thread was told to stop via ctx.cancelled'})"
        ) from None


def _in_thread(fn: Callable[..., Any], kwargs: dict[str, Any], name: str) -> asyncio.Future[Any]:
    """Call ``fn(**kwargs)`` in a new daemon thread; its result as a future of this loop.

    If the future is cancelled (timeout, cancel, shutdown) the thread runs on until ``fn``
    returns, and what it returns is dropped.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, exc: BaseException | None) -> None:
        if future.done():
            return  # cancelled meanwhile
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)

    def target() -> None:
        try:
            result, exc = fn(**kwargs), None
        except BaseException as caught:
            result, exc = None, caught
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, exc)

    # In a copy of this task's context: the handler sees the attempt's span as current.
    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(target,), name=name, daemon=True).start()
    return future
