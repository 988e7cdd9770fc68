"""``queueing db embedded status`` and ``stop``: the embedded PostgreSQL that a command
starts when no database URL is configured, seen and stopped.

Each test has a home of its own (HOME and XDG_DATA_HOME), hence a data directory and a
server of its own; a server a test started is stopped when it ends, failing or not. The
home is not under pytest's tmp_path: as root the server runs as another user, which must
traverse every directory above its data, and each pytest session (any on the machine)
resets /tmp/pytest-of-root to mode 0700. Nothing sleeps: starting and stopping return
once the server is up or gone (``pg_ctl -w``), and the checks read what is there then.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from queueing import embedded
from queueing.cli import app
from tests.helpers import NO_DATABASE_ENV, ROOT, run_cli

START_TIMEOUT = 120  # initdb and a first start, on a busy machine


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh home: its embedded server's data directory is under it. The server, if a
    test started it, is stopped on the way out, and the home deleted."""
    root = Path(tempfile.mkdtemp(prefix="queueing-embedded-test-"))
    (root / "home").mkdir()
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(root / "data"))
    monkeypatch.delenv("QUEUEING_EMBEDDED_DIR", raising=False)
    for name in NO_DATABASE_ENV:
        monkeypatch.delenv(name, raising=False)
    assert embedded.data_dir() == root / "data" / "queueing" / "postgres"
    try:
        yield root
    finally:
        try:
            embedded.stop()
        finally:
            shutil.rmtree(root)


def start_embedded() -> str:
    """Start this home's embedded server through the library, in a process of its own
    that exits and leaves the server running (as a first ``queueing`` command does); the
    URL it would use."""
    proc = subprocess.run(
        [sys.executable, "-c", "from queueing import embedded; print(embedded.database_url())"],
        cwd=ROOT, capture_output=True, text=True, timeout=START_TIMEOUT, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``queueing ARGS`` in a real process: exit 0, nothing on stderr."""
    proc = run_cli(*args)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert proc.stderr == ""
    return proc


def test_status_of_a_fresh_home_starts_nothing(home: Path) -> None:
    data_dir = home / "data" / "queueing" / "postgres"
    status = json.loads(cli("db", "embedded", "status", "--json").stdout)
    assert status == {
        "data_dir": str(data_dir),
        "initialized": False,
        "running": False,
        "pid": None,
        "port": None,
        "socket_dir": None,
        "url": None,
    }
    human = cli("db", "embedded", "status").stdout.splitlines()
    assert human == [
        "embedded PostgreSQL: not running",
        f"data directory: {data_dir} (not created yet)",
    ]
    assert not data_dir.exists()
    stopped = cli("db", "embedded", "stop").stdout
    assert stopped == f"the embedded PostgreSQL in {data_dir} is not running\n"
    assert embedded.stop() is None


def test_start_status_stop_status(home: Path) -> None:
    url = start_embedded()
    data_dir = embedded.data_dir()

    # The library and both CLI forms agree: it runs, here, with this pid.
    status = embedded.status()
    assert status.running and status.initialized
    assert status.data_dir == data_dir
    assert status.pid is not None and status.port is not None and status.url is not None
    as_json = json.loads(cli("db", "embedded", "status", "--json").stdout)
    assert as_json == status.model_dump(mode="json")
    result = CliRunner(env=NO_DATABASE_ENV).invoke(app, ["db", "embedded", "status"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stdout.splitlines() == [
        f"embedded PostgreSQL: running (pid {status.pid})",
        f"data directory: {data_dir}",
        f"port: {status.port}",
        f"socket directory: {status.socket_dir}",
        f"url: {status.url}",
    ]

    # Its URL is the server the library uses: the same database, the same backend.
    for candidate in (status.url, url):
        with psycopg.connect(candidate) as conn:
            row = conn.execute(
                "SELECT current_database(), setting FROM pg_settings WHERE name = 'data_directory'"
            ).fetchone()
        assert row == ("queueing", str(data_dir))

    # Stop it: the command returns once it is gone.
    stopped = cli("db", "embedded", "stop").stdout
    assert stopped == f"stopped the embedded PostgreSQL in {data_dir} (pid {status.pid})\n"
    after = embedded.status()
    assert not after.running
    assert after.initialized  # its data stays, for the next start
    assert not (data_dir / "postmaster.pid").exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(status.url, connect_timeout=5)
    assert json.loads(cli("db", "embedded", "status", "--json").stdout)["running"] is False

    # Stopping a stopped server is not an error.
    again = cli("db", "embedded", "stop").stdout
    assert again == f"the embedded PostgreSQL in {data_dir} is not running\n"

    # And the next use starts it again, on the same data.
    assert start_embedded() == url
    assert embedded.status().running
    assert embedded.stop() is not None
    assert not embedded.status().running


def max_connections(url: str) -> tuple[int, bool]:
    """The server's ``max_connections`` and whether a changed value awaits a restart."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT setting::int, pending_restart FROM pg_settings WHERE name = 'max_connections'"
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def restart_with_default_limit(url: str) -> None:
    """Put the server back to PostgreSQL's default limit (as a data directory made before
    the limit was raised has it), and stop it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM RESET max_connections")
    assert embedded.stop() is not None


def test_the_first_start_raises_the_connection_limit(home: Path) -> None:
    url = start_embedded()
    assert max_connections(url) == (embedded.MAX_CONNECTIONS, False)

    # A data directory at PostgreSQL's default of 100 is raised at its next start.
    restart_with_default_limit(url)
    assert start_embedded() == url
    assert max_connections(url) == (embedded.MAX_CONNECTIONS, False)


def test_a_running_server_is_not_restarted_to_raise_the_limit(home: Path) -> None:
    url = start_embedded()
    restart_with_default_limit(url)

    # Started by the wheel alone (as an older queueing did), with a session open.
    server = embedded._wheel().postgres_server.get_server(embedded.data_dir(), cleanup_mode=None)
    with psycopg.connect(str(server.get_uri("queueing")), autocommit=True) as other:
        assert max_connections(url) == (100, False)
        assert start_embedded() == url
        # Left as it is: the open session was not ended.
        assert max_connections(url) == (100, False)
        assert other.execute("SELECT 1").fetchone() == (1,)
        # Raising it with a session open (one that connected between a start and its
        # check): the setting waits for the next start, and the session is not ended.
        embedded._make_room(embedded.data_dir(), str(server.get_uri("postgres")))
        assert max_connections(url) == (100, True)
        assert other.execute("SELECT 1").fetchone() == (1,)
    # The next start through queueing raises it.
    assert embedded.stop() is not None
    assert start_embedded() == url
    assert max_connections(url) == (embedded.MAX_CONNECTIONS, False)
