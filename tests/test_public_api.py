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
