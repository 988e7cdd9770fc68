"""What the web app's request handlers call."""

from __future__ import annotations

from queueing import Job
from reports.jobs import generate_report, queue


def request_report(report_id: int, *, user_id: str, tenant_id: str) -> Job:
    """Queue a report; pressing "generate" twice returns the job already queued."""
    return queue.enqueue(
        generate_report,
        {"report_id": report_id},
        user_id=user_id,
        tenant_id=tenant_id,
        dedupe_key=f"report-{report_id}",
    )
