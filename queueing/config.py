"""Where the database is: argument, else QUEUEING_DATABASE_URL, else DATABASE_URL, else embedded."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Seconds to wait for a new database connection, everywhere one is opened (library
#: pools, the worker's connections, the listener): a server that does not answer is
#: reported as unavailable instead of hanging the caller.
CONNECT_TIMEOUT = 5


class Settings(BaseSettings):
    """Settings read from the environment."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("QUEUEING_DATABASE_URL", "DATABASE_URL")
    )


def resolve_database_url(explicit: str | None = None) -> str:
    """The URL to use; starts the embedded server when nothing is configured."""
    if explicit:
        return explicit
    configured = Settings().database_url
    if configured:
        return configured
    from queueing import embedded  # imported lazily: starting a server is the last resort

    return embedded.database_url()
