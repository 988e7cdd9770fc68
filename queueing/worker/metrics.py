"""The worker's Prometheus metrics: what it claimed, ran and committed, and how it is.

One ``WorkerMetrics`` per worker, holding its own ``CollectorRegistry`` (no global
registry: two workers in one process, or a test and its worker, never share counters).
The worker hands it to the services that report to it: the running jobs (claims, pickup
latency), the finishers (outcomes, after their commit), the rescuer (rescued jobs, after
its commit) and the claim loop (whether the database answers). Gauges of state that
lives elsewhere (jobs running, outcomes pending) are read from their owners at scrape
time, so they can never drift from what they describe.

Labels are queue, task and status only: never a job, tenant or user id (one series per
value would grow without bound).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from queueing.worker.outcome import Claimed, Outcome, OutcomeKind

#: Job durations, from a no-op (~1 ms) to long reports; seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
#: Pickup latencies: a LISTEN wake-up is milliseconds, a backlog minutes; seconds.
PICKUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def finished_status(db_status: str, kind: OutcomeKind) -> str:
    """The ``status`` label of a committed outcome, from the status ``finish_jobs``
    returned (``queueing_status_name_v1``) and the attempt's kind: a job back to pending
    was retried, or interrupted by a shutdown (which does not use up an attempt)."""
    if db_status == "pending":
        return "interrupted" if kind is OutcomeKind.INTERRUPTED else "retried"
    return db_status


class WorkerMetrics:
    """A worker's metrics, in a registry of its own (``registry``, for the /metrics page)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.jobs_finished = Counter(
            "queueing_jobs_finished",
            "Attempt outcomes this worker committed, by the status they left the job in "
            "(completed, failed, cancelled, retried, interrupted) or rescued.",
            ["queue", "task", "status"],
            registry=r,
        )
        self.jobs_claimed = Counter(
            "queueing_jobs_claimed", "Jobs this worker claimed and started.", ["queue"], registry=r
        )
        self.job_duration = Histogram(
            "queueing_job_duration_seconds",
            "How long each committed attempt's handler ran.",
            ["queue", "task"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.pickup_latency = Histogram(
            "queueing_job_pickup_latency_seconds",
            "Handler start minus the time the job fell due (the later of its scheduled and "
            "created times), per attempt started.",
            ["queue"],
            buckets=PICKUP_BUCKETS,
            registry=r,
        )
        self.running_jobs = Gauge(
            "queueing_worker_running_jobs", "Jobs running in this worker now.", registry=r
        )
        self.concurrency = Gauge(
            "queueing_worker_concurrency", "How many jobs this worker runs at once at most.",
            registry=r,
        )  # fmt: skip
        self.database_up = Gauge(
            "queueing_worker_database_up",
            "1 while this worker's claims go through, 0 while they fail.",
            registry=r,
        )
        self.outcomes_pending = Gauge(
            "queueing_worker_outcomes_pending",
            "Attempt outcomes waiting in the finisher to be committed.",
            registry=r,
        )

    def watch(
        self, *, concurrency: int, running: Callable[[], int], pending: Callable[[], int]
    ) -> None:
        """Read the running jobs and pending outcomes from their owners at each scrape."""
        self.concurrency.set(concurrency)
        self.running_jobs.set_function(running)
        self.outcomes_pending.set_function(pending)
        self.database_up.set(1)  # the worker registered: the database answered

    def started(self, job: Claimed, now: dt.datetime) -> None:
        """A claimed job's handler starts now (wall clock: ``due_at`` is the database's)."""
        self.jobs_claimed.labels(job.queue_name).inc()
        if job.due_at is not None:
            latency = (now - job.due_at).total_seconds()
            # Clocks of the worker and the database may disagree by a little.
            self.pickup_latency.labels(job.queue_name).observe(max(latency, 0.0))

    def committed(self, batch: Iterable[Outcome], statuses: Mapping[int, str]) -> None:
        """Outcomes the finisher committed; ``statuses``: ``finish_jobs``'s rows by job id
        (an outcome fenced out, absent from them, changed nothing and is not counted)."""
        for o in batch:
            status = statuses.get(o.job.id)
            if status is None:
                continue
            job = o.job
            self.jobs_finished.labels(
                job.queue_name, job.task_name, finished_status(status, o.kind)
            ).inc()
            self.job_duration.labels(job.queue_name, job.task_name).observe(o.duration)

    def rescued(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Jobs the rescuer's committed statement gave back (``rescue_stalled`` rows)."""
        for row in rows:
            self.jobs_finished.labels(row["queue_name"], row["task_name"], "rescued").inc()

    def claims(self, *, succeeded: bool) -> None:
        """Whether the last claim went through (``queueing_worker_database_up``)."""
        self.database_up.set(1 if succeeded else 0)
