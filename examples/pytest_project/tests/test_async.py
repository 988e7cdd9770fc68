"""The same from async code (pytest-asyncio): ``aqueue`` is ``queue.aio``."""

from __future__ import annotations

from reports.jobs import generate_report

from queueing import AsyncQueue, JobStatus
from queueing.testing import QueueClock, QueueWorker, assert_job_status_async


async def test_a_report_from_async_code(aqueue: AsyncQueue, queueing_worker: QueueWorker) -> None:
    job = await aqueue.enqueue(generate_report, {"report_id": 9}, tenant_id="acme")
    ran = await queueing_worker.drain_async()
    assert job in ran
    done = await assert_job_status_async(aqueue, job, JobStatus.COMPLETED)
    assert done.progress_detail == {"stage": "upload", "n": 6}


async def test_a_scheduled_report_runs_once_the_clock_moves(
    aqueue: AsyncQueue, queueing_worker: QueueWorker, queue_clock: QueueClock
) -> None:
    job = await aqueue.enqueue(generate_report, {"report_id": 10}, delay=3600)
    assert len(await queueing_worker.drain_async()) == 0
    assert await queue_clock.advance_async(3600) == [job.id]
    assert (await queueing_worker.drain_async()).job_ids == [job.id]
