"""``queueing enqueue --args @FILE`` and ``--args -``: a payload too big for one
command-line argument (Linux refuses one over 128 KiB) read from a file or stdin, under
the same limits as ``--args JSON``; in-process (CliRunner) and in a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from queueing import Queue, limits
from queueing.cli import app
from queueing.cli.options import MAX_ARGS_INPUT
from tests.helpers import NO_DATABASE_ENV, ROOT, run_cli

#: Over the 128 KiB a single argv string may hold on Linux, under the 256 KiB limit.
BIG = 200 * 1024


def payload(size: int) -> dict[str, Any]:
    """A JSON object of about ``size`` bytes, with text that is not all ASCII."""
    return {"blob": "x" * (size - 200), "text": "déjà vu ✓", "n": [1, 2.5, None, True]}


def rows(url: str) -> int:
    """Jobs in the table, counted by PostgreSQL itself."""
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()
    assert found is not None
    return int(found[0])


def run_cli_with_stdin(stdin: bytes, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m queueing ARGS`` in a real process fed ``stdin`` (``run_cli``'s
    environment: no database from it)."""
    env = {k: v for k, v in os.environ.items() if k not in NO_DATABASE_ENV}
    env.pop("QUEUEING_DEBUG", None)
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "queueing", *args],
        cwd=ROOT, env=env, input=stdin, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


def one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Non-zero exit, exactly one line on stderr, nothing on stdout, no traceback."""
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert proc.stdout == ""
    return lines[0]


@pytest.fixture
def url(queue: Queue, queueing_database_url: str) -> str:
    """This session's database, emptied (through the ``queue`` fixture)."""
    return queueing_database_url


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env=NO_DATABASE_ENV)


# --- a big payload arrives intact ---------------------------------------------------


def test_a_200_kib_payload_is_too_big_for_one_argument() -> None:
    """Why the options exist: the kernel refuses to start a program with such an argv."""
    with pytest.raises(OSError, match="too long"):
        run_cli("enqueue", "x", "--args", json.dumps(payload(BIG)))


