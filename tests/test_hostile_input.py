"""Hostile or broken input gets a clear error and changes nothing.

Every refusal is checked twice: the error (a typed ``QueueingError`` for library users;
one line on stderr, a non-zero exit and no traceback for CLI users, both in-process
through typer's CliRunner and in a real ``python -m queueing`` process), and the tables
themselves (``procrastinate_jobs`` and ``queueing_attempts`` hold no row afterwards).
Limits are those of ``queueing.limits`` (payload 256 KiB as UTF-8 JSON, nesting 32
levels, ids and keys 256 characters) and ``queueing.queue.QUEUE_NAME``.

What is accepted must come back unchanged: emoji, right-to-left text and other exotic
code points in arguments, results, tenant and user ids and dedupe keys, through a real
worker; values at each limit exactly.

Logs: a worker's INFO log names job ids, task names, queues, attempts, durations and
error *types*, never an argument, a result or an error message. The stored error of a
failed job (what ``queueing jobs show`` prints to whoever may read the job) keeps the
handler's exception message, arguments and all.

Some of these cases are also tested, one by one, in test_library.py
(``test_hostile_input_is_refused_and_writes_nothing``, ``test_unknown_task_*``,
``test_priority_out_of_range_*``, ``test_emoji_and_right_to_left_text_round_trip``),
test_cli.py (``test_error_*``), test_invariants.py (progress 101) and
test_worker_process.py (no payload in the logs); this file is the complete table.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from queueing import InvalidProgress, limits
from queueing.cli import app
from queueing.context import JobContext
from queueing.errors import InvalidPayload, QueueingError, UnknownTask
from queueing.models import JobStatus
from queueing.queue import QUEUE_NAME, JobRequest, Queue
from queueing.testing import drain
from tests.apps import tasks_app
from tests.helpers import APP, NO_DATABASE_ENV, run_cli, worker_process

MARK = "SECRET-" + uuid.uuid4().hex[:8]
"""Put into refused values: an error message must name the problem, not echo the value."""
LIMIT = limits.MAX_PAYLOAD_BYTES
EXOTIC = (
    "🎉 مرحبا بالعالم — שלום 👩🏽‍💻 \u202eRLO\u202c \u200fRLM ﷽ e\u0301 Ω \ufeff"
    " \u2028\u2029 \x01\x1f\x7f \uffff \U0010fffd"
)
"""Emoji (a ZWJ sequence with a skin tone), Arabic and Hebrew, bidi overrides and marks,
a combining accent, a BOM, line/paragraph separators, control characters, and
noncharacters / the last plane: all valid text, all must round-trip as is."""


def nested(levels: int) -> dict[str, Any]:
    """Arguments nesting exactly ``levels`` deep (the arguments object itself is level 1)."""
    value: Any = 0
    for _ in range(levels - 1):
        value = [value]
    return {"d": value}


def self_referential() -> dict[str, Any]:
    loop: list[Any] = []
    loop.append(loop)
    return {"loop": loop}


def rows_written(url: str) -> tuple[int, int]:
    """(jobs, attempts) in the tables themselves, not through the library."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM procrastinate_jobs),"
            " (SELECT count(*) FROM queueing_attempts)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def stored_row(url: str, job_id: int) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(
            "SELECT args, result, tenant_id, user_id, dedupe_key, queue_name, priority,"
            " task_name, progress, progress_detail FROM procrastinate_jobs WHERE id = %s",
            [job_id],
        )
        row = cur.fetchone()
        assert row is not None and cur.description is not None
        return dict(zip([c.name for c in cur.description], row, strict=True))


# --- 1. the library: every refusal, through every way of enqueueing -------------------


@dataclass(frozen=True)
class Refused:
    task: str = "some.task"
    args: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    error: type[Exception] | tuple[type[Exception], ...] = InvalidPayload
    match: str = "."
    """A regex that the error message must contain (every case sets one)."""
    registry: bool = False
    """Declare a task first: the queue then knows its registry."""


