from __future__ import annotations

import json
import math

import pytest

from e2rank_integrations import evaluation
from e2rank_integrations.cli import main
from e2rank_integrations.corpus import builtin_corpus
from e2rank_integrations.errors import E2RankTypeError


@pytest.fixture
def beir(tmp_path):
    """A small BEIR-format dataset built from the demo corpus, with a deliberately poor first stage."""
    passages = builtin_corpus()[:30]
    with open(tmp_path / "corpus.jsonl", "w") as f:
        for p in passages:
            f.write(json.dumps({"_id": p["id"], "title": p["title"], "text": p["text"]}) + "\n")
    queries = {"q1": "Why does Earth have seasons?", "q2": "How do vaccines work?", "q3": "What is SQLite?"}
    relevant = {"q1": "earth-seasons", "q2": "vaccines", "q3": "sqlite"}
    with open(tmp_path / "queries.jsonl", "w") as f:
        for qid, text in {**queries, "unjudged": "Who built the printing press?"}.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(tmp_path / "qrels.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, docid in relevant.items():
            f.write(f"{qid}\t{docid}\t1\n")
    with open(tmp_path / "bm25.trec", "w") as f:
        for qid in queries:
            for position, p in enumerate(passages, start=1):  # corpus order, the relevant one somewhere inside
                f.write(f"{qid} Q0 {p['id']} {position} {100 - position} bm25\n")
    return tmp_path


def test_metrics_come_from_trec_eval_semantics():
    qrels = {"q": {"good": 1}}
    run = {"q": {"bad": 2.0, "good": 1.0}}
    report = evaluation.evaluate(qrels, run, {"q": {"good": 0.9, "bad": 0.1}}, k=100)
    assert report.before["nDCG@10"] == pytest.approx(100 / math.log2(3))
    assert report.before["MRR@10"] == pytest.approx(50)
    assert report.before["Recall@100"] == pytest.approx(100)
    assert report.after == {"nDCG@10": pytest.approx(100), "MRR@10": pytest.approx(100), "Recall@100": 100}
    assert "nDCG@10" in report.table()


def test_evaluate_takes_k_and_its_old_name_top_k():
    run = {"q": {f"d{i}": 100.0 - i for i in range(20)}}
    report = evaluation.evaluate({"q": {"d15": 1}}, run, run, k=10)
    assert report.before["Recall@100"] == 0  # the first stage cut at k: d15 is out
    with pytest.warns(DeprecationWarning, match="evaluate: `top_k` is deprecated, use `k`"):
        assert evaluation.evaluate({"q": {"d15": 1}}, run, run, top_k=10) == report
    with pytest.raises(E2RankTypeError, match="give `k` only"):
        evaluation.evaluate({"q": {"d15": 1}}, run, run, k=10, top_k=10)


def test_mrr_is_cut_at_ten():
    run = {"q": {f"d{i}": 100.0 - i for i in range(20)}}
    report = evaluation.evaluate({"q": {"d15": 1}}, run, run, k=100)
    assert report.before["MRR@10"] == 0
    assert report.before["Recall@100"] == 100


def test_eval_command_with_a_run_file(beir, tiny_path, tiny_model, capsys):
    out_file = beir / "reranked.trec"
    args = ["eval", "--model", str(tiny_path), "--corpus", str(beir / "corpus.jsonl")]
    args += ["--queries", str(beir / "queries.jsonl"), "--qrels", str(beir / "qrels.tsv")]
    assert main([*args, "--run", str(beir / "bm25.trec"), "--k", "10", "--output", str(out_file)]) == 0
    printed = capsys.readouterr().out
    assert "nDCG@10" in printed and "MRR@10" in printed and "Recall@100" in printed
    assert "3 judged queries, top 10 reranked" in printed
    reranked = evaluation.load_run(out_file)
    assert set(reranked) == {"q1", "q2", "q3"}
    corpus = evaluation.load_corpus(beir / "corpus.jsonl")
    top10 = list(corpus)[:10]
    expected = tiny_model.rerank("Why does Earth have seasons?", [corpus[d] for d in top10])
    got = sorted(reranked["q1"], key=lambda d: -reranked["q1"][d])
    assert got == [top10[r.index] for r in expected]


def test_eval_command_with_the_models_own_retrieval(beir, tiny_path, capsys):
    args = ["eval", "--model", str(tiny_path), "--corpus", str(beir / "corpus.jsonl"), "--retrieve"]
    args += ["--queries", str(beir / "queries.jsonl"), "--qrels", str(beir / "qrels.tsv"), "--k", "5"]
    assert main(args) == 0
    assert "top 5 reranked" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--run": None}, "give exactly one first stage"),
        ({"--corpus": "missing.jsonl"}, "No such file"),
        ({"--run": "bad.trec"}, "expected 'qid Q0 docid rank score tag'"),
        ({"--qrels": "other_qrels.tsv"}, "none of the 4 queries has relevance judgements"),
    ],
)
def test_eval_bad_input_is_a_clear_error(beir, tiny_path, capsys, change, message):
    (beir / "bad.trec").write_text("q1 Q0 d1 1\n")
    (beir / "other_qrels.tsv").write_text("query-id\tcorpus-id\tscore\nzz\tdoc\t1\n")
    options = {
        "--corpus": "corpus.jsonl",
        "--queries": "queries.jsonl",
        "--qrels": "qrels.tsv",
        "--run": "bm25.trec",
        **change,
    }
    args = ["eval", "--model", str(tiny_path)]
    for flag, value in options.items():
        if value is not None:
            args += [flag, str(beir / value)]
    assert main(args) == 1
    assert message in capsys.readouterr().err
