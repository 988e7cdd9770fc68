"""``python -m bench.report FILE``: the markdown tables for docs/benchmarks.md from the JSON
that ``python -m bench --json FILE`` wrote (``--no-plans`` leaves out the claim plans)."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Written as escapes: ruff (RUF001) flags the characters themselves as look-alikes.
DASH = "\N{EN DASH}"
TIMES = "\N{MULTIPLICATION SIGN}"

NAMES = {"queueing": "queueing", "pgqueuer": "PgQueuer", "procrastinate": "procrastinate"}


def _num(x: Any, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    return f"{x:,.{digits}f}"


def _ratio(a: Any, b: Any) -> str:
    if not a or not b:
        return DASH
    return f"{a / b:.2f}{TIMES}"


def _rounds(n: Any) -> str:
    return f"{_num(n)} round{'' if n == 1 else 's'}"


def _by_round(values: Iterable[Any], digits: int = 0) -> str:
    return ", ".join(_num(v, digits) for v in values)


def _table(header: list[str], rows: Iterable[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine(r: dict[str, Any]) -> str:
    m = r["machine"]
    settings = ", ".join(f"`{k}={v}`" for k, v in sorted(m["postgres_settings"].items()) if v)
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    return "\n".join(
        [
            f"- date {m['date']}, git `{m['git']}`, schema version {m['schema_version']}, "
            f"claim `{m['claim_function']}`" + (" — **--quick sizes**" if r.get("quick") else ""),
            f"- {m['cpus']} CPUs, {m['memory_gib']} GiB, {m['platform']}, Python {m['python']}",
            f"- load average (1/5/15 min) {m['load_before']} before, {m.get('load_after')} after",
            f"- PostgreSQL {m['postgres']} on the same machine: {settings}",
            f"- {versions}",
        ]
    )


def _best(r: dict[str, Any], system: str, procs: int) -> dict[str, Any] | None:
    found: dict[str, Any] | None = (
        r.get("drain", {}).get(system, {}).get("best", {}).get(str(procs))
    )
    return found


def _pick(r: dict[str, Any], system: str, rate: str, key: str) -> Any:
    return r.get("pickup", {}).get(system, {}).get(rate, {}).get(key)


def summary(r: dict[str, Any]) -> str:
    """The headline table: queueing, PgQueuer, their ratio, procrastinate."""
    rows: list[list[str]] = []
    for procs in (1, 2):
        q, p, s = (_best(r, x, procs) for x in ("queueing", "pgqueuer", "procrastinate"))
        if not (q or p):
            continue
        label = f"drain, {procs} process{'es' if procs > 1 else ''} (best setting: " + (
            f"queueing {q['setting'] if q else DASH}, PgQueuer {p['setting'] if p else DASH})"
        )
        rate = [x["rate"] if x else None for x in (q, p, s)]
        rows.append(
            [
                label,
                f"{_num(rate[0])}/s",
                f"{_num(rate[1])}/s",
                _ratio(rate[0], rate[1]),
                f"{_num(rate[2])}/s",
            ]
        )
    q1, q2 = _best(r, "queueing", 1), _best(r, "queueing", 2)
    if q1 and q2:
        rows.append(
            ["queueing: 2 processes / 1 process", _ratio(q2["rate"], q1["rate"]), "", "", ""]
        )
    enq = r.get("enqueue", {})
    for key, label in (
        ("bulk", "bulk enqueue (batches of 5,000)"),
        ("single", "single enqueue (one call, one commit)"),
    ):
        if enq:
            v = [enq.get(x, {}).get(key) for x in ("queueing", "pgqueuer", "procrastinate")]
            rows.append(
                [label, f"{_num(v[0])}/s", f"{_num(v[1])}/s", _ratio(v[0], v[1]), f"{_num(v[2])}/s"]
            )
    for rate in sorted(r.get("pickup", {}).get("queueing", {}), key=int):
        cells = []
        for x in ("queueing", "pgqueuer", "procrastinate"):
            p50, p99 = _pick(r, x, rate, "p50"), _pick(r, x, rate, "p99")
            cells.append(f"{_num(p50, 1)} / {_num(p99, 1)} ms" if p50 is not None else DASH)
        q50, q99 = _pick(r, "queueing", rate, "p50"), _pick(r, "queueing", rate, "p99")
        g50, g99 = _pick(r, "pgqueuer", rate, "p50"), _pick(r, "pgqueuer", rate, "p99")
        ratio = f"{_ratio(q50, g50)} / {_ratio(q99, g99)}"
        label = f"pick-up p50 / p99 at {rate} jobs/s"
        achieved = {x: _pick(r, x, rate, "achieved_rate") for x in ("queueing", "pgqueuer")}
        if any(a is not None and a < 0.9 * int(rate) for a in achieved.values()):
            label += (
                " (enqueues achieved: "
                + ", ".join(f"{NAMES[x]} {_num(a)}/s" for x, a in achieved.items() if a is not None)
                + ")"
            )
        rows.append([label, cells[0], cells[1], ratio, cells[2]])
    header = ["figure", "queueing", "PgQueuer (asyncpg, uvloop)", "ratio", "procrastinate"]
    return _table(header, rows) if rows else ""


def pickup_rounds(r: dict[str, Any]) -> str:
    """Each pick-up figure's rounds, when there were more than one."""
    d = r.get("pickup", {})
    rates = sorted({rate for per in d.values() for rate in per}, key=int)
    rows = []
    for rate in rates:
        for system in NAMES:
            rounds = d.get(system, {}).get(rate, {}).get("rounds", [])
            if len(rounds) < 2:
                continue
            rows.append(
                [
                    f"{NAMES[system]} at {rate} jobs/s",
                    f"{_by_round((x['p50'] for x in rounds), 1)} ms",
                    f"{_by_round((x['p99'] for x in rounds), 1)} ms",
                    f"{_by_round(x['achieved_rate'] for x in rounds)}/s",
                ]
            )
    if not rows:
        return ""
    header = ["pick-up", "p50 by round", "p99 by round", "enqueues achieved by round"]
    return "The rounds of the pick-up figures above (their medians):\n\n" + _table(header, rows)


