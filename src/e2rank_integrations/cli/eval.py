"""``e2rank eval``: nDCG@10, MRR@10 and Recall@100 of a first stage and of its E2Rank rerank, on BEIR data."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._optional import check_extras
from ..validators import check_optional_positive_int, check_positive_int
from ._common import CLIError, command, default_model, deprecated_flag, epilog, load_model, model_options
from .rerank import add_prompt_options


def add_parser(sub: Any) -> None:
    """The ``eval`` subcommand's options."""
    eval_p = command(
        sub,
        "eval",
        "nDCG@10, MRR@10, Recall@100 of a first stage and of its E2Rank rerank, on BEIR-format data",
        epilog(
            "model,eval",
            """
            e2rank eval --corpus corpus.jsonl --queries queries.jsonl --qrels qrels/test.tsv --run bm25.trec
            e2rank eval --corpus corpus.jsonl --queries queries.jsonl --qrels qrels/test.tsv --retrieve --k 50
            """,
        ),
    )
    model_options(eval_p, default_model())
    eval_p.add_argument("--corpus", required=True, help="BEIR corpus.jsonl (_id, title, text) (required)")
    eval_p.add_argument("--queries", required=True, help="BEIR queries.jsonl (_id, text) (required)")
    eval_p.add_argument("--qrels", required=True, help="BEIR qrels .tsv (query-id, corpus-id, score) (required)")
    eval_p.add_argument(
        "--run", default=None, help="first-stage TREC run file, e.g. BM25 (default: none; or give --retrieve)"
    )
    eval_p.add_argument(
        "--retrieve", action="store_true", help="use the model's own retrieval as the first stage (default: off)"
    )
    eval_p.add_argument(
        "--k", type=int, default=100, help="first-stage documents reranked per query (default: %(default)s)"
    )
    deprecated_flag(eval_p, "--top-k", "--k")
    add_prompt_options(eval_p)
    eval_p.add_argument(
        "--passes", type=int, default=1, help="rerank passes; 2 reranks the first pass's order (default: %(default)s)"
    )
    eval_p.add_argument(
        "--max-queries", type=int, default=None, help="evaluate only the first N judged queries (default: all)"
    )
    eval_p.add_argument(
        "--output", default=None, help="write the reranked run to this TREC file (default: not written)"
    )


def run(args: argparse.Namespace) -> int:
    """Rerank a first-stage run on BEIR-format data and print nDCG@10, MRR@10 and Recall@100 before and after."""
    from .. import evaluation

    check_extras(["model", "eval"], "`e2rank eval`")  # pytrec_eval scores at the end: check it before reranking
    if (args.run is None) == (not args.retrieve):
        raise CLIError("give exactly one first stage: --run FILE.trec or --retrieve")
    check_positive_int(args.k, "k")  # these before reading data or loading a model
    check_positive_int(args.passes, "passes")
    check_optional_positive_int(args.max_queries, "max_queries")
    corpus = evaluation.load_corpus(args.corpus)
    queries = evaluation.load_queries(args.queries)
    qrels = evaluation.load_qrels(args.qrels)
    first_stage = evaluation.load_run(args.run) if args.run else None
    judged = {q: t for q, t in queries.items() if q in qrels}
    if args.max_queries is not None:
        judged = dict(list(judged.items())[: args.max_queries])
    if not judged:
        raise CLIError(f"none of the {len(queries)} queries has relevance judgements in {args.qrels}")
    model = load_model(args.model, device=args.device, cache=args.cache)
    if first_stage is None:
        first_stage = evaluation.retrieve_run(model, corpus, judged, k=args.k)
    progress: Any = iter
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        progress = lambda items: tqdm(items, desc="reranking", unit="query")  # noqa: E731
    reranked = evaluation.rerank_run(
        model,
        corpus,
        judged,
        first_stage,
        k=args.k,
        progress=progress,
        num_prompt_docs=args.num_prompt_docs,
        passes=args.passes,
        instruction=args.instruction,
    )
    report = evaluation.evaluate(qrels, {q: first_stage[q] for q in reranked}, reranked, k=args.k)
    print(report.table())
    if args.output:
        evaluation.write_run(reranked, args.output)
        print(f"reranked run written to {args.output}")
    return 0
