"""The package's public names: listed once for the lazy import, once for type checkers."""

from __future__ import annotations

import importlib
import subprocess
import sys

import queueing


def test_every_public_name_has_a_home_and_imports() -> None:
    homes = queueing._HOMES
    assert sorted(queueing.__all__) == sorted(homes)
    for name in queueing.__all__:
        assert getattr(importlib.import_module(homes[name]), name) is getattr(queueing, name)


def test_importing_the_cli_does_not_import_the_heavy_parts() -> None:
    # A fresh interpreter: this one has imported everything already.
    code = (
        "import sys, queueing.cli; "
        "print(sorted(m for m in ('procrastinate', 'queueing.worker', 'pydantic_settings') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_queue_does_not_import_sqlalchemy_or_django() -> None:
    """They are optional extras (queueing[sqlalchemy], queueing[django]): the queue, an
    enqueue on a psycopg connection and the integrations' entry point import neither
    (queueing/integrations/ imports one only once an object of theirs is passed)."""
    code = (
        "import sys, queueing, queueing.integrations, queueing.rls; "
        "from queueing import Queue; Queue('postgresql:///unused').aio; "
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in ('sqlalchemy', 'django')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
