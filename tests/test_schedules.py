"""Periodic jobs: one job per tick whatever the number of workers, on the queue clock.

No test waits for the wall clock: ``QueueClock.advance`` moves the queue clock
(``queueing_now_v1``) that schedulers read, and the tests wait on the workers' log lines
or drive a scheduler's rounds themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import zoneinfo
from collections.abc import Callable, Iterator

import psycopg
import pytest

from queueing import ConfigurationError, InvalidPayload, JobStatus, Queue
from queueing.schedules import MAX_CATCH_UP, Schedule
from queueing.testing import QueueClock
from queueing.worker.connection import Connection
from queueing.worker.scheduler import Scheduler
from tests.apps import scheduled_app
from tests.helpers import Fleet, pointed_at, run_cli, wait_all

APP = "tests.apps.scheduled_app:queue"
UTC = dt.UTC
BERLIN = "Europe/Berlin"


@pytest.fixture
def app(queue: Queue) -> Iterator[Queue]:
    """The scheduled app's Queue on this test's (emptied) database."""
    with pointed_at(scheduled_app.queue, queue.database_url) as q:
        yield q


def _tick_jobs(url: str) -> list[tuple[int, str, dt.datetime]]:
    """(job id, schedule, tick) of every tick run, oldest tick first, read from the tick
    table joined to the job rows (a tick without its job, or the reverse, is missing)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT j.id, k.schedule_name, j.schedule_tick FROM queueing_schedule_ticks AS k "
            "JOIN procrastinate_jobs AS j ON j.id = k.job_id AND j.schedule_tick = k.tick_at "
            "ORDER BY k.tick_at"
        ).fetchall()
        (jobs,) = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE schedule_tick IS NOT NULL"
        ).fetchone() or (0,)
    assert jobs == len(rows), "every tick job has its tick row"
    return [(r[0], r[1], r[2]) for r in rows]