def test_big_payload_from_a_file_in_process(
    runner: CliRunner, url: str, queue: Queue, tmp_path: Path
) -> None:
    args = payload(BIG)
    path = tmp_path / "args.json"
    path.write_text(json.dumps(args, indent=2, ensure_ascii=False), encoding="utf-8")
    result = runner.invoke(
        app, ["enqueue", "big", "--args", f"@{path}", "--json", "--database-url", url]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    printed = json.loads(result.stdout)
    assert printed["args"] == args
    assert queue.get_job(printed["id"]).args == args
    assert rows(url) == 1


def test_big_payload_from_stdin_in_process(runner: CliRunner, url: str, queue: Queue) -> None:
    args = payload(BIG)
    result = runner.invoke(
        app,
        ["enqueue", "big", "--args", "-", "--json", "--database-url", url],
        input=json.dumps(args, ensure_ascii=False).encode(),
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert queue.get_job(json.loads(result.stdout)["id"]).args == args
    assert rows(url) == 1


def test_big_payload_from_a_file_in_a_real_process(url: str, queue: Queue, tmp_path: Path) -> None:
    args = payload(BIG)
    path = tmp_path / "args.json"
    path.write_text(json.dumps(args, ensure_ascii=False), encoding="utf-8")
    proc = run_cli("enqueue", "big", "--args", f"@{path}", "--json", "--database-url", url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert queue.get_job(json.loads(proc.stdout)["id"]).args == args
    assert rows(url) == 1


def test_big_payload_from_stdin_in_a_real_process(url: str, queue: Queue) -> None:
    args = payload(BIG)
    stdin = json.dumps(args, ensure_ascii=False).encode()
    proc = run_cli_with_stdin(stdin, "enqueue", "big", "--args", "-", "--database-url", url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith("job ") and "(created)" in proc.stdout
    (job,) = queue.list_jobs()
    assert job.args == args
    assert rows(url) == 1


def test_a_byte_order_mark_is_accepted(runner: CliRunner, url: str, queue: Queue) -> None:
    """Editors on Windows start UTF-8 files with one; JSON's decoder skips it."""
    result = runner.invoke(
        app,
        ["enqueue", "bom", "--args", "-", "--json", "--database-url", url],
        input=b"\xef\xbb\xbf" + json.dumps({"a": "é"}).encode(),
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads(result.stdout)["args"] == {"a": "é"}


# --- refused, nothing written -------------------------------------------------------

OVER = limits.MAX_PAYLOAD_BYTES + 10 * 1024


def test_over_the_limit_from_a_file_is_refused_as_inline(
    url: str, queue: Queue, tmp_path: Path
) -> None:
    """The same one-line error as a payload given inline (the library's limit)."""
    path = tmp_path / "args.json"
    path.write_text(json.dumps(payload(OVER)), encoding="utf-8")
    proc = run_cli("enqueue", "big", "--args", f"@{path}", "--database-url", url)
    line = one_line_error(proc, f"the limit is {limits.MAX_PAYLOAD_BYTES}")
    assert proc.returncode == 1
    assert line.startswith("error: job arguments: ")
    assert rows(url) == 0


def test_over_the_limit_from_stdin_is_refused(url: str, queue: Queue) -> None:
    stdin = json.dumps(payload(OVER)).encode()
    proc = run_cli_with_stdin(stdin, "enqueue", "big", "--args", "-", "--database-url", url)
    one_line_error(proc, "job arguments: ", f"the limit is {limits.MAX_PAYLOAD_BYTES}")
    assert proc.returncode == 1
    assert rows(url) == 0


def test_endless_input_is_not_read_to_its_end(url: str, queue: Queue) -> None:
    """``--args @/dev/zero`` stops reading past a bound instead of filling memory."""
    proc = run_cli("enqueue", "x", "--args", "@/dev/zero", "--database-url", url)
    one_line_error(proc, f"over {MAX_ARGS_INPUT} bytes", str(limits.MAX_PAYLOAD_BYTES))
    assert proc.returncode == 1
    assert rows(url) == 0


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"a": 1', "@FILE is not valid JSON"),
        (b"", "@FILE is not valid JSON"),
        (b"\xff\xfe not utf-8 \xff", "@FILE is not valid JSON"),
        (b"[1, 2]", "@FILE must be a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "@FILE nests deeper than"),
    ],
    ids=["truncated", "empty", "not-utf-8", "array", "deep"],
)
def test_bad_json_from_a_file_is_refused(
    url: str, queue: Queue, tmp_path: Path, content: bytes, fragment: str
) -> None:
    path = tmp_path / "args.json"
    path.write_bytes(content)
    proc = run_cli("enqueue", "x", "--args", f"@{path}", "--database-url", url)
    one_line_error(proc, fragment.replace("@FILE", f"--args @{path}"))
    assert proc.returncode == 1
    assert rows(url) == 0


def test_bad_json_from_stdin_is_refused(url: str, queue: Queue) -> None:
    proc = run_cli_with_stdin(b"{not json", "enqueue", "x", "--args", "-", "--database-url", url)
    one_line_error(proc, "--args - (stdin) is not valid JSON")
    assert proc.returncode == 1
    assert rows(url) == 0


def test_bad_json_in_process_is_refused(runner: CliRunner, url: str, queue: Queue) -> None:
    result = runner.invoke(
        app, ["enqueue", "x", "--args", "-", "--database-url", url], input=b'"text"'
    )
    assert result.exit_code == 1
    assert "must be a JSON object" in str(result.exception)
    assert rows(url) == 0


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("missing.json", "no such file"),
        ("a-directory", "cannot read it: Is a directory"),
        ("", "--args @ needs a file name"),
    ],
    ids=["missing", "directory", "no-name"],
)
def test_a_file_that_cannot_be_read_is_one_line(
    url: str, queue: Queue, tmp_path: Path, name: str, fragment: str
) -> None:
    (tmp_path / "a-directory").mkdir()
    arg = f"@{tmp_path / name}" if name else "@"
    proc = run_cli("enqueue", "x", "--args", arg, "--database-url", url)
    one_line_error(proc, fragment)
    assert proc.returncode == 1
    assert rows(url) == 0
