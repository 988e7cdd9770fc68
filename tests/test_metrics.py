"""Metrics and probes, scraped over HTTP from real processes on the test database.

The worker runs ``tests.apps.observed_app`` with ``--metrics-port 0`` and says in its
``worker.started`` line which port it got (no race for a free port). Nothing sleeps: the
tests wait on the worker's log lines (an outcome is logged after it is committed and
counted) or on a probe's answer, each with a deadline.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from queueing import Queue
from queueing.queue import JobRequest
from tests.apps import observed_app
from tests.helpers import WorkerProcess, pointed_at, wait_all, worker_process

APP = "tests.apps.observed_app:queue"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def observed(queue: Queue) -> Iterator[Queue]:
    """The observed app's Queue on this test's database, its tables emptied."""
    with pointed_at(observed_app.queue, queue.database_url) as app:
        yield app


def get(url: str) -> tuple[int, str]:
    """GET ``url``: the status and the body (an error status is an answer too)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(url: str) -> Samples:
    """Every sample of a /metrics page, by name and sorted labels."""
    status, text = get(url)
    assert status == 200, text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def base_url(worker: WorkerProcess) -> str:
    port = worker.wait_for_log("worker.started")["metrics_port"]
    assert isinstance(port, int)
    return f"http://127.0.0.1:{port}"


def test_worker_counters_and_histograms_equal_the_outcomes(observed: Queue) -> None:
    """5 completed, 3 failed, 2 retried once then completed: the counters say exactly
    that, and the histograms count every committed attempt and every start."""
    requests = (
        [JobRequest("ok") for _ in range(5)]
        + [JobRequest("boom", {"message": f"no {i}"}) for i in range(3)]
        + [JobRequest("flaky") for _ in range(2)]
    )
    with worker_process(observed.database_url, "--app", APP, "--metrics-port", "0") as worker:
        url = base_url(worker)
        jobs = observed.enqueue_many(requests)
        wait_all(observed, [j.id for j in jobs], timeout=30)
        # An outcome is logged right after it is counted.
        worker.wait_until(
            "every outcome logged",
            lambda: (
                worker.count("job.completed") == 7
                and worker.count("job.failed") == 3
                and worker.count("job.retrying") == 2
            ),
            timeout=20,
        )
        samples = scrape(f"{url}/metrics")
        assert worker.stop() == 0

    finished = "queueing_jobs_finished_total"
    assert value(samples, finished, queue="default", task="ok", status="completed") == 5
    assert value(samples, finished, queue="default", task="boom", status="failed") == 3
    assert value(samples, finished, queue="default", task="flaky", status="retried") == 2
    assert value(samples, finished, queue="default", task="flaky", status="completed") == 2
    assert sum(v for (name, _), v in samples.items() if name == finished) == 12
    assert value(samples, "queueing_jobs_claimed_total", queue="default") == 12
    durations = {
        task: value(samples, "queueing_job_duration_seconds_count", queue="default", task=task)
        for task in ("ok", "boom", "flaky")
    }
    assert durations == {"ok": 5, "boom": 3, "flaky": 4}
    assert value(samples, "queueing_job_pickup_latency_seconds_count", queue="default") == 12
    assert value(samples, "queueing_worker_concurrency") == 10
    assert value(samples, "queueing_worker_running_jobs") == 0
    assert value(samples, "queueing_worker_outcomes_pending") == 0
    assert value(samples, "queueing_worker_database_up") == 1
    # No job, tenant or user id among the labels.
    labels = {k for (_, pairs) in samples for k, _ in pairs}
    assert labels <= {"queue", "task", "status", "le"}, labels