def test_four_workers_over_three_hours_of_a_five_minute_schedule_run_36_jobs(app: Queue) -> None:
    url = app.database_url
    clock = QueueClock(app)
    # The queue clock is the wall clock plus an offset: real time flows under the steps.
    # Started anywhere, a 5-minute mark of the wall clock passing mid-test shifted every
    # later step by one tick (a 10-minute gap, once in a full run). Start 1 s past a mark:
    # the steps stay on their ticks while the test takes under 299 s.
    with psycopg.connect(url) as conn:
        (now,) = conn.execute("SELECT queueing_now_v1()").fetchone() or (None,)
    assert isinstance(now, dt.datetime)
    clock.advance(300 - ((now.minute % 5) * 60 + now.second + now.microsecond / 1e6) + 1)
    # No pruner, no vacuumer: two connections less per worker (the server is shared).
    args = (
        "--app", APP, "--schedule-interval", "0.05", "--poll-interval", "0.2",
        "--prune-interval", "0", "--vacuum-interval", "0",
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        fleet = Fleet(stack, url, *[args] * 4)
        fleet.wait_until(
            "every worker registered its schedule",
            lambda: fleet.count("schedules.registered") == 4,
            60,
        )
        for step in range(1, 37):
            clock.advance(300)
            fleet.wait_until(f"tick {step} fired", _fired(fleet, step), 60)
        ticks = _tick_jobs(url)
        wait_all(app, [job_id for job_id, _, _ in ticks], 60)
        assert fleet.stop() == [0, 0, 0, 0]
    assert len(ticks) == 36
    assert fleet.count("schedule.fired") == 36  # one worker won each tick
    times = [tick for _, _, tick in ticks]
    assert all(t.minute % 5 == 0 and t.second == 0 and t.microsecond == 0 for t in times)
    assert [b - a for a, b in itertools.pairwise(times)] == [dt.timedelta(minutes=5)] * 35
    jobs = [app.get_job(job_id) for job_id, _, _ in ticks]
    assert {j.status for j in jobs} == {JobStatus.COMPLETED}
    # The handler read its tick from ctx.schedule_tick.
    assert [j.result for j in jobs] == [t.isoformat() for t in times]
    winners = sorted(int(str(line["job_id"])) for line in fleet.events("schedule.fired"))
    assert winners == sorted(job_id for job_id, _, _ in ticks)


def _fired(fleet: Fleet, count: int) -> Callable[[], bool]:
    return lambda: fleet.count("schedule.fired") >= count


async def _round(scheduler: Scheduler, url: str) -> None:
    conn = Connection(url)
    try:
        await scheduler.round(conn)
    finally:
        await conn.close()


def test_missed_ticks_run_the_latest_once_by_default_or_catch_up_many(queue: Queue) -> None:
    @queue.task(name="report")
    def report() -> None:
        return None

    latest = queue.schedule(report, "*/5 * * * *", name="latest")
    several = queue.schedule(report, "*/5 * * * *", name="several", catch_up=3)
    scheduler = Scheduler(queue.database_url, queue.schedules, interval=1.0)
    asyncio.run(_round(scheduler, queue.database_url))  # registers: nothing due yet
    assert _tick_jobs(queue.database_url) == []
    QueueClock(queue).advance(3600)  # every worker down for an hour: 12 ticks missed
    asyncio.run(_round(scheduler, queue.database_url))
    ran = _tick_jobs(queue.database_url)
    by_schedule = {name: [t for _, n, t in ran if n == name] for name in ("latest", "several")}
    assert len(by_schedule["latest"]) == 1
    assert len(by_schedule["several"]) == 3
    assert by_schedule["latest"][0] == by_schedule["several"][-1]  # the most recent tick
    asyncio.run(_round(scheduler, queue.database_url))
    assert len(_tick_jobs(queue.database_url)) == 4, "a tick runs once"
    assert latest.catch_up == 1 and several.catch_up == 3


def test_schedulers_racing_on_the_same_tick_make_one_job(queue: Queue) -> None:
    @queue.task(name="report")
    def report() -> None:
        return None

    queue.schedule(report, "* * * * *")
    url = queue.database_url
    asyncio.run(_round(Scheduler(url, queue.schedules, interval=1.0), url))
    QueueClock(queue).advance(60)

    async def race() -> None:
        schedulers = [Scheduler(url, queue.schedules, interval=1.0) for _ in range(8)]
        await asyncio.gather(*(_round(s, url) for s in schedulers))

    asyncio.run(race())
    assert len(_tick_jobs(url)) == 1


def test_a_schedule_removed_from_the_code_stops_firing(app: Queue) -> None:
    url = app.database_url
    clock = QueueClock(app)
    before = Scheduler(url, scheduled_app.queue.schedules, interval=1.0)
    asyncio.run(_round(before, url))
    clock.advance(300)
    asyncio.run(_round(before, url))
    assert [n for _, n, _ in _tick_jobs(url)] == ["every-five"]
    # The deploy: its workers declare "every-five-new" and no longer "every-five".
    with pointed_at(scheduled_app.redeployed, url) as redeployed:
        after = Scheduler(url, redeployed.schedules, interval=1.0)
        asyncio.run(_round(after, url))
        clock.advance(300)
        asyncio.run(_round(after, url))
        assert [n for _, n, _ in _tick_jobs(url)] == ["every-five", "every-five-new"]
        listed = {s.name: s for s in redeployed.list_schedules()}
    assert listed["every-five"].declared is False and listed["every-five"].next_run_at is None
    assert listed["every-five-new"].declared is True
    assert listed["every-five-new"].next_run_at is not None


def _schedule(cron: str, timezone: str = BERLIN) -> Schedule:
    q = Queue("postgresql://unused")

    @q.task(name="t")
    def t() -> None:
        return None

    return q.schedule(t, cron, timezone=timezone)


def _berlin(year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=zoneinfo.ZoneInfo(BERLIN))


def test_dst_fall_back_a_fixed_time_runs_once_an_hourly_one_every_real_hour() -> None:
    # 2026-10-25 03:00 CEST becomes 02:00 CET in Europe/Berlin.
    daily = _schedule("30 2 * * *")
    night = (_berlin(2026, 10, 24, 12, 0), _berlin(2026, 10, 25, 12, 0))
    assert daily.due_ticks(*night) == [dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]
    hourly = _schedule("30 * * * *")
    hourly = Schedule(hourly.name, hourly.task, hourly.cron, hourly.timezone, {}, catch_up=10)
    ticks = hourly.due_ticks(_berlin(2026, 10, 25, 0, 0), _berlin(2026, 10, 25, 4, 0))
    # 00:30, 01:30, 02:30 CEST, 02:30 CET, 03:30 CET: every real hour, 02:30 twice.
    assert ticks == [dt.datetime(2026, 10, 24, 22 + h, 30, tzinfo=UTC) for h in range(2)] + [
        dt.datetime(2026, 10, 25, h, 30, tzinfo=UTC) for h in range(3)
    ]


def test_dst_spring_forward_a_skipped_time_runs_when_the_clock_jumps() -> None:
    # 2026-03-29 02:00 CET becomes 03:00 CEST: 02:30 does not exist that night.
    daily = _schedule("30 2 * * *")
    jump = dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert daily.next_tick(_berlin(2026, 3, 28, 12, 0)) == jump
    after = daily.next_tick(dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC))
    assert after == dt.datetime(2026, 3, 30, 0, 30, tzinfo=UTC)  # 02:30 CEST
    utc = _schedule("30 2 * * *", timezone="UTC")
    assert utc.next_tick(_berlin(2026, 3, 28, 12, 0)) == dt.datetime(2026, 3, 29, 2, 30, tzinfo=UTC)


def test_bad_declarations_raise_typed_errors_and_declare_nothing(queue: Queue) -> None:
    @queue.task(name="report")
    def report(day: int) -> None:
        return None

    with pytest.raises(ConfigurationError, match="invalid cron expression '0 25 \\* \\* \\*'"):
        queue.schedule(report, "0 25 * * *", args={"day": 1})
    with pytest.raises(ConfigurationError, match="unknown timezone 'Mars/Olympus'"):
        queue.schedule(report, "0 3 * * *", args={"day": 1}, timezone="Mars/Olympus")
    with pytest.raises(ConfigurationError, match=f"between 1 and {MAX_CATCH_UP}"):
        queue.schedule(report, "0 3 * * *", args={"day": 1}, catch_up=0)
    with pytest.raises(InvalidPayload, match="day"):
        queue.schedule(report, "0 3 * * *", args={"day": "monday"})
    queue.schedule(report, "0 3 * * *", args={"day": 1})
    with pytest.raises(ConfigurationError, match="declared twice"):
        queue.schedule(report, "0 3 * * *", args={"day": 1})
    assert list(queue.schedules) == ['report 0 3 * * * {"day": 1}']


def test_cli_lists_schedules_and_refuses_a_bad_cron_in_one_line(app: Queue) -> None:
    url = app.database_url
    asyncio.run(_round(Scheduler(url, app.schedules, interval=1.0), url))
    QueueClock(app).advance(300)
    asyncio.run(_round(Scheduler(url, app.schedules, interval=1.0), url))
    ((job_id, _, tick),) = _tick_jobs(url)
    done = run_cli("schedules", "list", "--app", APP, "--json", "--database-url", url)
    assert done.returncode == 0, done.stderr
    (listed,) = json.loads(done.stdout)
    assert listed["name"] == "every-five" and listed["cron"] == "*/5 * * * *"
    assert listed["last_job_id"] == job_id and listed["last_job_status"] == "pending"
    assert dt.datetime.fromisoformat(listed["last_tick_at"]) == tick
    assert listed["declared"] is True and listed["timezone"] == "UTC"
    table = run_cli("schedules", "list", "--database-url", url)
    assert table.returncode == 0 and "every-five" in table.stdout and "pending" in table.stdout
    bad = run_cli("schedules", "list", "--app", "tests.apps.bad_schedule_app:queue")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr == "error: invalid cron expression '0 25 * * *': Bad hour\n"


async def test_async_list_schedules(app: Queue) -> None:
    try:
        (listed,) = await app.aio.list_schedules()
    finally:
        await app.aio.close()
    assert listed.name == "every-five" and listed.registered_at is None
    assert listed.next_run_at is not None and listed.last_job_id is None
