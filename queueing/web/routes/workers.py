"""``/workers``: the registered workers and what they run."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from queueing.web import data
from queueing.web.auth import operator_only
from queueing.web.params import only
from queueing.web.render import render
from queueing.web.routes.overview import is_fragment
from queueing.web.runtime import web


@operator_only
async def workers(request: Request) -> Response:
    only(request.query_params, ())
    rows = await web(request).reader.run(data.workers())
    template = "_workers_table.html" if is_fragment(request) else "workers.html"
    return render(request, template, {"workers": rows, "page": "workers"})
