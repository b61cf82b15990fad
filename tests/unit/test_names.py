"""One spelling per concept: an old spelling still works for one release, warns, and cannot be mixed with the new."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from e2rank_integrations import evaluation
from e2rank_integrations._deprecation import deprecated_alias, renamed
from e2rank_integrations.cli import build_parser
from e2rank_integrations.cli.errors import flags
from e2rank_integrations.errors import E2RankTypeError
from e2rank_integrations.scoring import cosine_scores, rank
from e2rank_integrations.validators import check_score_threshold


@renamed(top_k="k")
def first(items: list[int], k: int = 2, *, step: int = 1) -> list[int]:
    return items[:k:step]


def test_an_old_keyword_warns_at_the_caller_and_works():
    with pytest.warns(DeprecationWarning, match="first: `top_k` is deprecated, use `k`") as caught:
        assert first([1, 2, 3], top_k=1, step=1) == [1]
    assert caught[0].filename == __file__  # the warning names the line that used the old name


def test_old_and_new_together_are_refused_by_keyword_or_position():
    with pytest.raises(E2RankTypeError, match="first: give `k` only; `top_k` is its deprecated old name"):
        first([1, 2, 3], k=1, top_k=1)
    with pytest.raises(E2RankTypeError, match="give `k` only"):
        first([1, 2, 3], 1, top_k=1)


def test_the_new_spelling_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert first([1, 2, 3], k=1) == first([1, 2, 3], 1) == [1]


def test_a_deprecated_alias_warns_and_calls_the_function():
    old = deprecated_alias(first, "take")
    with pytest.warns(DeprecationWarning, match="`take` is deprecated, use `first`"):
        assert old([1, 2, 3], k=2) == [1, 2]
    assert old.__name__ == "take"


VECTORS = {"a": [1.0, 0.0], "b": [0.6, 0.8], "c": [0.0, 1.0], "north": [1.0, 0.1]}


class Vectors:
    """A Backend over the fixed 2-d ``VECTORS``: enough for the evaluation's own loops."""

    def embed_documents(self, texts):
        return np.array([VECTORS[t] for t in texts], dtype=np.float32)

    def embed_queries(self, texts, *, instruction=None):
        return self.embed_documents(texts)

    def rerank(self, query, documents, **options):
        return rank(cosine_scores(VECTORS[query], self.embed_documents(documents)))


CORPUS = {"d1": "c", "d2": "b", "d3": "a"}
QUERIES = {"q": "north"}


def test_evaluation_takes_k_and_its_old_name_top_k():
    backend = Vectors()
    first_stage = evaluation.retrieve_run(backend, CORPUS, QUERIES, k=2)
    assert list(first_stage["q"]) == ["d3", "d2"]
    with pytest.warns(DeprecationWarning, match="retrieve_run: `top_k` is deprecated, use `k`"):
        assert evaluation.retrieve_run(backend, CORPUS, QUERIES, top_k=2) == first_stage
    with pytest.raises(E2RankTypeError, match="give `k` only"):
        evaluation.retrieve_run(backend, CORPUS, QUERIES, 2, top_k=2)

    everything = {"q": {"d1": 3.0, "d2": 2.0, "d3": 1.0}}
    reranked = evaluation.rerank_run(backend, CORPUS, QUERIES, everything, k=2)
    assert set(reranked["q"]) == {"d1", "d2"}  # the first stage's top 2 only
    with pytest.warns(DeprecationWarning, match="rerank_run: `top_k` is deprecated, use `k`"):
        assert evaluation.rerank_run(backend, CORPUS, QUERIES, everything, top_k=2) == reranked
    with pytest.raises(E2RankTypeError, match="give `k` only"):
        evaluation.rerank_run(backend, CORPUS, QUERIES, everything, k=2, top_k=2)


def test_eval_report_k_and_its_old_name_top_k():
    report = evaluation.EvalReport(before={}, after={}, queries=1, k=10)
    with pytest.warns(DeprecationWarning, match="EvalReport: `top_k` is deprecated, use `k`"):
        assert report.top_k == 10
    with pytest.warns(DeprecationWarning, match="EvalReport: `top_k` is deprecated, use `k`"):
        assert evaluation.EvalReport(before={}, after={}, queries=1, top_k=10) == report
    with pytest.raises(E2RankTypeError, match="give `k` only"):
        evaluation.EvalReport(before={}, after={}, queries=1, k=10, top_k=10)


def test_score_threshold_is_a_finite_number_or_none():
    assert check_score_threshold(None) is None
    assert check_score_threshold(np.float32(0.5)) == 0.5
    with pytest.raises(TypeError, match="score_threshold must be a number or None, got str"):
        check_score_threshold("0.5")
    with pytest.raises(ValueError, match="score_threshold must be finite"):
        check_score_threshold(float("-inf"))


@pytest.mark.parametrize(
    ("command", "default"), [(["demo"], 20), (["eval", "--corpus=c", "--queries=q", "--qrels=r"], 100)]
)
def test_cli_top_k_is_a_hidden_deprecated_alias_of_k(command, default, capsys):
    parser = build_parser()
    assert parser.parse_args([*command, "--k", "7"]).k == 7
    assert parser.parse_args(command).k == default
    assert capsys.readouterr().err == ""
    assert parser.parse_args([*command, "--top-k", "3"]).k == 3
    assert f"e2rank {command[0]}: warning: --top-k is deprecated, use --k" in capsys.readouterr().err
    subcommand = next(a for a in parser._actions if a.dest == "command").choices[command[0]]
    assert "--top-k" not in subcommand.format_help()
    assert flags(subcommand)["k"] == "--k"  # errors name the new flag
