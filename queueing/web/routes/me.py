"""``/me``: an end user's own jobs, live, read through the row-level-security API.

Every read and cancel runs on the web role's connection in a transaction acting for the
request's actor (``EndUsers.actor``): a user sees their own jobs, a tenant admin their
tenant's, nobody another tenant's; the database enforces it, not this code.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from queueing.errors import InvalidTransition, JobNotFound
from queueing.web import data
from queueing.web.auth import end_user_only
from queueing.web.csrf import checked_form
from queueing.web.params import job_id, only, page_size
from queueing.web.render import render
from queueing.web.routes.overview import is_fragment
from queueing.web.runtime import web


@end_user_only
async def my_jobs(request: Request) -> Response:
    only(request.query_params, ("before_id", "limit"))
    before = request.query_params.get("before_id")
    before_id = job_id(before, "before_id") if before else None
    limit = page_size(request.query_params.get("limit"))
    actor = request.state.actor
    jobs = await web(request).users().run(data.api_jobs(before_id, limit), actor)
    template = "_me_rows.html" if is_fragment(request) else "me.html"
    context = {"jobs": jobs, "actor": actor, "limit": limit, "before_id": before_id, "page": "me"}
    return render(request, template, context)


@end_user_only
async def cancel_mine(request: Request) -> Response:
    """POST /me/jobs/{id}/cancel: the ownership rules are the API's (queueing_cancel_v2)."""
    await checked_form(request)
    ident = job_id(request.path_params["job_id"])
    outcome = await web(request).users().run(data.api_cancel(ident), request.state.actor)
    if outcome == "not_found":
        raise JobNotFound(ident)
    if outcome == "terminal":
        raise InvalidTransition(ident, "finished", "cancelled")
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/me", status_code=303)
