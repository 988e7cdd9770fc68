"""``python -m bench.pickup_parts``: where a queueing pick-up's time goes, step by step.

The ``pickup`` scenario gives one number per job: handler start - time right before the
enqueue call. This splits it. A queueing worker runs in this process with two of its
steps timed from outside (the claim loop's ``wake``, which the listener calls on a job
hint, and the claim loop's ``claim_jobs`` round trip); a producer process enqueues one
call per job at ``--rate`` with the time before its call in the job's arguments, and
prints when each call returned. For each job, with the claim that took it (the last
claim back before the handler started):

- enqueue call returns: the producer's call, from before it to its return;
- wake (or claim sent): the hint waking the claim loop, or the claim being sent if the
  loop was busy and no hint came between (a claim sent for an earlier hint may take it);
- wake -> claim sent; claim round trip; claim back -> handler start.

p50 and p90 of each step; the steps' p50s need not add up to the pick-up's. Instruments
the worker by wrapping two of its methods: a measuring tool, never how the worker runs.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.context import add_admin_url, scratch_databases
from queueing import Queue
from queueing.worker import Worker
from queueing.worker.claim_loop import ClaimLoop
from queueing.worker.connection import Connection

#: The producer: ``python -c PRODUCER URL JOBS RATE``; prints "<t> <returned>" per job.
PRODUCER = """
import sys, time
from queueing import Queue
queue = Queue(sys.argv[1]); jobs = int(sys.argv[2]); rate = float(sys.argv[3])
queue.enqueue("stamp", {"t": 0.0})  # warm-up: connects the pool
at = time.perf_counter() + 0.5
for _ in range(jobs):
    at += 1 / rate
    delay = at - time.perf_counter()
    if delay > 0:
        time.sleep(delay)  # pacing the producer
    t = time.time()
    queue.enqueue("stamp", {"t": t})
    print(t, time.time(), flush=True)
"""

STEPS = (
    "enqueue call returns",
    "wake (or claim sent)",
    "wake -> claim sent",
    "claim round trip",
    "claim back -> handler start",
    "pick-up",
)


class Timings:
    """What the wrapped methods saw: wake times, and (sent, back, jobs) of each claim
    that took jobs."""

    def __init__(self) -> None:
        self.wakes: list[float] = []
        self.claims: list[tuple[float, float, int]] = []
        self.starts: list[tuple[float, float]] = []
        self.all_started = asyncio.Event()
        self.expected = 0

    def started(self, t: float) -> None:
        self.starts.append((t, time.time()))
        if len(self.starts) >= self.expected:
            self.all_started.set()

    def instrument(self) -> None:
        wake, fetch = ClaimLoop.wake, Connection.fetch
        timings = self

        def timed_wake(loop: ClaimLoop) -> None:
            timings.wakes.append(time.time())
            wake(loop)

        async def timed_fetch(
            conn: Connection, name: str, params: dict[str, Any] | None = None
        ) -> list[dict[str, Any]]:
            if name != "claim_jobs":
                return await fetch(conn, name, params)
            sent = time.time()
            rows = await fetch(conn, name, params)
            if rows:
                timings.claims.append((sent, time.time(), len(rows)))
            return rows

        setattr(ClaimLoop, "wake", timed_wake)  # noqa: B010 (a method replaced on purpose)
        setattr(Connection, "fetch", timed_fetch)  # noqa: B010

    def steps(self, returned: dict[float, float]) -> list[tuple[float, ...]]:
        """Each job's steps in ms, in the order of STEPS."""
        backs = [c[1] for c in self.claims]
        out = []
        for t, started in self.starts:
            if t <= 0:
                continue
            sent, back, _ = self.claims[bisect.bisect_right(backs, started) - 1]
            woke = max((w for w in self.wakes if t <= w <= sent), default=sent)
            out.append(
                tuple(
                    (b - a) * 1e3
                    for a, b in (
                        (t, returned[t]),
                        (t, woke),
                        (woke, sent),
                        (sent, back),
                        (back, started),
                        (t, started),
                    )
                )
            )
        return out


async def _measure(url: str, jobs: int, rate: float) -> str:
    timings = Timings()
    timings.expected = jobs + 1  # and the producer's warm-up job
    timings.instrument()
    queue = Queue(url)

    @queue.task(name="stamp")
    async def stamp(t: float) -> None:
        timings.started(t)

    queue.migrate()
    worker = Worker(queue)
    running = asyncio.create_task(worker.run())
    producer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PRODUCER, url, str(jobs), str(rate), stdout=subprocess.PIPE
    )
    out, _ = await producer.communicate()
    try:
        await asyncio.wait_for(timings.all_started.wait(), 30)  # the last jobs' handlers
    finally:
        worker.stop()
    await running
    returned = {float(t): float(r) for t, r in (line.split() for line in out.decode().splitlines())}
    rows = timings.steps(returned)
    lines = [
        f"{len(rows)} jobs at {rate:g}/s, one enqueue call each; {len(timings.claims)} claims "
        f"took them ({statistics.mean(c[2] for c in timings.claims):.2f} jobs a claim)",
        "| step | p50 | p90 |",
        "| --- | ---: | ---: |",
    ]
    for i, name in enumerate(STEPS):
        values = [r[i] for r in rows]
        deciles = statistics.quantiles(values, n=10)
        lines.append(f"| {name} | {statistics.median(values):.2f} ms | {deciles[8]:.2f} ms |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pickup_parts", description=__doc__)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--jobs", type=int, default=200)
    add_admin_url(parser)
    args = parser.parse_args()
    with scratch_databases(args.admin_url, f"bench_pickup_parts_{os.getpid()}") as [url]:
        print(asyncio.run(_measure(url, args.jobs, args.rate)))


if __name__ == "__main__":
    main()
