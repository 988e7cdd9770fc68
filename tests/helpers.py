"""Helpers for tests that run real worker processes."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.apps.tasks_app:queue"


class WorkerProcess:
    """A ``queueing worker`` subprocess whose JSON log lines can be awaited."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[dict[str, object]] = []
        self._selector = selectors.DefaultSelector()
        assert proc.stderr is not None
        os.set_blocking(proc.stderr.fileno(), False)
        self._selector.register(proc.stderr, selectors.EVENT_READ)
        self._buffer = ""

    def wait_for_log(self, event: str, timeout: float = 20.0) -> dict[str, object]:
        """Block until the worker logs ``event`` (reading its stderr, no polling)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if line.get("event") == event:
                    return line
            seen = len(self.lines)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                raise AssertionError(f"worker did not log {event!r}; it logged: {self.lines[-20:]}")

    def _read(self, timeout: float) -> bool:
        assert self.proc.stderr is not None
        if not self._selector.select(timeout):
            return False
        chunk = self.proc.stderr.read()
        if not chunk:
            return self.proc.poll() is None
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split("\n")
        for raw in complete:
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(raw))
        return True

    def events(self, event: str) -> list[dict[str, object]]:
        """The log lines read so far for ``event``."""
        return [line for line in self.lines if line.get("event") == event]

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit, then read what it logged up to EOF."""
        code = self.proc.wait(timeout)
        while self._read(0):
            pass
        return code


class RawStderr:
    """Stands in for a worker's stderr pipe and keeps a copy of everything read from it."""

    def __init__(self, inner: IO[str]) -> None:
        self._inner = inner
        self.chunks: list[str] = []

    def fileno(self) -> int:
        return self._inner.fileno()

    def read(self) -> str | None:
        chunk = self._inner.read()
        if chunk:
            self.chunks.append(chunk)
        return chunk

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def capture_raw_stderr(worker: WorkerProcess) -> RawStderr:
    """From now on, keep the worker's raw stderr too (WorkerProcess keeps only JSON lines)."""
    assert worker.proc.stderr is not None
    raw = RawStderr(worker.proc.stderr)
    worker.proc.stderr = cast(IO[str], raw)
    return raw


@contextlib.contextmanager
def worker_process(database_url: str, *args: str) -> Iterator[WorkerProcess]:
    """Start ``queueing worker --app tests.apps.tasks_app:queue ARGS`` and wait until it runs."""
    env = {**os.environ, "QUEUEING_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "queueing", "worker", "--app", APP, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pipes = (proc.stdout, proc.stderr)  # the originals, even if a test wraps them
    worker = WorkerProcess(proc)
    try:
        worker.wait_for_log("worker.started")
        yield worker
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in pipes:
            if pipe is not None:
                pipe.close()
