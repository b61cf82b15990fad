"""Every command checks its input and its extras before it loads a model (issue 22): no weights needed here.

A model named ``/nonexistent/model`` would fail to load: an error about the input instead shows the input was
checked first. A module set to ``None`` in ``sys.modules`` is one that is not installed (``find_spec`` says so).
"""

from __future__ import annotations

import importlib.util
import io
import sys

import pytest

from e2rank_integrations.cli import main
from helpers import run_python

NO_MODEL = "/nonexistent/model"
# Without torch (the core env) the extras check answers first, which is right too; the input checks need it present.
needs_model_extra = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None,
    reason="the model extra is not installed: `e2rank rerank/embed` name it before reading input",
)


def run_with_stdin(monkeypatch, stdin: str, *argv: str) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(list(argv))


@pytest.mark.parametrize(
    ("argv", "stdin", "says"),
    [
        (["rerank"], "{query: 'x', documents: ['a']}\n", "line 1 is not valid JSON: Expecting property name"),
        (["rerank"], '\n{"query": "q", "documents": ["a"]}\n{"query": "q"\n', "line 3 is not valid JSON: "),
        (["rerank"], '{"query": "", "documents": ["a"]}\n', "line 1: query must be a non-empty string"),
        (["rerank"], '{"query": "q", "documents": ["a", 2]}\n', "line 1: documents[1] must be a string, got int"),
        (["rerank"], "plain text\n", 'line 1: expected {"query": ..., "documents": [...]} (or pass --query)'),
        (["rerank", "--query", " "], "a\nb\n", "query must be a non-empty string"),
        (["rerank", "--query", "q"], 'a\n{"text": 1}\n', "line 2: expected plain text or a JSON object"),
        (["embed"], 'first\n{"text": "second"\n', "line 2 is not valid JSON: "),
    ],
)
@needs_model_extra
def test_bad_input_is_named_before_a_model_loads(argv, stdin, says, monkeypatch, capsys):
    assert run_with_stdin(monkeypatch, stdin, *argv, "--model", NO_MODEL) == 1
    err = capsys.readouterr().err
    assert says in err and "could not load" not in err


def test_plain_text_that_is_not_json_is_still_text(monkeypatch, capsys):
    # the lines parse as text; only then does loading the (missing) model fail
    assert run_with_stdin(monkeypatch, "[1] a note\nx: {y}\n", "embed", "--model", NO_MODEL) == 1
    assert "not valid JSON" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "missing", "hint"),
    [
        (["serve"], "torch", "[model,server]"),
        (["serve"], "uvicorn", "[model,server]"),
        (["embed"], "transformers", "[model]"),
        (["rerank", "--query", "q"], "torch", "[model]"),
        (["demo"], "chromadb", "[model,chroma]"),
        (["eval", "--corpus", "c", "--queries", "q", "--qrels", "r", "--retrieve"], "pytrec_eval", "[model,eval]"),
        (["index", "--input", "{corpus}", "--output", "{tmp}/x.parquet"], "pyarrow", "[model,parquet]"),
        (["index", "--input", "{corpus}", "--collection", "c", "--chroma-dir", "{tmp}"], "torch", "[model,chroma]"),
        (["index", "--input", "{corpus}", "--output", "{tmp}/o", "--server-url", "http://x"], "httpx", "[client,"),
        (["mcp", "--chroma-dir", "{tmp}"], "mcp", "[mcp,chroma,model]"),
        (["mcp", "--chroma-dir", "{tmp}", "--server-url", "http://x"], "httpx", "[mcp,chroma,client]"),
        (["train", "--model", "m", "--data", "d", "--output", "o"], "accelerate", "[train]"),
    ],
)
def test_a_missing_extra_names_every_extra_the_command_needs(argv, missing, hint, tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a", "text": "x"}\n')
    argv = [a.format(corpus=corpus, tmp=tmp_path) for a in argv]
    monkeypatch.setitem(sys.modules, missing, None)  # as if it were not installed
    assert run_with_stdin(monkeypatch, "a\n", *argv) == 1
    err = capsys.readouterr().err
    assert f"{missing!r}" in err and f"pip install 'e2rank-integrations{hint}" in err
    assert not (tmp_path / "x.parquet").exists()


@needs_model_extra
def test_bad_input_fails_without_importing_torch():
    result = run_python(
        """
        import io, sys
        sys.stdin = io.StringIO("{query: 'x'}\\n")
        from e2rank_integrations.cli import main
        code = main(["rerank", "--model", "tiny-random"])
        print(code, "torch" in sys.modules, "transformers" in sys.modules)
        """
    )
    assert result.stdout.split() == ["1", "False", "False"], result.stderr
    assert "line 1 is not valid JSON" in result.stderr


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["serve", "--port", "-1"], "argument --port: a port is 0..65535 (0: any free one), got -1"),
        (["mcp", "--port", "70000"], "argument --port: a port is 0..65535"),
        (["mcp", "--chroma-port", "http"], "argument --chroma-port: not a port number: 'http'"),
        (["index", "--input", "x.jsonl", "--chroma-port", "-5", "--collection", "c"], "argument --chroma-port: a port"),
    ],
)
def test_a_port_out_of_range_is_a_usage_error(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and says in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["rerank", "--top-n", "0"], "--top-n must be >= 1"),
        (["rerank", "--num-prompt-docs", "0"], "--num-prompt-docs must be >= 1, got 0"),
        (["eval", "--retrieve", "--passes", "0"], "--passes must be >= 1, got 0"),
        (["eval", "--retrieve", "--max-queries", "0"], "--max-queries must be >= 1, got 0"),  # not "all queries"
        (["eval", "--retrieve", "--k", "-3"], "--k must be >= 1, got -3"),
    ],
)
@needs_model_extra
def test_counts_below_one_are_named_by_their_flag_before_a_model_loads(argv, says, monkeypatch, capsys):
    files = ["--corpus", "c.jsonl", "--queries", "q.jsonl", "--qrels", "q.tsv"] if argv[0] == "eval" else []
    assert run_with_stdin(monkeypatch, '{"query": "q", "documents": ["a"]}\n', *argv, *files, "--model", NO_MODEL) == 1
    err = capsys.readouterr().err
    assert says in err and "could not load" not in err
