"""What the pages read: the dashboard's queries as operations (``queueing.ops.Op``),
and the records they give.

The operator pages read as the queue's owner (every job); the end-user view reads only
through the row-level-security API (``queueing_api_jobs_v1``, ``queueing_api_cancel_v1``)
on a connection of the web role, for the actor set in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from queueing.models import JSON, Job, JobError, JobStatus
from queueing.ops import Op, Query
from queueing.queues import QueueInfo, list_queues
from queueing.web.params import JobQuery

THROUGHPUT_SLOTS = 12
"""The overview's chart: the last hour in slots of five minutes."""


class QueueOverview(QueueInfo):
    """One queue's line on the overview: the library's ``list_queues`` record (counts,
    ``paused``, ``max_active``) and its throughput."""

    throughput: tuple[int, ...] = ()
    """Jobs finished in each five-minute slot of the last hour, oldest first."""


class WorkerRow(BaseModel):
    """A registered worker and the jobs it runs now."""

    model_config = ConfigDict(frozen=True)

    id: int
    host: str | None
    """None for a worker registered before migration 0010 or by procrastinate itself."""
    pid: int | None
    started_at: dt.datetime | None
    last_heartbeat: dt.datetime
    heartbeat_age_seconds: float
    running_job_ids: list[int]


class ApiJob(BaseModel):
    """A job as the row-level-security API shows it to an end user (no arguments, no
    worker id)."""

    model_config = ConfigDict(frozen=True)

    id: int
    task_name: str
    queue: str
    tenant_id: str | None
    user_id: str | None
    status: JobStatus
    progress: int
    progress_detail: JSON | None
    result: JSON | None
    error: JobError | None
    attempts: int
    max_attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    cancel_requested: bool
    cancelled_by: str | None


@dataclass(frozen=True)
class JobPage:
    """One page of the jobs list, and how many jobs the filters match in all."""

    jobs: list[Job]
    total: int
    newest_id: int | None

    @property
    def next_before_id(self) -> int | None:
        return self.jobs[-1].id if self.jobs else None


def overview() -> Op[list[QueueOverview]]:
    """Every queue's counts and settings (``queueing.queues.list_queues``, as the library
    gives them) and its throughput over the last hour."""
    infos = {q.name: q for q in (yield from list_queues())}
    finished: dict[tuple[str, int], int] = {
        (r["queue"], r["slot"]): r["finished"] for r in (yield Query("dashboard_throughput"))
    }
    for name, _ in finished:  # (between the two reads, a queue's last job may be pruned)
        infos.setdefault(name, _idle(name))
    return [
        QueueOverview(
            **infos[name].model_dump(),
            throughput=tuple(
                finished.get((name, slot), 0) for slot in range(THROUGHPUT_SLOTS, 0, -1)
            ),
        )
        for name in sorted(infos)
    ]


def _idle(name: str) -> QueueInfo:
    return QueueInfo(
        name=name,
        pending=0,
        active=0,
        delayed=0,
        failed_last_hour=0,
        oldest_pending_age_seconds=None,
        paused=False,
        max_active=None,
    )


def jobs_page(query: JobQuery) -> Op[JobPage]:
    """The page of jobs ``query`` asks for, and the count of all it matches."""
    params = query.sql_params()
    rows = yield Query("list_jobs", params)
    (count,) = yield Query("dashboard_count_jobs", params)
    return JobPage(
        jobs=[Job.model_validate(r) for r in rows],
        total=count["total"],
        newest_id=count["newest_id"],
    )


def matching_ids(query: JobQuery, newest_id: int, limit: int) -> Op[list[int]]:
    """The ids of the jobs ``query``'s filters match, none newer than ``newest_id``."""
    params = {**query.sql_params(), "before_id": newest_id + 1, "limit": limit}
    rows = yield Query("list_jobs", params)
    return [r["id"] for r in rows]


def workers() -> Op[list[WorkerRow]]:
    rows = yield Query("dashboard_workers")
    return [WorkerRow.model_validate(r) for r in rows]


def api_jobs(before_id: int | None, limit: int) -> Op[list[ApiJob]]:
    """The actor's jobs, newest first (the actor set in this transaction)."""
    rows = yield Query("dashboard_api_jobs", {"id": None, "before_id": before_id, "limit": limit})
    return [ApiJob.model_validate(r) for r in rows]


def api_visible(ids: Sequence[int]) -> Op[list[int]]:
    """Which of ``ids`` the actor may see (the actor set in this transaction)."""
    rows = yield Query("dashboard_api_visible", {"ids": list(ids)})
    return [r["id"] for r in rows]


def api_cancel(job_id: int) -> Op[str]:
    """Cancel one of the actor's jobs: the outcome (cancelled, stop_requested,
    already_requested, terminal, not_found)."""
    (row,) = yield Query("dashboard_api_cancel", {"id": job_id})
    return str(row["outcome"])
