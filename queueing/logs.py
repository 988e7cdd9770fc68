"""Structured logs: one JSON object per line, one line per job transition.

Job arguments and results never appear in these lines (they may hold personal data):
job ids, task names, queues, attempts, durations and error types do, and the trace_id
and span_id of the OpenTelemetry span active when the line was written, if any.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

from queueing import tracing

logger = logging.getLogger("queueing")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        # The active span's ids, so a log line can be found from its trace and back.
        line.update(tracing.log_ids())
        if record.exc_info and record.levelno >= logging.ERROR:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: str = "INFO", stream: Any = None) -> None:
    """Send queueing's logs, as JSON lines, to ``stream`` (default stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with its fields (cheap when the level is disabled)."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})
