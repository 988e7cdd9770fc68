"""Django configured in-process for the tests (no settings module, no test runner): its
``default`` database pointed at a test database of ours, ``sqlite`` an in-memory SQLite.

Settings are configured once per process; ``django_on(url)`` repoints ``default`` the
way Django's own test runner does (closing the connection and changing the settings
dict every thread's connection is made from), so each xdist worker, and the README's
throwaway database, get their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import django
from django.conf import settings
from django.db import connections
from psycopg.conninfo import conninfo_to_dict


def _database(url: str) -> dict[str, Any]:
    params = conninfo_to_dict(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": params.get("dbname", ""),
        "USER": params.get("user", ""),
        "PASSWORD": params.get("password", ""),
        "HOST": params.get("host", ""),
        "PORT": str(params.get("port", "")),
    }


@contextlib.contextmanager
def django_on(url: str) -> Iterator[None]:
    """Django's ``default`` database is ``url`` inside the block."""
    if not settings.configured:
        settings.configure(
            DATABASES={
                "default": _database(url),
                "sqlite": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            },
            USE_TZ=True,
            INSTALLED_APPS=[],
        )
        django.setup()
    default = connections["default"]
    default.close()
    saved = dict(default.settings_dict)
    default.settings_dict.update(_database(url))
    try:
        yield
    finally:
        default.close()
        default.settings_dict.update(saved)
