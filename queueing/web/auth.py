"""Who is asking: the operator (basic auth, or the host app's own auth) and the end
user (the host app's actor resolver); and the guards the routes are wrapped in."""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import secrets
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from queueing.errors import ConfigurationError
from queueing.models import Actor
from queueing.web.runtime import Operator, web

Endpoint = Callable[[Request], Awaitable[Response]]
REALM = 'Basic realm="queueing dashboard", charset="UTF-8"'


def basic_auth(username: str, password: str) -> Operator:
    """An operator resolver that accepts one user and password (HTTP basic auth); the
    operator's name is the user name."""
    if not username or not password:
        raise ConfigurationError("basic auth needs a user name and a password")
    expected = (username.encode(), password.encode())

    def operator(request: Request) -> str | None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, given = base64.b64decode(encoded, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return None
        # Both compared whatever the first gives: no early exit to time.
        same_user = secrets.compare_digest(user, expected[0])
        same_password = secrets.compare_digest(given, expected[1])
        return username if sep and same_user and same_password else None

    return operator


def local_operator(name: str) -> Operator:
    """The operator of a dashboard that listens on a loopback address only."""
    return lambda request: name


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``): only those may serve
    the dashboard without authentication."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def operator_only(endpoint: Endpoint) -> Endpoint:
    """Wrap an operator page: 401 unless the operator resolver names someone; the
    request's ``state.operator`` is then that operator's ``Actor``, whose name every
    action records (``Actor.operator``)."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        resolve = web(request).operator
        name = resolve(request) if resolve is not None else None
        if name is None:
            return PlainTextResponse(
                "sign in to see the dashboard", 401, headers={"WWW-Authenticate": REALM}
            )
        # Checked as any id (InvalidPayload: one line), before anything is read or done.
        request.state.operator = Actor.operator(name)
        return await endpoint(request)

    return guarded


def end_user_only(endpoint: Endpoint) -> Endpoint:
    """Wrap an end-user page: 401 unless the actor resolver gives a user or an admin."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        end_users = web(request).end_users
        actor = end_users.actor(request) if end_users is not None else None
        if actor is None or actor.rights == "system":
            return PlainTextResponse("sign in to see your jobs", 401)
        request.state.actor = actor
        return await endpoint(request)

    return guarded
