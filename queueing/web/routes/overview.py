"""``/``: every queue at a glance."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from queueing.web import data
from queueing.web.auth import operator_only
from queueing.web.params import only
from queueing.web.render import render
from queueing.web.runtime import web


def is_fragment(request: Request) -> bool:
    """An htmx request (a live refresh) gets the page's changing part only."""
    return request.headers.get("hx-request") == "true"


@operator_only
async def overview(request: Request) -> Response:
    only(request.query_params, ())
    queues = await web(request).reader.run(data.overview())
    template = "_overview_table.html" if is_fragment(request) else "overview.html"
    return render(request, template, {"queues": queues, "page": "overview"})
