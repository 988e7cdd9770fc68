"""Helpers shared by the suite: real worker processes whose JSON log lines a test waits
on, the CLI in a real process, and names unique across xdist workers.

A worker's stderr is read by a thread of its own from the start, so a busy worker never
blocks on a full pipe while the test waits elsewhere, and every wait is on a condition
(a log line arrived, or the log ended) with a deadline. Only what the server alone knows
(its sessions, a statement waiting on a lock) is polled, with a deadline: ``poll``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

import psycopg

from queueing import Queue
from queueing.models import JobStatus

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.apps.tasks_app:queue"
#: Never let the environment choose the database: CLI tests pass --database-url.
NO_DATABASE_ENV: dict[str, str | None] = {"QUEUEING_DATABASE_URL": None, "DATABASE_URL": None}

Line = dict[str, object]
T = TypeVar("T")


def unique_name(prefix: str) -> str:
    """A name (database, role) no other test uses: xdist workers share one server."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{prefix}_{worker}_{uuid.uuid4().hex[:10]}"


def run_cli(*args: str | bytes) -> subprocess.CompletedProcess[str]:
    """``python -m queueing ARGS`` in a real process, with no database from the
    environment (stdout and stderr really separate)."""
    env = {k: v for k, v in os.environ.items() if k not in NO_DATABASE_ENV}
    env.pop("QUEUEING_DEBUG", None)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "queueing", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@dataclass
class _MachineLock:
    """This process's hold on the many-connections lock: its file while held, and how
    many of this process's contexts hold it (a test may start two fleets)."""

    guard: threading.Lock
    depth: int = 0
    file: IO[str] | None = None


_MANY = _MachineLock(threading.Lock())


@contextlib.contextmanager
def many_connections() -> Iterator[None]:
    """Held by a test that opens dozens of connections at once (a fleet of worker
    processes, fifty clients, a project's own ``pytest -n 4``): one such test at a time
    on this machine, across xdist workers and pytest sessions, so that together they stay
    under the server's ``max_connections`` (100 by default) instead of failing with "too
    many clients". A lock on a file (the kernel releases it if the holder dies),
    re-entrant within a process.

    The budget: such a test opens at most about 50 connections, any other test about 12
    (two worker processes and a pool), so that one of these and three others, one per
    xdist worker, stay under 100. A test takes it with the ``many_connections`` marker;
    ``Fleet`` and ``run_pytest`` take it themselves."""
    with _MANY.guard:
        if _MANY.depth == 0:
            name = f"queueing-tests-many-connections-{os.getuid()}.lock"
            _MANY.file = (Path(tempfile.gettempdir()) / name).open("a")
            fcntl.flock(_MANY.file, fcntl.LOCK_EX)
        _MANY.depth += 1
    try:
        yield
    finally:
        with _MANY.guard:
            _MANY.depth -= 1
            if _MANY.depth == 0 and _MANY.file is not None:
                fcntl.flock(_MANY.file, fcntl.LOCK_UN)
                _MANY.file.close()
                _MANY.file = None


def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in a project of its own (``cwd`` with its pytest.ini), in a real process, as
    a user would run it: this run's xdist and database settings stay out of it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "QUEUEING_DB"))}
    with many_connections():
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
            cwd=cwd,
            env=env,  # QUEUEING_TEST_DATABASE_URL passes through
            capture_output=True,
            text=True,
            timeout=300,
        )


@contextlib.contextmanager
def pointed_at(app: Queue, url: str) -> Iterator[Queue]:
    """An app's Queue (a module-level singleton) pointed at ``url``, its pool closed after:
    jobs enqueued through it get their task's validation and retry policy."""
    app.database_url = url
    try:
        yield app
    finally:
        app.close()


def wait_all(queue: Queue, ids: Sequence[int], timeout: float) -> None:
    """Wait until every job is in a terminal state: the newest first (jobs run oldest
    first), then any still unfinished, each on its own notifications."""
    deadline = time.monotonic() + timeout
    queue.wait_for(max(ids), timeout=timeout)
    wanted = set(ids)
    for job in queue.list_jobs(statuses=[JobStatus.PENDING, JobStatus.ACTIVE], limit=len(ids)):
        if job.id in wanted:
            queue.wait_for(job.id, timeout=max(deadline - time.monotonic(), 0.1))


