"""``create_app``: the dashboard as an ASGI app, to serve (``queueing dashboard``) or to
mount inside a Starlette/FastAPI app under any path prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from queueing.errors import ConfigurationError, QueueingError
from queueing.queue import Queue
from queueing.web.csrf import Forbidden
from queueing.web.params import BadRequest
from queueing.web.render import HERE, SECURITY_HEADERS, templates
from queueing.web.routes import actions, events, jobs, me, overview, workers
from queueing.web.runtime import EndUsers, Operator, Web


def create_app(
    queue: Queue,
    *,
    operator: Operator | None = None,
    end_users: EndUsers | None = None,
    read_only: bool = False,
) -> Starlette:
    """The dashboard for ``queue``, as an ASGI app.

    - ``operator``: who the operator of a request is (a callable from the request to a
      name, or None for "not signed in": 401), e.g. ``queueing.web.basic_auth(user,
      password)`` or a function reading the host app's own session. With it, the
      operator pages are served: ``/``, ``/jobs``, ``/jobs/{id}``, ``/workers``,
      ``/events``, and their actions (cancel, retry, run now, bulk; pause and resume a
      queue) unless ``read_only``.
    - ``end_users``: an ``EndUsers`` (actor resolver + web-role database URL). With it,
      ``/me`` shows each end user their own jobs, live, through the row-level-security
      API, and lets them cancel the ones they may.

    At least one of the two is needed; nothing connects until the first request.
    """
    if operator is None and end_users is None:
        raise ConfigurationError(
            "create_app needs operator= (the operator pages' authentication, e.g. "
            "queueing.web.basic_auth(user, password)) or end_users= (the end-user view)"
        )
    state = Web(queue=queue, read_only=read_only, operator=operator, end_users=end_users)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with state.running():
            yield

    routes: list[BaseRoute] = [
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    if operator is not None:
        routes += operator_routes()
    if end_users is not None:
        routes += end_user_routes()
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            BadRequest: _one_line,
            Forbidden: _one_line,
            QueueingError: _one_line,
        },
    )
    app.state.web = state
    app.state.templates = templates()
    return app


def operator_routes() -> list[BaseRoute]:
    return [
        Route("/", overview.overview, name="overview"),
        Route("/jobs", jobs.jobs, name="jobs"),
        Route("/jobs/bulk", actions.bulk_confirm, name="bulk_confirm"),
        Route("/jobs/bulk", actions.bulk_apply, methods=["POST"], name="bulk_apply"),
        Route("/jobs/{job_id}", jobs.job, name="job"),
        Route("/jobs/{job_id}/{action}", actions.act, methods=["POST"], name="act"),
        Route("/queues/{queue}/{action}", actions.act_on_queue, methods=["POST"], name="queue_act"),
        Route("/workers", workers.workers, name="workers"),
        Route("/events", events.operator_events, name="events"),
    ]


def end_user_routes() -> list[BaseRoute]:
    return [
        Route("/me", me.my_jobs, name="me"),
        Route("/me/jobs/{job_id}/cancel", me.cancel_mine, methods=["POST"], name="me_cancel"),
        Route("/me/events", events.user_events, name="me_events"),
    ]


async def _one_line(request: Request, exc: Exception) -> Response:
    """A refused request: its status and one line of text, never a traceback."""
    status = getattr(exc, "http_status", 500)
    return PlainTextResponse(str(exc).splitlines()[0], status, headers=SECURITY_HEADERS)
