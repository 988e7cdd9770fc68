"""Run one claimed job's handler and turn what happened into an Outcome.

Async handlers run on the worker's event loop; plain functions each in a thread of their
own, started for that attempt. Not a fixed pool: Python cannot stop a thread, so a plain
function that overruns its ``timeout=`` keeps its thread until it returns, and with a pool
of ``concurrency`` threads every later plain-function job waited for a thread until its
own timeout fired, failing without ever running. A thread per attempt costs ~0.1 ms.

What a handler returns is stored as its job's result, JSON in a jsonb column; see
``result_json`` for what may be returned and what is refused (``InvalidResult``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import datetime as dt
import decimal
import enum
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import pydantic_core
from pydantic import BaseModel

from queueing import limits, tracing
from queueing.context import JobContext
from queueing.errors import InvalidPayload, InvalidResult, UnknownTask
from queueing.tasks import Task
from queueing.worker.outcome import Cancelled, Claimed, Outcome, OutcomeKind, error_json

#: Threads running plain-function handlers are named so; the daemon looks for them at exit.
JOB_THREAD_PREFIX = "queueing-job"


def execute(
    job: Claimed,
    task: Task | None,
    ctx: Callable[[], JobContext],
    stop_reason: Callable[[], type[Exception] | None],
) -> Coroutine[Any, Any, Outcome]:
    """Run the handler, in the attempt's span if tracing is on (``queueing.tracing``);
    never raises. ``ctx`` builds the handler's JobContext, called only for a handler that
    takes one; ``stop_reason`` tells why we were cancelled, if we were.

    Returns the coroutine to await: without tracing, ``_run``'s own (one coroutine frame
    less for every job to enter and leave)."""
    if not tracing.tracing():
        return _run(job, task, ctx, stop_reason)
    return _traced(job, task, ctx, stop_reason)


async def _traced(
    job: Claimed,
    task: Task | None,
    ctx: Callable[[], JobContext],
    stop_reason: Callable[[], type[Exception] | None],
) -> Outcome:
    with tracing.attempt_span(job) as span:
        outcome = await _run(job, task, ctx, stop_reason)
        tracing.record_outcome(span, outcome)
        return outcome


async def _run(
    job: Claimed,
    task: Task | None,
    ctx: Callable[[], JobContext],
    stop_reason: Callable[[], type[Exception] | None],
) -> Outcome:
    started = time.perf_counter()
    try:
        if task is None:
            raise UnknownTask(f"no task named {job.task_name!r} in this worker's app")
        kwargs = task.handler_kwargs(job.args)
        if task.context_param:
            kwargs[task.context_param] = ctx()
        result = await _call(task, kwargs, job.id)
    except asyncio.CancelledError:
        reason = stop_reason()
        if reason is None:
            raise
        return _stopped(job, reason, time.perf_counter() - started)
    except Exception as exc:
        tracing.record_exception(exc)
        return _failed(job, task, exc, time.perf_counter() - started)
    try:
        stored = result_json(result, task_name=job.task_name)
    except InvalidResult as exc:
        # Failed, whatever the task's retry policy: the work is done (its side effects
        # happened) and the same code would return the same value again.
        return Outcome(
            job,
            OutcomeKind.FAILED,
            error_json=error_json(exc),
            error_type=type(exc).__qualname__,
            duration=time.perf_counter() - started,
        )
    return Outcome(
        job, OutcomeKind.SUCCEEDED, result_json=stored, duration=time.perf_counter() - started
    )


#: A result's size limit, as JSON in UTF-8 bytes: a job's arguments' (256 KB). A result
#: lives in the job's row and comes with every read of it (``get_job``, ``list_jobs``,
#: ``jobs show``); a large output belongs in the application's storage, and its
#: reference in the result.
MAX_RESULT_BYTES = limits.MAX_PAYLOAD_BYTES

#: Stored as the ISO 8601 string pydantic writes (``2024-05-01T12:00:00Z``, ``PT1H30M``),
#: or as text (UUID; Decimal exactly as written, ``"1.10"``).
_AS_TEXT = (dt.datetime, dt.date, dt.time, dt.timedelta, uuid.UUID, decimal.Decimal)

_SUPPORTED = (
    "JSON values, datetime/date/time/timedelta, UUID, Decimal, Enum, "
    "tuple/set/frozenset, pydantic models and dataclasses are stored"
)


def result_json(value: Any, *, task_name: str) -> str:
    """The JSON text a handler's return value is stored as; InvalidResult if it has none.

    Stored as they are: ``None``, ``bool``, ``int``, finite ``float``, ``str``, lists, and
    dicts (any Mapping) with ``str`` keys. Converted on purpose:

    - ``datetime``, ``date``, ``time`` -> ISO 8601 string (UTC as ``Z``), ``timedelta`` ->
      ISO 8601 duration (``"PT1H30M"``);
    - ``uuid.UUID`` -> its string; ``decimal.Decimal`` -> its exact string (``"1.10"``);
    - an ``enum.Enum`` member -> its value (converted in turn);
    - ``tuple`` -> list; ``set`` and ``frozenset`` -> list, in iteration order (sort
      it yourself if the order matters);
    - a pydantic model -> ``model_dump(mode="json")`` (its own serializers apply);
      a dataclass instance -> an object of its fields (converted in turn).

    Refused with InvalidResult: anything else (bytes, paths, arbitrary objects...),
    NaN and Infinity, keys that are not strings (JSON would turn ``{1: x}`` into
    ``{"1": x}``), strings holding NUL or lone surrogates (jsonb and UTF-8 cannot hold
    them), nesting deeper than ``limits.MAX_NESTING``, and over ``MAX_RESULT_BYTES``.
    A value of a refused type anywhere inside the result refuses the whole result.
    """
    if value is None:
        return "null"  # most handlers return nothing: no need to walk or measure it
    try:
        plain = _plain(value, (), 1)
        limits.check_json("result", plain, MAX_RESULT_BYTES)
        return json.dumps(plain, ensure_ascii=False, allow_nan=False)
    except (_NoJSON, InvalidPayload) as exc:  # both name the problem, never the value
        raise InvalidResult(f"task {task_name!r} returned an unstorable {exc}") from None
    except Exception as exc:  # a model's own serializer failed
        raise InvalidResult(
            f"task {task_name!r} returned an unstorable result: converting it raised "
            f"{type(exc).__name__}: {exc}"
        ) from exc


class _NoJSON(Exception):
    """A value of a type ``result_json`` refuses; the message says where and which."""


def _plain(value: Any, path: tuple[str | int, ...], depth: int) -> Any:
    """``value`` as plain JSON values (see ``result_json``). Recursion is bounded: past
    ``MAX_NESTING`` levels (or a self-referential value) it stops."""
    if depth > limits.MAX_NESTING:
        raise InvalidPayload(
            f"result: nested deeper than {limits.MAX_NESTING} levels (or self-referential)"
        )
    if isinstance(value, enum.Enum):
        return _plain(value.value, path, depth)
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return value
    if isinstance(value, Mapping):
        plain: dict[str, Any] = {}
        for key, child in value.items():
            if not isinstance(key, str):
                raise _NoJSON(
                    f"{_where(path)} has a key of type {type(key).__name__}: "
                    "JSON object keys are strings"
                )
            plain[key] = _plain(child, (*path, key), depth + 1)
        return plain
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(child, (*path, i), depth + 1) for i, child in enumerate(value)]
    if isinstance(value, _AS_TEXT):
        return pydantic_core.to_jsonable_python(value)
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="json"), path, depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name), (*path, f.name), depth + 1)
            for f in dataclasses.fields(value)
        }
    raise _NoJSON(f"{_where(path)} is of type {type(value).__qualname__}; {_SUPPORTED}")


def _where(path: tuple[str | int, ...]) -> str:
    """``result: result['items'][2]``: where in the result a refused value is (keys cut
    at 40 characters; the message is stored with the job, as the result would have been)."""
    return "result: result" + "".join(
        f"[{part}]" if isinstance(part, int) else f"[{part[:40]!r}]" for part in path
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


def _call(task: Task, kwargs: dict[str, Any], job_id: int) -> Awaitable[Any]:
    """The handler's run to await, within its timeout (which covers the handler's run
    only). Without a timeout, the handler's own awaitable: no frame of ours around it."""
    if task.is_async:
        # Awaited in the job's own task (named for the job: the loop watchdog reads it).
        awaitable: Awaitable[Any] = task.handler(**kwargs)
    else:
        awaitable = _in_thread(task.handler, kwargs, f"{JOB_THREAD_PREFIX}-{job_id}")
    if task.timeout is None:
        return awaitable
    return _within(task, task.timeout, awaitable)


async def _within(task: Task, timeout: float, awaitable: Awaitable[Any]) -> Any:
    try:
        async with asyncio.timeout(timeout):
            return await awaitable
    except TimeoutError:
        raise TimeoutError(
            f"task {task.name!r} ran past its timeout of {timeout:g}s "
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
