"""A web dashboard for operators and a live "my jobs" view for end users (``queueing[web]``).

``create_app(queue, operator=..., end_users=...)`` returns an ASGI app (Starlette) to
mount in a Starlette/FastAPI app under any prefix; ``queueing dashboard`` serves one.
Pages are rendered on the server (Jinja2, autoescaped) and kept live by Server-Sent
Events fed from one LISTEN per process; htmx (vendored) re-reads the changed parts.
"""

from queueing.web.app import create_app
from queueing.web.auth import basic_auth, local_operator
from queueing.web.runtime import ActorResolver, EndUsers, Operator

__all__ = ["ActorResolver", "EndUsers", "Operator", "basic_auth", "create_app", "local_operator"]
