"""Where the database is: argument, else QUEUEING_DATABASE_URL, else DATABASE_URL, else embedded."""

from __future__ import annotations

#: Seconds to wait for a new database connection, everywhere one is opened (library
#: pools, the worker's connections, the listener): a server that does not answer is
#: reported as unavailable instead of hanging the caller.
CONNECT_TIMEOUT = 5


def configured_database_url() -> str | None:
    """QUEUEING_DATABASE_URL, else DATABASE_URL, as pydantic-settings reads them; None if
    neither is set."""
    # Imported here, not at the top: every import of the queue imports this module, and
    # pydantic-settings (with python-dotenv) is needed only when no URL was given.
    from pydantic import AliasChoices, Field
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Settings(BaseSettings):
        """Settings read from the environment."""

        model_config = SettingsConfigDict(extra="ignore")

        database_url: str | None = Field(
            default=None, validation_alias=AliasChoices("QUEUEING_DATABASE_URL", "DATABASE_URL")
        )

    return Settings().database_url


def resolve_database_url(explicit: str | None = None) -> str:
    """The URL to use; starts the embedded server when nothing is configured."""
    if explicit:
        return explicit
    configured = configured_database_url()
    if configured:
        return configured
    from queueing import embedded  # imported lazily: starting a server is the last resort

    return embedded.database_url()
