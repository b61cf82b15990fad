"""Every error the package raises on purpose is an ``E2RankError``: no bare ``raise ValueError/TypeError`` in src/.

Bad input is ``E2RankValueError``/``E2RankTypeError`` (still a ``ValueError``/``TypeError``), so the server, the MCP
tools and the CLI can tell it from a bug. Pure ``ast``: runs in the core env.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "e2rank_integrations"
BARE = {"ValueError", "TypeError"}


def bare_raises(source: str) -> list[int]:
    """The lines that raise a new plain ``ValueError``/``TypeError`` (re-raising a caught one is fine)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and node.exc is not None:
            raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(raised, ast.Name) and raised.id in BARE:
                lines.append(node.lineno)
    return lines


def test_the_check_finds_a_bare_raise_and_lets_a_re_raise_pass():
    source = """
try:
    pass
except ValueError as error:
    raise error
except TypeError:
    raise
raise E2RankValueError("`top_n` must be >= 1")
raise ValueError("bad")
raise TypeError
"""
    assert bare_raises(source) == [9, 10]


def test_no_bare_value_or_type_error_is_raised_in_src():
    found = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line in bare_raises(path.read_text(encoding="utf-8"))
    ]
    assert not found, "raise E2RankValueError/E2RankTypeError (e2rank_integrations.errors) instead at: " + ", ".join(
        found
    )
