"""Worker processes as the harness drives them (their side is bench/worker.py).

A ``Fleet`` spawns N worker processes, waits until each has connected and said ``ready``,
then releases them together with ``go``; it follows their handled counts and stops them
gracefully. Rates come from the handlers' own start times: jobs handled / (last handler
start - first handler start), over all processes of the fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Final:
    """What one worker process reported when it stopped."""

    handled: int
    first: float
    last: float


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """The process's resident set (``VmHWM``: its peak) in KiB, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


class WorkerProc:
    """One worker subprocess."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.handled = 0
        self.final: Final | None = None
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def spawn(
        cls, system: str, conninfo: str, setting: int, queues: str | None, stamp_file: str | None
    ) -> WorkerProc:
        args = [sys.executable, "-m", "bench.worker", system, conninfo, "--setting", str(setting)]
        if queues:
            args += ["--queues", queues]
        if stamp_file:
            args += ["--stamp-file", stamp_file]
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO_ROOT
        )
        worker = cls(proc)
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_S)
        except TimeoutError:
            line = b"(nothing)"
        if line.strip() != b"ready":
            await worker.kill()
            raise RuntimeError(f"{system} worker did not start (said {line!r})")
        worker._reader = asyncio.create_task(worker._read())
        return worker

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            word, _, rest = raw.decode().strip().partition(" ")
            if word == "n":
                self.handled = int(rest)
            elif word == "done":
                handled, first, last = rest.split()
                self.final = Final(int(handled), float(first), float(last))
                self.handled = self.final.handled

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.returncode is None

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stop(self) -> Final:
        """Ask for a graceful stop; kill only if it does not come within the timeout."""
        if self.alive():
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await self.send("stop")
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            code = await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
            if self._reader is not None:
                await asyncio.wait_for(self._reader, STOP_TIMEOUT_S)
        except TimeoutError:
            await self.kill()
            raise RuntimeError(f"worker {self.pid} did not stop within timeout") from None
        if code != 0 or self.final is None:
            raise RuntimeError(f"worker {self.pid} exited with code {code} and no final report")
        return self.final

    async def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        await self.proc.wait()


@dataclass(frozen=True)
class FleetRun:
    """One fleet's run: jobs handled and the handler start times over all its processes."""

    handled: int
    first: float
    last: float
    processes: int

    @property
    def rate(self) -> float:
        """Jobs handled / (last handler start - first handler start)."""
        span = self.last - self.first
        return self.handled / span if span > 0 else float("nan")


class Fleet:
    """``procs`` worker processes of one system, released together."""

    def __init__(
        self,
        system: str,
        conninfo: str,
        setting: int,
        procs: int,
        *,
        queues: str | None = None,
        stamp_dir: Path | None = None,
    ) -> None:
        self.args = (system, conninfo, setting, queues)
        self.procs = procs
        self.stamp_dir = stamp_dir
        self.workers: list[WorkerProc] = []

    def stamp_files(self) -> list[Path]:
        if self.stamp_dir is None:
            return []
        return [self.stamp_dir / f"stamps.{i}" for i in range(self.procs)]

    async def start(self) -> None:
        """Spawn every process (a few at a time: the machine is small) and wait until all are
        ready; nothing runs a job before ``go``."""
        system, conninfo, setting, queues = self.args
        files: list[str | None] = [str(f) for f in self.stamp_files()] or [None] * self.procs
        spawning = asyncio.Semaphore(4)

        async def one(stamp_file: str | None) -> WorkerProc:
            async with spawning:
                return await WorkerProc.spawn(system, conninfo, setting, queues, stamp_file)

        results = await asyncio.gather(*(one(f) for f in files), return_exceptions=True)
        self.workers = [r for r in results if isinstance(r, WorkerProc)]
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.kill()
            raise errors[0]

    async def go(self) -> None:
        await asyncio.gather(*(w.send("go") for w in self.workers))

    @property
    def handled(self) -> int:
        return sum(w.handled for w in self.workers)

    async def wait_handled(self, n: int, limit_s: float) -> None:
        """Until the handlers have started ``n`` jobs in all (raises at ``limit_s``, or if a
        worker dies)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while self.handled < n:
            if not all(w.alive() for w in self.workers):
                raise RuntimeError(f"{self.args[0]}: a worker died ({self.handled} of {n})")
            if loop.time() > deadline:
                raise RuntimeError(f"{self.args[0]}: {self.handled} of {n} jobs in {limit_s} s")
            await asyncio.sleep(0.02)

    async def stop(self) -> FleetRun:
        finals = await asyncio.gather(*(w.stop() for w in self.workers))
        ran = [f for f in finals if f.handled]
        if not ran:
            return FleetRun(0, 0.0, 0.0, self.procs)
        return FleetRun(
            sum(f.handled for f in ran),
            min(f.first for f in ran),
            max(f.last for f in ran),
            self.procs,
        )

    async def kill(self) -> None:
        for worker in self.workers:
            await worker.kill()
