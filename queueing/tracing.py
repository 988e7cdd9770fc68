"""OpenTelemetry tracing, when the ``otel`` extra is installed; nothing at all otherwise.

- Enqueue: inside an active span, each job carries that span's W3C trace context
  (``traceparent``, ``tracestate``). The client puts it in the job's args under the
  reserved key ``TRACE_KEY``; the database moves it to the ``trace_context`` column as
  the row is written (migration 0007), so the handler's arguments never see it.
- Worker: each attempt runs in a span ``process <task>`` (kind CONSUMER), a child of the
  enqueuer's span and linked to it, with the messaging semantic conventions'
  attributes, the attempt number and the outcome; a handler's exception is recorded on
  it.

Without OpenTelemetry installed, ``ENABLED`` is False, nothing here imports it and every
function returns at once. With it installed but no tracer provider set, the worker makes
no span (``tracing()``), and enqueue sends no context (no span is valid).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from queueing.errors import InvalidPayload

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from queueing.worker.outcome import Claimed, Outcome

#: find_spec looks for the package without importing it.
ENABLED = importlib.util.find_spec("opentelemetry") is not None
#: The args key that carries the trace context to the database (which removes it).
TRACE_KEY = "_queueing_trace"
#: The instrumentation scope of our spans.
TRACER_NAME = "queueing"


def current_context() -> dict[str, str] | None:
    """The active span's W3C trace context (``traceparent``, ``tracestate``), or None when
    no span is active; read once per enqueued batch."""
    if not ENABLED:
        return None
    from opentelemetry import trace

    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator().inject(carrier)
    return carrier


def with_trace_context(
    args: Mapping[str, Any], context: dict[str, str] | None
) -> Mapping[str, Any]:
    """``args``, plus ``context`` (``current_context()``) under ``TRACE_KEY`` if there is
    one. Raises InvalidPayload for args that hold ``TRACE_KEY`` themselves: the database
    would take it for a trace context and remove it."""
    if TRACE_KEY in args:
        raise InvalidPayload(f"{TRACE_KEY!r} is reserved for queueing's trace context")
    return args if context is None else {**args, TRACE_KEY: context}


class _ProviderSet:
    """Whether a tracer provider is set, asked of the API at most once a second: while
    none is set, ``get_tracer_provider()`` reads the environment on every call (~3 µs on
    the loaded bench machine), too much to pay per job for nothing."""

    RECHECK_SECONDS = 1.0

    def __init__(self) -> None:
        self._answer = False
        self._asked_at = -float("inf")

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._asked_at >= self.RECHECK_SECONDS:
            from opentelemetry import trace

            unset = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
            self._answer = not isinstance(trace.get_tracer_provider(), unset)
            self._asked_at = now
        return self._answer


_provider_set = _ProviderSet()


def tracing() -> bool:
    """Whether spans are recorded: OpenTelemetry is installed and a tracer provider is
    set (within the last second). Without one, the API's no-op span per attempt cost
    ~27 µs a job for nothing (on the loaded bench machine, where a no-op job takes
    ~700 µs to drain): the worker asks this first and then makes no span at all."""
    return ENABLED and _provider_set()


@contextlib.contextmanager
def attempt_span(job: Claimed) -> Iterator[Span]:
    """The current span for one attempt of ``job`` (call only when ``tracing()``)."""
    from opentelemetry import trace

    parent = _propagator().extract(job.trace_context or {})
    enqueued = trace.get_current_span(parent).get_span_context()
    links = [trace.Link(enqueued)] if enqueued.is_valid else []
    with _tracer().start_as_current_span(
        f"process {job.task_name}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": "queueing",
            "messaging.destination.name": job.queue_name,
            "messaging.operation": "process",
            "messaging.operation.type": "process",
            "messaging.message.id": str(job.id),
            "queueing.task": job.task_name,
            "queueing.attempt": job.attempts,
            "queueing.max_attempts": job.max_attempts,
        },
        # execute() turns exceptions into outcomes; record_exception records them.
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


@functools.cache
def _tracer() -> Tracer:
    """Our tracer, made once: it follows the global provider, even one set later."""
    from opentelemetry import trace

    return trace.get_tracer(TRACER_NAME)


@functools.cache
def _propagator() -> TraceContextTextMapPropagator:
    """W3C Trace Context explicitly, whatever global propagator the app configured: the
    enqueuer writes and the worker reads the same format."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


def record_outcome(span: Span, outcome: Outcome) -> None:
    """Mark the attempt's span with how it ended (failures as errors)."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("queueing.outcome", outcome.kind.value)
    if outcome.error_type and outcome.kind.value in ("failed", "retry"):
        span.set_status(Status(StatusCode.ERROR, outcome.error_type))


def record_exception(exc: BaseException) -> None:
    """Record a handler's exception on the current span (the attempt's)."""
    if not ENABLED:
        return
    from opentelemetry import trace

    trace.get_current_span().record_exception(exc)


def log_ids() -> dict[str, str]:
    """The current span's trace_id and span_id, for a log line ({} when none is active)."""
    if not ENABLED:
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
