"""The live streams (Server-Sent Events): ``/events`` for operators, ``/me/events`` for
an end user. Each ``changed`` event says which jobs to look at again; the page re-reads
them (its fragments) from the database."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from queueing.web import data, sse
from queueing.web.auth import end_user_only, operator_only
from queueing.web.feed import Changes
from queueing.web.params import only
from queueing.web.runtime import web


@operator_only
async def operator_events(request: Request) -> Response:
    only(request.query_params, ())

    async def relay(changes: Changes) -> list[int]:
        return [] if changes.everything else sorted(changes.ids)

    return StreamingResponse(
        sse.stream(web(request).feed, relay), media_type="text/event-stream", headers=sse.HEADERS
    )


@end_user_only
async def user_events(request: Request) -> Response:
    """Only ids the actor may see go out: each batch of hints is re-read through the
    row-level-security API first, so another user's job id never reaches this stream."""
    only(request.query_params, ())
    state, actor = web(request), request.state.actor
    users = state.users()

    async def relay(changes: Changes) -> list[int] | None:
        if changes.everything:
            return []
        visible = await users.run(data.api_visible(sorted(changes.ids)), actor)
        return sorted(visible) or None

    return StreamingResponse(
        sse.stream(state.feed, relay), media_type="text/event-stream", headers=sse.HEADERS
    )
