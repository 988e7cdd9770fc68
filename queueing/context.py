"""What a running handler can see and do: its job, progress reports, cancellation."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from queueing import limits
from queueing.errors import InvalidPayload, InvalidProgress
from queueing.models import JSON

ProgressWriter = Callable[[int, JSON | None], Awaitable[None]]


class StopFlag:
    """Set once, when an attempt is asked to stop; read from the handler's thread.

    Nothing ever waits on it (async handlers are cancelled outright, sync ones poll
    ``ctx.cancelled``), so a bool does what a threading.Event did, without the lock and
    condition an Event costs per job. Assigning and reading an attribute are atomic in
    CPython.
    """

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


@dataclass
class JobContext:
    """Passed to a handler that declares a parameter annotated ``JobContext``.

    Async handlers ``await ctx.set_progress(...)``; sync handlers (run in a worker
    thread) call ``ctx.set_progress_sync(...)``. Both wait until the report is
    committed, so a later status change can never land before it.
    """

    job_id: int
    task_name: str
    queue: str
    attempt: int
    max_attempts: int
    tenant_id: str | None
    user_id: str | None
    _write_progress: ProgressWriter = field(repr=False)
    _loop: asyncio.AbstractEventLoop = field(repr=False)
    _cancelled: StopFlag = field(default_factory=StopFlag, repr=False)
    #: The tick this job runs for, if a schedule made it (``Queue.schedule``), in the
    #: queue clock's time; None for an enqueued job.
    schedule_tick: dt.datetime | None = None

    @property
    def cancelled(self) -> bool:
        """True once the job was asked to stop (cancel, timeout or worker shutdown).

        Async handlers are also cancelled outright; sync handlers should check this
        between steps and return early.
        """
        return self._cancelled.is_set()

    async def set_progress(self, percent: int, detail: JSON | None = None) -> None:
        """Record progress (0-100) and an optional JSON detail, e.g. ``{"stage": 2, "of": 6}``.

        Raises InvalidProgress (a ValueError), and writes nothing, for a percent that is
        not an integer between 0 and 100 or a detail that could not be stored as is.
        """
        check_progress(percent, detail)
        await self._write_progress(percent, detail)

    def set_progress_sync(self, percent: int, detail: JSON | None = None) -> None:
        """``set_progress`` for sync handlers: blocks the handler's thread until committed."""
        asyncio.run_coroutine_threadsafe(self.set_progress(percent, detail), self._loop).result()


def check_progress(percent: int, detail: JSON | None) -> None:
    """Raise InvalidProgress unless ``percent`` and ``detail`` can be recorded as given."""
    if isinstance(percent, bool) or not isinstance(percent, int):
        raise InvalidProgress(
            f"progress must be an integer between 0 and 100, got a {type(percent).__name__}"
        )
    if not 0 <= percent <= 100:
        raise InvalidProgress(f"progress must be between 0 and 100, got {percent}")
    if detail is not None:
        try:
            limits.check_json("progress detail", detail)
        except InvalidPayload as exc:
            raise InvalidProgress(str(exc)) from None
