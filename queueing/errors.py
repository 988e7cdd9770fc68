"""Typed exceptions: everything the library raises on purpose derives from QueueingError.

Each class says what it means and carries ``http_status``, the status a web application
would answer a request with when that error reaches it (the README's error table is
generated from these classes):

- 403 NotAllowed: the caller may see the job but not change it;
- 404 JobNotFound: no such job, or the caller may not see it (another tenant's);
- 404 QueueNotFound: no job, task or setting uses this queue name (a typo);
- 409 InvalidTransition: the job's status does not allow the change (cancel a completed job);
- 422 InvalidPayload, InvalidProgress, UnknownTask: the request itself is wrong;
- 503 DatabaseUnavailable, SchemaNotMigrated: try again later / an operator must act;
- 504 WaitTimeout: the job did not get there in time;
- 500 ConfigurationError (and QueueingError itself): the application is set up wrongly,
  e.g. an UnusableConnection given as ``connection=``;
- 500 InvalidResult: a handler returned a value a job record cannot hold (a bug in the
  handler; it is recorded as the job's error, a request only meets it through that).
"""

from __future__ import annotations

from typing import ClassVar


class QueueingError(Exception):
    """Base class. ``str(error)`` is one line meant for a human."""

    #: The HTTP status a web app would answer with when this error reaches a request.
    http_status: ClassVar[int] = 500


class ConfigurationError(QueueingError):
    """The queue is configured wrongly (bad URL, unknown app path, duplicate task...):
    a bug in the application's setup, not in the request (HTTP 500)."""

    http_status: ClassVar[int] = 500


class UnusableConnection(ConfigurationError):
    """``connection=`` is something the queue cannot join: not PostgreSQL through psycopg 3
    (e.g. SQLAlchemy on asyncpg or psycopg2, or SQLite), a closed connection or session, or
    a transaction that must be rolled back. Nothing was written; the library never opens a
    second connection instead, which would break "the job exists if and only if your
    transaction commits" (HTTP 500)."""

    http_status: ClassVar[int] = 500


class DatabaseUnavailable(QueueingError):
    """PostgreSQL could not be reached; nothing was done. Retry later (HTTP 503)."""

    http_status: ClassVar[int] = 503


class SchemaNotMigrated(QueueingError):
    """The database lacks the queue's schema, or has an older or newer one: an operator
    must run ``queueing db migrate`` or upgrade queueing (HTTP 503)."""

    http_status: ClassVar[int] = 503


class JobNotFound(QueueingError):
    """No job has this id, or the caller may not see it: another tenant's job is reported
    as not found, never as forbidden, so its existence does not leak (HTTP 404)."""

    http_status: ClassVar[int] = 404

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class QueueNotFound(QueueingError):
    """No job was ever enqueued into this queue, no task declares it and it has no
    settings (pause, limit): most likely a misspelt name; nothing changed (HTTP 404)."""

    http_status: ClassVar[int] = 404

    def __init__(self, queue: str) -> None:
        super().__init__(f"queue {queue!r} not found (no job, task or setting uses it)")
        self.queue = queue


class InvalidTransition(QueueingError):
    """The job is not in a status that allows the requested change, e.g. cancelling a
    completed job or retrying a pending one; nothing changed (HTTP 409)."""

    http_status: ClassVar[int] = 409

    def __init__(self, job_id: int, status: str, action: str) -> None:
        super().__init__(f"job {job_id} is {status}: it cannot be {action}")
        self.job_id = job_id
        self.status = status
        self.action = action


class NotAllowed(QueueingError):
    """The actor may see the job but not make this change (e.g. a user cancelling another
    user's job of the same tenant, or a user retrying); nothing changed (HTTP 403)."""

    http_status: ClassVar[int] = 403

    def __init__(self, job_id: int, action: str) -> None:
        super().__init__(f"not allowed to {action} job {job_id}")
        self.job_id = job_id
        self.action = action


class UnknownTask(QueueingError):
    """No task of this name is registered; nothing was enqueued (HTTP 422)."""

    http_status: ClassVar[int] = 422


class InvalidPayload(QueueingError):
    """A job's arguments (or options: queue name, priority, delay, ids) failed validation
    or the limits; nothing was enqueued (HTTP 422)."""

    http_status: ClassVar[int] = 422


class InvalidProgress(QueueingError, ValueError):
    """A progress report was refused before it was written: a percent that is not an
    integer from 0 to 100, or a detail that is not storable JSON within the payload
    limits (``queueing.limits``). A ValueError too, for handlers that catch that (HTTP 422)."""

    http_status: ClassVar[int] = 422


class WaitTimeout(QueueingError, TimeoutError):
    """The job did not reach the awaited status in time; it goes on (HTTP 504)."""

    http_status: ClassVar[int] = 504


class InvalidResult(QueueingError):
    """A handler returned a value that cannot be stored as its job's result: a type that
    has no JSON form (see ``queueing.worker.execute.result_json`` for the types converted
    on purpose), or a value over the limits of ``queueing.limits``. The attempt ends
    ``failed`` with this error, never retried: the handler's work is done (its side
    effects happened) and the same code would return the same value again. A bug in the
    handler, not in a request (HTTP 500)."""

    http_status: ClassVar[int] = 500
