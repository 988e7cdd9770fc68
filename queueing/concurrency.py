"""Per-key concurrency limits: which key a job takes, and how it travels to the database.

A task (or one enqueue) names a concurrency key and a limit: at most ``limit`` jobs with
the same key are active at once, across all workers and hosts. The claim enforces it
(``queueing_claim_v8``, migrations 0009, 0012, 0013 and 0014; docs/design.md "Concurrency
limits"). The key is a template formatted with the job's arguments and its ``tenant_id``
and ``user_id`` (``"{tenant_id}"``, ``"export:{account}"``), or a callable given the
arguments as keywords.
Keys are global: two tasks that name the same key share its slots.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from queueing import limits
from queueing.errors import ConfigurationError, InvalidPayload

ConcurrencyKey = str | Callable[..., str]
"""A key template (``str.format`` fields) or a callable of the job's arguments."""

#: The args key that carries a job's key and limit to the database (which removes it).
CONCURRENCY_ARG = "_queueing_concurrency"


def check_declared(key: ConcurrencyKey | None, limit: int | None, *, task: str) -> None:
    """ConfigurationError unless a task declares both a key and a limit of at least 1, or
    neither."""
    if (key is None) != (limit is None):
        raise ConfigurationError(
            f"task {task!r}: concurrency_key and concurrency_limit go together"
        )
    if limit is not None:
        try:
            check_limit(limit)
        except InvalidPayload as exc:
            raise ConfigurationError(f"task {task!r}: {exc}") from None
    if key is not None and not (isinstance(key, str) or callable(key)):
        raise ConfigurationError(f"task {task!r}: concurrency_key must be a str or a callable")


def check_limit(limit: object) -> int:
    """A concurrency limit: an integer of at least 1 (InvalidPayload otherwise)."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidPayload(f"a concurrency limit must be an integer, got {type(limit).__name__}")
    if limit < 1:
        raise InvalidPayload(f"a concurrency limit must be at least 1, got {limit}")
    return limit


def job_key(
    key: ConcurrencyKey,
    args: Mapping[str, Any],
    *,
    tenant_id: str | None,
    user_id: str | None,
) -> str:
    """The key of one job; InvalidPayload if it cannot be made (a missing field, an
    empty or oversized key, a callable that fails or returns no str)."""
    try:
        if isinstance(key, str):
            made: object = key.format_map({"tenant_id": tenant_id, "user_id": user_id, **args})
        else:
            made = key(**args)
    except (KeyError, IndexError, AttributeError, TypeError, ValueError) as exc:
        raise InvalidPayload(f"cannot make the job's concurrency key: {exc!r}") from None
    if not isinstance(made, str) or not made:
        raise InvalidPayload(f"a concurrency key must be a non-empty str, got {made!r}")
    limits.check_id("concurrency_key", made)
    return made


def with_concurrency(
    args: Mapping[str, Any], key: str | None, limit: int | None
) -> Mapping[str, Any]:
    """``args``, plus the key and limit under ``CONCURRENCY_ARG`` when the job has a key.
    InvalidPayload for args that hold ``CONCURRENCY_ARG`` themselves (the database would
    take it for a key and remove it)."""
    if CONCURRENCY_ARG in args:
        raise InvalidPayload(f"{CONCURRENCY_ARG!r} is reserved for queueing's concurrency key")
    if key is None:
        return args
    return {**args, CONCURRENCY_ARG: {"key": key, "limit": limit}}
