"""OpenTelemetry: the trace context travels with the job from enqueue (this process) to
the worker's attempt span (another process), and a failed attempt's span holds the
exception.

This process records its spans with the SDK's in-memory exporter; the worker process
imports ``tests.apps.observed_app``, which writes each of its spans to the file named by
``QUEUEING_TEST_SPANS_FILE`` as the span ends. The test waits on the worker's log line
of the outcome (written after the span ended), never on time.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from queueing import Queue, logs, tracing
from tests.apps import observed_app
from tests.helpers import ROOT, pointed_at, worker_process

APP = "tests.apps.observed_app:queue"

_exporter = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_exporter))
# Spans of this process go to _exporter (this module's tracer, not the global provider:
# another test module may set that one).
tracer = _provider.get_tracer("tests.test_tracing")


@pytest.fixture
def observed(queue: Queue) -> Iterator[Queue]:
    with pointed_at(observed_app.queue, queue.database_url) as app:
        yield app


def _enqueue_in_span(queue: Queue, task: str, args: dict[str, Any]) -> tuple[int, ReadableSpan]:
    """Enqueue inside a span of this process: the job's id and the (ended) span."""
    _exporter.clear()
    with tracer.start_as_current_span("handle request"):
        job = queue.enqueue(task, args)
    (span,) = _exporter.get_finished_spans()
    return job.id, span


def _ids(span: ReadableSpan) -> tuple[str, str, str]:
    """The span's trace id, span id and flags, in hex as W3C writes them."""
    ctx = span.get_span_context()
    assert ctx is not None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", f"{int(ctx.trace_flags):02x}"


def _worker_spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_enqueue_in_a_span_stores_its_trace_context_not_in_args(observed: Queue) -> None:
    job_id, span = _enqueue_in_span(observed, "ok", {})
    with psycopg.connect(observed.database_url) as conn:
        row = conn.execute(
            "SELECT trace_context, args FROM procrastinate_jobs WHERE id = %s", [job_id]
        ).fetchone()
    assert row is not None
    context, args = row
    trace_id, span_id, flags = _ids(span)
    assert context == {"traceparent": f"00-{trace_id}-{span_id}-{flags}"}
    assert tracing.TRACE_KEY not in args
    # Outside a span: nothing is stored.
    plain = observed.enqueue("ok")
    with psycopg.connect(observed.database_url) as conn:
        stored = conn.execute(
            "SELECT trace_context FROM procrastinate_jobs WHERE id = %s", [plain.id]
        ).fetchone()
    assert stored == (None,)


def test_attempt_spans_continue_the_enqueuers_trace_in_the_worker_process(
    observed: Queue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A completed and a failed job enqueued in spans of this process: the worker's
    ``process <task>`` spans are children of those spans and linked to them, with the
    messaging attributes; the failed one holds the exception and an error status."""
    spans_file = tmp_path / "spans.jsonl"
    monkeypatch.setenv("QUEUEING_TEST_SPANS_FILE", str(spans_file))
    with worker_process(observed.database_url, "--app", APP) as worker:
        ok_id, ok_parent = _enqueue_in_span(observed, "ok", {})
        boom_id, boom_parent = _enqueue_in_span(observed, "boom", {"message": "no luck"})
        worker.wait_for_job_log("job.completed", ok_id)
        worker.wait_for_job_log("job.failed", boom_id)
        assert worker.stop() == 0
    spans = {s["attributes"]["messaging.message.id"]: s for s in _worker_spans(spans_file)}

    for job_id, parent, task in ((ok_id, ok_parent, "ok"), (boom_id, boom_parent, "boom")):
        span = spans[str(job_id)]
        trace_id, span_id, _ = _ids(parent)
        assert span["name"] == f"process {task}"
        assert span["kind"] == "SpanKind.CONSUMER"
        assert span["context"]["trace_id"] == f"0x{trace_id}"
        assert span["parent_id"] == f"0x{span_id}"
        assert [link["context"]["span_id"] for link in span["links"]] == [f"0x{span_id}"]
        expected = {
            "messaging.system": "queueing",
            "messaging.destination.name": "default",
            "messaging.operation": "process",
            "messaging.message.id": str(job_id),
            "queueing.attempt": 1,
        }
        assert {k: span["attributes"].get(k) for k in expected} == expected

    assert spans[str(ok_id)]["attributes"]["queueing.outcome"] == "succeeded"
    assert spans[str(ok_id)]["events"] == []
    failed = spans[str(boom_id)]
    assert failed["attributes"]["queueing.outcome"] == "failed"
    assert failed["status"]["status_code"] == "ERROR"
    (event,) = failed["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "ValueError"
    assert event["attributes"]["exception.message"] == "no luck"


def test_log_lines_carry_the_active_spans_ids() -> None:
    _exporter.clear()
    out = io.StringIO()
    logs.configure("info", out)
    try:
        with tracer.start_as_current_span("work") as span:
            logs.event("inside")
        logs.event("outside")
    finally:
        logs.configure("info")
    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    ctx = span.get_span_context()
    assert (inside["trace_id"], inside["span_id"]) == (
        f"{ctx.trace_id:032x}",
        f"{ctx.span_id:016x}",
    )
    assert "trace_id" not in outside and "span_id" not in outside


def test_without_opentelemetry_nothing_imports_it() -> None:
    """Importing queueing, its worker and CLI never imports OpenTelemetry; with it
    absent, tracing is off and enqueue's args are left as they are."""
    code = (
        "import sys\n"
        "import queueing, queueing.worker, queueing.cli, queueing.tracing as t\n"
        "assert not any(m.startswith('opentelemetry') for m in sys.modules), 'imported'\n"
        "sys.modules['opentelemetry'] = None\n"
        "import importlib; importlib.reload(t)\n"
        "assert not t.ENABLED\n"
        "args = {'a': 1}\n"
        "assert t.current_context() is None and t.log_ids() == {} and not t.tracing()\n"
        "assert t.with_trace_context(args, t.current_context()) is args\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
