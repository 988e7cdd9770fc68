"""The app of the observability tests (tests/test_metrics.py, tests/test_tracing.py):
``--app tests.apps.observed_app:queue``.

With ``QUEUEING_TEST_SPANS_FILE`` set, the worker process that imports it gets an
OpenTelemetry tracer provider that writes every finished span to that file, one JSON
object a line, as it ends (``SimpleSpanProcessor``): the test reads what the worker
traced from another process.
"""

from __future__ import annotations

import json
import os
import time

from queueing import JobContext, Queue, RetryPolicy

queue = Queue()


@queue.task(name="ok")
async def ok() -> str:
    return "ok"


@queue.task(name="boom", retry=RetryPolicy(max_attempts=1))
async def boom(message: str) -> None:
    raise ValueError(message)


@queue.task(name="flaky", retry=RetryPolicy(max_attempts=2, delay=0))
def flaky(ctx: JobContext) -> int:
    if ctx.attempt < 2:
        raise ConnectionError(f"attempt {ctx.attempt} failed")
    return ctx.attempt


@queue.task(name="block_loop", retry=RetryPolicy(max_attempts=1))
async def block_loop(seconds: float) -> str:
    """The mistake /healthz exists for: a blocking call in an async handler."""
    time.sleep(seconds)  # noqa: ASYNC251  # allowed-sleep: blocks the event loop on purpose
    return "unblocked"


@queue.task(name="hold", retry=RetryPolicy(max_attempts=1))
def hold(ctx: JobContext, seconds: float) -> str:
    """Run until cancelled (or ``seconds`` pass)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not ctx.cancelled:
        time.sleep(0.01)  # allowed-sleep: simulates work, checking for cancellation
    return "stopped" if ctx.cancelled else "done"


def _export_spans_to(path: str) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's life
    exporter = ConsoleSpanExporter(
        out=out, formatter=lambda span: json.dumps(json.loads(span.to_json())) + "\n"
    )
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


if os.environ.get("QUEUEING_TEST_SPANS_FILE"):
    _export_spans_to(os.environ["QUEUEING_TEST_SPANS_FILE"])
