"""``e2rank rerank``: rerank candidates read from stdin; JSON lines out."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._optional import check_extras
from ..validators import check_positive_int, check_query, check_texts, check_top_n
from ._common import CLIError, command, default_model, epilog, load_model, model_options
from ._lines import read_records, text_of


def add_parser(sub: Any) -> None:
    """The ``rerank`` subcommand's options."""
    rerank_p = command(
        sub,
        "rerank",
        "rerank candidates read from stdin; JSON lines out",
        epilog(
            "model",
            """
            printf 'Lyon is big.\\nParis is the capital.\\n' | e2rank rerank --query "capital of France?" --top-n 1
            echo '{"query": "capital of France?", "documents": ["Lyon is big.", "Paris is the capital."]}' \\
                | e2rank rerank
            """,
            """
            with --query: stdin holds one candidate per line, plain text or {"text": "..."};
              output: one line per result, best first:
              {"index": 1, "score": 0.8312, "text": "Paris is the capital."}
            without --query: each stdin line is one rerank:
              {"query": "capital of France?", "documents": ["Lyon is big.", "Paris is the capital."]}
              output: one line per input line, results best first:
              {"results": [{"index": 1, "score": 0.8312}, {"index": 0, "score": 0.4120}]}
            index: the candidate's position in the input (from 0); score: cosine to the listwise prompt.
            """,
        ),
    )
    model_options(rerank_p, default_model())
    rerank_p.add_argument(
        "--query", default=None, help="the query; stdin then holds one candidate per line (default: none)"
    )
    rerank_p.add_argument("--top-n", type=int, default=None, help="results kept per query (default: all)")
    add_prompt_options(rerank_p)


def add_prompt_options(p: argparse.ArgumentParser) -> None:
    """``--num-prompt-docs`` and ``--instruction``, as ``rerank`` and ``eval`` share them."""
    p.add_argument(
        "--num-prompt-docs",
        type=int,
        default=20,
        help="leading candidates put in the listwise prompt (default: %(default)s)",
    )
    p.add_argument(
        "--instruction",
        default=None,
        help="the task description opening the listwise prompt (default: the authors' evaluation one)",
    )


def run(args: argparse.Namespace) -> int:
    """Rerank candidates read from stdin and print JSON lines.

    With ``--query``, the input lines are the candidates: one output line per result, best first. Without it,
    each input line is ``{"query": ..., "documents": [...]}``: one output line of results per input line.
    """
    check_extras(["model"], "`e2rank rerank`")
    check_top_n(args.top_n)  # these before a model loads
    check_positive_int(args.num_prompt_docs, "num_prompt_docs")
    records = read_records(sys.stdin)  # all of it checked before the model loads (seconds)
    if args.query is not None:
        jobs = [(check_query(args.query), [text_of(record, number) for number, record in records])]
    else:
        jobs = [_job(number, record) for number, record in records]
    model = load_model(args.model, device=args.device, cache=args.cache)
    options = {"top_n": args.top_n, "num_prompt_docs": args.num_prompt_docs, "instruction": args.instruction}
    for query, documents in jobs:
        results = model.rerank(query, documents, **options)
        if args.query is not None:  # one line per result
            for r in results:
                print(json.dumps({"index": r.index, "score": r.score, "text": documents[r.index]}))
        else:  # one line per input line
            print(json.dumps({"results": [{"index": r.index, "score": r.score} for r in results]}))
    return 0


def _job(number: int, record: Any) -> tuple[str, list[str]]:
    """The query and documents of one input line, checked."""
    if not (isinstance(record, dict) and isinstance(record.get("query"), str) and "documents" in record):
        raise CLIError(f'line {number}: expected {{"query": ..., "documents": [...]}} (or pass --query)')
    return check_query(record["query"], f"line {number}: query"), check_texts(
        record["documents"], f"line {number}: documents"
    )
