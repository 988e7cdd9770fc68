"""The README's app for periodic jobs and concurrency limits (``scripts/readme`` runs it)."""

from __future__ import annotations

from queueing import JobContext, Queue

queue = Queue()


# At most 2 exports of one tenant run at once, across all workers; other tenants' exports
# are not held back by a tenant at its limit.
@queue.task(name="export", queue="exports", concurrency_key="{tenant_id}", concurrency_limit=2)
def export(ctx: JobContext, table: str) -> str:
    return f"exported {table} for {ctx.tenant_id}"


@queue.task(name="nightly_report", queue="reports")
def nightly_report(ctx: JobContext, team: str) -> str:
    return f"report for {team}, tick {ctx.schedule_tick}"  # the tick this job runs for


# One job per tick, whatever the number of workers.
queue.schedule(nightly_report, "0 3 * * *", args={"team": "ops"}, timezone="Europe/Paris")
queue.schedule(nightly_report, "*/15 * * * *", args={"team": "sre"}, name="sre-quarter-hourly")
