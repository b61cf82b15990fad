from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2rank_integrations.checkpoints import TINY_RANDOM
from e2rank_integrations.cli import main
from e2rank_integrations.corpus import builtin_corpus
from helpers import run_python

E2RANK = str(Path(sys.executable).parent / "e2rank")


def offline_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "E2RANK_MODEL"}
    env.update(HF_HUB_OFFLINE="1", **extra)
    return env


def run_e2rank(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """The ``e2rank`` console script, offline, with ``env`` added to the environment."""
    return subprocess.run(
        [E2RANK, *args], input=stdin, capture_output=True, text=True, timeout=300, env=offline_env(**env)
    )


def test_builtin_corpus_has_real_passages():
    corpus = builtin_corpus()
    assert len(corpus) >= 30
    assert all(set(p) == {"id", "title", "text"} and len(p["text"].split()) > 20 for p in corpus)
    assert len({p["id"] for p in corpus}) == len(corpus)


def test_demo_prints_both_orders(tiny_path, capsys):
    assert main(["demo", "--model", str(tiny_path), "--show", "5"]) == 0
    out = capsys.readouterr().out
    assert "indexed 42 passages" in out and "into an embedded Chroma at" in out and "(temporary)" in out
    assert 'query: "Why is it colder in winter than in summer?"' in out
    assert "retrieval (cosine to the query)" in out and "E2Rank rerank of the top 20" in out
    assert "the rerank embedded 1 text(s)" in out
    rows = [line for line in out.splitlines() if " | " in line and "(was #" in line]
    assert len(rows) == 5


def test_demo_keeps_its_chroma_dir_and_refuses_another_model(tiny_path, other_tiny_path, tmp_path, capsys):
    chroma_dir = str(tmp_path / "chroma")
    assert main(["demo", "--model", str(tiny_path), "--chroma-dir", chroma_dir, "--show", "3"]) == 0
    first = capsys.readouterr().out
    assert "indexed 42 passages in" in first and f"into an embedded Chroma at {chroma_dir}\n" in first

    assert main(["demo", "--model", str(tiny_path), "--chroma-dir", chroma_dir, "--show", "3"]) == 0
    second = capsys.readouterr().out
    assert "indexed 42" not in second and f"found 42 passages indexed by an earlier run in {chroma_dir}" in second
    assert "the rerank embedded 1 text(s)" in second
    rows = [line for line in first.splitlines() if " | " in line]
    assert rows == [line for line in second.splitlines() if " | " in line]  # the same orders from the kept index

    assert main(["demo", "--model", str(other_tiny_path), "--chroma-dir", chroma_dir]) == 1
    err = capsys.readouterr().err
    assert f"e2rank demo: error: {chroma_dir} was indexed with other settings" in err
    assert str(other_tiny_path) in err


def test_demo_without_chromadb_names_the_extra(tiny_path):
    code = (
        "import sys; sys.modules['chromadb'] = None\n"
        "from e2rank_integrations.cli import main\n"
        f"raise SystemExit(main(['demo', '--model', {str(tiny_path)!r}]))\n"
    )
    result = run_python(code)
    assert result.returncode == 1
    assert "pip install 'e2rank-integrations[model,chroma]'" in result.stderr and "Traceback" not in result.stderr
    assert "model:" not in result.stdout  # it failed before loading a model


def test_demo_console_script_with_tiny_random(tiny_cache_dir):
    result = run_e2rank(
        "demo", "--model", TINY_RANDOM, "--query", "How do vaccines work?", E2RANK_CACHE_DIR=str(tiny_cache_dir)
    )
    assert result.returncode == 0, result.stderr
    assert "model: tiny-random" in result.stdout and "random weights" in result.stdout
    assert 'query: "How do vaccines work?"' in result.stdout


def test_demo_falls_back_when_the_default_model_cannot_be_fetched(tiny_cache_dir, tmp_path):
    result = run_e2rank("demo", E2RANK_CACHE_DIR=str(tiny_cache_dir), HF_HOME=str(tmp_path / "empty-hf-home"))
    assert result.returncode == 0, result.stderr
    first_lines = result.stdout.splitlines()[:3]
    assert first_lines[0].startswith("NOTE: Alibaba-NLP/E2Rank-0.6B cannot be downloaded here")
    assert "--model /path/to/E2Rank-0.6B" in "\n".join(first_lines)
    assert "the rerank embedded 1 text(s)" in result.stdout


@pytest.mark.parametrize("model", ["/no/such/model", "someone/missing-model"])
def test_demo_with_an_unloadable_named_model_fails_clearly(model, tmp_path):
    result = run_e2rank("demo", "--model", model, HF_HOME=str(tmp_path))
    assert result.returncode == 1
    assert f"e2rank demo: error: could not load model '{model}'" in result.stderr
    assert "Traceback" not in result.stderr


def test_embed_reads_lines_and_json(tiny_path):
    stdin = 'plain line\n{"text": "json line"}\n\n'
    result = run_e2rank("embed", "--model", str(tiny_path), "--with-text", stdin=stdin)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in records] == ["plain line", "json line"]
    assert all(len(r["embedding"]) == 64 for r in records)


def test_rerank_with_query_and_batch_mode(tiny_path, tiny_model):
    docs = ["alpha", "beta", "gamma"]
    result = run_e2rank("rerank", "--model", str(tiny_path), "--query", "q", "--top-n", "2", stdin="\n".join(docs))
    assert result.returncode == 0, result.stderr
    got = [json.loads(line) for line in result.stdout.splitlines()]
    expected = tiny_model.rerank("q", docs, top_n=2)
    assert [g["index"] for g in got] == [r.index for r in expected]
    assert [g["text"] for g in got] == [docs[r.index] for r in expected]

    batch = json.dumps({"query": "q", "documents": docs}) + "\n"
    result = run_e2rank("rerank", "--model", str(tiny_path), stdin=batch)
    assert result.returncode == 0, result.stderr
    assert [r["index"] for r in json.loads(result.stdout)["results"]] == [r.index for r in tiny_model.rerank("q", docs)]


def test_rerank_bad_input_is_a_clear_error(tiny_path, capsys):
    import io

    sys_stdin = sys.stdin
    try:
        sys.stdin = io.StringIO('{"query": "", "documents": ["a"]}\n')
        assert main(["rerank", "--model", str(tiny_path)]) == 1
    finally:
        sys.stdin = sys_stdin
    assert "query must be a non-empty string" in capsys.readouterr().err
