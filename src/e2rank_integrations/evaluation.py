"""Reranking quality on BEIR-format data: nDCG@10, MRR@10 and Recall@100 before and after E2Rank.

Metrics come from ``pytrec_eval`` (trec_eval's own implementation), not from hand-written formulas.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._deprecation import renamed, warn_renamed
from ._optional import require
from .errors import E2RankValueError
from .prompts import titled
from .scoring import rank
from .types import Backend

__all__ = [
    "METRICS",
    "EvalReport",
    "evaluate",
    "load_corpus",
    "load_qrels",
    "load_queries",
    "load_run",
    "rerank_run",
    "retrieve_run",
    "write_run",
]

Run = dict[str, dict[str, float]]  # query id -> document id -> score
Qrels = dict[str, dict[str, int]]  # query id -> document id -> relevance

METRICS = {"nDCG@10": "ndcg_cut_10", "MRR@10": "recip_rank", "Recall@100": "recall_100"}


def _jsonl(path: str | os.PathLike[str]) -> Iterable[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise E2RankValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from None


def load_corpus(path: str | os.PathLike[str]) -> dict[str, str]:
    """BEIR ``corpus.jsonl`` (``_id``, ``title``, ``text``) -> id -> ``"title text"``."""
    corpus = {}
    for record in _jsonl(path):
        if "_id" not in record or "text" not in record:
            raise E2RankValueError(f"{path}: every line needs '_id' and 'text', got keys {sorted(record)}")
        corpus[str(record["_id"])] = titled(str(record.get("title") or ""), str(record["text"]))
    return corpus


def load_queries(path: str | os.PathLike[str]) -> dict[str, str]:
    """BEIR ``queries.jsonl`` (``_id``, ``text``) -> id -> text."""
    queries = {}
    for record in _jsonl(path):
        if "_id" not in record or "text" not in record:
            raise E2RankValueError(f"{path}: every line needs '_id' and 'text', got keys {sorted(record)}")
        queries[str(record["_id"])] = str(record["text"])
    return queries


def load_qrels(path: str | os.PathLike[str]) -> Qrels:
    """BEIR ``qrels/*.tsv`` (``query-id``, ``corpus-id``, ``score``, with a header line)."""
    qrels: Qrels = {}
    with open(path, encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        for number, row in enumerate(rows, start=1):
            if not row or (number == 1 and not row[-1].lstrip("-").isdigit()):
                continue  # blank line or header
            if len(row) < 3:
                raise E2RankValueError(f"{path}:{number}: expected query-id, corpus-id, score")
            try:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
            except ValueError:
                raise E2RankValueError(f"{path}:{number}: the score {row[2]!r} is not an integer") from None
    return qrels


def load_run(path: str | os.PathLike[str]) -> Run:
    """A TREC run file: ``qid Q0 docid rank score tag`` per line."""
    run: Run = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise E2RankValueError(f"{path}:{number}: expected 'qid Q0 docid rank score tag', got {line.strip()!r}")
            try:
                run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
            except ValueError:
                raise E2RankValueError(f"{path}:{number}: the score {parts[4]!r} is not a number") from None
    return run


def write_run(run: Run, path: str | os.PathLike[str], tag: str = "e2rank") -> None:
    """Write a TREC run file, each query's documents by descending score."""
    with open(path, "w", encoding="utf-8") as handle:
        for qid, scores in run.items():
            ordered = sorted(scores.items(), key=lambda item: -item[1])
            for position, (docid, score) in enumerate(ordered, start=1):
                handle.write(f"{qid} Q0 {docid} {position} {score:.6f} {tag}\n")


def _top(scores: Mapping[str, float], k: int) -> list[str]:
    return [docid for docid, _ in sorted(scores.items(), key=lambda item: -item[1])[:k]]


@renamed(top_k="k")
def retrieve_run(backend: Backend, corpus: Mapping[str, str], queries: Mapping[str, str], k: int) -> Run:
    """First stage with the model itself: each query's ``k`` nearest documents by cosine of the embeddings."""
    ids = list(corpus)
    doc_vectors = backend.embed_documents([corpus[i] for i in ids])
    qids = list(queries)
    query_vectors = backend.embed_queries([queries[q] for q in qids])
    run: Run = {}
    for qid, vector in zip(qids, query_vectors):
        run[qid] = {ids[r.index]: r.score for r in rank(doc_vectors @ vector, top_n=k)}
    return run


@renamed(top_k="k")
def rerank_run(
    backend: Backend,
    corpus: Mapping[str, str],
    queries: Mapping[str, str],
    first_stage: Run,
    *,
    k: int = 100,
    progress: Callable[[Iterable[str]], Iterable[str]] = iter,
    **rerank_options: Any,
) -> Run:
    """Rerank each query's top ``k`` first-stage documents; scores are E2Rank's cosine scores."""
    run: Run = {}
    for qid in progress([q for q in queries if q in first_stage]):
        candidates = [d for d in _top(first_stage[qid], k) if d in corpus]
        if not candidates:
            continue
        results = backend.rerank(queries[qid], [corpus[d] for d in candidates], **rerank_options)
        run[qid] = {candidates[r.index]: r.score for r in results}
    return run


def _cut(run: Run, k: int) -> Run:
    return {qid: {d: scores[d] for d in _top(scores, k)} for qid, scores in run.items()}


def _measure(qrels: Qrels, run: Run) -> dict[str, float]:
    pytrec_eval = require("pytrec_eval", extra="eval")
    judged = {q: r for q, r in run.items() if q in qrels}
    if not judged:
        raise E2RankValueError("no query of the run has relevance judgements in the qrels")
    main = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recall_100"}).evaluate(judged)
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(_cut(judged, 10))
    out = {}
    for name, measure in METRICS.items():
        table = mrr if measure == "recip_rank" else main
        out[name] = 100 * float(np.mean([table[q][measure] for q in judged]))
    return out


@dataclass
class EvalReport:
    """Metrics (in percent, averaged over judged queries) of the first stage and of the rerank.

    ``k`` is how many first-stage documents per query were reranked (``top_k``, its old name, is deprecated).
    """

    before: dict[str, float]
    after: dict[str, float]
    queries: int
    k: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def top_k(self) -> int:
        """Deprecated: :attr:`k`."""
        warn_renamed("EvalReport: `top_k` is deprecated, use `k`")
        return self.k

    def table(self) -> str:
        """A plain-text table: one row per metric, before, after, difference."""
        lines = [f"{'metric':<12}{'first stage':>12}{'E2Rank':>10}{'change':>9}"]
        for name in METRICS:
            b, a = self.before[name], self.after[name]
            lines.append(f"{name:<12}{b:>12.2f}{a:>10.2f}{a - b:>+9.2f}")
        lines.append(f"{self.queries} judged queries, top {self.k} reranked")
        return "\n".join(lines)


EvalReport.__init__ = renamed(top_k="k")(EvalReport.__init__)  # type: ignore[method-assign]


@renamed(top_k="k")
def evaluate(qrels: Qrels, first_stage: Run, reranked: Run, k: int) -> EvalReport:
    """Compare the first stage's top ``k`` with its rerank on the same queries."""
    before = _measure(qrels, _cut(first_stage, k))
    after = _measure(qrels, {q: reranked.get(q, {}) for q in first_stage if q in reranked})
    return EvalReport(before=before, after=after, queries=sum(1 for q in reranked if q in qrels), k=k)
