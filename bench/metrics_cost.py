"""What the worker's metrics hooks cost per job, in-process, with no database:
``python -m bench.metrics_cost``.

The drain A/B (``python -m bench run --only queueing --metrics-ab ROUNDS``) measures the
cost where it is paid, but on a shared machine its run-to-run spread is far wider than
a few percent. This measures the hooks alone, the calls a job adds to the worker when
metrics are on: its start (claims counter, pickup-latency histogram) and its committed
outcome (finished counter, duration histogram), per job, as a median of runs. Divided by
the time a job takes in the drain (1 / drain throughput), it bounds the metrics' share.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time

from queueing.worker.metrics import WorkerMetrics
from queueing.worker.outcome import Claimed, Outcome, OutcomeKind

JOBS = 20000
RUNS = 7


def per_job_seconds(jobs: int = JOBS) -> float:
    """Seconds the metrics hooks take per job (start + committed outcome, in batches of
    100 as the finisher commits them under load)."""
    metrics = WorkerMetrics()
    now = dt.datetime.now(dt.UTC)
    batch = [
        Outcome(
            Claimed(i, "noop", "default", {}, 1, 1, None, None, due_at=now),
            OutcomeKind.SUCCEEDED,
            duration=0.001,
        )
        for i in range(100)
    ]
    statuses = {o.job.id: "completed" for o in batch}
    started = time.perf_counter()
    for _ in range(jobs // len(batch)):
        for o in batch:
            metrics.started(o.job, dt.datetime.now(dt.UTC))
        metrics.committed(batch, statuses)
    return (time.perf_counter() - started) / jobs


def main() -> None:
    runs = [per_job_seconds() for _ in range(RUNS)]
    median = statistics.median(runs)
    print(f"metrics hooks: {median * 1e6:.2f} µs per job (median of {RUNS} runs of {JOBS})")
    for drain in (1000, 2000, 3300, 5000):
        print(f"  at a drain of {drain:,}/s: {100 * median * drain:.2f} % of a job's time")


if __name__ == "__main__":
    main()
