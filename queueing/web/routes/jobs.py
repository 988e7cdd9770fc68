"""``/jobs`` (filtered, paged) and ``/jobs/{id}`` (one job, its attempts)."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response

from queueing import ops
from queueing.models import JobStatus
from queueing.web import charts, data
from queueing.web.auth import operator_only
from queueing.web.params import job_id, job_query, only
from queueing.web.render import render
from queueing.web.routes.overview import is_fragment
from queueing.web.runtime import web


@operator_only
async def jobs(request: Request) -> Response:
    query = job_query(request.query_params)
    page = await web(request).reader.run(data.jobs_page(query))
    template = "_jobs_table.html" if is_fragment(request) else "jobs.html"
    return render(
        request,
        template,
        {"query": query, "result": page, "statuses": list(JobStatus), "page": "jobs"},
    )


@operator_only
async def job(request: Request) -> Response:
    only(request.query_params, ())
    ident = job_id(request.path_params["job_id"])
    reader = web(request).reader
    record = await reader.run(ops.get_job(ident))
    attempts = await reader.run(ops.attempts(ident))
    template = "_job_live.html" if is_fragment(request) else "job.html"
    timeline = charts.attempt_timeline(record, attempts, dt.datetime.now(dt.UTC))
    context = {"job": record, "attempts": attempts, "timeline": timeline, "page": "jobs"}
    return render(request, template, context)
