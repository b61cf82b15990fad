"""``e2rank embed``: embed the lines of stdin; one JSON line out per line in."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._common import command, default_model, epilog, load_model, model_options
from ._lines import read_records, text_of


def add_parser(sub: Any) -> None:
    """The ``embed`` subcommand's options."""
    embed = command(
        sub,
        "embed",
        "embed the lines of stdin; one JSON line out per line in",
        epilog(
            "model",
            """
            printf 'first passage\\nsecond passage\\n' | e2rank embed --model tiny-random > vectors.jsonl
            echo '{"text": "capital of France?"}' | e2rank embed --kind query --with-text
            """,
            """
            input (stdin), one text per line, either of:
              Paris is the capital of France.
              {"text": "Paris is the capital of France."}      (other keys are ignored)
            output (stdout), one line per input line, in order:
              {"embedding": [0.0123, -0.0456, ...]}              (L2-normalised float32)
              {"embedding": [...], "text": "Paris is..."}        (with --with-text)
            """,
        ),
    )
    model_options(embed, default_model())
    embed.add_argument(
        "--kind",
        choices=["document", "query"],
        default="document",
        help="document: embedded as stored, no instruction; query: with the retrieval instruction "
        "(default: %(default)s)",
    )
    embed.add_argument(
        "--instruction", default=None, help="the query instruction, with --kind query (default: the model's own)"
    )
    embed.add_argument("--with-text", action="store_true", help="add each input text to its output line (default: off)")


def run(args: argparse.Namespace) -> int:
    """Embed each input line; print one JSON line ``{"embedding": [...]}`` per input (``text`` too if asked)."""
    texts = [text_of(r, f"line {i + 1}") for i, r in enumerate(read_records(sys.stdin))]
    model = load_model(args.model, device=args.device, cache=args.cache)
    if args.kind == "query":
        vectors = model.embed_queries(texts, instruction=args.instruction)
    else:
        vectors = model.embed_documents(texts)
    for text, vector in zip(texts, vectors):
        record: dict[str, Any] = {"embedding": [round(float(x), 7) for x in vector]}
        if args.with_text:
            record["text"] = text
        print(json.dumps(record, ensure_ascii=False))
    return 0
