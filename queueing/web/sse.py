"""Server-Sent Events: the wire format and the loop every event stream runs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

from queueing.web.feed import ChangeFeed, Changes

KEEPALIVE_SECONDS = 15.0
"""A comment line this often: proxies keep the stream open, and a client gone away is
noticed (the write fails)."""

HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def event(name: str, data: object) -> bytes:
    """One event; ``data`` as JSON (one line: json.dumps escapes newlines)."""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def stream(
    feed: ChangeFeed, relay: Callable[[Changes], Awaitable[list[int] | None]]
) -> AsyncIterator[bytes]:
    """``ready`` once listening, then a ``changed`` event for every batch of hints that
    ``relay`` passes on: the job ids it gives (an empty list: "look at everything"), or
    nothing when it gives None (nothing the reader may see)."""
    async with feed.subscribe() as subscription:
        yield event("ready", {})
        while True:
            changes = await subscription.next(KEEPALIVE_SECONDS)
            if changes is None:
                yield b": keepalive\n\n"
                continue
            ids = await relay(changes)
            if ids is not None:
                yield event("changed", {"ids": ids})
