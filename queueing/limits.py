"""Limits on what may be enqueued, checked before anything is written.

Each limit exists so that one bad request cannot hurt the queue: a huge payload bloats
the job table and every read of it, deep nesting makes JSON decoding pathological, NUL
characters cannot be stored in jsonb (nor in text) at all, lone surrogate code points
cannot be encoded to UTF-8, and ids and keys end up in indexes.

What a job's arguments may hold: JSON objects (``dict`` with ``str`` keys), arrays
(``list`` or ``tuple``), strings, integers (at most Python's ``int`` to ``str`` digit
limit, 4300 by default; stored exactly), finite floats, ``True``/``False`` and ``None``.
Anything else (bytes, sets, NaN and Infinity, non-string keys, which JSON would
silently turn into strings) is refused with ``InvalidPayload``. Error messages name
the problem, never the offending value.

Numbers are stored as jsonb numerics, exactly; a float that JSON writes in exponent
form (``1e+16`` and up) reads back as the int of the same value, and ``-0.0`` as
``0.0`` (a task's argument model turns them back into floats).
"""

from __future__ import annotations

import json
import math
from typing import Any

from queueing.errors import InvalidPayload

MAX_PAYLOAD_BYTES = 256 * 1024
"""The arguments of one job, encoded as JSON (UTF-8), in bytes. Also a progress detail."""
MAX_NESTING = 32
"""How deeply lists and objects may nest in a job's arguments (the arguments object is 1)."""
MAX_ID_LENGTH = 256
"""tenant_id, user_id and dedupe_key, in characters."""
MAX_TASK_NAME_LENGTH = 128
"""Task names, in characters: procrastinate's ``task_name`` is a ``varchar(128)``."""


def check_payload(args: dict[str, Any]) -> None:
    """Raise InvalidPayload unless ``args`` is storable JSON that fits the limits above."""
    check_json("job arguments", args)


def check_json(what: str, value: Any, max_bytes: int = MAX_PAYLOAD_BYTES) -> None:
    """Raise InvalidPayload unless ``value`` can be stored as jsonb unchanged and fits.

    ``what`` names the value in the message ("job arguments", "progress detail").
    The value is walked iteratively before it is encoded: the encoder recurses, and a
    deeply nested (or self-referential) value would overflow the stack.
    """
    _walk(what, value, max_bytes)
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:  # e.g. an int over the str-conversion limit
        raise InvalidPayload(f"{what}: not JSON: {exc}") from exc
    try:
        size = len(text.encode())
    except UnicodeEncodeError as exc:
        raise InvalidPayload(_surrogate_message(what, exc)) from None
    if size > max_bytes:
        raise InvalidPayload(f"{what}: {size} bytes as JSON; the limit is {max_bytes}")


def check_id(what: str, value: str | None) -> None:
    """Raise InvalidPayload for an empty, over-long, NUL- or surrogate-holding id or key."""
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidPayload(f"{what} must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        raise InvalidPayload(f"{what} must be 1 to {MAX_ID_LENGTH} characters")
    _check_text(what, value)


def check_task_name(name: str) -> None:
    """Raise InvalidPayload for a task name that the job table cannot store.

    For names outside a known task registry (a producer that declares no tasks); a
    declared task's name was accepted when it was declared.
    """
    if not isinstance(name, str):
        raise InvalidPayload(f"task name must be a string, got {type(name).__name__}")
    if not 1 <= len(name) <= MAX_TASK_NAME_LENGTH:
        raise InvalidPayload(f"task name must be 1 to {MAX_TASK_NAME_LENGTH} characters")
    _check_text("task name", name)


def _check_text(what: str, value: str) -> None:
    if "\x00" in value:
        raise InvalidPayload(f"{what} contains a NUL character, which cannot be stored")
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise InvalidPayload(_surrogate_message(what, exc)) from None


def _surrogate_message(what: str, exc: UnicodeEncodeError) -> str:
    code = ord(exc.object[exc.start])
    hint = (
        " (Python's stand-in for an undecodable byte: was the input, e.g. a command-line"
        " argument, valid UTF-8?)"
        if 0xDC80 <= code <= 0xDCFF
        else ""
    )
    return (
        f"{what}: a lone surrogate code point (U+{code:04X}) is not text "
        f"and cannot be encoded as UTF-8{hint}"
    )


def _walk(what: str, value: Any, max_bytes: int) -> None:
    """Check every value and key (types, NUL, nesting, and size early), iteratively."""
    chars = 0  # every character takes at least one byte: over in characters is over in bytes
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise InvalidPayload(f"{what}: a NUL character cannot be stored")
            chars += len(item)
        elif item is None or isinstance(item, int):  # bool is an int
            pass
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidPayload(f"{what}: not JSON: NaN and Infinity have no JSON form")
        elif isinstance(item, dict):
            if depth > MAX_NESTING:
                raise _too_deep(what)
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InvalidPayload(
                        f"{what}: not JSON: object keys must be strings, got {type(key).__name__}"
                    )
                if "\x00" in key:
                    raise InvalidPayload(f"{what}: a NUL character cannot be stored (in a key)")
                chars += len(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list | tuple):
            if depth > MAX_NESTING:
                raise _too_deep(what)
            stack.extend((child, depth + 1) for child in item)
        else:
            raise InvalidPayload(f"{what}: not JSON: a {type(item).__name__} value")
        if chars > max_bytes:
            raise InvalidPayload(
                f"{what}: over {max_bytes} bytes as JSON; the limit is {max_bytes}"
            )


def _too_deep(what: str) -> InvalidPayload:
    return InvalidPayload(f"{what}: nested deeper than {MAX_NESTING} levels (or self-referential)")
