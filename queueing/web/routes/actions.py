"""What an operator may do: cancel, retry, run now, one job or a filtered set; pause
and resume a queue.

Every action is a POST from the dashboard's own page (``csrf.checked_form``), refused in
read-only mode, and goes through the library's operations (``Queue.aio``) as the
signed-in operator (``Actor.operator(name)``, the system's rights): a cancel records
``cancelled_by = 'operator:<name>'``, and the name goes to the ``dashboard.action`` log
line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from queueing import logs
from queueing.errors import InvalidTransition, JobNotFound, NotAllowed
from queueing.models import Actor, Job
from queueing.queue import AsyncQueue
from queueing.queues import QueueInfo
from queueing.web import data
from queueing.web.auth import operator_only
from queueing.web.csrf import FIELD, Forbidden, checked_form
from queueing.web.params import BadRequest, job_id, job_query
from queueing.web.render import render
from queueing.web.runtime import web

Action = Callable[[AsyncQueue, int, Actor], Awaitable[Job]]
ACTIONS: dict[str, Action] = {
    "cancel": lambda q, ident, actor: q.cancel(ident, actor=actor),
    "retry": lambda q, ident, actor: q.retry(ident, actor=actor),
    "run-now": lambda q, ident, actor: q.run_now(ident),  # (records no actor)
}
QUEUE_ACTIONS: dict[str, Callable[[AsyncQueue, str], Awaitable[QueueInfo]]] = {
    "pause": lambda q, name: q.pause_queue(name),
    "resume": lambda q, name: q.resume_queue(name),
}
BULK_ACTIONS = ("cancel", "retry")
BULK_MAX = 1000
"""At most this many jobs per bulk action: a larger set is refused (narrow the filters)."""


def _writable(request: Request) -> None:
    if web(request).read_only:
        raise Forbidden("the dashboard is read-only: actions are disabled")


def _action(request: Request, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise BadRequest(f"action must be one of {', '.join(allowed)}")
    return value


@operator_only
async def act(request: Request) -> Response:
    """POST /jobs/{id}/{action}: then back to the job's page."""
    _writable(request)
    await checked_form(request)
    action = _action(request, request.path_params["action"], tuple(ACTIONS))
    ident = job_id(request.path_params["job_id"])
    job = await ACTIONS[action](web(request).queue.aio, ident, request.state.operator)
    logs.event(
        "dashboard.action",
        operator=request.state.operator.name,
        action=action,
        job_id=ident,
        status=str(job.status),
    )
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/jobs/{ident}", status_code=303)


@operator_only
async def act_on_queue(request: Request) -> Response:
    """POST /queues/{name}/{pause|resume}: then back to the overview. The library checks
    the name (400) and that the queue is known (404)."""
    _writable(request)
    await checked_form(request)
    action = _action(request, request.path_params["action"], tuple(QUEUE_ACTIONS))
    name = request.path_params["queue"]
    info = await QUEUE_ACTIONS[action](web(request).queue.aio, name)
    logs.event(
        "dashboard.action",
        operator=request.state.operator.name,
        action=action,
        queue=info.name,
        paused=info.paused,
    )
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/", status_code=303)


@operator_only
async def bulk_confirm(request: Request) -> Response:
    """GET /jobs/bulk?action=...&<filters>: how many jobs the action would touch."""
    _writable(request)
    action = _action(request, request.query_params.get("action"), BULK_ACTIONS)
    query = job_query(request.query_params, extra=("action",))
    if query.before_id is not None:
        raise BadRequest("a bulk action applies to every page: drop before_id")
    page = await web(request).reader.run(data.jobs_page(replace(query, limit=1)))
    context = {"action": action, "query": query, "result": page, "bulk_max": BULK_MAX}
    return render(request, "bulk_confirm.html", {**context, "page": "jobs"})


@operator_only
async def bulk_apply(request: Request) -> Response:
    """POST /jobs/bulk: the confirmed action on the jobs counted (none newer)."""
    _writable(request)
    form = await checked_form(request)
    action = _action(request, form.get("action"), BULK_ACTIONS)
    newest = job_id(str(form.get("newest_id", "")), "newest_id")
    filters = [(k, v) for k, v in form.multi_items() if k not in (FIELD, "action", "newest_id")]
    query = job_query(QueryParams([(k, v) for k, v in filters if isinstance(v, str)]))
    state = web(request)
    ids = await state.reader.run(data.matching_ids(query, newest, BULK_MAX + 1))
    if len(ids) > BULK_MAX:
        raise BadRequest(f"over {BULK_MAX} jobs match: narrow the filters")
    done = 0
    for ident in ids:
        try:
            await ACTIONS[action](state.queue.aio, ident, request.state.operator)
            done += 1
        except (InvalidTransition, JobNotFound, NotAllowed):
            pass  # changed since the confirmation (finished, pruned): counted as skipped
    logs.event(
        "dashboard.bulk_action",
        operator=request.state.operator.name,
        action=action,
        matched=len(ids),
        done=done,
    )
    context = {"action": action, "query": query, "done": done, "skipped": len(ids) - done}
    return render(request, "bulk_done.html", {**context, "page": "jobs"})
