"""Where the database is, and how connections to it are opened, as the environment says.

The database: argument, else QUEUEING_DATABASE_URL, else DATABASE_URL, else embedded.
Behind a transaction-mode pooler (PgBouncer, docs/pooling.md) two more settings apply:
QUEUEING_PREPARED_STATEMENTS=false, and QUEUEING_LISTEN_DATABASE_URL (a direct URL for
LISTEN, or ``off``: poll instead).
"""

from __future__ import annotations

import os
from typing import Any

#: Seconds to wait for a new database connection, everywhere one is opened (library
#: pools, the worker's connections, the listener): a server that does not answer is
#: reported as unavailable instead of hanging the caller.
CONNECT_TIMEOUT = 5

#: psycopg's default: a statement run this many times on a connection is prepared on
#: the server (a name the next runs refer to).
PREPARE_THRESHOLD = 5

PREPARED_STATEMENTS_ENV = "QUEUEING_PREPARED_STATEMENTS"
LISTEN_URL_ENV = "QUEUEING_LISTEN_DATABASE_URL"
#: The listen URL meaning "do not LISTEN at all: poll".
LISTEN_OFF = "off"


def _settings() -> Any:
    """The settings pydantic-settings reads from the environment."""
    # Imported here, not at the top: every import of the queue imports this module, and
    # pydantic-settings (with python-dotenv) is needed only when the environment holds
    # something to read (CLI start-up time, docs/cli_startup.md).
    from pydantic import AliasChoices, Field, ValidationError
    from pydantic_settings import BaseSettings, SettingsConfigDict

    from queueing.errors import ConfigurationError

    class Settings(BaseSettings):
        """Settings read from the environment."""

        model_config = SettingsConfigDict(extra="ignore")

        database_url: str | None = Field(
            default=None, validation_alias=AliasChoices("QUEUEING_DATABASE_URL", "DATABASE_URL")
        )
        listen_database_url: str | None = Field(default=None, validation_alias=LISTEN_URL_ENV)
        prepared_statements: bool = Field(default=True, validation_alias=PREPARED_STATEMENTS_ENV)

    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigurationError(
            f"{error['loc'][0]}={error['input']!r}: expected true or false"
        ) from exc


def configured_database_url() -> str | None:
    """QUEUEING_DATABASE_URL, else DATABASE_URL, as pydantic-settings reads them; None if
    neither is set."""
    url: str | None = _settings().database_url
    return url


def resolve_database_url(explicit: str | None = None) -> str:
    """The URL to use; starts the embedded server when nothing is configured."""
    if explicit:
        return explicit
    configured = configured_database_url()
    if configured:
        return configured
    from queueing import embedded  # imported lazily: starting a server is the last resort

    return embedded.database_url()


def listen_database_url(database_url: str) -> str | None:
    """Where to LISTEN for notifications when the queue's database is ``database_url``:
    QUEUEING_LISTEN_DATABASE_URL if set (a direct connection past a transaction-mode
    pooler, which cannot LISTEN), else ``database_url``; None for ``off``: do not LISTEN,
    poll (the worker every ``poll_interval``, ``wait_for`` every ``WAIT_POLL_INTERVAL``)."""
    if LISTEN_URL_ENV not in os.environ:
        return database_url
    url: str | None = _settings().listen_database_url
    if url is None or not url.strip():
        return database_url
    return None if url.strip().lower() == LISTEN_OFF else url


def prepared_statements() -> bool:
    """Whether psycopg may prepare statements on the server (QUEUEING_PREPARED_STATEMENTS,
    default true). A transaction-mode pooler older than PgBouncer 1.21 hands each
    transaction any server connection, where a statement prepared on another is unknown."""
    if PREPARED_STATEMENTS_ENV not in os.environ:
        return True
    enabled: bool = _settings().prepared_statements
    return enabled


def connect_options() -> dict[str, Any]:
    """The keyword arguments of every connection the library and the worker open
    (psycopg's ``connect``, or a pool's ``kwargs``): the connect timeout, and no
    server-side prepared statements when QUEUEING_PREPARED_STATEMENTS is false.
    Raises ConfigurationError for a value that is not a boolean."""
    threshold = PREPARE_THRESHOLD if prepared_statements() else None
    return {"connect_timeout": CONNECT_TIMEOUT, "prepare_threshold": threshold}
