"""Throwaway test databases cloned from a migrated template.

The server is ``QUEUEING_TEST_DATABASE_URL`` (any database on it; we connect to its
maintenance database) if set, else the embedded server. The template is named after a
hash of the schema, so a schema change builds a new one, and concurrent pytest-xdist
workers build it once (advisory lock) and clone it. Templates of other schemas are
dropped as soon as no session uses them (``drop_other_templates``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from typing import Any

import procrastinate
import psycopg
from procrastinate.schema import SchemaManager
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from queueing import embedded, sql
from queueing.queue import Queue


def server_url() -> str:
    """URL of the server's maintenance database (``postgres``)."""
    configured = os.environ.get("QUEUEING_TEST_DATABASE_URL")
    if configured:
        return with_database(configured, "postgres")
    return embedded.server_url("postgres")


def with_database(url: str, name: str) -> str:
    """The same server URL, pointing at database ``name``."""
    params = conninfo_to_dict(url)
    params["dbname"] = name
    return make_conninfo("", **params)


def schema_fingerprint() -> str:
    """A hash of everything the schema is built from: names the template database."""
    digest = hashlib.sha256(procrastinate.__version__.encode())
    digest.update(SchemaManager.get_schema().encode())
    for migration in sql.migrations():
        digest.update(migration.text.encode())
    return digest.hexdigest()[:12]


def _exists(conn: psycopg.Connection[object], name: str) -> bool:
    return conn.execute(sql.query("database_exists"), {"name": name}).fetchone() is not None


def template_name() -> str:
    """The name of the current schema's template database."""
    return f"queueing_template_{schema_fingerprint()}"


@contextlib.contextmanager
def _template_lock(conn: psycopg.Connection[object]) -> Iterator[None]:
    """Hold the template lock: one session at a time builds, clones or drops templates."""
    conn.execute(sql.query("lock_template"))
    try:
        yield
    finally:
        conn.execute(sql.query("unlock_template"))


def ensure_template(admin_url: str) -> str:
    """Create the migrated template database if missing, drop other schemas' unused
    templates (``drop_other_templates``); return its name."""
    with psycopg.connect(admin_url, autocommit=True) as conn, _template_lock(conn):
        return _ensure_template(conn, admin_url)


def _ensure_template(conn: psycopg.Connection[object], admin_url: str) -> str:
    """``ensure_template`` for a caller that holds the template lock on ``conn``."""
    name = template_name()
    if not _exists(conn, name):
        building = f"{name}_building"
        conn.execute(sql.query("drop_database").format(name=pgsql.Identifier(building)))
        conn.execute(sql.query("create_database").format(name=pgsql.Identifier(building)))
        Queue(with_database(admin_url, building)).migrate()
        conn.execute(
            sql.query("rename_database").format(
                old=pgsql.Identifier(building), new=pgsql.Identifier(name)
            )
        )
    drop_other_templates(conn, name)
    return name


def drop_other_templates(conn: psycopg.Connection[Any], current: str) -> list[str]:
    """Drop the templates of other schema versions (and leftover ``_building`` ones) that
    no session uses; return the names dropped. The caller holds the template lock.

    Each schema change names a new template, so without this every past schema's would
    stay on the server. Safe beside other sessions: under the lock no session of this
    code is building or cloning one, and the drop is without FORCE, so a template
    someone is connected to (a clone by older code, which takes the lock only around
    the clone itself) is refused with ``object_in_use`` and kept, for a later session
    to drop. A template this role may not drop (another owner's) is kept too.
    """
    others = [row[0] for row in conn.execute(sql.query("other_templates"), {"current": current})]
    dropped = []
    for name in others:
        try:
            conn.execute(sql.query("drop_unused_database").format(name=pgsql.Identifier(name)))
        except (psycopg.errors.ObjectInUse, psycopg.errors.InsufficientPrivilege):
            continue
        dropped.append(name)
    return dropped


def create_database(admin_url: str, name: str) -> str:
    """A fresh, migrated database ``name`` (replacing any leftover); its URL.

    The template is made sure of and cloned under one hold of the template lock, so no
    other session can drop it in between.
    """
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.query("drop_database").format(name=pgsql.Identifier(name)))
        with _template_lock(conn):
            template = _ensure_template(conn, admin_url)
            conn.execute(
                sql.query("create_database_from_template").format(
                    name=pgsql.Identifier(name), template=pgsql.Identifier(template)
                )
            )
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` (closing its connections)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.query("drop_database").format(name=pgsql.Identifier(name)))


def reset(url: str) -> None:
    """Empty every queue table of the database at ``url`` (between tests).

    DELETE rather than TRUNCATE (``reset_jobs``): ~1 ms against ~100 ms per test on
    these small tables (``python -m queueing.testing.measure_isolation``). Ids are not
    restarted: they keep counting up through the session.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.query("testing_reset"))
