"""Queue-level metrics from the database, for ``queueing metrics serve``.

How many jobs each queue holds in each status, and how long the oldest due pending job
of each queue has waited: facts of the table, not of a worker. So one process serves
them (a hundred workers must not each count the table on every scrape), with one named
query (``queue_metrics``) per scrape, its answer cached for ``cache_seconds`` so that
several Prometheus servers, or a scrape storm, cost one query per period.

The worker's own metrics (what it ran, how long, how it is) are in
``queueing.worker.metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg.rows import dict_row

from queueing import logs, sql
from queueing.config import connect_options
from queueing.drivers import first_line
from queueing.models import JobStatus

#: How long one answer of the database is served again (Prometheus scrapes every 15 s
#: or more; a shorter period would only add queries).
CACHE_SECONDS = 5.0


class QueueMetrics(Collector):
    """A Prometheus collector of the queue-level gauges (see the module doc)."""

    def __init__(
        self,
        database_url: str,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: where the cache reads the time (a test moves it instead of waiting)."""
        self._url = database_url
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()  # scrapes come on several threads: one query at once
        self._conn: psycopg.Connection[Any] | None = None
        self._rows: list[dict[str, Any]] | None = None
        self._read_at = -float("inf")
        #: Queries run so far (a test checks the cache with it).
        self.queries = 0

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    def collect(self) -> Iterator[Metric]:
        rows = self._read()
        up = GaugeMetricFamily(
            "queueing_metrics_database_up",
            "1 if the last query of the queue-level metrics succeeded, else 0.",
            value=0 if rows is None else 1,
        )
        yield up
        if rows is None:
            return
        jobs = GaugeMetricFamily(
            "queueing_jobs", "Jobs in the table, by queue and status.", labels=["queue", "status"]
        )
        oldest = GaugeMetricFamily(
            "queueing_oldest_pending_age_seconds",
            "Age of each queue's oldest pending job that is due (0: none waits).",
            labels=["queue"],
        )
        counts: dict[tuple[str, str], int] = {}
        ages: dict[str, float] = {}
        for row in rows:
            counts[row["queue"], row["status"]] = row["jobs"]
            age = row["oldest_due_age_seconds"]
            ages[row["queue"]] = max(ages.get(row["queue"], 0.0), max(age or 0.0, 0.0))
        for queue in sorted(ages):
            # Every status of every queue, zeros included: a series that vanishes when
            # its count drops to 0 breaks alerts and rate() alike.
            for status in JobStatus:
                jobs.add_metric([queue, status.value], counts.get((queue, status.value), 0))
            oldest.add_metric([queue], ages[queue])
        yield jobs
        yield oldest

    def _read(self) -> list[dict[str, Any]] | None:
        """The cached answer, or a new one once it is ``cache_seconds`` old; None if the
        database does not answer."""
        with self._lock:
            if self._clock() - self._read_at < self._cache_seconds:
                return self._rows
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._url, autocommit=True, **connect_options())
                with self._conn.cursor(row_factory=dict_row) as cur:
                    self._rows = cur.execute(sql.query("queue_metrics")).fetchall()
                self.queries += 1
            except psycopg.Error as exc:
                logs.event("metrics.query_failed", logging.WARNING, error=first_line(exc))
                if self._conn is not None:
                    self._conn.close()
                self._rows = None
            self._read_at = self._clock()
            return self._rows


def queue_metrics_registry(
    database_url: str, cache_seconds: float = CACHE_SECONDS
) -> tuple[CollectorRegistry, QueueMetrics]:
    """A registry holding the queue-level gauges of ``database_url``'s queue."""
    registry = CollectorRegistry()
    collector = QueueMetrics(database_url, cache_seconds)
    registry.register(collector)
    return registry, collector


def serve(
    database_url: str,
    *,
    port: int,
    host: str = "0.0.0.0",  # all interfaces: Prometheus scrapes from another host
    cache_seconds: float = CACHE_SECONDS,
    stop: threading.Event | None = None,
) -> None:
    """Serve the queue-level gauges on ``host:port``/metrics until SIGTERM or SIGINT (or
    ``stop`` is set). Port 0: any free port; the ``metrics.serving`` log line says which."""
    from queueing.worker.status_server import StatusServer

    stop = stop if stop is not None else _stop_on_signals()
    registry, collector = queue_metrics_registry(database_url, cache_seconds)
    server = StatusServer(host, port, registry, probes={})
    server.start()
    logs.event("metrics.serving", port=server.port, cache_s=cache_seconds)
    try:
        stop.wait()
    finally:
        server.stop()
        collector.close()
        logs.event("metrics.stopped")


def _stop_on_signals() -> threading.Event:
    """An event set by the first SIGTERM or SIGINT (call from the main thread)."""
    import signal

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop
