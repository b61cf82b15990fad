"""``e2rank demo``: index a small built-in corpus in Chroma, retrieve, rerank, print both orders with timings."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from typing import Any, TextIO

from .._optional import check_extras
from ..corpus import builtin_corpus
from ..errors import E2RankHubUnreachableError
from ..loading import TINY_RANDOM
from ..validators import check_positive_int
from ._common import DEFAULT_MODEL_HELP, CLIError, command, deprecated_flag, epilog, load_model, model_options

DEFAULT_QUERY = "Why is it colder in winter than in summer?"
DEMO_COLLECTION = "e2rank-demo"


def add_parser(sub: Any) -> None:
    """The ``demo`` subcommand's options."""
    demo = command(
        sub,
        "demo",
        "index a small built-in corpus in Chroma, retrieve, rerank, print both orders",
        epilog(
            "model,chroma",
            """
            e2rank demo
            e2rank demo --model tiny-random --query "How do vaccines work?" --show 5
            e2rank demo --chroma-dir ./demo-db     # a second run reuses the index
            """,
        ),
    )
    model_options(demo, None, f"{DEFAULT_MODEL_HELP}; '{TINY_RANDOM}' when that cannot be downloaded")
    demo.add_argument(
        "--chroma-dir", default=None, help="keep the Chroma database in this directory (default: a temporary one)"
    )
    demo.add_argument("--query", default=DEFAULT_QUERY, help="the question to search for (default: %(default)r)")
    demo.add_argument("--k", type=int, default=20, help="candidates retrieved and reranked (default: %(default)s)")
    deprecated_flag(demo, "--top-k", "--k")
    demo.add_argument("--show", type=int, default=10, help="rows printed (default: %(default)s)")


def load_demo_model(requested: str | None, out: TextIO, **kwargs: Any) -> tuple[str, Any]:
    """The model the demo runs on, loaded, and its name.

    A model the user named (``--model`` or ``$E2RANK_MODEL``) is used as it is. The built-in default falls back to
    ``tiny-random`` when the hub cannot be reached and there is no local copy, saying so first.
    """
    from ..model import DEFAULT_MODEL

    named = requested or os.environ.get("E2RANK_MODEL")
    if named:
        return named, load_model(named, **kwargs)
    try:
        return DEFAULT_MODEL, load_model(DEFAULT_MODEL, **kwargs)
    except CLIError as exc:
        if not isinstance(exc.__cause__, E2RankHubUnreachableError):
            raise
    print(
        f"NOTE: {DEFAULT_MODEL} cannot be downloaded here (no connection to the Hugging Face Hub) and is not in\n"
        "the local cache. To use a copy you have, pass its directory: `e2rank demo --model /path/to/E2Rank-0.6B`\n"
        "(or set E2RANK_MODEL). Going on with `tiny-random`, a generated random-weight checkpoint: the pipeline\n"
        "is real, but its rankings mean nothing.\n",
        file=out,
    )
    return TINY_RANDOM, load_model(TINY_RANDOM, **kwargs)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def run(args: argparse.Namespace) -> int:
    """Index the built-in corpus in an embedded Chroma, retrieve for a query, rerank, print both orders with timings."""
    out = sys.stdout
    check_positive_int(args.k, "k")  # the error formatter names the flag: "--k must be >= 1, got 0"
    check_positive_int(args.show, "show")
    check_extras(["model", "chroma"], "`e2rank demo`")  # before loading a model: a missing extra fails at once
    from ..chroma import E2RankEmbeddingFunction, open_client, rerank_query_result

    name, model = load_demo_model(args.model, out, device=args.device, cache=args.cache)
    print(f"model: {name} ({model.device}, {model.dtype}, {model.dimension}-d)", file=out)
    if name == TINY_RANDOM:
        print("       random weights: the orders below show the mechanics, not relevance", file=out)

    with contextlib.ExitStack() as stack:
        directory = args.chroma_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="e2rank-demo-"))
        where = directory if args.chroma_dir else f"{directory} (temporary)"
        function = E2RankEmbeddingFunction(model)
        collection = open_client(directory).get_or_create_collection(DEMO_COLLECTION, embedding_function=function)
        _check_demo_collection(collection, function, directory)

        corpus = builtin_corpus()
        titles = {p["id"]: p["title"] for p in corpus}
        stored = set(collection.get(ids=list(titles), include=[])["ids"])
        new = [p for p in corpus if p["id"] not in stored]
        if new:
            start = time.perf_counter()
            collection.add(
                ids=[p["id"] for p in new],
                documents=[f"{p['title']}\n{p['text']}" for p in new],
                metadatas=[{"title": p["title"]} for p in new],
            )
            embed_s = time.perf_counter() - start
            print(f"indexed {len(new)} passages in {embed_s:.2f} s into an embedded Chroma at {where}", file=out)
        if stored:
            print(f"found {len(stored)} passages indexed by an earlier run in {where}", file=out)

        start = time.perf_counter()
        result = collection.query(
            query_texts=[args.query],
            n_results=args.k,
            include=["documents", "metadatas", "distances", "embeddings"],
        )
        query_s = time.perf_counter() - start
        retrieved = list(zip(result["ids"][0], result["distances"][0]))

        before = model.stats()["texts_embedded"]
        start = time.perf_counter()
        reranked = rerank_query_result(model, args.query, result, top_n=args.show)
        rerank_s = time.perf_counter() - start
        rerank_embedded = model.stats()["texts_embedded"] - before

    print(f'\nquery: "{args.query}"\n', file=out)
    width = 38
    print(f"  {'retrieval (cosine to the query)':<{width + 13}} | E2Rank rerank of the top {len(retrieved)}", file=out)
    for row in range(min(args.show, len(retrieved))):
        left_id, distance = retrieved[row]
        left_text = f"{row + 1:>2}  {1.0 - distance:6.3f}  {_clip(titles[left_id], width)}"
        right_text = ""
        if row < len(reranked):
            hit = reranked[row]
            right_text = f"{row + 1:>2}  {hit.score:6.3f}  {_clip(titles[hit.id], width)}  (was #{hit.index + 1})"
        print(f"  {left_text:<{width + 13}} | {right_text}", file=out)
    print(
        f"\ntimings: query (embed + Chroma search) {query_s * 1000:.1f} ms, rerank {rerank_s * 1000:.1f} ms",
        file=out,
    )
    print(
        f"the rerank embedded {rerank_embedded} text(s) (the listwise prompt); the {len(retrieved)} candidates' "
        "embeddings are the vectors Chroma stored",
        file=out,
    )
    return 0


def _check_demo_collection(collection: Any, function: Any, directory: str) -> None:
    """Refuse a ``--chroma-dir`` whose collection was embedded with another model (Chroma does not check)."""
    stored = collection.configuration_json.get("embedding_function") or {}
    if stored.get("name") != function.name():
        raise CLIError(
            f"{directory} holds a collection {DEMO_COLLECTION!r} not made by this demo; use another --chroma-dir"
        )
    try:
        function.validate_config_update(stored.get("config", {}), function.get_config())
    except ValueError as exc:
        raise CLIError(f"{directory} was indexed with other settings; use another --chroma-dir ({exc})") from None
