"""Metrics and probes, scraped over HTTP from real processes on the test database.

The worker runs ``tests.apps.observed_app`` with ``--metrics-port 0`` and says in its
``worker.started`` line which port it got (no race for a free port). Nothing sleeps: the
tests wait on the worker's log lines (an outcome is logged after it is committed and
counted) or on a probe's answer, each with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from queueing import Queue
from queueing.errors import InvalidPayload
from queueing.metrics import QueueMetrics
from queueing.models import JobStatus
from queueing.queue import JobRequest
from tests.apps import observed_app
from tests.helpers import (
    NO_DATABASE_ENV,
    ROOT,
    WorkerProcess,
    pointed_at,
    run_cli,
    wait_all,
    worker_process,
)
from tests.private_server import PrivateServer, private_server

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
    with worker_process(
        observed.database_url, "--app", APP, "--metrics-port", "0", "--concurrency", "10"
    ) as worker:
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


# --- queue-level gauges: `queueing metrics serve` -------------------------------------


@contextlib.contextmanager
def metrics_server(database_url: str, *args: str) -> Iterator[tuple[str, WorkerProcess]]:
    """``queueing metrics serve --port 0 ARGS`` in a real process: its base URL (from its
    ``metrics.serving`` line) and the process, whose JSON log lines can be awaited."""
    env = {k: v for k, v in os.environ.items() if k not in NO_DATABASE_ENV}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "queueing", "metrics", "serve", "--port", "0",
         "--database-url", database_url, *args],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    server = WorkerProcess(proc)
    try:
        port = server.wait_for_log("metrics.serving")["port"]
        yield f"http://127.0.0.1:{port}", server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        server.wait(20)
        assert proc.stderr is not None
        proc.stderr.close()


def test_metrics_serve_gauges_equal_the_tables_counts(observed: Queue) -> None:
    """Jobs in every status and two queues: queueing_jobs equals what the table holds,
    zeros included, and the oldest pending age is that of the oldest due pending job."""
    observed.enqueue_many(
        [JobRequest("ok") for _ in range(4)]
        + [JobRequest("ok", queue="emails") for _ in range(2)]
        + [JobRequest("ok", queue="emails", delay=3600)]  # not due: not late
    )
    done = observed.enqueue_many([JobRequest("ok") for _ in range(3)])
    with psycopg.connect(observed.database_url, autocommit=True) as conn:
        # States and ages set in SQL, not waited for: two completed, one failed, one
        # pending job of "default" created an hour ago, one of "emails" ten minutes ago.
        ids = [j.id for j in done]
        conn.execute(
            "UPDATE procrastinate_jobs SET status = CASE WHEN id = %s THEN 'failed'"
            " ELSE 'succeeded' END::procrastinate_job_status WHERE id = ANY(%s)",
            [ids[0], ids],
        )
        conn.execute(
            "UPDATE procrastinate_jobs SET created_at = now() - interval '1 hour'"
            " WHERE id = (SELECT min(id) FROM procrastinate_jobs WHERE queue_name = 'default')"
        )
        conn.execute(
            "UPDATE procrastinate_jobs SET created_at = now() - interval '10 minutes'"
            " WHERE id = (SELECT min(id) FROM procrastinate_jobs WHERE queue_name = 'emails')"
        )
    expected = {(c.queue, str(c.status)): c.count for c in observed.stats()}
    with metrics_server(observed.database_url, "--cache-seconds", "0") as (url, _):
        samples = scrape(f"{url}/metrics")

    for queue in ("default", "emails"):
        for status in JobStatus:
            got = value(samples, "queueing_jobs", queue=queue, status=status.value)
            assert got == expected.get((queue, status.value), 0), (queue, status)
    assert value(samples, "queueing_jobs", queue="default", status="pending") == 4
    assert value(samples, "queueing_jobs", queue="default", status="completed") == 2
    assert value(samples, "queueing_jobs", queue="emails", status="active") == 0
    age = "queueing_oldest_pending_age_seconds"
    assert 3600 <= value(samples, age, queue="default") < 3600 + 60
    assert 600 <= value(samples, age, queue="emails") < 600 + 60
    assert value(samples, "queueing_metrics_database_up") == 1


def test_queue_metrics_query_once_per_cache_period(queue: Queue) -> None:
    """Scrapes within the cache period cost one query; once it has passed, one more."""
    clock = [1000.0]
    collector = QueueMetrics(queue.database_url, cache_seconds=5.0, clock=lambda: clock[0])
    try:
        for _ in range(3):
            list(collector.collect())
        assert collector.queries == 1
        clock[0] += 5.0
        list(collector.collect())
        assert collector.queries == 2
    finally:
        collector.close()


# --- probes: /healthz and /readyz -----------------------------------------------------


def test_healthz_is_503_while_a_handler_blocks_the_event_loop(observed: Queue) -> None:
    """An async handler that calls time.sleep stops the loop: /healthz says so (503)
    while it blocks, and 200 again after; /metrics is answered all along (its thread)."""
    with worker_process(observed.database_url, "--app", APP, "--metrics-port", "0") as worker:
        url = base_url(worker)
        assert get(f"{url}/healthz")[0] == 200
        job = observed.enqueue("block_loop", {"seconds": 3.0})
        worker.wait_for_job_log("worker.loop_blocked", job.id)
        status, why = get(f"{url}/healthz")
        assert (status, why.split(" for ")[0]) == (503, "event loop blocked"), why
        assert get(f"{url}/metrics")[0] == 200
        worker.wait_for_log("worker.loop_unblocked")
        status, why = get(f"{url}/healthz")
        assert status == 200, why
        observed.wait_for(job.id, timeout=10)
        assert worker.stop() == 0


@pytest.fixture
def private_pg() -> Iterator[PrivateServer]:
    """A private server with a migrated database, which a test may stop."""
    with private_server() as server:
        Queue(server.create_database("queueing")).migrate()
        yield server


def test_readyz_is_503_while_the_database_is_stopped(private_pg: PrivateServer) -> None:
    """Ready with the database up; unready (503) while it is stopped, though alive
    (/healthz 200: a restart would not help); ready again once it is back."""
    with worker_process(private_pg.url("queueing"), "--metrics-port", "0") as worker:
        url = base_url(worker)
        status, why = get(f"{url}/readyz")
        assert status == 200, why
        private_pg.stop("fast")
        status, why = get(f"{url}/readyz")
        assert (status, why.split(":")[0]) == (503, "database"), why
        assert get(f"{url}/healthz")[0] == 200
        private_pg.start()
        status, why = get(f"{url}/readyz")
        assert status == 200, why
        worker.stop()


def test_readyz_is_503_while_the_worker_drains(observed: Queue) -> None:
    """After SIGTERM the worker claims nothing more: unready while its job finishes."""
    with worker_process(observed.database_url, "--app", APP, "--metrics-port", "0") as worker:
        url = base_url(worker)
        job = observed.enqueue("hold", {"seconds": 60.0})
        worker.wait_for_job_log("job.started", job.id)
        assert get(f"{url}/readyz")[0] == 200
        worker.send_signal(signal.SIGTERM)
        worker.wait_for_log("worker.draining")
        status, why = get(f"{url}/readyz")
        assert (status, why.split(":")[0]) == (503, "draining"), why
        worker.send_signal(signal.SIGTERM)  # the second one skips the grace period
        assert worker.wait_stopped() == 0


def test_a_taken_metrics_port_is_a_one_line_error(observed: Queue) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "worker", "--app", APP, "--database-url", observed.database_url,
            "--metrics-host", "127.0.0.1", "--metrics-port", str(port),
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(
        f"error: cannot serve metrics on 127.0.0.1:{port}: "
    ), result.stderr


def test_jobs_rescued_from_a_killed_worker_are_counted_by_the_rescuer(
    observed: Queue,
) -> None:
    """Worker A is killed while it runs a job; worker B's rescuer gives the job back and
    counts it once, as rescued, under its queue and task."""
    fast_rescue = (
        "--heartbeat-interval",
        "0.2",
        "--stall-timeout",
        "1",
        "--rescue-interval",
        "0.2",
    )
    with worker_process(observed.database_url, "--app", APP) as doomed:
        job = observed.enqueue("hold", {"seconds": 60.0})
        doomed.wait_for_job_log("job.started", job.id)
        doomed.kill()
    args = ("--app", APP, "--metrics-port", "0", *fast_rescue)
    with worker_process(observed.database_url, *args) as rescuer:
        url = base_url(rescuer)
        rescuer.wait_for_job_log("job.rescued", job.id)
        samples = scrape(f"{url}/metrics")
        rescuer.stop(signal.SIGTERM)
    rescued = {
        labels: v
        for (name, labels), v in samples.items()
        if name == "queueing_jobs_finished_total" and ("status", "rescued") in labels
    }
    assert rescued == {(("queue", "default"), ("status", "rescued"), ("task", "hold")): 1}


def test_the_trace_key_is_reserved_in_args(queue: Queue) -> None:
    """Even for a task the Queue does not know (its args are not validated): the database
    would take the key for a trace context and remove it from the args."""
    with pytest.raises(InvalidPayload, match="reserved"):
        queue.enqueue("unknown_here", {"_queueing_trace": {"traceparent": "00-x"}})
