"""Options shared by every command, and reading ``--args``."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, BinaryIO

import typer

from queueing import limits
from queueing.errors import InvalidPayload

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

#: How much of an ``--args @FILE`` or ``--args -`` a command reads at most. The limit,
#: ``limits.MAX_PAYLOAD_BYTES``, is on the arguments as compact JSON, which the library
#: checks; a file may be indented or use \u escapes, so more is read, but not without end
#: (``--args @/dev/zero`` must not fill memory).
MAX_ARGS_INPUT = 16 * limits.MAX_PAYLOAD_BYTES


def read_args(value: str) -> dict[str, Any]:
    """The JSON object an ``--args`` value gives; InvalidPayload if it gives none.

    The size and content limits are the library's (``queueing.limits``), checked when the
    job is enqueued, whichever way the arguments came.
    """
    text, source = _args_text(value)
    try:
        parsed: Any = json.loads(text)
    except ValueError as exc:  # (a file that is not UTF-8 too)
        raise InvalidPayload(f"{source} is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # the json module recurses once per nesting level
        raise InvalidPayload(
            f"{source} nests deeper than {limits.MAX_NESTING} levels (far deeper)"
        ) from exc
    if not isinstance(parsed, dict):
        raise InvalidPayload(f'{source} must be a JSON object, e.g. \'{{"name": "x"}}\'')
    return parsed


def _args_text(value: str) -> tuple[str | bytes, str]:
    """The JSON text an ``--args`` value stands for, and how to name it in a message.

    ``@FILE`` is the content of FILE and ``-`` is stdin (a payload too big for one
    command-line argument: Linux refuses one over 128 KiB); anything else is the JSON
    itself. Neither form can be JSON, so no JSON value is read as a file name.
    """
    if value == "-":
        return _read_capped(sys.stdin.buffer, "--args - (stdin)"), "--args - (stdin)"
    if not value.startswith("@"):
        return value, "--args"
    path = value[1:]
    source = f"--args @{path}"
    if not path:
        raise InvalidPayload("--args @ needs a file name, e.g. --args @payload.json")
    try:
        with open(path, "rb") as file:
            return _read_capped(file, source), source
    except FileNotFoundError:
        raise InvalidPayload(f"{source}: no such file") from None
    except OSError as exc:  # a directory, no permission...
        raise InvalidPayload(f"{source}: cannot read it: {exc.strerror or exc}") from None


def _read_capped(file: BinaryIO, source: str) -> bytes:
    data = file.read(MAX_ARGS_INPUT + 1)
    if len(data) > MAX_ARGS_INPUT:
        raise InvalidPayload(
            f"{source}: over {MAX_ARGS_INPUT} bytes; job arguments are limited to "
            f"{limits.MAX_PAYLOAD_BYTES} bytes as JSON"
        )
    return data
