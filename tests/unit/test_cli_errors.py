"""The CLI reports the package's errors in one line, with flags for the parameters they name; a bug keeps its
traceback (a plain ``ValueError`` is a bug, never "bad input")."""

from __future__ import annotations

import pytest

from e2rank_integrations import cli


def test_a_package_error_is_one_line_naming_the_flag(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert cli.main(["mcp", "--chroma-dir", str(missing)]) == 1  # MCPSettings: "`chroma_dir` ...: no such directory"
    err = capsys.readouterr().err
    assert err.startswith(f"e2rank mcp: error: --chroma-dir {missing}: no such directory") and "`" not in err


def test_a_plain_value_error_is_a_bug_reported_with_its_traceback(monkeypatch, capsys):
    bug = ValueError("an internal invariant broke")

    def broken(args):
        raise bug

    monkeypatch.setitem(cli.HANDLERS, "rerank", broken)
    with pytest.raises(ValueError, match="internal invariant") as raised:
        cli.main(["rerank", "--query", "q"])
    assert raised.value is bug  # re-raised as it is: Python prints its traceback
    err = capsys.readouterr().err
    assert "internal error (a bug): please report it" in err and "error: an internal invariant broke" not in err
