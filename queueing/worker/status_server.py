"""The worker's HTTP endpoints: ``/metrics``, ``/healthz`` and ``/readyz`` (and the
``/metrics`` of ``queueing metrics serve``, which has no probes).

A small ``http.server`` in a thread of its own, so a scrape or a probe is answered even
while the event loop is blocked (that is when ``/healthz`` must say so):

- ``/metrics``: the worker's registry in Prometheus's text format;
- ``/healthz`` (liveness): 200 if the event loop answered the watchdog's ping within
  its bound and the last successful heartbeat is younger than ``stall_timeout``, else
  503. A restart is what fixes a loop blocked for good.
- ``/readyz`` (readiness): 200 if the database answers, its schema is the one this
  worker needs and the worker is not draining, else 503. A database outage makes a
  worker unready, not dead: restarting it would not help.

Each answer is one line of text saying why.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

#: A check: (ok, why), called from the server's thread.
Check = Callable[[], tuple[bool, str]]


class StatusServer:
    """Serves one worker's metrics and probes on ``host:port`` (port 0: any free one,
    read back from ``port`` once started)."""

    name = "queueing-status-server"

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, probes: dict[str, Check]
    ) -> None:
        """``probes``: path to check (the worker's ``/healthz`` and ``/readyz``)."""
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(registry)),
        }
        for path, check in probes.items():
            routes[path] = lambda check=check: _probe(check)  # type: ignore[misc]
        self._server = ThreadingHTTPServer((host, port), _handler(routes))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=self.name, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.ident is not None:
            self._server.shutdown()
        self._server.server_close()


def _probe(check: Check) -> tuple[int, str, bytes]:
    try:
        ok, why = check()
    except Exception as exc:  # a probe that cannot decide says "not ok", with the reason
        ok, why = False, f"{type(exc).__name__}: {exc}"
    return (200 if ok else 503), "text/plain; charset=utf-8", f"{why}\n".encode()


def _handler(
    routes: dict[str, Callable[[], tuple[int, str, bytes]]],
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path.split("?", 1)[0])
            status, content_type, body = route() if route else (404, "text/plain", b"not found\n")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # one line per scrape would drown the worker's own log

    return Handler
