"""A host application mounting the dashboard's end-user view under ``/app``, as a user's
Starlette app would: run as ``python -m tests.apps.web_host`` with

- QUEUEING_DATABASE_URL: the queue's database (owner role);
- QUEUEING_WEB_USER_URL: the same database as a role that is only a member of
  ``queueing_app`` (the end-user view reads through the row-level-security API on it).

It logs ``{"event": "host.started", "url": ...}`` on stderr once it listens (any free
port). The actor comes from a ``demo_actor`` cookie (``user:<tenant>:<user>`` or
``admin:<tenant>``): a stand-in for a real session, for tests only.
"""

from __future__ import annotations

import json
import os
import socket
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount

from queueing import Actor, Queue
from queueing.web import EndUsers, create_app


def demo_actor(request: Request) -> Actor | None:
    kind, _, rest = request.cookies.get("demo_actor", "").partition(":")
    if kind == "admin" and rest:
        return Actor.admin(rest)
    tenant, _, user = rest.partition(":")
    if kind == "user" and tenant and user:
        return Actor.user(user, tenant_id=tenant)
    return None


def app() -> Starlette:
    queue = Queue(os.environ["QUEUEING_DATABASE_URL"])
    end_users = EndUsers(actor=demo_actor, database_url=os.environ["QUEUEING_WEB_USER_URL"])
    dashboard = create_app(queue, end_users=end_users)
    return Starlette(routes=[Mount("/app", app=dashboard)])


def main() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/app/"
    print(json.dumps({"event": "host.started", "url": url}), file=sys.stderr, flush=True)  # noqa: T201
    config = uvicorn.Config(app(), log_level="warning", timeout_graceful_shutdown=1)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
