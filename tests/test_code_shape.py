"""The shape of the package's code: no function in ``queueing/`` longer than 60 lines.

A long function is where the next reader gets lost (the worker's 540-line class was);
ruff's PLR0915 (pyproject.toml) bounds statements, this bounds lines, docstring included.
"""

from __future__ import annotations

import ast
from pathlib import Path

MAX_LINES = 60
PACKAGE = Path(__file__).resolve().parent.parent / "queueing"


def _long_functions(root: Path, limit: int) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    found.append(
                        f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({length})"
                    )
    return found


def test_no_function_in_the_package_is_longer_than_60_lines() -> None:
    assert _long_functions(PACKAGE, MAX_LINES) == []


def test_the_check_finds_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "long.py").write_text(f"def long() -> None:\n{body}\n", encoding="utf-8")
    (tmp_path / "short.py").write_text("def short() -> None:\n    pass\n", encoding="utf-8")
    assert _long_functions(tmp_path, MAX_LINES) == [f"{tmp_path.name}/long.py:1 long (61)"]
