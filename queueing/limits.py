"""Limits on what may be enqueued, checked before anything is written.

Each limit exists so that one bad request cannot hurt the queue: a huge payload bloats
the job table and every read of it, deep nesting makes JSON decoding pathological, NUL
characters cannot be stored in jsonb at all, and ids and keys end up in indexes.
"""

from __future__ import annotations

import json
from typing import Any

from queueing.errors import InvalidPayload

MAX_PAYLOAD_BYTES = 256 * 1024
"""The arguments of one job, encoded as JSON, in bytes."""
MAX_NESTING = 32
"""How deeply lists and objects may nest in a job's arguments."""
MAX_ID_LENGTH = 256
"""tenant_id, user_id and dedupe_key, in characters."""


def check_payload(args: dict[str, Any]) -> None:
    """Raise InvalidPayload unless ``args`` fits the limits above and holds no NUL."""
    try:
        text = json.dumps(args, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidPayload(f"job arguments are not JSON: {exc}") from exc
    size = len(text.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidPayload(
            f"job arguments are {size} bytes as JSON; the limit is {MAX_PAYLOAD_BYTES}"
        )
    if "\\u0000" in text:
        raise InvalidPayload("job arguments contain a NUL character, which cannot be stored")
    if _depth(args) > MAX_NESTING:
        raise InvalidPayload(f"job arguments nest deeper than {MAX_NESTING} levels")


def check_id(what: str, value: str | None) -> None:
    """Raise InvalidPayload for an empty, over-long or NUL-holding tenant/user id or key."""
    if value is None:
        return
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        raise InvalidPayload(f"{what} must be 1 to {MAX_ID_LENGTH} characters")
    if "\x00" in value:
        raise InvalidPayload(f"{what} contains a NUL character")


def _depth(value: Any) -> int:
    """Nesting depth, iteratively (a recursive walk could itself overflow the stack)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return deepest
