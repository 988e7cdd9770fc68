"""The benchmark's own parts that can break silently: its bulk fills (bench/fill.sql), the
claim plan it records, and the markdown it renders. (Its figures come from ``python -m
bench``, never from a test.)"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench.large_table import case_figures, explain_claim
from bench.report import render
from bench.scenarios import pickup_medians
from bench.sql_blocks import claim_function, query
from bench.statement_cost import measure_round
from queueing import JobStatus, Queue


def _counts(queue: Queue) -> dict[tuple[str, JobStatus], int]:
    return {(c.queue, c.status): c.count for c in queue.stats()}


def test_fills_write_each_large_table_case_as_valid_rows(queue: Queue) -> None:
    with psycopg.connect(queue.database_url, autocommit=True) as conn:
        for block in ("finished_jobs", "delayed_jobs", "other_queue_jobs"):
            conn.execute(query(block), {"n": 30})
    counts = _counts(queue)
    assert counts[("default", JobStatus.COMPLETED)] == 30
    assert counts[("default", JobStatus.PENDING)] == 30  # the delayed ones
    assert counts[("elsewhere", JobStatus.PENDING)] == 30
    finished = queue.list_jobs(statuses=[JobStatus.COMPLETED], limit=1)[0]
    assert len(queue.attempts(finished.id)) == 1  # with its attempt-history row
    delayed = queue.list_jobs(task="later", limit=1)[0]
    assert delayed.priority == 10


def test_claim_plan_is_the_current_claim_and_claims_nothing(queue: Queue) -> None:
    with psycopg.connect(queue.database_url, autocommit=True) as conn:
        conn.execute(query("other_queue_jobs"), {"n": 5})
    plan = asyncio.run(explain_claim(queue.database_url))
    assert f"Function Scan on {claim_function()}" in plan
    assert "Buffers:" in plan
    assert "procrastinate_jobs" in plan  # auto_explain's plans of the statements inside
    # Rolled back: the jobs are still pending and no worker row was left behind.
    assert _counts(queue)[("elsewhere", JobStatus.PENDING)] == 5


def test_statement_cost_claims_and_finishes_every_job_with_the_release_statements(
    queue: Queue,
) -> None:
    queue.task(name="noop")(lambda: None)
    args = argparse.Namespace(jobs=250, batch=100)
    with psycopg.connect(queue.database_url, autocommit=True, row_factory=dict_row) as conn:
        worker_id = conn.execute(query("statement_cost_worker")).fetchone()["id"]  # type: ignore[index]
        claim, finish = measure_round(conn, queue, worker_id, args)
    assert claim >= 0 and finish >= 0
    assert _counts(queue) == {("default", JobStatus.COMPLETED): 250}


def _results() -> dict[str, Any]:
    def drain(system: str, one: float, two: float, setting: int) -> dict[str, Any]:
        rows = [
            {"procs": p, "setting": setting, "rate": r, "jobs": 10, "default": False}
            for p, r in ((1, one), (2, two))
        ]
        return {
            "sweep": rows,
            "best": {"1": rows[0], "2": rows[1]},
            "default_setting": 10,
            "settings_text": system,
        }

    empty = {"drain": 1000.0, "bulk": 10000.0, "single": 100.0}
    case = case_figures(
        100,
        [
            {"empty": empty, "with": {"drain": 900.0, "bulk": 9000.0, "single": 90.0}},
            {"empty": empty, "with": {"drain": 800.0, "bulk": 9500.0, "single": 95.0}},
            {"empty": empty, "with": {"drain": 950.0, "bulk": 8000.0, "single": 80.0}},
        ],
    )
    case |= {"explain": "plan", "empty_explain": "p0"}

    def pickup(p50: float, p99: float) -> dict[str, Any]:
        rounds = [
            {"p50": p50 * f, "p99": p99 * f, "max": 9.0, "n": 10, "rate": 20, "setting": 1}
            | {"achieved_rate": a}
            for f, a in ((1.0, 20.0), (3.0, 19.5), (0.5, 20.0))
        ]
        return {"20": pickup_medians(rounds)}

    return {
        "quick": True,
        "machine": {
            "date": "d",
            "git": "g",
            "schema_version": 8,
            "claim_function": "queueing_claim_v4",
            "cpus": 2,
            "memory_gib": 1.0,
            "platform": "p",
            "python": "3.11",
            "load_before": [1.0],
            "load_after": [2.0],
            "postgres": "15",
            "postgres_settings": {"synchronous_commit": "on"},
            "versions": {"pgqueuer": "1.6"},
        },
        "drain": {
            "queueing": drain("queueing", 5000, 8000, 100),
            "pgqueuer": drain("pgqueuer", 4000, 6000, 250),
        },
        "enqueue": {
            "queueing": {"bulk": 20000.0, "single": 1000.0},
            "pgqueuer": {"bulk": 10000.0, "single": 500.0},
        },
        "sizes": {"pickup_rounds": 3, "large_rounds": 3},
        "pickup": {"queueing": pickup(2.0, 4.0), "pgqueuer": pickup(4.0, 8.0)},
        "large_table": {"concurrency": 200, "jobs": 10, "rounds": 3, "cases": {"delayed": case}},
        "claimers": [
            {"procs": 8, "setting": 100, "rate": 8000.0, "connections_per_process": 5},
            {"procs": 32, "setting": 10, "rate": 3000.0, "connections_per_process": 4},
            {"procs": 2, "setting": 10, "rate": 4000.0, "connections_per_process": 4},
        ],
        "rss": {
            "concurrency": 1000,
            "jobs": 10,
            "ready_kib": 1024,
            "peak_kib": 2048,
            "after_kib": 2048,
            "rate": 100.0,
        },
    }


def test_report_puts_the_ratios_beside_the_figures() -> None:
    text = render(_results())
    assert "| drain, 1 process (best setting: queueing 100, PgQueuer 250) | 5,000/s | " in text
    assert "| 4,000/s | 1.25\N{MULTIPLICATION SIGN} |" in text
    assert "| 2.00\N{MULTIPLICATION SIGN} |" in text  # bulk enqueue, queueing / PgQueuer
    assert "0.50\N{MULTIPLICATION SIGN} / 0.50\N{MULTIPLICATION SIGN}" in text  # pick-up
    assert "| 2.0 / 4.0 ms | 4.0 / 8.0 ms |" in text  # the medians of the rounds
    rounds = "| queueing at 20 jobs/s | 2.0, 6.0, 1.0 ms | 4.0, 12.0, 2.0 ms | 20, 20, 20/s |"
    assert rounds in text
    assert "p50 and p99 are each the median of 3 rounds" in text
    # The medians of the rounds and of their ratios, each round's ratio beside it.
    assert "1,000 -> 900/s | **0.90\N{MULTIPLICATION SIGN}** (0.90, 0.80, 0.95) |" in text
    assert "10,000 -> 9,000/s | **0.90\N{MULTIPLICATION SIGN}** (0.90, 0.95, 0.80) |" in text
    assert "measured in 3 rounds" in text
    assert "claim plan: delayed jobs due tomorrow, priority 10" in text
    assert "| 8 | 100 | 8,000/s | 1.00\N{MULTIPLICATION SIGN} | \N{EN DASH} | 5.0 |" in text
    # The fleet at concurrency 10 beside 2 processes at the same concurrency.
    x = "\N{MULTIPLICATION SIGN}"
    assert f"| 32 | 10 | 3,000/s | 0.38{x} | 0.75{x} | 4.0 |" in text
    assert f"| 2 | 10 | 4,000/s | 0.50{x} | \N{EN DASH} | 4.0 |" in text
    assert "peak 2.0 MiB" in text


def test_pickup_figures_are_the_medians_of_the_rounds_with_the_rounds_kept() -> None:
    rounds = [
        {"p50": p50, "p99": p99, "max": p99 + 1, "n": 40, "rate": 500, "setting": 100}
        | {"achieved_rate": achieved}
        for p50, p99, achieved in ((3.0, 30.0, 499.0), (9.0, 10.0, 420.0), (4.0, 20.0, 500.0))
    ]
    figures = pickup_medians(rounds)
    assert (figures["p50"], figures["p99"], figures["max"], figures["n"]) == (4.0, 20.0, 31.0, 120)
    assert figures["achieved_rate"] == 420.0  # the slowest round's: the report flags it
    assert figures["rounds"] == rounds


def test_large_table_ratio_is_the_median_of_the_rounds_ratios() -> None:
    pairs = [
        {
            "empty": {"drain": e, "bulk": 10.0, "single": 1.0},
            "with": {"drain": w, "bulk": 5.0, "single": 1.0},
        }
        for e, w in ((100.0, 50.0), (200.0, 180.0), (50.0, 60.0))
    ]
    figures = case_figures(7, pairs)
    assert figures["drain_ratio"] == 0.9  # of 0.5, 0.9, 1.2 (the medians' ratio: 0.6)
    assert (figures["empty_drain"], figures["drain"]) == (100.0, 60.0)
    assert [r["drain_ratio"] for r in figures["rounds"]] == [0.5, 0.9, 1.2]
    assert figures["bulk_ratio"] == 0.5 and figures["rows"] == 7