REFUSED = [
    # invalid JSON arguments
    pytest.param(Refused(args=[1, 2], match="must be a JSON object"), id="args-a-list"),
    pytest.param(Refused(args="text", match="must be a JSON object"), id="args-a-string"),
    pytest.param(Refused(args={"n": float("nan")}, match="not JSON"), id="nan"),
    pytest.param(Refused(args={"n": float("inf")}, match="not JSON"), id="infinity"),
    pytest.param(Refused(args={"n": [float("-inf")]}, match="not JSON"), id="minus-infinity"),
    pytest.param(Refused(args={"b": MARK.encode()}, match="not JSON: a bytes"), id="bytes"),
    pytest.param(Refused(args={"s": {MARK}}, match="not JSON: a set"), id="set"),
    pytest.param(Refused(args={"o": object()}, match="not JSON: a object"), id="object"),
    pytest.param(Refused(args={1: MARK}, match="keys must be strings"), id="int-key"),
    pytest.param(Refused(args={"a": {None: 1}}, match="keys must be strings"), id="none-key"),
    pytest.param(Refused(args={"a": [{(1, 2): 1}]}, match="keys must be strings"), id="tuple-key"),
    pytest.param(Refused(args={"n": 10**5000}, match="not JSON"), id="int-over-4300-digits"),
    pytest.param(
        Refused("known", {"nope": MARK}, match="Extra inputs", registry=True),
        id="args-not-the-handlers",
    ),
    # size
    pytest.param(Refused(args={"blob": "x" * LIMIT}, match=f"the limit is {LIMIT}"), id="256KB"),
    pytest.param(
        Refused(args={"blob": "é" * (LIMIT // 2)}, match=f"the limit is {LIMIT}"),
        id="256KB-in-bytes-not-characters",
    ),
    pytest.param(
        Refused(args={f"k{i:06}": [1e15] for i in range(LIMIT // 16)}, match="the limit is"),
        id="256KB-of-keys-and-numbers",
    ),
    # nesting
    pytest.param(Refused(args=nested(33), match="deeper than 32"), id="nesting-33"),
    pytest.param(Refused(args=nested(100_000), match="deeper than 32"), id="nesting-100000"),
    pytest.param(Refused(args=self_referential(), match="deeper than 32"), id="self-reference"),
    # NUL
    pytest.param(Refused(args={"s": MARK + "\x00"}, match="NUL"), id="nul-in-value"),
    pytest.param(Refused(args={"a": [[{"b": "\x00"}]]}, match="NUL"), id="nul-nested"),
    pytest.param(Refused(args={MARK + "\x00": 1}, match="NUL"), id="nul-in-key"),
    pytest.param(Refused(args={"a": {"\x00": 1}}, match="NUL"), id="nul-in-nested-key"),
    pytest.param(
        Refused(kwargs={"tenant_id": MARK + "\x00"}, match="tenant_id contains a NUL"),
        id="nul-in-tenant",
    ),
    pytest.param(
        Refused(kwargs={"user_id": "\x00"}, match="user_id contains a NUL"), id="nul-in-user"
    ),
    pytest.param(
        Refused(kwargs={"dedupe_key": "k\x00"}, match="dedupe_key contains a NUL"),
        id="nul-in-dedupe-key",
    ),
    pytest.param(Refused(kwargs={"queue": "q\x00"}, match="invalid queue name"), id="nul-in-queue"),
    pytest.param(
        Refused("known\x00", error=UnknownTask, match="unknown task", registry=True),
        id="nul-in-task-name-registry-known",
    ),
    pytest.param(
        Refused("task\x00name", match="task name contains a NUL"),
        id="nul-in-task-name-no-registry",
    ),
    # lone surrogates (valid Python str, not text: UTF-8 cannot encode them)
    pytest.param(Refused(args={"s": "\ud800"}, match="lone surrogate"), id="surrogate-value"),
    pytest.param(Refused(args={"\udfff": 1}, match="U\\+DFFF"), id="surrogate-key"),
    pytest.param(
        Refused(kwargs={"tenant_id": "\udcff"}, match="tenant_id: a lone surrogate"),
        id="surrogate-tenant",
    ),
    pytest.param(
        Refused(kwargs={"user_id": "a\ud83c"}, match="user_id: a lone surrogate"),
        id="surrogate-user",
    ),
    pytest.param(
        Refused(kwargs={"dedupe_key": "\ude00"}, match="dedupe_key: a lone surrogate"),
        id="surrogate-dedupe-key",
    ),
    # unknown task
    pytest.param(
        Refused("nope", error=UnknownTask, match="unknown task 'nope'", registry=True),
        id="unknown-task-registry-known",
    ),
    pytest.param(Refused("", error=UnknownTask, match="task name"), id="empty-task-name"),
    pytest.param(
        Refused("t" * 129, match="task name must be 1 to 128"),
        id="task-name-over-128-no-registry",
    ),
    # queue names: they become LISTEN channel names
    *[
        pytest.param(Refused(kwargs={"queue": name}, match="invalid queue name"), id=f"queue-{i}")
        for i, name in enumerate(
            [
                "a'b",
                'a"b',
                "a;b",
                "x'; DROP TABLE procrastinate_jobs; --",
                'q" ; NOTIFY "x',
                "q" * 41,
                "",
                "a b",
                "a#b",
                "café",
                "a\nb",
                "default\n",  # "$" in a regex matches before a trailing newline
                "\u202eeman",
            ]
        )
    ],
    # priority
    pytest.param(Refused(kwargs={"priority": 2**31}, match="priority must be"), id="priority-max"),
    pytest.param(
        Refused(kwargs={"priority": -(2**31) - 1}, match="priority must be"), id="priority-min"
    ),
    pytest.param(
        Refused(kwargs={"priority": 10**100}, match="priority must be"), id="priority-huge"
    ),
    pytest.param(
        Refused(kwargs={"priority": 1.5}, match="priority must be an integer"), id="priority-float"
    ),
    pytest.param(
        Refused(kwargs={"priority": True}, match="priority must be an integer"), id="priority-bool"
    ),
    # ids and keys
    *[
        pytest.param(
            Refused(kwargs={what: value}, match=f"{what} must be 1 to 256 characters"),
            id=f"{what}-{label}",
        )
        for what in ("tenant_id", "user_id", "dedupe_key")
        for label, value in (
            ("257", MARK * 20 + "x" * 257),
            ("empty", ""),
            ("emoji-257", "🎉" * 257),
        )
    ],
    pytest.param(
        Refused(kwargs={"tenant_id": 42}, match="tenant_id must be a string"), id="tenant-not-str"
    ),
]


def _declare(queue: Queue) -> None:
    @queue.task(name="known")
    def known(text: str = "") -> str:
        return text


def _enqueue(queue: Queue, api: str, case: Refused) -> None:
    good = JobRequest("known" if case.registry else "fine.task", {})
    bad = JobRequest(case.task, case.args, **case.kwargs)
    if api == "enqueue":
        queue.enqueue(case.task, case.args, **case.kwargs)
    elif api == "enqueue_many":  # all or nothing: the good job is not written either
        queue.enqueue_many([good, bad])
    else:

        async def run() -> None:
            try:
                await queue.aio.enqueue(case.task, case.args, **case.kwargs)
            finally:
                await queue.aio.close()

        asyncio.run(run())


@pytest.mark.parametrize("api", ["enqueue", "enqueue_many", "aio.enqueue"])
@pytest.mark.parametrize("case", REFUSED)
def test_refused_with_a_typed_error_and_nothing_written(
    queue: Queue, queueing_database_url: str, case: Refused, api: str
) -> None:
    if case.registry:
        _declare(queue)
    with pytest.raises(case.error, match=case.match) as refused:
        _enqueue(queue, api, case)
    assert rows_written(queueing_database_url) == (0, 0)
    message = str(refused.value)
    assert MARK not in message, "the error echoes the refused value"
    if isinstance(refused.value, QueueingError):
        assert "\n" not in message  # one line, for a human


@dataclass(frozen=True)
class Accepted:
    task: str = "some.task"
    args: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)


def _exactly_the_limit() -> dict[str, Any]:
    args: dict[str, Any] = {"blob": ""}
    size = len(json.dumps(args, ensure_ascii=False).encode())
    args["blob"] = "é" * ((LIMIT - size) // 2) + "x" * ((LIMIT - size) % 2)
    assert len(json.dumps(args, ensure_ascii=False).encode()) == LIMIT
    return args


ACCEPTED = [
    pytest.param(Accepted(args=_exactly_the_limit()), id="payload-exactly-256KB"),
    pytest.param(Accepted(args=nested(32)), id="nesting-exactly-32"),
    # The false positive fixed in limits.check_payload: a backslash then "u0000" is text.
    pytest.param(
        Accepted(args={"s": "\\u0000", "\\u0000": "C:\\\\u0000", "r": r"\\\u0000"}),
        id="literal-backslash-u0000",
    ),
    pytest.param(
        Accepted(args={"big": 10**100, "neg": -(2**64) - 1, "max": 2**63, "t": True}),
        id="big-integers",
    ),
    pytest.param(Accepted(args={EXOTIC: [EXOTIC, {"k": EXOTIC}]}), id="exotic-text"),
    pytest.param(
        Accepted(kwargs={"tenant_id": "t" * 256, "user_id": "🎉" * 256, "dedupe_key": "ש" * 256}),
        id="ids-exactly-256-characters",
    ),
    pytest.param(
        Accepted(kwargs={"tenant_id": EXOTIC, "user_id": EXOTIC, "dedupe_key": EXOTIC}),
        id="exotic-ids",
    ),
    pytest.param(Accepted(kwargs={"queue": "q" * 40}), id="queue-name-40"),
    pytest.param(Accepted(kwargs={"queue": "A-z_0.9"}), id="queue-name-every-class"),
    pytest.param(Accepted(kwargs={"priority": 2**31 - 1}), id="priority-max"),
    pytest.param(Accepted(kwargs={"priority": -(2**31)}), id="priority-min"),
    pytest.param(Accepted("t" * 128), id="task-name-128"),
    pytest.param(Accepted(EXOTIC), id="exotic-task-name"),
]


@pytest.mark.parametrize("case", ACCEPTED)
def test_accepted_at_the_limit_and_stored_unchanged(
    queue: Queue, queueing_database_url: str, case: Accepted
) -> None:
    job = queue.enqueue(case.task, case.args, **case.kwargs)
    assert rows_written(queueing_database_url) == (1, 0)
    row = stored_row(queueing_database_url, job.id)
    assert row["args"] == case.args
    assert job.args == case.args
    assert row["task_name"] == case.task
    for key, column in [
        ("tenant_id", "tenant_id"),
        ("user_id", "user_id"),
        ("dedupe_key", "dedupe_key"),
        ("queue", "queue_name"),
        ("priority", "priority"),
    ]:
        if key in case.kwargs:
            assert row[column] == case.kwargs[key]


@pytest.mark.parametrize("name", ["q" * 40, "A-z_0.9", "default"])
def test_an_accepted_queue_name_fits_a_listen_channel(name: str) -> None:
    """Queue names are checked against ``QUEUE_NAME`` (documented in queueing.queue): at
    most 40 characters of a narrow ASCII alphabet, so that procrastinate's channel name
    ``procrastinate_queue_v1#<queue>`` stays within PostgreSQL's 63 bytes and needs no
    quoting."""
    assert QUEUE_NAME.match(name)
    assert len(f"procrastinate_queue_v1#{name}".encode()) <= 63


# --- 2. the CLI: the same refusals as a user types them --------------------------------


@dataclass(frozen=True)
class CliRefused:
    argv: Sequence[str | bytes]
    fragment: str | None
    """In the one stderr line (None: the contract only, see PENDING)."""
    error: type[BaseException] | tuple[type[BaseException], ...] = InvalidPayload
    """What CliRunner sees raised."""
    subprocess_only: bool = False
    in_process_only: bool = False


def _deep_args(levels: int) -> str:
    return '{"d": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"


# --args of LIMIT bytes cannot be passed in one argv entry (Linux caps one at 128 KiB),
# but JSON grows when re-encoded: 1e15 (4 bytes) is 1000000000000000.0 (18 bytes).
EXPANDING = '{"n": [' + ",".join(["1e15"] * 20_000) + "]}"

CLI_REFUSED = [
    pytest.param(
        CliRefused(["x", "--args", "{not json"], "--args is not valid JSON"), id="not-json"
    ),
    pytest.param(CliRefused(["x", "--args", ""], "--args is not valid JSON"), id="empty-args"),
    pytest.param(
        CliRefused(["x", "--args", '{"a": 1,}'], "--args is not valid JSON"), id="trailing-comma"
    ),
    pytest.param(
        CliRefused(["x", "--args", "{'a': 1}"], "--args is not valid JSON"), id="single-quotes"
    ),
    pytest.param(CliRefused(["x", "--args", "[1]"], "--args must be a JSON object"), id="array"),
    pytest.param(CliRefused(["x", "--args", '{"n": NaN}'], "not JSON"), id="nan"),
    pytest.param(CliRefused(["x", "--args", '{"n": [-Infinity]}'], "not JSON"), id="infinity"),
    pytest.param(CliRefused(["x", "--args", '{"s": "a\\u0000b"}'], "NUL"), id="nul-escape"),
    pytest.param(CliRefused(["x", "--args", '{"\\u0000": 1}'], "NUL"), id="nul-in-key"),
    pytest.param(
        CliRefused(["x", "--args", '{"s": "\\ud800"}'], "lone surrogate code point (U+D800)"),
        id="surrogate-escape",
    ),
    pytest.param(
        CliRefused(
            [b"x", b"--args", b'{"s": "\xff"}'],
            "lone surrogate code point (U+DCFF)",
            subprocess_only=True,
        ),
        id="invalid-utf8-in-args",
    ),
    pytest.param(CliRefused(["x", "--args", _deep_args(33)], "deeper than 32"), id="nesting-33"),
    pytest.param(CliRefused(["x", "--args", _deep_args(500)], "deeper than 32"), id="nesting-500"),
    pytest.param(
        # json.loads itself gives up (RecursionError) before our walk can count.
        CliRefused(["x", "--args", "[" * 100_000], "--args nests deeper than 32"),
        id="nesting-100000",
    ),
    pytest.param(CliRefused(["x", "--args", EXPANDING], f"the limit is {LIMIT}"), id="over-256KB"),
    pytest.param(
        CliRefused(
            ["x", "--args", json.dumps({"b": "x" * LIMIT})],
            f"the limit is {LIMIT}",
            in_process_only=True,
        ),
        id="over-256KB-in-process",
    ),
    pytest.param(
        CliRefused(["x", "--tenant", "t" * 257], "tenant_id must be 1 to 256"), id="tenant-257"
    ),
    pytest.param(
        CliRefused(["x", "--tenant", ""], "tenant_id must be 1 to 256"), id="tenant-empty"
    ),
    pytest.param(CliRefused(["x", "--user", "u" * 257], "user_id must be 1 to 256"), id="user-257"),
    pytest.param(
        CliRefused(["x", "--dedupe-key", "k" * 257], "dedupe_key must be 1 to 256"),
        id="dedupe-key-257",
    ),
    pytest.param(
        CliRefused(
            [b"x", b"--tenant", b"acme\xff"],
            "tenant_id: a lone surrogate code point (U+DCFF)",
            subprocess_only=True,
        ),
        id="invalid-utf8-tenant",
    ),
    pytest.param(
        CliRefused(
            ["x", "--user", "\udcff"],
            "user_id: a lone surrogate code point (U+DCFF)",
            in_process_only=True,
        ),
        id="surrogate-user-in-process",
    ),
    pytest.param(
        CliRefused(
            [b"x", b"--dedupe-key", b"\xc3"],
            "dedupe_key: a lone surrogate code point (U+DCC3)",
            subprocess_only=True,
        ),
        id="invalid-utf8-dedupe-key",
    ),
    *[
        pytest.param(CliRefused(["x", "--queue", name], "invalid queue name"), id=f"queue-{i}")
        for i, name in enumerate(
            ["a'b", 'a"b', "a;b", "x'; DROP TABLE procrastinate_jobs; --", "q" * 41, "café"]
        )
    ],
    pytest.param(
        CliRefused(["x", "--priority", str(2**31)], "priority must be between"), id="priority-max"
    ),
    pytest.param(
        CliRefused(["x", "--priority", str(-(2**31) - 1)], "priority must be between"),
        id="priority-min",
    ),
    pytest.param(
        CliRefused(["nope", "--app", APP], "unknown task 'nope'", UnknownTask),
        id="unknown-task-with-app",
    ),
    pytest.param(
        CliRefused(
            ["add", "--args", '{"a": "x", "b": 1}', "--app", APP],
            "invalid arguments for task 'add'",
        ),
        id="bad-args-with-app",
    ),
    pytest.param(
        CliRefused(["t" * 129], "task name must be 1 to 128"), id="task-name-over-128-no-app"
    ),
    pytest.param(
        CliRefused([b"bad\xfftask"], "task name: a lone surrogate", subprocess_only=True),
        id="invalid-utf8-task-name",
    ),
]


@pytest.mark.parametrize("case", CLI_REFUSED)
def test_cli_refuses_in_one_line_and_writes_nothing(
    queueing_database_url: str, app_queue: Queue, case: CliRefused
) -> None:
    url = queueing_database_url
    if not case.subprocess_only:
        argv = [str(a) for a in case.argv]
        result = CliRunner(env=NO_DATABASE_ENV).invoke(
            app, ["enqueue", *argv, "--database-url", url]
        )
        assert result.exit_code != 0
        assert isinstance(result.exception, case.error), repr(result.exception)
        if case.fragment is not None:
            assert case.fragment in str(result.exception)
        assert rows_written(url) == (0, 0)
    if not case.in_process_only:
        proc = run_cli("enqueue", *case.argv, "--database-url", url)
        assert proc.returncode != 0, (proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("error: "), lines[0]
        if case.fragment is not None:
            assert case.fragment in lines[0], lines[0]
        assert rows_written(url) == (0, 0)


# --- 3. progress ----------------------------------------------------------------------

BAD_PROGRESS = [
    pytest.param(101, None, "between 0 and 100", id="101"),
    pytest.param(-1, None, "between 0 and 100", id="minus-1"),
    pytest.param(10**100, None, "between 0 and 100", id="huge"),
    pytest.param(True, None, "integer", id="bool"),
    pytest.param(50.5, None, "integer", id="float"),
    pytest.param(float("nan"), None, "integer", id="nan"),
    pytest.param("50", None, "integer", id="string"),
    pytest.param(50, {"s": MARK + "\x00"}, "NUL", id="detail-nul"),
    pytest.param(50, {"s": "\ud800"}, "lone surrogate", id="detail-surrogate"),
    pytest.param(50, {"n": float("nan")}, "not JSON", id="detail-nan"),
    pytest.param(50, {1: "one"}, "keys must be strings", id="detail-int-key"),
    pytest.param(50, {"b": b"x"}, "not JSON", id="detail-bytes"),
    pytest.param(50, nested(40), "deeper than 32", id="detail-nesting-40"),
    pytest.param(50, ["x" * LIMIT], f"the limit is {LIMIT}", id="detail-over-256KB"),
]


@pytest.mark.parametrize("mode", ["async", "sync"])
@pytest.mark.parametrize(("percent", "detail", "match"), BAD_PROGRESS)
def test_progress_out_of_range_is_refused_and_changes_nothing(
    queue: Queue, queueing_database_url: str, mode: str, percent: Any, detail: Any, match: str
) -> None:
    caught: list[Exception] = []
    stored: list[dict[str, Any]] = []  # the job's row right after the refused report

    if mode == "async":

        @queue.task(name="reporter")
        async def reporter(ctx: JobContext) -> str:
            await ctx.set_progress(10, {"stage": EXOTIC})
            try:
                await ctx.set_progress(percent, detail)
            except Exception as exc:
                caught.append(exc)
            stored.append(stored_row(queueing_database_url, ctx.job_id))
            return "finished"

    else:

        @queue.task(name="reporter")
        def sync_reporter(ctx: JobContext) -> str:
            ctx.set_progress_sync(10, {"stage": EXOTIC})
            try:
                ctx.set_progress_sync(percent, detail)
            except Exception as exc:
                caught.append(exc)
            stored.append(stored_row(queueing_database_url, ctx.job_id))
            return "finished"

    job = queue.enqueue("reporter")
    drain(queue)
    [error] = caught
    assert isinstance(error, InvalidProgress)
    assert isinstance(error, ValueError)  # handlers that catch ValueError still do
    assert isinstance(error, QueueingError)
    assert match in str(error)
    assert MARK not in str(error)
    done = queue.get_job(job.id)
    assert (done.status, done.result) == (JobStatus.COMPLETED, "finished")
    [row] = stored
    assert (row["progress"], row["progress_detail"]) == (10, {"stage": EXOTIC})  # unchanged


def test_an_uncaught_progress_error_fails_the_job_with_its_type(queue: Queue) -> None:
    @queue.task(name="overreporter", retry=1)
    async def overreporter(ctx: JobContext) -> None:
        await ctx.set_progress(150)

    job = queue.enqueue(overreporter)
    drain(queue)
    failed = queue.get_job(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.progress == 0
    assert failed.error is not None
    assert (failed.error.type, failed.error.message) == (
        "InvalidProgress",
        "progress must be between 0 and 100, got 150",
    )


def test_an_exception_quoting_unstorable_text_still_fails_the_job(queue: Queue) -> None:
    """A handler's error message may quote hostile input: a NUL or a lone surrogate
    cannot be stored in jsonb, and the job must still end (not stay active forever)."""

    @queue.task(name="quoter", retry=1)
    def quoter() -> None:
        raise ValueError("bad input: a\x00b \ud800")

    job = queue.enqueue(quoter)
    drain(queue)
    failed = queue.get_job(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.message == "bad input: a\\x00b \\ud800"


@pytest.mark.parametrize("value", [101, -1, 32767])
def test_the_database_refuses_progress_out_of_range_too(
    queue: Queue, queueing_database_url: str, value: int
) -> None:
    """The CHECK behind the library's check: a direct write cannot store it either."""
    job = queue.enqueue("some.task")
    with (
        psycopg.connect(queueing_database_url, autocommit=True) as conn,
        pytest.raises(psycopg.errors.CheckViolation),
    ):
        conn.execute("UPDATE procrastinate_jobs SET progress = %s WHERE id = %s", [value, job.id])
    assert stored_row(queueing_database_url, job.id)["progress"] == 0


# --- 4. through a real worker: round trips, unknown tasks, and what the log holds -------


def test_exotic_text_round_trips_through_a_real_worker_and_never_reaches_the_log(
    queueing_database_url: str, queue: Queue
) -> None:
    url = queueing_database_url
    name = f"{EXOTIC} {MARK}"
    tenant, user, key = f"מרחב {EXOTIC}", f"用户🙂 {EXOTIC}", f"مفتاح🔑 {EXOTIC}"
    # Task objects: the jobs get the app's validation and retry policy (fail: 1 attempt).
    job = queue.enqueue(
        tasks_app.greet,
        tasks_app.Greeting(name=name, times=2),
        tenant_id=tenant,
        user_id=user,
        dedupe_key=key,
    )
    # The key is compared exactly: the same exotic key finds the same (pending) job.
    again = queue.enqueue(
        tasks_app.greet, {"payload": {"name": "other"}}, tenant_id=tenant, dedupe_key=key
    )
    assert (again.id, again.created) == (job.id, False)
    failing = queue.enqueue(tasks_app.fail, {"message": name}, tenant_id=tenant, user_id=user)
    # A producer that knows no tasks may enqueue any name; the worker says what is wrong.
    unknown = queue.enqueue("not.declared.αβγ", {"text": name})

    with worker_process(url) as worker:
        done = queue.wait_for(job.id, timeout=20)
        failed = queue.wait_for(failing.id, timeout=20)
        unrun = queue.wait_for(unknown.id, timeout=20)
        assert worker.stop() == 0

    # Everything came back exactly as it went in...
    assert done.status is JobStatus.COMPLETED
    assert done.args == {"payload": {"name": name, "times": 2}}
    assert done.result == f"hello {name} hello {name}"
    assert (done.tenant_id, done.user_id) == (tenant, user)
    row = stored_row(url, job.id)
    assert row["args"] == {"payload": {"name": name, "times": 2}}
    assert row["result"] == f"hello {name} hello {name}"
    assert (row["tenant_id"], row["user_id"], row["dedupe_key"]) == (tenant, user, key)

    # ...the stored error keeps the handler's message (for whoever may read the job)...
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert (failed.error.type, failed.error.message) == ("ValueError", name)
    # ...an unknown task is a clear error at the worker, not a crash...
    assert unrun.status is JobStatus.FAILED
    assert unrun.error is not None and unrun.error.type == "UnknownTask"
    assert "not.declared.αβγ" in unrun.error.message
    assert worker.events("job.failed")  # the worker went on

    # ...and the log holds ids, task names and error types, never a value.
    logged = json.dumps(worker.lines, ensure_ascii=False)
    for value in (MARK, "مرحبا", "שלום", "🎉", "מרחב", "用户", "مفتاح"):
        assert value not in logged, value
    assert MARK not in worker.stderr_text
    by_job = {line.get("job_id"): line for line in worker.events("job.failed")}
    assert by_job[failing.id]["error"] == "ValueError"
    assert by_job[unknown.id]["error"] == "UnknownTask"
    assert by_job[unknown.id]["task"] == "not.declared.αβγ"
    for line in worker.lines:
        assert line["level"] in ("info", "warning"), line
