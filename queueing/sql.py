"""Load the project's SQL: named runtime queries and numbered migrations.

All SQL lives in the top-level ``sql/`` folder (shipped inside the wheel as
``queueing/sql``); Python refers to queries by name only.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

_NAME_LINE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_MIGRATION_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")


def sql_dir() -> Path:
    """The folder holding ``queries.sql`` and ``migrations/``.

    Installed from a wheel it is inside the package; in a source checkout (editable
    install, tests) it is the repository's top-level ``sql/``.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "sql", here.parent / "sql"):
        if (candidate / "queries.sql").is_file():
            return candidate
    raise FileNotFoundError(f"queueing's sql/ folder is missing (looked beside {here})")


def named_blocks(text: str) -> dict[str, str]:
    """The ``-- name: <name>`` blocks of a SQL file's text, by name."""
    parts = _NAME_LINE.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


@functools.cache
def _queries() -> dict[str, str]:
    return named_blocks((sql_dir() / "queries.sql").read_text(encoding="utf-8"))


def query(name: str) -> sql.SQL:
    """The named query from ``sql/queries.sql`` (KeyError if there is none)."""
    # The text comes from our own file, never from user input.
    return sql.SQL(_queries()[name])


@dataclass(frozen=True)
class Migration:
    """One numbered file of ``sql/migrations``."""

    version: int
    name: str
    text: str


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """Our migrations, in version order."""
    found = []
    for path in sorted((sql_dir() / "migrations").iterdir()):
        match = _MIGRATION_FILE.match(path.name)
        if match:
            found.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(
            f"sql/migrations must be numbered 0001, 0002, ... without gaps: {versions}"
        )
    return tuple(found)


def latest_version() -> int:
    """The schema version this code expects."""
    return migrations()[-1].version