def poll(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    """Ask ``probe`` (a database query) until it answers, for up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        threading.Event().wait(0.05)  # allowed-sleep: the pace of a poll with a deadline


class WorkerProcess:
    """A ``queueing worker`` subprocess whose JSON log lines can be awaited.

    ``changed`` is notified on every line and at the end of the log; workers that share
    one (``Fleet``) can be waited on together. ``application_name``: what its database
    sessions are named (``worker_process`` names each process's own), None if unknown.
    """

    def __init__(
        self,
        proc: subprocess.Popen[str],
        changed: threading.Condition | None = None,
        application_name: str | None = None,
    ) -> None:
        self.proc = proc
        self.application_name = application_name
        self._changed = changed if changed is not None else threading.Condition()
        self._lines: list[Line] = []
        self._raw: list[str] = []
        self._ended = False
        self._reader = threading.Thread(
            target=self._read, name=f"worker-log-{proc.pid}", daemon=True
        )
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        try:
            for raw in self.proc.stderr:
                with self._changed:
                    self._raw.append(raw)
                    with contextlib.suppress(ValueError):
                        line = json.loads(raw)
                        if isinstance(line, dict):
                            self._lines.append(line)
                    self._changed.notify_all()
        except (ValueError, OSError):
            pass  # the pipe was closed under us (teardown of a failed test)
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    # --- what it logged -----------------------------------------------------------------

    @property
    def lines(self) -> list[Line]:
        """The JSON lines read so far (a copy)."""
        with self._changed:
            return list(self._lines)

    @property
    def stderr_text(self) -> str:
        """Everything it wrote to stderr so far, JSON or not."""
        with self._changed:
            return "".join(self._raw)

    def events(self, event: str) -> list[Line]:
        """The log lines read so far for ``event``."""
        return [line for line in self.lines if line.get("event") == event]

    def count(self, event: str) -> int:
        return len(self.events(event))

    def job_lines(self, job_id: int) -> list[Line]:
        """The log lines read so far about ``job_id``."""
        return [line for line in self.lines if line.get("job_id") == job_id]

    @property
    def id(self) -> int:
        """The worker id it registered under first (its ``worker.started`` line)."""
        return int(str(self.wait_for_log("worker.started")["worker_id"]))

    # --- waiting on it ------------------------------------------------------------------

    def wait_until(self, what: str, condition: Callable[[], bool], timeout: float) -> None:
        """Block until ``condition()`` holds, re-checked on every line it logs; fail at the
        deadline, or as soon as its log has ended without the condition holding."""
        with self._changed:
            self._changed.wait_for(lambda: condition() or self._ended, timeout)
            if condition():
                return
        # Its raw stderr too: a start-up failure (e.g. "too many clients" on a shared
        # server) is one plain line, not JSON, and would not show in the lines.
        raise AssertionError(
            f"{what}: not within {timeout:g}s (exit code {self.proc.poll()}); "
            f"it logged: {self.lines[-20:]}; its stderr ends: {self.stderr_text[-1000:]!r}"
        )

    def wait_for_log(self, event: str, timeout: float = 60.0) -> Line:
        """The first line it logged for ``event``, once there is one."""
        return self._wait_for_line(
            event, lambda line: True, f"worker did not log {event!r}", timeout
        )

    def wait_for_job_log(self, event: str, job_id: int, timeout: float = 60.0) -> Line:
        """The first line it logged for ``event`` about ``job_id``, once there is one."""
        return self._wait_for_line(
            event,
            lambda line: line.get("job_id") == job_id,
            f"worker did not log {event!r} for job {job_id}",
            timeout,
        )

    def _wait_for_line(
        self, event: str, match: Callable[[Line], bool], what: str, timeout: float
    ) -> Line:
        found: list[Line] = []

        def logged() -> bool:
            found[:] = [line for line in self.events(event) if match(line)][:1]
            return bool(found)

        self.wait_until(what, logged, timeout)
        return found[0]

    # --- signals and exit ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def send_signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit; its exit code, once its log is read to the end."""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        assert not self._reader.is_alive(), "the worker's stderr is still open"
        return code

    def wait_stopped(self, timeout: float = 60.0) -> int:
        """Wait for its ``worker.stopped`` line, then for it to exit: the exit code."""
        self.wait_for_log("worker.stopped", timeout)
        return self.wait(timeout)

    def stop(self, signum: signal.Signals = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Signal it, read its log up to ``worker.stopped``: the exit code."""
        self.send_signal(signum)
        return self.wait_stopped(timeout)

    def kill(self, timeout: float = 30.0) -> None:
        """SIGKILL, and wait until it is gone and its log read to the end."""
        self.send_signal(signal.SIGKILL)
        self.wait(timeout)

    def wait_sessions_ended(self, database_url: str, timeout: float = 30.0) -> None:
        """Once it has exited, wait until the server holds no session of it: from then on
        nothing it sent can still commit, so what the database holds under its worker id
        changes only by what other workers do (a rescue).

        Its exit does not end a statement it had sent: the server notices a dead client
        only when it next reads from the socket (client_connection_check_interval is off
        by default), so a claim that was running or waiting on a lock at the SIGKILL runs
        on and commits after the process is gone. Polled: the server tells no one when a
        session ends; most of the time it has ended by the first look.
        """
        assert self.application_name is not None, "started without a session name"
        assert not self.running, "it still runs: its sessions may open again"
        with psycopg.connect(database_url, autocommit=True) as conn:

            def ended() -> bool | None:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    [self.application_name],
                ).fetchone()
                return True if row is not None and row[0] == 0 else None

            poll(f"the sessions of worker process {self.proc.pid} ended", ended, timeout)


@contextlib.contextmanager
def worker_process(
    database_url: str, *args: str, changed: threading.Condition | None = None
) -> Iterator[WorkerProcess]:
    """Start ``queueing worker --app tests.apps.tasks_app:queue ARGS`` and wait until it
    runs (a later ``--app`` in ARGS overrides this one). Killed on the way out if still
    running. Its database sessions carry an application_name of its own (libpq's
    PGAPPNAME), so a test can tell when they have ended (``wait_sessions_ended``)."""
    application_name = unique_name("queueing_worker")
    env = {
        **os.environ,
        "QUEUEING_DATABASE_URL": database_url,
        "PYTHONPATH": str(ROOT),
        "PGAPPNAME": application_name,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "queueing", "worker", "--app", APP, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker = WorkerProcess(proc, changed, application_name)
    try:
        worker.wait_for_log("worker.started")
        yield worker
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        worker._reader.join(30)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


class Fleet:
    """Worker processes, one per tuple of CLI arguments, whose logs are waited on
    together; each stopped (killed if need be) when ``stack`` closes."""

    def __init__(self, stack: contextlib.ExitStack, url: str, *workers: Sequence[str]) -> None:
        stack.enter_context(many_connections())  # released after the workers stopped
        self.changed = threading.Condition()
        self.workers = [
            stack.enter_context(worker_process(url, *args, changed=self.changed))
            for args in workers
        ]

    def wait_until(self, what: str, condition: Callable[[], bool], timeout: float) -> None:
        """Block until ``condition()`` holds, re-checked on every line any worker logs."""
        with self.changed:
            if self.changed.wait_for(condition, timeout):
                return
        tails = [w.lines[-12:] for w in self.workers]
        codes = [w.proc.poll() for w in self.workers]
        raise AssertionError(f"{what}: not within {timeout:g}s; exit codes {codes}; logs {tails}")

    def events(self, event: str) -> list[Line]:
        return [line for w in self.workers for line in w.events(event)]

    def count(self, event: str) -> int:
        return sum(w.count(event) for w in self.workers)

    def stop(self, timeout: float = 60.0) -> list[int]:
        """SIGTERM every worker at once (one signal each: a second one forces); their
        exit codes."""
        for w in self.workers:
            w.send_signal(signal.SIGTERM)
        return [w.wait(timeout) for w in self.workers]
