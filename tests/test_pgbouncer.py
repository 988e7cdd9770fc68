"""Through PgBouncer in transaction pooling mode (docs/pooling.md), with a real pgbouncer.

Each test starts its own pgbouncer (an ini and a userlist of its own, a free port,
``pool_mode = transaction``, ``auth_type = trust``) in front of the test's database, and
waits on its log for "process up", never on time. A missing pgbouncer binary fails the
test with one line saying how to install it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from queueing import JobRequest, Queue, sql
from queueing.config import LISTEN_URL_ENV, PREPARE_THRESHOLD, PREPARED_STATEMENTS_ENV
from queueing.ops import ENQUEUE_CHUNK
from tests.apps import tasks_app
from tests.helpers import pointed_at, run_cli, unique_name, wait_all, worker_process

START_TIMEOUT = 30.0
INSTALL_HINT = "pgbouncer not found: install it (apt-get install -y pgbouncer)"


@dataclass
class PgBouncer:
    """A running pgbouncer; ``url`` reaches the test's database through it."""

    url: str
    proc: subprocess.Popen[str]
    lines: list[str]


def _binary(path: str | None = None) -> str:
    """pgbouncer's path, looked for in ``path`` (default: PATH, then /usr/sbin where Debian
    puts it, which a non-root PATH may lack); fails the test in one line if it is not there."""
    if path is None:
        path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    found = shutil.which("pgbouncer", path=path)
    if found is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return found


def _run_as(database_url: str) -> list[str]:
    """pgbouncer's ``-u USER`` when we are root (it refuses to run as root; it reads its
    files before it switches): the owner of the server's socket directory when it
    connects through one (the embedded server's is its own), else nobody."""
    if os.geteuid() != 0:
        return []
    host = str(conninfo_to_dict(database_url).get("host", ""))
    owner = pwd.getpwuid(os.stat(host).st_uid).pw_name if host.startswith("/") else "root"
    return ["-u", "nobody" if owner == "root" else owner]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _write_config(directory: Path, database_url: str, port: int, pool_size: int) -> Path:
    server = conninfo_to_dict(database_url)
    dbname, user = str(server["dbname"]), str(server.get("user", "postgres"))
    target = make_conninfo(
        host=str(server.get("host", "127.0.0.1")), port=str(server.get("port", 5432)), dbname=dbname
    )
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    ini = directory / "pgbouncer.ini"
    ini.write_text(
        f"[databases]\n{dbname} = {target}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {directory / 'userlist.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 200\n"
    )
    return ini


