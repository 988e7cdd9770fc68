"""examples/fastapi_app: a service a team could copy (SQLAlchemy session + enqueue in one
transaction, "my jobs" through row-level security, a progress stream), whose own tests
use the pytest plugin. They must pass with four xdist workers, twice in a row (nothing
left behind: databases, the reader roles)."""

from __future__ import annotations

import re

from tests.helpers import ROOT, run_pytest

EXAMPLE = ROOT / "examples" / "fastapi_app"


def test_the_fastapi_example_passes_twice_with_four_workers() -> None:
    for run in (1, 2):
        result = run_pytest(EXAMPLE, "-n", "4", "-q")
        assert result.returncode == 0, f"run {run}:\n{result.stdout}\n{result.stderr}"
        assert re.search(r"^7 passed", result.stdout, re.MULTILINE), result.stdout