def sweep(r: dict[str, Any]) -> str:
    parts = []
    for system, d in r.get("drain", {}).items():
        by_setting: dict[int, dict[int, float]] = {}
        for row in d["sweep"]:
            by_setting.setdefault(row["setting"], {})[row["procs"]] = row["rate"]
        knob = {"pgqueuer": "batch size"}.get(system, "concurrency")
        rows = [
            [
                f"{s}{' (default)' if s == d['default_setting'] else ''}",
                f"{_num(v.get(1))}/s",
                f"{_num(v.get(2))}/s",
            ]
            for s, v in sorted(by_setting.items())
        ]
        parts.append(
            f"{NAMES[system]}, drain by {knob}:\n\n"
            + _table([knob, "1 process", "2 processes"], rows)
        )
    return "\n\n".join(parts)


def large_table(r: dict[str, Any], plans: bool) -> str:
    d = r.get("large_table")
    if not d:
        return ""
    what = {
        "finished": "finished jobs (with attempt rows)",
        "delayed": "delayed jobs due tomorrow, priority 10",
        "other_queue": "pending jobs in a queue no worker serves",
    }

    def pair(c: dict[str, Any], key: str) -> list[str]:
        ratio = f"**{c[f'{key}_ratio']:.2f}{TIMES}**"
        rounds = c.get("rounds", [])
        if len(rounds) > 1:
            ratio += f" ({_by_round((r[f'{key}_ratio'] for r in rounds), 2)})"
        return [f"{_num(c[f'empty_{key}'])} -> {_num(c[key])}/s", ratio]

    rows = [
        [f"{_num(c['rows'])} {what[case]}", *pair(c, "drain"), *pair(c, "bulk"), *pair(c, "single")]
        for case, c in d["cases"].items()
    ]
    header = [
        "the table also holds",
        "drain: empty -> with",
        "ratio",
        "bulk enqueue",
        "ratio",
        "single enqueue",
        "ratio",
    ]
    n = d.get("rounds", 1)
    text = (
        f"1 process, concurrency {d['concurrency']}, {_num(d['jobs'])} jobs, serving queue "
        f"`default`. Each case filled once and measured in {_rounds(n)}, each round an "
        "empty-table run (a database of its own) and then the case's, back to back; the "
        "figures are the medians of the rounds, each ratio the median of the rounds' "
        "ratios"
        + (" (each round's in parentheses)" if n > 1 else "")
        + ":\n\n"
        + _table(header, rows)
    )
    if plans:
        first = next(iter(d["cases"].values()), None)
        shown = [("the empty table", first["empty_explain"])] if first else []
        shown += [(what[case], c["explain"]) for case, c in d["cases"].items()]
        for title, plan in shown:
            text += (
                f"\n\n<details><summary>claim plan: {title}</summary>\n\n```\n"
                f"{plan}\n```\n</details>"
            )
    return text


def claimers(r: dict[str, Any]) -> str:
    rows_in = r.get("claimers")
    if not rows_in:
        return ""
    two = _best(r, "queueing", 2)
    # 2 processes at each concurrency this scenario ran them at: a fleet of small workers
    # claims in batches as small as theirs.
    two_at = {c["setting"]: c for c in rows_in if c["procs"] == 2}
    rows = []
    for c in rows_in:
        same = two_at.get(c["setting"])
        rows.append(
            [
                str(c["procs"]),
                str(c["setting"]),
                f"{_num(c['rate'])}/s",
                _ratio(c["rate"], two["rate"]) if two else DASH,
                _ratio(c["rate"], same["rate"]) if same and same is not c else DASH,
                f"{c['connections_per_process']:.1f}",
            ]
        )
    return _table(
        [
            "processes",
            "concurrency",
            "drain",
            "vs best 2-process drain",
            "vs 2 processes at this concurrency",
            "connections per process",
        ],
        rows,
    )


