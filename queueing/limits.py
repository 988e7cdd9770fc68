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
from dataclasses import dataclass
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


def check_payload(args: dict[str, Any]) -> bool:
    """Raise InvalidPayload unless ``args`` is storable JSON that fits the limits above.

    Returns whether ``args`` reads back from jsonb equal to itself and of the same types
    (``exact``): False when it holds a tuple, a subclass of a JSON type (an ``IntEnum``,
    a ``StrEnum``, an ``OrderedDict``...), ``-0.0`` or a float JSON writes with an
    exponent (read back as an int). The order of an object's keys is not kept either way
    (jsonb orders them), and does not count.
    """
    return check_json("job arguments", args)


def check_json(what: str, value: Any, max_bytes: int = MAX_PAYLOAD_BYTES) -> bool:
    """Raise InvalidPayload unless ``value`` can be stored as jsonb unchanged and fits;
    return whether it reads back exactly (see ``check_payload``).

    ``what`` names the value in the message ("job arguments", "progress detail").
    The value is walked iteratively before it is encoded: the encoder recurses, and a
    deeply nested (or self-referential) value would overflow the stack. The walk also
    bounds the encoded size from above; only a value the bound cannot clear is encoded
    here to be measured (encoding is most of the cost for small arguments).
    """
    walked = _walk(what, value, max_bytes)
    if walked.bound <= max_bytes:
        return walked.exact
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
    return walked.exact


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


#: Bits of an int whose decimal form surely fits Python's int-to-str digit limit (4300 by
#: default, at least 640): a bigger one is encoded to learn (``_walk``'s bound is infinite).
_SAFE_INT_BITS = 2000
#: The longest a float's JSON form can be ("-2.2250738585072014e-308").
_FLOAT_CHARS = 24


@dataclass
class _Walked:
    """What ``_walk`` learnt of a value: an upper bound of its JSON size in bytes, and
    whether it reads back from jsonb exactly (``check_payload``)."""

    bound: float = 0
    exact: bool = True


def _walk(what: str, value: Any, max_bytes: int) -> _Walked:
    """Check every value and key (types, NUL, nesting, and size early), iteratively.

    The bound counts each string as 6 bytes a character (``\\u001f``, the longest
    escape; UTF-8 takes at most 4), 2 quotes, and 2 bytes of separator per member."""
    walked = _Walked()
    chars = 0  # every character takes at least one byte: over in characters is over in bytes
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_NESTING:
                raise _too_deep(what)
            walked.bound += 4
            walked.exact = walked.exact and type(item) is dict
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InvalidPayload(
                        f"{what}: not JSON: object keys must be strings, got {type(key).__name__}"
                    )
                chars += _text(what, key, walked, " (in a key)")
                stack.append((child, depth + 1))
        elif isinstance(item, list | tuple):
            if depth > MAX_NESTING:
                raise _too_deep(what)
            walked.bound += 4
            walked.exact = walked.exact and type(item) is list
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            chars += _text(what, item, walked)
        else:
            _scalar(what, item, walked)
        if chars > max_bytes:
            raise InvalidPayload(
                f"{what}: over {max_bytes} bytes as JSON; the limit is {max_bytes}"
            )
    return walked


def _text(what: str, text: str, walked: _Walked, where: str = "") -> int:
    """Check a string (a value or a key) and count it; its length in characters."""
    if "\x00" in text:
        raise InvalidPayload(f"{what}: a NUL character cannot be stored{where}")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            raise InvalidPayload(_surrogate_message(what, exc)) from None
    walked.bound += 6 * len(text) + 4
    walked.exact = walked.exact and type(text) is str
    return len(text)


def _scalar(what: str, item: Any, walked: _Walked) -> None:
    """Check and count a number, a bool or None."""
    kind = type(item)
    if item is None or isinstance(item, int):  # bool is an int
        bits = 0 if item is None else item.bit_length()
        # An int's decimal digits: at most bits / 3 + 1 (log10(2) < 1/3), plus a sign.
        walked.bound += math.inf if bits > _SAFE_INT_BITS else bits // 3 + 8
        walked.exact = walked.exact and (item is None or kind is int or kind is bool)
    elif isinstance(item, float):
        if not math.isfinite(item):
            raise InvalidPayload(f"{what}: not JSON: NaN and Infinity have no JSON form")
        walked.bound += _FLOAT_CHARS + 2
        # jsonb keeps the decimal digits: 1e+16 reads back as 10000000000000000 (an int),
        # -0.0 as 0.0; repr writes an exponent from 1e16 up.
        walked.exact = walked.exact and (
            kind is float and abs(item) < 1e16 and (item != 0 or math.copysign(1.0, item) > 0)
        )
    else:
        raise InvalidPayload(f"{what}: not JSON: a {type(item).__name__} value")


def _too_deep(what: str) -> InvalidPayload:
    return InvalidPayload(f"{what}: nested deeper than {MAX_NESTING} levels (or self-referential)")
