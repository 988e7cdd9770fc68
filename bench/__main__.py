"""``python -m bench [SCENARIO ...]``: queueing, PgQueuer and stock procrastinate side by side.

Scenarios (default: all but ``sustained``, ``metrics-ab`` and ``hints-ab``):

- ``drain``: a pre-filled queue drained by 1 and by 2 worker processes released together,
  for every setting of each system's sweep (queueing's concurrency, PgQueuer's batch
  size); the best of each is the figure. Rate = jobs handled / (last handler start -
  first handler start).
- ``enqueue``: bulk (batches of 5,000, one client) and single (one call, one commit each).
- ``pickup``: one idle worker; jobs enqueued one call each at 20 and at 500 jobs/s; pick-up
  = handler start - time right before the enqueue call; p50 and p99.
- ``large-table``: queueing's drain and enqueue when the table also holds 1,000,000
  finished jobs / 100,000 delayed jobs at a higher priority / 100,000 pending jobs of an
  unserved queue, as ratios to the empty table; EXPLAIN (ANALYZE, BUFFERS) of a claim.
- ``claimers``: queueing with 8 worker processes, and 32 at concurrency 10 beside 2 at
  concurrency 10 (the same batch size).
- ``rss``: a queueing worker's memory at concurrency 1,000 with 100,000 queued jobs.
- ``sustained`` (with ``--sustained MINUTES``): enqueues at ~80 % of the best drain rate.
- ``metrics-ab``: queueing's drain with its metrics off and on, alternated.
- ``hints-ab``: queueing fleets of 2, 8 and 32 processes with job-change hints on demand
  and for every change, alternated (``metrics_rounds`` rounds).

Results go to ``--json FILE``; ``python -m bench.report FILE`` renders them as markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg

from bench.context import QUICK, Context, Sizes, add_admin_url, system_database
from bench.hints_ab import scenario_hints_ab
from bench.large_table import scenario_large_table
from bench.machine import load_average, machine_facts
from bench.report import render
from bench.scenarios import (
    scenario_claimers,
    scenario_drain,
    scenario_enqueue,
    scenario_metrics_ab,
    scenario_pickup,
    scenario_rss,
)
from bench.sustained import scenario_sustained

DEFAULT = ["drain", "enqueue", "pickup", "large-table", "claimers", "rss"]
QUEUEING_ONLY = {"large-table", "claimers", "rss", "sustained", "metrics-ab", "hints-ab"}
SYSTEMS = ["queueing", "pgqueuer", "procrastinate"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help=f"default: {' '.join(DEFAULT)}"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke tests")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results here")
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma-separated (default: all three)"
    )
    parser.add_argument("--only", help="one system (same as --systems SYSTEM)")
    parser.add_argument(
        "--sustained",
        type=int,
        metavar="MINUTES",
        help="add the sustained-load run, this many minutes",
    )
    parser.add_argument(
        "--sustained-rate",
        type=float,
        metavar="JOBS_PER_S",
        help="its enqueue rate (default: 80 %% of the best 2-process drain)",
    )
    parser.add_argument(
        "--metrics-ab",
        type=int,
        metavar="ROUNDS",
        help="run the metrics A/B, ROUNDS rounds (alone)",
    )
    parser.add_argument(
        "--explain",
        type=Path,
        metavar="FILE",
        help="write the claim plans here (default: beside --json, or bench_explain.txt)",
    )
    add_admin_url(parser)
    return parser


def _plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    scenarios = [s for s in args.scenarios if s != "run"]  # `run`: the old spelling
    if args.metrics_ab:
        scenarios = ["metrics-ab"]
    if not scenarios:
        scenarios = list(DEFAULT)
    if args.sustained and "sustained" not in scenarios:
        scenarios.append("sustained")
    known = [*DEFAULT, "sustained", "metrics-ab", "hints-ab"]
    for s in scenarios:
        if s not in known:
            parser.error(f"unknown scenario {s!r} (known: {', '.join(known)})")
    if "sustained" in scenarios and not args.sustained:
        parser.error("the sustained scenario needs --sustained MINUTES")
    systems = [args.only] if args.only else args.systems.split(",")
    for s in systems:
        if s not in SYSTEMS:
            parser.error(f"unknown system {s!r} (known: {', '.join(SYSTEMS)})")
    if set(scenarios) <= QUEUEING_ONLY:
        systems = ["queueing"]
    elif set(scenarios) & QUEUEING_ONLY and "queueing" not in systems:
        parser.error(f"{', '.join(sorted(set(scenarios) & QUEUEING_ONLY))}: queueing only")
    return scenarios, systems


async def _run(args: argparse.Namespace, scenarios: list[str], systems: list[str]) -> Context:
    sizes = QUICK if args.quick else Sizes()
    if args.metrics_ab:
        sizes = Sizes(**{**sizes.__dict__, "metrics_rounds": args.metrics_ab})
    steps: dict[str, Callable[[Context], Awaitable[None]]] = {
        "drain": scenario_drain,
        "enqueue": scenario_enqueue,
        "pickup": scenario_pickup,
        "large-table": scenario_large_table,
        "claimers": scenario_claimers,
        "rss": scenario_rss,
        "metrics-ab": scenario_metrics_ab,
        "hints-ab": scenario_hints_ab,
        "sustained": lambda c: scenario_sustained(c, args.sustained, args.sustained_rate),
    }
    with tempfile.TemporaryDirectory(prefix="bench_") as tmp:
        ctx = Context(sizes, args.quick, Path(tmp))
        ctx.results["machine"] = await machine_facts(args.admin_url)
        ctx.results["scenarios"] = scenarios
        ctx.results["quick"] = args.quick
        ctx.results["sizes"] = {k: v for k, v in sizes.__dict__.items()}
        async with contextlib.AsyncExitStack() as stack:
            for system in systems:
                ctx.dbs[system] = await stack.enter_async_context(
                    system_database(args.admin_url, system)
                )
            for scenario in scenarios:
                print(f"== {scenario} (load average {load_average()})", flush=True)
                try:
                    await steps[scenario](ctx)
                except (RuntimeError, psycopg.Error) as exc:
                    # One scenario failing (a worker died, a drain timed out) must not
                    # lose the others' figures: recorded, and the run goes on.
                    print(f"  {scenario} FAILED: {exc}", flush=True)
                    ctx.results.setdefault("errors", {})[scenario] = str(exc)
        ctx.results["machine"]["load_after"] = load_average()
    return ctx


def _write_explain(results: dict[str, Any], path: Path) -> None:
    cases = results.get("large_table", {}).get("cases", {})
    if cases:
        path.write_text(
            "".join(
                f"== {case}: the table also holds {c['rows']} rows\n{c['explain']}\n\n"
                f"== its empty-table run\n{c['empty_explain']}\n\n"
                for case, c in cases.items()
            )
        )
        print(f"claim plans written to {path}")


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    scenarios, systems = _plan(args, parser)
    ctx = asyncio.run(_run(args, scenarios, systems))
    results = ctx.results
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        print(f"results written to {args.json}")
    explain = args.explain or (args.json.with_suffix(".explain.txt") if args.json else None)
    _write_explain(results, explain or Path("bench_explain.txt"))
    print()
    print(render(results))


if __name__ == "__main__":
    main()