@contextlib.contextmanager
def pgbouncer(database_url: str, directory: Path, pool_size: int = 20) -> Iterator[PgBouncer]:
    """Start pgbouncer in front of ``database_url``'s database; stop it on the way out."""
    binary, port = _binary(), _free_port()
    ini = _write_config(directory, database_url, port, pool_size)
    proc = subprocess.Popen(
        [binary, *_run_as(database_url), str(ini)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    changed = threading.Condition()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with changed:
                lines.append(line)
                changed.notify_all()
        with changed:
            lines.append("")  # the log ended: pgbouncer exited
            changed.notify_all()

    reader = threading.Thread(target=read, name="pgbouncer-log", daemon=True)
    reader.start()
    try:
        with changed:
            up = changed.wait_for(
                lambda: any("process up" in line or line == "" for line in lines), START_TIMEOUT
            )
        if not up or not any("process up" in line for line in lines):
            raise AssertionError(f"pgbouncer did not start: {''.join(lines)[-2000:]}")
        yield PgBouncer(make_conninfo(database_url, host="127.0.0.1", port=str(port)), proc, lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        reader.join(30)
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.fixture
def bouncer(queue: Queue, tmp_path: Path) -> Iterator[PgBouncer]:
    """A pgbouncer in transaction mode in front of this test's (emptied) database."""
    with pgbouncer(queue.database_url, tmp_path) as running:
        yield running


@pytest.fixture
def pooled(bouncer: PgBouncer) -> Iterator[Queue]:
    """The sample app's Queue reaching the test's database through pgbouncer."""
    with pointed_at(tasks_app.queue, bouncer.url) as app:
        yield app


def test_jobs_run_through_pgbouncer_without_prepared_statements(
    pooled: Queue, queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Enqueue (one by one: each statement runs more often than psycopg's prepare
    threshold), a worker and waits, all through transaction pooling; LISTEN direct."""
    monkeypatch.setenv(PREPARED_STATEMENTS_ENV, "false")
    monkeypatch.setenv(LISTEN_URL_ENV, queue.database_url)
    with worker_process(pooled.database_url, "--concurrency", "4"):
        ids = [pooled.enqueue("add", {"a": i, "b": 1}).id for i in range(30)]
        wait_all(pooled, ids, timeout=60)
    results = [pooled.get_job(job_id).result for job_id in ids]
    assert results == [i + 1 for i in range(30)]


def test_a_batch_of_several_chunks_is_pipelined_through_pgbouncer(
    pooled: Queue, queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over ops.ENQUEUE_CHUNK jobs go in pipelined statements in one transaction, which
    transaction pooling keeps on one server connection: all are written, in order."""
    monkeypatch.setenv(PREPARED_STATEMENTS_ENV, "false")
    n = 2 * ENQUEUE_CHUNK + 3
    jobs = pooled.enqueue_many([JobRequest("add", {"a": i, "b": 0}) for i in range(n)])
    assert [j.args["a"] for j in jobs] == list(range(n))
    assert [j.id for j in jobs] == sorted({j.id for j in jobs})
    assert [queue.get_job(j.id).args["a"] for j in jobs[:: ENQUEUE_CHUNK - 1]] == list(
        range(0, n, ENQUEUE_CHUNK - 1)
    )


def test_prepared_statements_fail_through_pgbouncer(
    queue: Queue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With prepared statements on (the default), two clients sharing a server
    connection collide on psycopg's statement names; off, the same calls succeed."""
    monkeypatch.delenv(PREPARED_STATEMENTS_ENV, raising=False)
    job_id = queue.enqueue("anything").id
    with pgbouncer(queue.database_url, tmp_path, pool_size=1) as one_server:
        # psycopg prepares a statement as "_pg3_0" on the one server connection, where
        # the other client's "_pg3_0" already is.
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement, match="_pg3_0"):
            _read_from_two_clients(one_server.url, job_id)
        monkeypatch.setenv(PREPARED_STATEMENTS_ENV, "false")
        _read_from_two_clients(one_server.url, job_id)


def _read_from_two_clients(url: str, job_id: int) -> None:
    """Read a job from two Queues in turn, more often than psycopg's prepare threshold
    on each of their connections."""
    with Queue(url) as first, Queue(url) as second:
        for _ in range(4 * PREPARE_THRESHOLD):
            assert first.get_job(job_id).id == second.get_job(job_id).id == job_id


def test_worker_listening_directly_is_woken_by_notifications(
    pooled: Queue, queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claims through pgbouncer, LISTEN on the direct URL: with an hour between polls,
    only a notification can make it claim the job."""
    monkeypatch.setenv(PREPARED_STATEMENTS_ENV, "false")
    monkeypatch.setenv(LISTEN_URL_ENV, queue.database_url)
    with worker_process(pooled.database_url, "--poll-interval", "3600"):
        job = pooled.enqueue("add", {"a": 2, "b": 3})
        assert pooled.wait_for(job.id, timeout=60).result == 5


@pytest.mark.parametrize("listen", ["off", "through-pgbouncer"])
def test_worker_that_cannot_listen_claims_by_polling(
    pooled: Queue, queue: Queue, listen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listening off, or LISTEN sent through the pooler (it succeeds, and no
    notification ever comes): the worker still claims, every poll interval, and
    ``wait_for`` still returns (it polls when listening is off)."""
    monkeypatch.setenv(PREPARED_STATEMENTS_ENV, "false")
    if listen == "off":
        monkeypatch.setenv(LISTEN_URL_ENV, "off")
    else:
        monkeypatch.delenv(LISTEN_URL_ENV, raising=False)
    # A wait LISTENing through the pooler would never be woken: wait on the direct URL.
    waiter = pooled if listen == "off" else queue
    with worker_process(pooled.database_url, "--poll-interval", "0.2") as worker:
        ids = [pooled.enqueue("add", {"a": i, "b": 2}).id for i in range(3)]
        wait_all(waiter, ids, timeout=60)
    assert [pooled.get_job(i).result for i in ids] == [2, 3, 4]
    assert worker.count("worker.not_listening") == (1 if listen == "off" else 0)


def test_a_prepared_statements_setting_that_is_not_a_boolean_is_one_line(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PREPARED_STATEMENTS_ENV, "sometimes")
    result = run_cli("jobs", "list", "--database-url", queue.database_url)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: {PREPARED_STATEMENTS_ENV}='sometimes': expected true or false"
    ]


def test_a_missing_pgbouncer_fails_in_one_line_saying_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        _binary(path=str(tmp_path))
    assert str(failed.value) == INSTALL_HINT


def _connections(url: str, application: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(sql.query("test_connections_of"), {"application": application})
        return sorted(str(row[0]) for row in rows)


def _eventually(condition: Callable[[], bool], timeout: float) -> bool:
    """Whether ``condition()`` holds within ``timeout`` (pg_stat_activity notifies no one:
    it is read again every 50 ms until then)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        threading.Event().wait(0.05)  # allowed-sleep: the pace of a poll with a deadline
    return True


def test_a_worker_holds_four_connections_between_maintenance_rounds(app_queue: Queue) -> None:
    """The claim loop's, the finisher's, the listener's and the heartbeat's; the rescuer
    and the pruner hold theirs for a round only; progress reports borrow from a pool
    that opens none until a handler reports."""
    application = unique_name("pool_count")
    worker_url = make_conninfo(app_queue.database_url, application_name=application)
    with worker_process(worker_url, "--concurrency", "2"):
        job = app_queue.enqueue("add", {"a": 1, "b": 1})
        app_queue.wait_for(job.id, timeout=60)  # the finisher connects for its first write
        seen: list[str] = []

        def four() -> bool:
            seen[:] = _connections(app_queue.database_url, application)
            return len(seen) == 4

        assert _eventually(four, timeout=30), seen
    assert sorted(map(_role, seen)) == ["claim loop", "finisher", "heartbeat", "listener"], seen


def _role(query: str) -> str:
    """Whose connection ran ``query`` last (the claim loop's claims and asks when the
    next job is due)."""
    if "LISTEN" in query:
        return "listener"
    if "last_heartbeat" in query:
        return "heartbeat"
    return "finisher" if "queueing_finish_v" in query else "claim loop"