def rss(r: dict[str, Any]) -> str:
    d = r.get("rss")
    if not d:
        return ""
    return (
        f"One queueing worker, concurrency {d['concurrency']:,}, draining "
        f"{d['jobs']:,} queued jobs ({_num(d['rate'])}/s): resident memory "
        f"{d['ready_kib'] / 1024:.1f} MiB when ready, peak {d['peak_kib'] / 1024:.1f} MiB, "
        f"{d['after_kib'] / 1024:.1f} MiB after the drain."
    )


def sustained(r: dict[str, Any]) -> str:
    d = r.get("sustained")
    if not d:
        return ""
    rows = [
        [
            str(m["minute"]),
            f"{_num(m['rate'])}/s",
            f"{_num(m.get('p50'), 1)} ms",
            f"{_num(m.get('p99'), 1)} ms",
            " / ".join(f"{k / 1024:.1f}" for k in m.get("rss_kib", [])),
        ]
        for m in d["per_minute"]
    ]
    first, last = d["per_minute"][0], d["per_minute"][-1]
    text = (
        f"{d['minutes']} periods of {d['minute_s']:.0f} s, enqueues at "
        f"{_num(d['target_rate'])} jobs/s (batches every 100 ms), {d['processes']} "
        f"processes at concurrency {d['setting']}; jobs still unhandled 2 minutes after the "
        f"last enqueue: {d.get('unhandled_after_wait', 0)}; last vs first: throughput "
        f"{_ratio(last['rate'], first['rate'])}, p99 {_ratio(last.get('p99'), first.get('p99'))}"
        "\n\n"
        + _table(["minute", "throughput", "pick-up p50", "pick-up p99", "worker RSS MiB"], rows)
    )
    sizes = [
        [
            t["table"],
            f"{t['table_bytes'] / 2**20:.1f}",
            f"{t['index_bytes'] / 2**20:.1f}",
            _num(t["live_rows"]),
            _num(t["dead_rows"]),
            str(t["autovacuum_count"]),
        ]
        for t in d["sizes_end"]["tables"]
    ]
    return (
        text
        + "\n\nAt the end:\n\n"
        + _table(
            ["table", "table MiB", "indexes MiB", "live rows", "dead rows", "autovacuums"], sizes
        )
    )


def metrics_ab(r: dict[str, Any]) -> str:
    d = r.get("metrics_ab")
    if not d:
        return ""
    rows = [
        [str(i + 1), f"{_num(off)}/s", f"{_num(on)}/s"]
        for i, (off, on) in enumerate(zip(d["off"], d["on"], strict=True))
    ]
    return (
        _table(["round", "metrics off", "metrics on"], rows)
        + f"\n\nCost: {d['cost_percent']:+.1f} % of the median drain."
    )


def method(r: dict[str, Any]) -> str:
    s = r.get("sizes", {})
    return (
        "Each system in a database of its own on the same server, no-op jobs, one harness "
        "(bench/). Drain: a pre-filled queue of "
        f"{_num(s.get('drain_n'))} jobs ({_num(s.get('procrastinate_drain_n'))} for "
        "procrastinate); the worker processes are spawned, connect, and are released "
        "together; rate = jobs handled / (last handler start - first handler start), from "
        "the handlers' own clocks. Every drain point is run "
        f"{_num(s.get('drain_rounds', 1))} times, the systems taking turns within each "
        "round, and its figure is the median. Bulk enqueue: batches of 5,000, one client. "
        "Single enqueue: one call and one commit per job, one client, sequential (both the "
        f"median of {_num(s.get('enqueue_rounds', 1))} rounds, taking turns). Pick-up: one idle "
        "worker, one enqueue call per job at the given rate (8 concurrent clients above "
        "50 jobs/s); pick-up = handler start - time right before the enqueue call; its p50 "
        f"and p99 are each the median of {_rounds(s.get('pickup_rounds', 1))}, the systems "
        "taking turns within each round."
        + (
            f" Large tables: each ratio the median of {_rounds(s.get('large_rounds', 1))} (below)."
            if "large_table" in r
            else ""
        )
    )


def settings(r: dict[str, Any]) -> str:
    """How each system ran (at its best 1-process setting of the sweep)."""
    return "\n".join(f"- {d['settings_text']}" for d in r.get("drain", {}).values())


def render(r: dict[str, Any], plans: bool = True) -> str:
    sections = [
        ("Machine", machine(r)),
        ("Figures", summary(r)),
        ("Method", method(r) if "drain" in r or "pickup" in r else ""),
        ("Settings", settings(r)),
        ("Pick-up rounds", pickup_rounds(r)),
        ("Drain sweep", sweep(r)),
        ("Large tables", large_table(r, plans)),
        ("Many claimers", claimers(r)),
        ("Worker memory", rss(r)),
        ("Sustained load", sustained(r)),
        ("Metrics cost (A/B)", metrics_ab(r)),
    ]
    errors = r.get("errors", {})
    sections.append(("Failed scenarios", "\n".join(f"- {k}: {v}" for k, v in errors.items())))
    return "\n\n".join(f"### {title}\n\n{body}" for title, body in sections if body.strip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--no-plans", action="store_true")
    args = parser.parse_args(argv)
    print(render(json.loads(args.file.read_text()), plans=not args.no_plans))


if __name__ == "__main__":
    main()
