"""Periodic jobs: a task's schedule (cron), the ticks due, and the schedules' state.

A schedule is declared in code with ``Queue.schedule(task, cron, ...)``. Every worker of
that app runs a scheduler (``queueing/worker/scheduler.py``) that computes the due ticks
here and runs each in the database, where the primary key of
``queueing_schedule_ticks`` (schedule, tick) lets exactly one job per tick through,
whatever the number of workers (migration 0009, docs/design.md "Periodic jobs").

Cron expressions are read by ``cronsim`` (see pyproject.toml for why that parser): five
fields, evaluated in the schedule's ``timezone``, with the DST rules of Debian's cron: on
the night the clock falls back a job at a fixed time runs once, an hourly one every real
hour; one whose time the clock skips in spring runs when the clock jumps.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict

from queueing.errors import ConfigurationError
from queueing.models import JSON, JobStatus
from queueing.ops import Op, Query

if TYPE_CHECKING:
    from queueing.tasks import Task

#: How many missed ticks a schedule may ask to run after an outage, at most.
MAX_CATCH_UP = 100
#: One microsecond: cronsim's iteration excludes its start instant.
_TICK = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class Schedule:
    """A task run on a cron schedule (declared with ``Queue.schedule``).

    ``catch_up``: when the workers were all down across several ticks, how many of the
    most recent missed ticks run (each once) when one comes back; default 1: the latest.
    """

    name: str
    task: Task = field(repr=False)
    cron: str
    timezone: str
    args: Mapping[str, JSON]
    catch_up: int = 1

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def due_ticks(self, after: dt.datetime, now: dt.datetime) -> list[dt.datetime]:
        """The ticks in (``after``, ``now``] to run: the most recent ``catch_up`` of them,
        oldest first (UTC)."""
        found: list[dt.datetime] = []
        for tick in CronSim(self.cron, (now + _TICK).astimezone(self.zone), reverse=True):
            if tick <= after or len(found) == self.catch_up:
                break
            found.append(tick.astimezone(dt.UTC))
        return found[::-1]

    def next_tick(self, after: dt.datetime) -> dt.datetime:
        """The first tick strictly after ``after`` (UTC)."""
        return next_tick(self.cron, self.timezone, after)

    def job_row(self, tick: dt.datetime) -> dict[str, Any]:
        """What ``fire_schedule_ticks`` inserts for one tick of this schedule."""
        return {
            "schedule_name": self.name,
            "tick_at": tick.isoformat(),
            "task_name": self.task.name,
            "queue_name": self.task.queue,
            "priority": self.task.priority,
            "args": dict(self.args),
            "max_attempts": self.task.retry.max_attempts,
        }

    def registration(self) -> dict[str, Any]:
        """What ``register_schedules`` stores for this schedule."""
        return {
            "name": self.name,
            "task_name": self.task.name,
            "cron": self.cron,
            "timezone": self.timezone,
            "queue_name": self.task.queue,
            "args": dict(self.args),
        }


def build_schedule(
    task: Task,
    cron: str,
    *,
    args: Mapping[str, Any] | BaseModel | None,
    timezone: str,
    name: str | None,
    catch_up: int,
) -> Schedule:
    """A checked Schedule: ConfigurationError for a bad cron expression, timezone or
    catch_up (a bug in the app's declarations); InvalidPayload for arguments the task
    refuses."""
    check_cron(cron)
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"unknown timezone {timezone!r}") from None
    if isinstance(catch_up, bool) or not isinstance(catch_up, int):
        raise ConfigurationError("catch_up must be an integer")
    if not 1 <= catch_up <= MAX_CATCH_UP:
        raise ConfigurationError(f"catch_up must be between 1 and {MAX_CATCH_UP}, got {catch_up}")
    stored = task.validate_args(args)
    default = f"{task.name} {cron}" + (f" {json.dumps(stored, sort_keys=True)}" if stored else "")
    return Schedule(name or default, task, cron, timezone, stored, catch_up)


def next_tick(cron: str, timezone: str, after: dt.datetime) -> dt.datetime:
    """The first tick of ``cron`` in ``timezone`` strictly after ``after`` (UTC)."""
    zone = zoneinfo.ZoneInfo(timezone)
    return next(iter(CronSim(cron, after.astimezone(zone)))).astimezone(dt.UTC)


def check_cron(cron: str) -> str:
    """``cron`` if cronsim reads it (five fields); ConfigurationError otherwise."""
    try:
        CronSim(cron, dt.datetime.now(dt.UTC))
    except (CronSimError, TypeError) as exc:
        raise ConfigurationError(f"invalid cron expression {cron!r}: {exc}") from None
    return cron


class ScheduleInfo(BaseModel):
    """One schedule as ``schedules list`` shows it.

    ``declared``: whether the app's code declares it (None when the caller gave no app,
    so only the database's registry is known). A schedule the code no longer declares
    stops firing; its registration stays as the record of its last tick.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    task_name: str
    cron: str
    timezone: str
    queue: str
    args: dict[str, JSON]
    declared: bool | None
    registered_at: dt.datetime | None
    next_run_at: dt.datetime | None
    last_tick_at: dt.datetime | None
    last_job_id: int | None
    last_job_status: JobStatus | None


def list_schedules(declared: Mapping[str, Schedule]) -> Op[list[ScheduleInfo]]:
    """The registered schedules and, when ``declared`` is not empty, the app's own (next
    run computed for those the code declares, on the queue clock)."""
    (clock,) = yield Query("queue_clock_now")
    rows = {r["name"]: r for r in (yield Query("list_schedules"))}
    known = bool(declared)
    infos = []
    for name in sorted(set(rows) | set(declared)):
        row, schedule = rows.get(name), declared.get(name)
        after = max(clock["now"], (row or {}).get("last_tick_at") or clock["now"])
        base = schedule.registration() if schedule else dict(row or {})
        # Not declared by the app's code: it fires no more (unknown without an app).
        fires = schedule is not None or not known
        infos.append(
            ScheduleInfo(
                name=name,
                task_name=base["task_name"],
                cron=base["cron"],
                timezone=base["timezone"],
                queue=base["queue_name"] if schedule else base["queue"],
                args=base["args"],
                declared=(schedule is not None) if known else None,
                registered_at=row["registered_at"] if row else None,
                next_run_at=next_tick(base["cron"], base["timezone"], after) if fires else None,
                last_tick_at=row["last_tick_at"] if row else None,
                last_job_id=row["last_job_id"] if row else None,
                last_job_status=row["last_job_status"] if row else None,
            )
        )
    return infos
