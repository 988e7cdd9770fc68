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

The counters and histograms are plain numbers in dicts, turned into Prometheus's families
only when scraped (a ``Collector``), not ``prometheus_client`` Counter and Histogram
children: those take a lock per increment and validate their labels on every
``labels()`` call, which measured ~34 µs per job on the benchmark machine, 5-10 % of a
no-op job's time in a drain. Counted here, a job costs a few dict updates and a bisect
under one uncontended lock per job start and per committed batch (bench/metrics_cost.py
measures it). The gauges are rare writes and stay ``Gauge`` objects.
"""

from __future__ import annotations

import datetime as dt
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

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


@dataclass
class _Histogram:
    """One histogram series: counts per bucket (not cumulative; the last is +Inf)."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # first bound >= value: "le"
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus's buckets: (le, observations <= le), +Inf last."""
        out, running = [], 0
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class WorkerMetrics:
    """A worker's metrics, in a registry of its own (``registry``, for the /metrics page)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        # Written on the event loop, read by the scrape's thread: one lock for both.
        self._lock = threading.Lock()
        self._finished: dict[tuple[str, str, str], int] = {}
        self._claimed: dict[str, int] = {}
        self._durations: dict[tuple[str, str], _Histogram] = {}
        self._pickups: dict[str, _Histogram] = {}
        self.registry.register(_Families(self))
        r = self.registry
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
        queue = job.queue_name
        with self._lock:
            self._claimed[queue] = self._claimed.get(queue, 0) + 1
            if job.due_at is not None:
                pickup = self._pickups.get(queue) or self._pickups.setdefault(
                    queue, _Histogram(PICKUP_BUCKETS)
                )
                # Clocks of the worker and the database may disagree by a little.
                pickup.observe(max((now - job.due_at).total_seconds(), 0.0))

    def committed(self, batch: Iterable[Outcome], statuses: Mapping[int, str]) -> None:
        """Outcomes the finisher committed; ``statuses``: ``finish_jobs``'s rows by job id
        (an outcome fenced out, absent from them, changed nothing and is not counted)."""
        finished, durations = self._finished, self._durations
        with self._lock:
            for o in batch:
                status = statuses.get(o.job.id)
                if status is None:
                    continue
                series = (o.job.queue_name, o.job.task_name)
                key = (*series, finished_status(status, o.kind))
                finished[key] = finished.get(key, 0) + 1
                histogram = durations.get(series) or durations.setdefault(
                    series, _Histogram(DURATION_BUCKETS)
                )
                histogram.observe(o.duration)

    def rescued(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Jobs the rescuer's committed statement gave back (``rescue_stalled`` rows)."""
        with self._lock:
            for row in rows:
                key = (row["queue_name"], row["task_name"], "rescued")
                self._finished[key] = self._finished.get(key, 0) + 1

    def claims(self, *, succeeded: bool) -> None:
        """Whether the last claim went through (``queueing_worker_database_up``)."""
        self.database_up.set(1 if succeeded else 0)

    def families(self) -> Iterator[Metric]:
        """The counters and histograms as Prometheus families (a consistent snapshot)."""
        finished = CounterMetricFamily(
            "queueing_jobs_finished",
            "Attempt outcomes this worker committed, by the status they left the job in "
            "(completed, failed, cancelled, retried, interrupted) or rescued.",
            labels=["queue", "task", "status"],
        )
        claimed = CounterMetricFamily(
            "queueing_jobs_claimed", "Jobs this worker claimed and started.", labels=["queue"]
        )
        durations = HistogramMetricFamily(
            "queueing_job_duration_seconds",
            "How long each committed attempt's handler ran.",
            labels=["queue", "task"],
        )
        pickups = HistogramMetricFamily(
            "queueing_job_pickup_latency_seconds",
            "Handler start minus the time the job fell due (the later of its scheduled and "
            "created times), per attempt started.",
            labels=["queue"],
        )
        with self._lock:
            for key, count in sorted(self._finished.items()):
                finished.add_metric(list(key), count)
            for queue, count in sorted(self._claimed.items()):
                claimed.add_metric([queue], count)
            for series, h in sorted(self._durations.items()):
                durations.add_metric(list(series), h.cumulative(), h.total)
            for queue, h in sorted(self._pickups.items()):
                pickups.add_metric([queue], h.cumulative(), h.total)
        yield from (finished, claimed, durations, pickups)


class _Families(Collector):
    """Hands a ``WorkerMetrics``'s counters and histograms to its registry at a scrape."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()
