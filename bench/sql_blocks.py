"""The benchmark's SQL, by name: ``bench/queries.sql`` and ``bench/fill.sql`` (named blocks,
parsed like the package's own ``sql/queries.sql``)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from psycopg import sql

from queueing.sql import named_blocks
from queueing.sql import query as queueing_query

_HERE = Path(__file__).resolve().parent
_CLAIM_FUNCTION = re.compile(r"\b(queueing_claim_v\d+)\s*\(")


@functools.cache
def _blocks() -> dict[str, str]:
    blocks: dict[str, str] = {}
    for name in ("queries.sql", "fill.sql"):
        blocks.update(named_blocks((_HERE / name).read_text(encoding="utf-8")))
    return blocks


def query(name: str) -> sql.SQL:
    """The named block of the benchmark's SQL files (KeyError if there is none)."""
    return sql.SQL(_blocks()[name])  # our own file's text, never user input


def claim_query() -> sql.Composable:
    """The worker's claim as it is now: the ``claim_jobs`` block of sql/queries.sql."""
    return queueing_query("claim_jobs")


def claim_function() -> str:
    """The claim function the ``claim_jobs`` block calls now (``queueing_claim_vN``)."""
    text = claim_query().as_string(None)
    found = _CLAIM_FUNCTION.search(text)
    if found is None:
        raise RuntimeError("sql/queries.sql's claim_jobs block calls no queueing_claim_vN")
    return found[1]
