"""Cross-site request forgery: every state-changing request is a POST that comes from
one of the dashboard's own pages.

Two checks, both required: the request's ``Origin`` (else ``Referer``) is this site,
and its ``csrf`` form field (or ``X-CSRF-Token`` header) equals the ``queueing_csrf``
cookie the pages set (a random token, ``SameSite=Strict``, ``HttpOnly``: another site
can neither read it nor make the browser send it).
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "queueing_csrf"
FIELD = "csrf"
HEADER = "x-csrf-token"


class Forbidden(Exception):
    """A request refused before anything is done (HTTP 403); one line."""

    http_status = 403


def token(request: Request) -> tuple[str, bool]:
    """The request's token, and whether it is new (then ``set_cookie`` must send it)."""
    current = request.cookies.get(COOKIE)
    if current and len(current) == 43 and current.isascii():
        return current, False
    return secrets.token_urlsafe(32), True


def set_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        path=request.scope.get("root_path") or "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def checked_form(request: Request) -> FormData:
    """The POSTed form, once the request is shown to come from this site's pages."""
    if not same_origin(request):
        raise Forbidden("cross-origin request refused")
    form = await request.form()
    given = form.get(FIELD) or request.headers.get(HEADER)
    expected = request.cookies.get(COOKIE)
    if not isinstance(given, str) or not expected or not secrets.compare_digest(given, expected):
        raise Forbidden("missing or wrong CSRF token: reload the page and try again")
    return form


def same_origin(request: Request) -> bool:
    """Whether the browser says the request comes from this site (a request that says
    nothing is refused: browsers send ``Origin`` with every POST)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return False
    parts = urlsplit(source)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)
