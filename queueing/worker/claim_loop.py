"""The claim loop: claim due jobs in batches up to the free slots, start them, wait.

It waits for whichever comes first: a job hint (``wake``, from the listener), a freed
slot, the next delayed job falling due, the poll interval, or stop. A claim the database
refuses is retried with an exponential backoff, cut short when the listener gets through
again (it wakes the loop); the first claim that succeeds after failures calls
``on_database_back``.

Each claim is made under the registration current when it starts, and its jobs go to
that registration's finisher: the worker id and the finisher travel together, so a
re-registration between two claims cannot hand jobs to a finisher whose worker id the
database will fence out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import psycopg

from queueing.worker.backoff import ReconnectBackoff
from queueing.worker.connection import Connection
from queueing.worker.lost_claims import give_back_lost_claims
from queueing.worker.metrics import WorkerMetrics
from queueing.worker.outcome import Claimed
from queueing.worker.registration import Registration
from queueing.worker.running import RunningJobs
from queueing.worker.services import first


class ClaimLoop:
    """Claims and starts jobs until stopped (see the module doc)."""

    def __init__(
        self,
        conn: Connection,
        registration: Registration,
        running: RunningJobs,
        *,
        queues: Sequence[str] | None,
        concurrency: int,
        batch_size: int,
        poll_interval: float,
        on_database_back: Callable[[], None],
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._conn = conn
        self._registration = registration
        self._running = running
        self._queues = list(queues) if queues else None
        self._concurrency = concurrency
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._on_database_back = on_database_back
        self._wake = asyncio.Event()
        self._backoff = ReconnectBackoff()
        # The shared connection's generation whose claims were all seen: a newer one
        # means a claim may have committed unseen on the connection it replaced.
        self._seen_generation = 0
        self._metrics = metrics

    def wake(self) -> None:
        """Look for due jobs now (a job hint, or the listener reconnected)."""
        self._wake.set()

    async def run(self, stopping: asyncio.Event, *, until_idle: bool = False) -> None:
        """Claim until ``stopping`` is set; with ``until_idle``, until no job is due now
        and none runs."""
        self._seen_generation = self._conn.generation
        slot_freed = self._running.slot_freed
        # Outcomes of limited jobs committed: their slots under a concurrency limit are
        # free in the database only now, after the handler's end freed this worker's slot
        # (a claim made in between saw the key still at its limit).
        committed = self._registration.committed
        while not stopping.is_set():
            # Clear the wake-ups before looking, so one that fires while we look is kept.
            slot_freed.clear()
            committed.clear()
            wait_for: float | None = self._poll_interval
            free = self._free_slots()
            if free > 0:
                self._wake.clear()
                wait_for = await self._claim_round(free, stopping, until_idle)
                if wait_for is None:
                    return
                if wait_for == 0:
                    continue
            await first(
                self._wake.wait(),
                slot_freed.wait(),
                committed.wait(),
                stopping.wait(),
                timeout=wait_for,
            )

    def _free_slots(self) -> int:
        if self._running.alone:
            return 0  # a job that must run alone is running: nothing beside it
        return min(self._concurrency - len(self._running), self._batch_size)

    async def _claim_round(
        self, limit: int, stopping: asyncio.Event, until_idle: bool
    ) -> float | None:
        """One claim and what follows; how long to wait before the next look (0: look
        again now; None: idle, and ``until_idle`` asked to stop then)."""
        # Outcomes written from here on may make a job due (a retry without delay)
        # that this claim's snapshot cannot see.
        written_before = self._registration.written
        try:
            claimed = await self._claim(limit)
        except psycopg.Error as exc:
            await self._claim_failed(exc, stopping)
            return 0
        self._claim_succeeded()
        if claimed:
            # Let the jobs just started begin before this loop's next round trip: its
            # send (the next claim, or the next delayed job's time) came first otherwise.
            await asyncio.sleep(0)
        if await self._check_lost_claims():
            return 0  # they are pending again: claim them
        if claimed == limit:
            return 0  # there may be more due right now
        if until_idle and claimed == 0 and len(self._running) == 0:
            # Idle = nothing due now and nothing running. Outcomes written since the
            # claim began may have made a job due: flush them, and claim once more
            # unless none was written.
            await self._registration.flushed()
            return None if self._registration.written == written_before else 0
        due_in = await self._next_due_in()
        return self._poll_interval if due_in is None else min(self._poll_interval, max(due_in, 0.0))

    async def _claim(self, limit: int) -> int:
        """Claim up to ``limit`` due jobs and start them; how many. Raises the database's
        errors (see ``_claim_failed``)."""
        registered = self._registration.current
        idle = len(self._running) == 0
        for _ in range(2):
            params = {
                "queues": self._queues,
                "worker_id": registered.worker_id,
                "limit": limit,
                "idle": idle,
            }
            try:
                rows = await self._conn.fetch("claim_jobs", params)
            except psycopg.errors.ForeignKeyViolation:
                # Our worker row is gone (rescued or forgotten before the heartbeat
                # noticed): the claim took nothing. Register again, claim once more.
                registered = await self._registration.replace(
                    registered.worker_id, running=len(self._running)
                )
                continue
            for row in rows:
                self._running.start(Claimed(**row), registered.finisher)
            return len(rows)
        return 0

    async def _claim_failed(self, exc: psycopg.Error, stopping: asyncio.Event) -> None:
        """Wait out a failed claim: the backoff's next delay, or less if the listener
        gets through (the database is back) or we are asked to stop."""
        delay = self._backoff.failed("worker.claim_failed", exc)
        if self._metrics is not None:
            self._metrics.claims(succeeded=False)
        await self._conn.drop_if_lost(exc)
        # _wake was cleared before the claim: set since, it is the listener reconnecting
        # (or a notification reaching it), so the database answers again.
        await first(stopping.wait(), self._wake.wait(), timeout=delay)

    def _claim_succeeded(self) -> None:
        if self._backoff.failures:
            if self._metrics is not None:
                self._metrics.claims(succeeded=True)
            self._backoff.recovered("worker.claim_recovered")
            self._on_database_back()

    async def _check_lost_claims(self) -> int:
        """After the shared connection was replaced (by whichever of its users met the
        loss), give back what a claim lost with it; how many."""
        generation = self._conn.generation
        if generation == self._seen_generation:
            return 0
        known = set(self._running.ids()) | self._registration.job_ids()
        try:
            given_back = await give_back_lost_claims(self._conn, self._registration.current, known)
        except psycopg.Error:
            return 0  # not seen yet: the next successful claim asks again
        self._seen_generation = generation
        return given_back

    async def _next_due_in(self) -> float | None:
        try:
            rows = await self._conn.fetch("next_due_in", {"queues": self._queues})
        except psycopg.Error:
            return None  # the next claim finds out what is wrong, and backs off
        seconds = rows[0]["seconds"] if rows else None
        return None if seconds is None else float(seconds)
