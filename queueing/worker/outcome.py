"""What crosses between the worker and the database: a claimed job and an attempt's outcome.

Both are contracts with SQL. ``Claimed`` is built from the claim's rows by column name
(psycopg's ``class_row``), never by position. ``OutcomeKind`` names the values of the
database type ``queueing_outcome_v1`` that ``queueing_finish_v5`` takes; the database
refuses any other.
"""

from __future__ import annotations

import datetime as dt
import enum
import traceback
from dataclasses import dataclass
from typing import Any

import pydantic_core

MAX_TRACEBACK = 8000


@dataclass(frozen=True)
class Claimed:
    """A job as the claim returns it: the columns of the ``claim_jobs`` query, by name.

    ``claimed_by_worker`` returns the same columns (``lost_claims``).
    """

    id: int
    task_name: str
    queue_name: str
    #: The handler's arguments, as stored (validated by the task's model before the run).
    args: dict[str, Any]
    #: This attempt's number (the claim counted it) and how many the job may have.
    attempts: int
    max_attempts: int
    #: Whose job it is, for the handler's ``ctx`` (row-level security reads them too).
    tenant_id: str | None
    user_id: str | None
    #: Claimed to run alone: its worker was lost while it ran beside others with its
    #: attempts spent, and this run decides whether it is the job that kills workers.
    run_alone: bool = False
    #: When the job fell due: the later of its scheduled and created times (the pickup
    #: latency metric). None from ``claimed_by_worker``, whose jobs are given back unrun.
    due_at: dt.datetime | None = None
    #: The W3C trace context of the span the job was enqueued in (``queueing.tracing``).
    trace_context: dict[str, str] | None = None
    #: The schedule tick the job was made for (``queueing.schedules``), else None.
    schedule_tick: dt.datetime | None = None
    #: A concurrency limit (its key's or its queue's) counts this job while it is active:
    #: the commit of its outcome frees a slot other claims may be waiting for.
    limited: bool = False


class OutcomeKind(enum.StrEnum):
    """How an attempt ended (the database type ``queueing_outcome_v1``)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRY = "retry"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Outcome:
    """What became of one attempt, to be written by the finisher."""

    job: Claimed
    kind: OutcomeKind
    result_json: str | None = None
    error_json: str | None = None
    error_type: str | None = None
    retry_in: float | None = None
    duration: float = 0.0


class ClaimLost(Exception):
    """The claim committed but its reply was lost with the connection: the job never ran
    here, and goes back to pending without using up an attempt."""


class Interrupted(Exception):
    """The worker shut down and its grace period ended before the job finished."""


class Cancelled(Exception):
    """The job was cancelled while it ran."""


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
