"""Query parameters, checked: anything the pages do not know is a 400 with one line.

A page's filters come from its URL (``/jobs?status=failed&queue=q``), so they are user
input: each value is checked with the library's own limits before any query runs, and
an unknown name, an unknown status, a negative limit or a huge page is refused
(``BadRequest``) instead of being ignored or reaching the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from queueing import limits
from queueing.errors import InvalidPayload
from queueing.models import JobStatus
from queueing.queue import check_queue_name

MAX_PAGE = 500
DEFAULT_PAGE = 50
MAX_ERROR_TEXT = 200
MAX_ID = 2**63 - 1
JOB_FILTERS = ("status", "queue", "task", "tenant", "user", "error", "after", "before")


class BadRequest(Exception):
    """A request the dashboard refuses before doing anything (HTTP 400); one line."""

    http_status = 400


@dataclass(frozen=True)
class JobQuery:
    """The jobs page's filters and page, as checked values."""

    statuses: tuple[JobStatus, ...] = ()
    queue: str | None = None
    task: str | None = None
    tenant: str | None = None
    user: str | None = None
    error: str | None = None
    after: dt.datetime | None = None
    before: dt.datetime | None = None
    before_id: int | None = None
    limit: int = DEFAULT_PAGE

    def sql_params(self) -> dict[str, Any]:
        """The parameters of the list_jobs / dashboard_count_jobs queries."""
        return {
            "statuses": [str(s) for s in self.statuses] or None,
            "task": self.task,
            "queue": self.queue,
            "tenant_id": self.tenant,
            "user_id": self.user,
            "created_after": self.after,
            "created_before": self.before,
            "error_text": self.error,
            "before_id": self.before_id,
            "limit": self.limit,
        }

    def filter_items(self) -> list[tuple[str, str]]:
        """The filters as URL parameters (no page): for links and hidden form fields."""
        items = [("status", str(s)) for s in self.statuses]
        for name in ("queue", "task", "tenant", "user", "error"):
            value = getattr(self, name)
            if value is not None:
                items.append((name, value))
        for name in ("after", "before"):
            moment = getattr(self, name)
            if moment is not None:
                items.append((name, moment.isoformat()))
        return items

    def query_string(self, **changes: Any) -> str:
        """This query as a URL's query string, with ``changes`` applied."""
        query = replace(self, **changes)
        items = query.filter_items()
        if query.before_id is not None:
            items.append(("before_id", str(query.before_id)))
        if query.limit != DEFAULT_PAGE:
            items.append(("limit", str(query.limit)))
        return urlencode(items)

    @property
    def filtered(self) -> bool:
        return bool(self.filter_items())


def only(params: Mapping[str, str] | QueryParams, allowed: Sequence[str]) -> None:
    """BadRequest for a parameter name not in ``allowed``."""
    for name in params:
        if name not in allowed:
            raise BadRequest(f"unknown query parameter {name!r}")


def job_query(params: QueryParams, *, extra: Sequence[str] = ()) -> JobQuery:
    """The jobs page's query from its URL parameters; BadRequest for anything wrong.

    Empty values count as absent (an HTML form sends its empty fields)."""
    only(params, (*JOB_FILTERS, "before_id", "limit", *extra))
    values = {k: v for k, v in params.multi_items() if v != ""}
    for name in values:
        if name != "status" and len(params.getlist(name)) > 1:
            raise BadRequest(f"query parameter {name!r} given more than once")
    return JobQuery(
        statuses=tuple(status(s) for s in params.getlist("status") if s),
        queue=_checked(values.get("queue"), check_queue_name),
        task=_checked(values.get("task"), limits.check_task_name),
        tenant=_checked(values.get("tenant"), lambda v: limits.check_id("tenant", v)),
        user=_checked(values.get("user"), lambda v: limits.check_id("user", v)),
        error=_error_text(values.get("error")),
        after=moment("after", values.get("after")),
        before=moment("before", values.get("before")),
        before_id=job_id(values["before_id"], "before_id") if "before_id" in values else None,
        limit=page_size(values.get("limit")),
    )


def status(value: str) -> JobStatus:
    try:
        return JobStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in JobStatus)
        raise BadRequest(f"unknown status {value!r} (one of {known})") from None


def job_id(value: str, name: str = "job id") -> int:
    """A positive job id that fits the id column; BadRequest otherwise."""
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_ID:
        raise BadRequest(f"{name} must be a positive integer, got {value[:40]!r}")
    return int(value)


def page_size(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE
    if not value.isascii() or not value.lstrip("-").isdigit():
        raise BadRequest(f"limit must be an integer, got {value[:40]!r}")
    if not 1 <= int(value) <= MAX_PAGE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE}, got {value[:40]}")
    return int(value)


def moment(name: str, value: str | None) -> dt.datetime | None:
    """An ISO 8601 time (a time without a zone is UTC, as the pages show times)."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 time, got {value[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _checked(value: str | None, check: Any) -> str | None:
    if value is None:
        return None
    try:
        check(value)
    except InvalidPayload as exc:
        raise BadRequest(str(exc)) from None
    return value


def _error_text(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_ERROR_TEXT:
        raise BadRequest(f"error must be at most {MAX_ERROR_TEXT} characters")
    return _checked(value, lambda v: limits.check_id("error", v[:MAX_ERROR_TEXT]))
