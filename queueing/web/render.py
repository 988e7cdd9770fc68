"""Pages: the Jinja2 environment (autoescaping everything) and the helpers templates use.

Job arguments, results, errors and progress details are user data: they reach a page
only through Jinja's autoescaping (never ``|safe``), as text.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from queueing.web import charts, csrf
from queueing.web.runtime import web

HERE = Path(__file__).resolve().parent
SECURITY_HEADERS = {
    # Scripts and styles come from the app's own static files only: even a bug that
    # let markup through could not run a script.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pretty_json=pretty_json, when=when, age=age)
    env.globals.update(
        throughput_bars=charts.throughput_bars,
        chart_width=charts.chart_width,
        chart_height=charts.CHART_HEIGHT,
        timeline_width=charts.TIMELINE_WIDTH,
    )
    return Jinja2Templates(env=env)


def pretty_json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def when(moment: dt.datetime | None) -> str:
    """A time as the pages show it: UTC, to the second."""
    if moment is None:
        return "—"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def age(seconds: float | None) -> str:
    """A duration, short: 42s, 7m 3s, 2h 5m, 3d 4h."""
    if seconds is None:
        return "—"
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    """The template ``name`` as a response, with what every page needs."""
    token, new = csrf.token(request)
    state = web(request)
    response = _templates_of(request).TemplateResponse(
        request,
        name,
        {
            **context,
            "csrf": token,
            "read_only": state.read_only,
            "root": request.scope.get("root_path", ""),
        },
        status_code=status,
        headers=SECURITY_HEADERS,
    )
    if new:
        csrf.set_cookie(response, request, token)
    return response


def _templates_of(request: Request) -> Jinja2Templates:
    found: Jinja2Templates = request.app.state.templates
    return found
