"""Options shared by every command."""

from __future__ import annotations

from typing import Annotated

import typer

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar=["QUEUEING_DATABASE_URL", "DATABASE_URL"],
        help="PostgreSQL URL. Default: $QUEUEING_DATABASE_URL, $DATABASE_URL, else embedded.",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
App = Annotated[
    str | None,
    typer.Option(
        "--app", help="module:attribute of your Queue, to validate task names and arguments."
    ),
]
