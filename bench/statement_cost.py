"""``python -m bench.statement_cost``: the server's CPU per job of a claim and a finish.

One connection, no worker process: fills ``--jobs`` no-op jobs, claims them all in
batches of ``--batch`` with the release's own ``claim_jobs`` statement (sql/queries.sql),
then finishes them in the same batches with ``finish_jobs``, and reads the backend's CPU
time (utime + stime from /proc) around each phase. ``--rounds`` rounds, medians printed.

This is the cost a drain pays in PostgreSQL per job, without the noise of the worker
processes sharing the machine's cores: what migration 0012 was measured with. Run it from
another checkout (its venv, or ``PYTHONPATH=that/checkout``) to measure that release.
"""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench.context import add_admin_url, scratch_databases
from bench.hints_ab import SIDES, set_change_hints
from bench.procs import cpu_seconds
from bench.sql_blocks import query
from queueing import JobRequest, Queue
from queueing.sql import query as release_query
from queueing.worker.finisher import outcomes_json
from queueing.worker.outcome import Claimed, Outcome, OutcomeKind


def measure_round(
    conn: psycopg.Connection[Any], queue: Queue, worker_id: int, args: Any
) -> tuple[float, float]:
    """Fill ``args.jobs`` jobs, claim them all, finish them all: (claim, finish) in us of
    the backend's CPU per job."""
    for start in range(0, args.jobs, 5000):
        queue.enqueue_many([JobRequest("noop") for _ in range(min(5000, args.jobs - start))])
    conn.execute(query("vacuum_analyze_jobs"))
    pid = conn.execute(query("backend_pid")).fetchone()["pid"]  # type: ignore[index]
    claimed: list[list[dict[str, Any]]] = []
    started = cpu_seconds(pid)
    while True:
        params = {"queues": None, "worker_id": worker_id, "limit": args.batch, "idle": False}
        rows = conn.execute(release_query("claim_jobs"), params, prepare=True).fetchall()
        if not rows:
            break
        claimed.append(rows)
    between = cpu_seconds(pid)
    for rows in claimed:
        # As the worker's finisher writes a batch of no-op jobs' outcomes.
        outcomes = [Outcome(Claimed(**r), OutcomeKind.SUCCEEDED, result_json="null") for r in rows]
        params = {"worker_id": worker_id, "outcomes": outcomes_json(outcomes)}
        conn.execute(release_query("finish_jobs"), params, prepare=True).fetchall()
    ended = cpu_seconds(pid)
    jobs = sum(map(len, claimed))
    return (between - started) / jobs * 1e6, (ended - between) / jobs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.statement_cost", description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--change-hints",
        choices=SIDES,
        default="on_demand",
        help="the job-change trigger (bench/hints_ab.py's sides; default: the release's)",
    )
    add_admin_url(parser)
    args = parser.parse_args()
    with scratch_databases(args.admin_url, f"bench_statement_cost_{os.getpid()}") as [url]:
        queue = Queue(url)
        queue.task(name="noop")(lambda: None)
        queue.migrate()
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            for statement in set_change_hints(args.change_hints):
                conn.execute(statement)
            worker_id = conn.execute(query("statement_cost_worker")).fetchone()["id"]  # type: ignore[index]
            claims: list[float] = []
            finishes: list[float] = []
            for _ in range(args.rounds):
                claim, finish = measure_round(conn, queue, worker_id, args)
                claims.append(claim)
                finishes.append(finish)
        queue.close()
    print(
        f"{args.jobs:,} jobs a round, batches of {args.batch}, {args.rounds} rounds, "
        f"change hints {args.change_hints}"
    )
    for name, values in (("claim", claims), ("finish", finishes)):
        each = " ".join(f"{x:.1f}" for x in values)
        print(
            f"{name + ':':7s} {each} us of server CPU per job; "
            f"median {statistics.median(values):.1f}"
        )


if __name__ == "__main__":
    main()
