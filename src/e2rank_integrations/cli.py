"""The ``e2rank`` command: ``demo``, ``embed``, ``rerank``, ``eval``, ``serve``, ``train``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from ._optional import require
from .checkpoints import TINY_RANDOM
from .corpus import builtin_corpus
from .errors import E2RankHubUnreachableError, E2RankModelNotFoundError

DEFAULT_QUERY = "Why is it colder in winter than in summer?"
DEMO_COLLECTION = "e2rank-demo"


class CLIError(Exception):
    """A problem to report in one line, with a non-zero exit status."""


# ---------------------------------------------------------------------------- models


def default_model() -> str:
    """``$E2RANK_MODEL`` or the published 0.6B model."""
    from .model import DEFAULT_MODEL

    return os.environ.get("E2RANK_MODEL") or DEFAULT_MODEL


def load_model(name: str, **kwargs: Any) -> Any:
    """Load ``name`` (a hub id, a local directory, or ``tiny-random``), or raise :class:`CLIError` saying why.

    The rules for names, paths and an unreachable hub are :mod:`e2rank_integrations.loading`'s, as in Python.
    """
    from .model import E2RankModel

    try:
        return E2RankModel.from_pretrained(name, **kwargs)
    except ImportError:
        raise
    except E2RankModelNotFoundError as exc:  # its message already names the model and what to do
        raise CLIError(str(exc)) from exc
    except Exception as exc:  # transformers raises OSError, ValueError... for a bad model
        raise CLIError(f"could not load model {name!r}: {exc}") from exc


def load_demo_model(requested: str | None, out: TextIO, **kwargs: Any) -> tuple[str, Any]:
    """The model the demo runs on, loaded, and its name.

    A model the user named (``--model`` or ``$E2RANK_MODEL``) is used as it is. The built-in default falls back to
    ``tiny-random`` when the hub cannot be reached and there is no local copy, saying so first.
    """
    from .model import DEFAULT_MODEL

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


# ---------------------------------------------------------------------------- demo


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def run_demo(args: argparse.Namespace, out: TextIO) -> int:
    """Index the built-in corpus in an embedded Chroma, retrieve for a query, rerank, print both orders with timings."""
    chromadb = require("chromadb", extra="chroma")  # before loading a model: a missing extra fails at once
    from .chroma import E2RankEmbeddingFunction, rerank_query_result

    name, model = load_demo_model(args.model, out, device=args.device, cache=args.cache)
    print(f"model: {name} ({model.device}, {model.dtype}, {model.dimension}-d)", file=out)
    if name == TINY_RANDOM:
        print("       random weights: the orders below show the mechanics, not relevance", file=out)

    with contextlib.ExitStack() as stack:
        directory = args.chroma_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="e2rank-demo-"))
        where = directory if args.chroma_dir else f"{directory} (temporary)"
        function = E2RankEmbeddingFunction(model)
        collection = chromadb.PersistentClient(path=directory).get_or_create_collection(
            DEMO_COLLECTION, embedding_function=function
        )
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
            n_results=args.top_k,
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


# ---------------------------------------------------------------------------- embed / rerank


def _read_records(stream: TextIO) -> Iterator[Any]:
    """Lines of ``stream``: a JSON value where the line parses as one, else the line's text."""
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            yield line


def _text_of(record: Any, where: str) -> str:
    if isinstance(record, str):
        return record
    if isinstance(record, dict) and isinstance(record.get("text"), str):
        return str(record["text"])
    raise CLIError(f"{where}: expected plain text or a JSON object with a string 'text', got {json.dumps(record)[:80]}")


def run_embed(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    """Embed each input line; print one JSON line ``{"embedding": [...]}`` per input (``text`` too if asked)."""
    texts = [_text_of(r, f"line {i + 1}") for i, r in enumerate(_read_records(stdin))]
    model = load_model(args.model, device=args.device, cache=args.cache)
    if args.kind == "query":
        vectors = model.embed_queries(texts, instruction=args.instruction)
    else:
        vectors = model.embed_documents(texts)
    for text, vector in zip(texts, vectors):
        record: dict[str, Any] = {"embedding": [round(float(x), 7) for x in vector]}
        if args.with_text:
            record["text"] = text
        print(json.dumps(record, ensure_ascii=False), file=out)
    return 0


def run_rerank(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    """Rerank candidates read from stdin and print JSON lines.

    With ``--query``, the input lines are the candidates: one output line per result, best first. Without it,
    each input line is ``{"query": ..., "documents": [...]}``: one output line of results per input line.
    """
    records = list(_read_records(stdin))
    model = load_model(args.model, device=args.device, cache=args.cache)
    options = {"top_n": args.top_n, "num_prompt_docs": args.num_prompt_docs, "instruction": args.instruction}
    if args.query is not None:
        docs = [_text_of(r, f"line {i + 1}") for i, r in enumerate(records)]
        for result in _checked(model.rerank, args.query, docs, **options):
            print(json.dumps({"index": result.index, "score": result.score, "text": docs[result.index]}), file=out)
        return 0
    for i, record in enumerate(records):
        if not (isinstance(record, dict) and isinstance(record.get("query"), str) and "documents" in record):
            raise CLIError(f'line {i + 1}: expected {{"query": ..., "documents": [...]}} (or pass --query)')
        results = _checked(model.rerank, record["query"], record["documents"], **options)
        print(json.dumps({"results": [{"index": r.index, "score": r.score} for r in results]}), file=out)
    return 0


def run_eval(args: argparse.Namespace, out: TextIO) -> int:
    """Rerank a first-stage run on BEIR-format data and print nDCG@10, MRR@10 and Recall@100 before and after."""
    from . import evaluation

    if (args.run is None) == (not args.retrieve):
        raise CLIError("give exactly one first stage: --run FILE.trec or --retrieve")
    if args.top_k < 1:
        raise CLIError("--top-k must be >= 1")
    try:
        corpus = evaluation.load_corpus(args.corpus)
        queries = evaluation.load_queries(args.queries)
        qrels = evaluation.load_qrels(args.qrels)
        first_stage = evaluation.load_run(args.run) if args.run else None
    except (OSError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    judged = {q: t for q, t in queries.items() if q in qrels}
    if args.max_queries:
        judged = dict(list(judged.items())[: args.max_queries])
    if not judged:
        raise CLIError(f"none of the {len(queries)} queries has relevance judgements in {args.qrels}")
    model = load_model(args.model, device=args.device, cache=args.cache)
    if first_stage is None:
        first_stage = evaluation.retrieve_run(model, corpus, judged, top_k=args.top_k)
    progress: Any = iter
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        progress = lambda items: tqdm(items, desc="reranking", unit="query")  # noqa: E731
    reranked = evaluation.rerank_run(
        model,
        corpus,
        judged,
        first_stage,
        top_k=args.top_k,
        progress=progress,
        num_prompt_docs=args.num_prompt_docs,
        passes=args.passes,
        instruction=args.instruction,
    )
    try:
        report = evaluation.evaluate(qrels, {q: first_stage[q] for q in reranked}, reranked, top_k=args.top_k)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    print(report.table(), file=out)
    if args.output:
        evaluation.write_run(reranked, args.output)
        print(f"reranked run written to {args.output}", file=out)
    return 0


def _checked(rerank: Any, query: Any, documents: Any, **options: Any) -> Any:
    try:
        return rerank(query, documents, **options)
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from exc


# ---------------------------------------------------------------------------- serve


def run_serve(args: argparse.Namespace) -> int:
    """Serve the model over HTTP until SIGINT, or SIGTERM and a drain; the port opens while the model loads."""
    from .loading import default_device
    from .server import ServerSettings
    from .server.runner import serve

    try:
        settings = ServerSettings(
            model_id=args.model_id,
            api_key=_api_key(args.api_key),
            max_batch_tokens=args.max_batch_tokens,
            max_client_batch_size=args.max_client_batch_size,
            max_concurrent_requests=args.max_concurrent_requests,
            payload_limit_mb=args.payload_limit_mb,
            batching=not args.no_batching,
            raw_embeddings=args.raw_embeddings,
            allow_token_ids=args.allow_token_ids,
            drain_timeout_s=args.drain_timeout,
            max_request_tokens=args.max_request_tokens,
            limit_concurrency=args.limit_concurrency,
            max_connections_per_client=args.max_connections_per_client,
            timeout_keep_alive_s=args.timeout_keep_alive,
            request_head_timeout_s=args.timeout_request_head,
            request_read_timeout_s=args.timeout_request_read,
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from exc

    def load() -> Any:
        logging.getLogger("e2rank_integrations.server").info(
            "loading %s on %s", args.model, default_device(args.device)
        )
        # --max-batch-tokens bounds what the server merges from queued requests; the model then cuts that into
        # forward passes of its own device-dependent size (1k tokens on a CPU, where 16k-token passes are slower).
        # batch_size: no cap on texts per pass (each has a token); 32 ran merged 32-text embeds one pass apiece.
        return load_model(
            args.model, device=args.device, dtype=args.dtype, cache=args.cache, batch_size=args.max_batch_tokens
        )

    return serve(load, settings, host=args.host, port=args.port, log_level=args.log_level)


def _api_key(given: str | None) -> str | None:
    """``--api-key``, else ``$E2RANK_API_KEY``, else no key; one given empty is refused, never taken for none."""
    for source, key in (("--api-key", given), ("E2RANK_API_KEY", os.environ.get("E2RANK_API_KEY"))):
        if key is not None:
            if not key.strip():
                raise CLIError(
                    f"{source} is empty (did the variable it was set from expand to nothing?): give the key, or "
                    f"leave {source} out to serve without authentication"
                )
            return key
    return None


# ---------------------------------------------------------------------------- mcp


def run_mcp(args: argparse.Namespace) -> int:
    """Serve search and rerank as MCP tools until the host disconnects (the logic is in ``mcp.py``)."""
    from . import mcp

    try:
        settings = mcp.MCPSettings(
            chroma_dir=args.chroma_dir,
            chroma_host=args.chroma_host,
            chroma_port=args.chroma_port,
            collection=args.collection,
            model=args.model,
            server_url=args.server_url,
            api_key_env=args.api_key_env,
            device=args.device,
            cache=args.cache,
            writable=args.writable,
            default_k=args.default_k,
            default_top_n=args.default_top_n,
            max_top_n=args.max_top_n,
            max_tokens=args.max_tokens,
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    return mcp.run(settings, args.transport, host=args.host, port=args.port)


# ---------------------------------------------------------------------------- train


def run_train(args: argparse.Namespace) -> int:
    """Fine-tune (see :func:`e2rank_integrations.training.train`); bad settings or data end in one line."""
    from dataclasses import fields

    from .training import TrainConfig

    options = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    try:
        config = TrainConfig(**options)
        from .training import train  # needs the `train` extra

        train(config)
    except ValueError as exc:  # TrainingDataError names the file and line
        raise CLIError(str(exc)) from exc
    return 0


# ---------------------------------------------------------------------------- entry point


def _epilog(extra: str, examples: str, formats: str = "") -> str:
    """A subcommand's help epilog: the extra it needs, its input and output formats, examples."""
    text = f"needs: pip install 'e2rank-integrations[{extra}]'\n"
    if formats:
        text += "\n" + textwrap.dedent(formats).strip() + "\n"
    return text + "\nexamples:\n" + textwrap.indent(textwrap.dedent(examples).strip(), "  ")


def build_parser() -> argparse.ArgumentParser:
    """The ``e2rank`` argument parser.

    One ``sub.add_parser`` per subcommand: ``help`` for the list, ``description``, an ``epilog`` from
    :func:`_epilog` (the extra it needs, formats, examples), and a help text with its default for every option.
    """
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="e2rank",
        description="E2Rank: one embedding model to retrieve and rerank.",
        epilog="Run `e2rank COMMAND --help` for a command's options, formats and examples.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, epilog: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def model_options(p: argparse.ArgumentParser, default: str | None, default_help: str) -> None:
        p.add_argument(
            "--model",
            default=default,
            help=f"hub id, local directory, or '{TINY_RANDOM}' (a generated random-weight checkpoint) "
            f"(default: {default_help})",
        )
        p.add_argument("--device", default=None, help="cuda, cpu, cuda:1... (default: cuda when available, else cpu)")
        p.add_argument(
            "--cache",
            default=None,
            help="SQLite file that keeps embeddings across runs (default: none; an in-memory cache for this run)",
        )

    default_help = "$E2RANK_MODEL, else Alibaba-NLP/E2Rank-0.6B"

    demo = command(
        "demo",
        "index a small built-in corpus in Chroma, retrieve, rerank, print both orders",
        _epilog(
            "model,chroma",
            """
            e2rank demo
            e2rank demo --model tiny-random --query "How do vaccines work?" --show 5
            e2rank demo --chroma-dir ./demo-db     # a second run reuses the index
            """,
        ),
    )
    model_options(demo, None, f"{default_help}; '{TINY_RANDOM}' when that cannot be downloaded")
    demo.add_argument(
        "--chroma-dir", default=None, help="keep the Chroma database in this directory (default: a temporary one)"
    )
    demo.add_argument("--query", default=DEFAULT_QUERY, help="the question to search for (default: %(default)r)")
    demo.add_argument("--top-k", type=int, default=20, help="candidates retrieved and reranked (default: %(default)s)")
    demo.add_argument("--show", type=int, default=10, help="rows printed (default: %(default)s)")

    embed = command(
        "embed",
        "embed the lines of stdin; one JSON line out per line in",
        _epilog(
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
    model_options(embed, default_model(), default_help)
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

    rerank_p = command(
        "rerank",
        "rerank candidates read from stdin; JSON lines out",
        _epilog(
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
    model_options(rerank_p, default_model(), default_help)
    rerank_p.add_argument(
        "--query", default=None, help="the query; stdin then holds one candidate per line (default: none)"
    )
    rerank_p.add_argument("--top-n", type=int, default=None, help="results kept per query (default: all)")
    rerank_p.add_argument(
        "--num-prompt-docs",
        type=int,
        default=20,
        help="leading candidates put in the listwise prompt (default: %(default)s)",
    )
    rerank_p.add_argument(
        "--instruction",
        default=None,
        help="the task description opening the listwise prompt (default: the authors' evaluation one)",
    )

    eval_p = command(
        "eval",
        "nDCG@10, MRR@10, Recall@100 of a first stage and of its E2Rank rerank, on BEIR-format data",
        _epilog(
            "model,eval",
            """
            e2rank eval --corpus corpus.jsonl --queries queries.jsonl --qrels qrels/test.tsv --run bm25.trec
            e2rank eval --corpus corpus.jsonl --queries queries.jsonl --qrels qrels/test.tsv --retrieve --top-k 50
            """,
        ),
    )
    model_options(eval_p, default_model(), default_help)
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
        "--top-k", type=int, default=100, help="first-stage documents reranked per query (default: %(default)s)"
    )
    eval_p.add_argument(
        "--num-prompt-docs",
        type=int,
        default=20,
        help="leading candidates put in the listwise prompt (default: %(default)s)",
    )
    eval_p.add_argument(
        "--passes", type=int, default=1, help="rerank passes; 2 reranks the first pass's order (default: %(default)s)"
    )
    eval_p.add_argument(
        "--instruction",
        default=None,
        help="the task description opening the listwise prompt (default: the authors' evaluation one)",
    )
    eval_p.add_argument(
        "--max-queries", type=int, default=None, help="evaluate only the first N judged queries (default: all)"
    )
    eval_p.add_argument(
        "--output", default=None, help="write the reranked run to this TREC file (default: not written)"
    )

    serve_p = command(
        "serve",
        "serve the model over HTTP (OpenAI, Cohere/Jina and TEI protocols)",
        _epilog(
            "model,server",
            """
            e2rank serve --model Alibaba-NLP/E2Rank-0.6B --port 8000
            E2RANK_API_KEY=secret e2rank serve --model tiny-random --host 0.0.0.0
            curl localhost:8000/v1/rerank -H 'Content-Type: application/json' \\
                -d '{"query": "capital of France?", "documents": ["Lyon is big.", "Paris is the capital."]}'
            """,
        ),
    )
    model_options(serve_p, default_model(), default_help)
    serve_p.add_argument(
        "--dtype",
        default=None,
        help="bfloat16, float16 or float32 (default: bfloat16 on a GPU, float32 on a CPU)",
    )
    serve_p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve_p.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    serve_p.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' (default: $E2RANK_API_KEY; none when unset)",
    )
    serve_p.add_argument("--model-id", default=None, help="model name shown to clients (default: --model)")
    serve_p.add_argument(
        "--max-batch-tokens",
        type=int,
        default=16384,
        help="tokens of queued requests merged into one micro-batch (default: %(default)s)",
    )
    serve_p.add_argument(
        "--max-client-batch-size",
        type=int,
        default=1024,
        help="texts per request; more get 413 (default: %(default)s)",
    )
    serve_p.add_argument(
        "--max-concurrent-requests",
        type=int,
        default=512,
        help="requests in flight; more get 429 (default: %(default)s)",
    )
    serve_p.add_argument(
        "--payload-limit-mb",
        type=float,
        default=16.0,
        help="largest body in MiB; larger get 413 (default: %(default)s)",
    )
    serve_p.add_argument(
        "--no-batching", action="store_true", help="run each request alone, for comparisons (default: off)"
    )
    serve_p.add_argument(
        "--raw-embeddings",
        action="store_true",
        help="embed untyped /v1/embeddings inputs as sent, like vLLM (default: off: as documents)",
    )
    serve_p.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="on SIGTERM, seconds to let requests in flight finish (default: %(default)s)",
    )
    serve_p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log level (default: %(default)s)",
    )
    serve_p.add_argument(
        "--allow-token-ids",
        action="store_true",
        help="embed bare token ids sent to /v1/embeddings as this model's ids (default: off: refused with 400, "
        "since LangChain's OpenAIEmbeddings sends tiktoken ids unless check_embedding_ctx_length=False)",
    )
    # Abuse limits (docs/deployment.md says what each bounds and what is left to a reverse proxy).
    serve_p.add_argument(
        "--max-request-tokens",
        type=int,
        default=1_048_576,
        help="tokens one request may embed; more get 413 (default: %(default)s)",
    )
    serve_p.add_argument(
        "--limit-concurrency",
        type=int,
        default=1024,
        help="open connections; more are closed on accept (default: %(default)s)",
    )
    serve_p.add_argument(
        "--max-connections-per-client",
        type=int,
        default=64,
        help="open connections from one client address; more are closed on accept; behind a reverse proxy, "
        "set it to --limit-concurrency (default: %(default)s)",
    )
    serve_p.add_argument(
        "--timeout-keep-alive",
        type=int,
        default=5,
        help="seconds an idle keep-alive connection stays open (default: %(default)s)",
    )
    serve_p.add_argument(
        "--timeout-request-head",
        type=float,
        default=10.0,
        help="seconds a client may take to send a request's line and headers; then 408 (if it sent part of one) "
        "and the connection is closed (default: %(default)s)",
    )
    serve_p.add_argument(
        "--timeout-request-read",
        type=float,
        default=30.0,
        help="seconds a client may take to send a request's body once its headers came; then 408 "
        "(default: %(default)s)",
    )
    add_index_parser(sub)

    mcp_p = command(
        "mcp",
        "serve E2Rank search over a Chroma collection, and reranking, as MCP tools for agent hosts",
        _epilog(
            "mcp,chroma,model",
            """
            e2rank mcp --chroma-dir ./chroma-db --collection docs      # the model the collection names
            e2rank mcp --chroma-dir ./chroma-db --model tiny-random --writable
            e2rank mcp --chroma-host localhost --chroma-port 8000 --server-url http://gpu-box:8000 \\
                --api-key-env E2RANK_API_KEY --transport streamable-http --port 8765
            """,
            """
            tools: search(query, top_n?, k?, where?), rerank(query, documents, top_n?), collection_info(),
              add_documents(documents, ids?, metadatas?) (with --writable only).
            logs go to stderr; with --transport stdio, stdout carries the protocol.
            with --server-url, the `client` extra replaces `model`.
            """,
        ),
    )
    source = mcp_p.add_mutually_exclusive_group()
    source.add_argument(
        "--model",
        default=None,
        help=f"hub id, local directory or '{TINY_RANDOM}' (default: the model the collection's configuration names)",
    )
    source.add_argument(
        "--server-url", default=None, help="use the model of this `e2rank serve` instead of a local one (default: none)"
    )
    mcp_p.add_argument(
        "--api-key-env", default=None, help="environment variable holding --server-url's API key (default: none)"
    )
    store = mcp_p.add_mutually_exclusive_group(required=True)
    store.add_argument(
        "--chroma-dir", default=None, help="directory of a persistent Chroma database, which must exist (default: none)"
    )
    store.add_argument(
        "--chroma-host", default=None, help="host of a Chroma server (`chroma run`) instead (default: none)"
    )
    mcp_p.add_argument("--chroma-port", type=int, default=8000, help="port of the Chroma server (default: %(default)s)")
    mcp_p.add_argument("--collection", default=None, help="collection to serve (default: the database's only one)")
    mcp_p.add_argument(
        "--transport",
        choices=["stdio", "streamable-http"],
        default="stdio",
        help="MCP transport (default: %(default)s)",
    )
    mcp_p.add_argument("--host", default="127.0.0.1", help="streamable-http address (default: %(default)s)")
    mcp_p.add_argument("--port", type=int, default=8765, help="streamable-http port (default: %(default)s)")
    access = mcp_p.add_mutually_exclusive_group()
    access.add_argument(
        "--read-only", dest="writable", action="store_false", help="refuse add_documents (default: read-only)"
    )
    access.add_argument(
        "--writable", dest="writable", action="store_true", help="let add_documents add passages (default: off)"
    )
    mcp_p.set_defaults(writable=False)
    mcp_p.add_argument(
        "--default-k", type=int, default=50, help="candidates a search reranks by default (default: %(default)s)"
    )
    mcp_p.add_argument(
        "--default-top-n", type=int, default=5, help="results a search returns by default (default: %(default)s)"
    )
    mcp_p.add_argument(
        "--max-top-n", type=int, default=50, help="most results one call may ask for (default: %(default)s)"
    )
    mcp_p.add_argument(
        "--max-tokens", type=int, default=4000, help="token budget of search's context (default: %(default)s)"
    )
    mcp_p.add_argument("--device", default=None, help="cuda, cpu, cuda:1... (default: cuda when available, else cpu)")
    mcp_p.add_argument("--cache", default=None, help="SQLite file that keeps embeddings across runs (default: none)")
    add_train_parser(sub)
    return parser


def add_index_parser(sub: Any) -> None:
    """The ``e2rank index`` subcommand's options (its logic lives in :mod:`e2rank_integrations.indexing`)."""
    index_p = sub.add_parser(
        "index",
        help="embed a large corpus (JSON lines or Parquet) into Chroma or Parquet, resumably",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Embed every record of a corpus with embed_documents and write it to a Chroma collection or to Parquet "
            "part files. Streams the input; a rerun skips the ids already written, so a killed job resumes where it "
            "stopped. Embeds in this process (--model), through running `e2rank serve` servers (--server-url), or "
            "on Ray (--ray)."
        ),
        epilog=_epilog(
            "model,parquet",
            """
            e2rank index --model Alibaba-NLP/E2Rank-0.6B --input corpus.jsonl --output vectors.parquet
            e2rank index --input corpus.parquet --chroma-dir ./db --collection docs \\
                --server-url http://gpu1:8000,http://gpu2:8000
            e2rank index --input corpus.parquet --output vectors.parquet --ray --ray-address auto --actors 8 \\
                --gpus-per-actor 1
            """,
            """
            extras by use: model (embedding here), chroma (--collection), parquet (Parquet input or --output),
              client (--server-url), ray (--ray; includes pyarrow).
            input: JSON lines (.jsonl, .jsonl.gz, .ndjson) or Parquet, a file or a directory of them, one record each:
              {"id": "doc-1", "text": "Paris is the capital of France.", "title": "Paris", "lang": "en"}
            output: Chroma records (id, document, metadata, vector), or Parquet part files with the columns
              id, text, metadata (a JSON string), vector (a fixed-size list of float32).
            """,
        ),
    )
    source = index_p.add_argument_group("input")
    source.add_argument(
        "--input",
        required=True,
        help="a .jsonl, .jsonl.gz, .ndjson or .parquet file, or a directory of them (required)",
    )
    source.add_argument("--id-field", default="id", help="field holding each record's unique id (default: id)")
    source.add_argument("--text-field", default="text", help="field holding the text to embed (default: text)")
    source.add_argument(
        "--title-field", default=None, help="optional field embedded before the text as 'title text' (default: none)"
    )
    source.add_argument(
        "--metadata-fields", default=None, help="comma-separated fields stored as metadata (default: none)"
    )
    target = index_p.add_argument_group("output (one of --output or --collection)")
    target.add_argument("--output", default=None, help="Parquet output: a directory of part files (default: none)")
    target.add_argument("--collection", default=None, help="Chroma collection to create or extend (default: none)")
    target.add_argument("--chroma-dir", default=None, help="embedded Chroma database directory (default: none)")
    target.add_argument(
        "--chroma-host", default=None, help="host of a Chroma server, instead of --chroma-dir (default: none)"
    )
    target.add_argument("--chroma-port", type=int, default=8000, help="port of the Chroma server (default: 8000)")
    embedding = index_p.add_argument_group("embedding")
    embedding.add_argument(
        "--model",
        default=default_model(),
        help=f"hub id, local directory, or '{TINY_RANDOM}' (default: $E2RANK_MODEL or Alibaba-NLP/E2Rank-0.6B)",
    )
    embedding.add_argument("--device", default=None, help="cuda, cpu, cuda:1... (default: cuda when available)")
    embedding.add_argument("--dtype", default=None, help="bfloat16, float16 or float32 (default: bf16 on GPU)")
    embedding.add_argument(
        "--batch-size", type=int, default=1024, help="texts embedded and written together (default: 1024)"
    )
    embedding.add_argument(
        "--max-batch-tokens",
        type=int,
        default=None,
        help="tokens per forward pass, padding included (default: the model's, 16384 on GPU, 1024 on CPU)",
    )
    embedding.add_argument("--cache", default=None, help="SQLite embedding cache file to fill (default: no cache)")
    embedding.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown on a terminal)")
    servers = index_p.add_argument_group("servers (extra: client)")
    servers.add_argument(
        "--server-url",
        default=None,
        help="comma-separated `e2rank serve` URLs, used round-robin; API key from $E2RANK_API_KEY (default: none)",
    )
    servers.add_argument(
        "--concurrency", type=int, default=None, help="batches in flight with --server-url (default: 2 per server)"
    )
    servers.add_argument("--timeout", type=float, default=300.0, help="seconds per server request (default: 300)")
    ray_g = index_p.add_argument_group("Ray (extra: ray)")
    ray_g.add_argument("--ray", action="store_true", help="embed on Ray Data with an actor pool (default: off)")
    ray_g.add_argument(
        "--ray-address", default=None, help="Ray cluster address, e.g. auto (default: start a local Ray)"
    )
    ray_g.add_argument("--actors", type=int, default=1, help="model actors: one per GPU, or N on CPUs (default: 1)")
    ray_g.add_argument("--gpus-per-actor", type=float, default=0.0, help="GPUs each actor reserves (default: 0)")
    ray_g.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs each actor reserves (default: 1)")


def add_train_parser(sub: Any) -> None:
    """The ``train`` subcommand; its options are :class:`~e2rank_integrations.training.TrainConfig`'s fields."""
    from .training.config import PROMPT_FORMATS, TrainConfig

    d = TrainConfig(model="", data="", output="")
    train_p = sub.add_parser(
        "train",
        help="fine-tune an embedding model into an E2Rank reranker (needs the `train` extra)",
        description=(
            "Fine-tune an embedding model with E2Rank's objective (InfoNCE + RankNet over cosine similarity). "
            "The defaults are the authors'."
        ),
        epilog=_epilog(
            "train",
            """
            e2rank train --model Alibaba-NLP/E2Rank-0.6B --data train.jsonl --output my-reranker \\
                --bf16 --gradient-checkpointing --eval-data dev.jsonl
            several GPUs (the same options):
            torchrun --nproc-per-node 8 -m e2rank_integrations.training --model ... --data ... --output ...
            """,
            """
            input (--data, --eval-data), one slate per line:
              {"query": "...", "document": ["passage", ...], "ranking": [2, 0, 1], "source": "msmarco"}
              ranking: indices into document, best first; source (optional) picks the task's instructions.
            output: --output loads with E2RankModel.from_pretrained (LoRA merged), with a model card README.md.
            """,
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = train_p.add_argument
    add("--model", required=True, help="base model: hub id or local directory of an embedding model (required)")
    add("--data", required=True, help="training JSON lines, one slate per line (required)")
    add("--output", required=True, help="directory for checkpoints and the trained model (required)")
    add("--epochs", type=float, default=d.epochs, help=f"passes over the data (default: {d.epochs:g})")
    add("--max-steps", type=int, default=d.max_steps, help="stop after this many optimizer steps (default: --epochs)")
    add("--lr", type=float, default=d.lr, help=f"peak learning rate, linear schedule (default: {d.lr:g})")
    add(
        "--warmup-ratio",
        type=float,
        default=d.warmup_ratio,
        help=f"share of steps warming up (default: {d.warmup_ratio:g})",
    )
    add("--batch-size", type=int, default=d.batch_size, help=f"slates per device per step (default: {d.batch_size})")
    add("--grad-accum", type=int, default=d.grad_accum, help=f"steps per optimizer update (default: {d.grad_accum})")
    add("--temperature", type=float, default=d.temperature, help=f"InfoNCE temperature (default: {d.temperature:g})")
    add(
        "--embedding-weight",
        type=float,
        default=d.embedding_weight,
        help=f"InfoNCE weight (default: {d.embedding_weight:g})",
    )
    add(
        "--ranknet-weight", type=float, default=d.ranknet_weight, help=f"RankNet weight (default: {d.ranknet_weight:g})"
    )
    add(
        "--ranknet-scale",
        type=float,
        default=d.ranknet_scale,
        help=f"cosine scale in RankNet (default: {d.ranknet_scale:g})",
    )
    add(
        "--negatives-cross-device",
        action="store_true",
        help="use every GPU's passages as InfoNCE negatives (default: off; needs slates of one length)",
    )
    add(
        "--num-prompt-docs",
        type=int,
        default=d.num_prompt_docs,
        help=f"passages in a listwise prompt (default: {d.num_prompt_docs})",
    )
    add(
        "--max-query-tokens",
        type=int,
        default=d.max_query_tokens,
        help=f"longest query (default: {d.max_query_tokens})",
    )
    add("--max-doc-tokens", type=int, default=d.max_doc_tokens, help=f"longest passage (default: {d.max_doc_tokens})")
    add(
        "--max-prompt-tokens",
        type=int,
        default=d.max_prompt_tokens,
        help=f"prompt token budget (default: {d.max_prompt_tokens})",
    )
    add(
        "--prompt-format",
        choices=list(PROMPT_FORMATS),
        default=d.prompt_format,
        help=f"listwise prompt: E2RankModel's inference one, or the authors' training one (default: {d.prompt_format})",
    )
    add(
        "--lora-r",
        type=int,
        default=d.lora_r,
        help="train LoRA adapters of this rank, merged at the end (default: all weights)",
    )
    add("--lora-alpha", type=int, default=d.lora_alpha, help="LoRA alpha (default: 2 x --lora-r)")
    add("--bf16", action="store_true", help="bfloat16 mixed precision (default: off)")
    add("--gradient-checkpointing", action="store_true", help="recompute activations to save memory (default: off)")
    add(
        "--eval-data",
        default=d.eval_data,
        help="held-out JSON lines: nDCG@10 before and after training (default: none)",
    )
    add("--resume", action="store_true", help="continue from the last checkpoint in --output (default: off)")
    add("--save-steps", type=int, default=d.save_steps, help=f"checkpoint every N steps (default: {d.save_steps})")
    add(
        "--logging-steps",
        type=int,
        default=d.logging_steps,
        help=f"log losses every N steps (default: {d.logging_steps})",
    )
    add("--seed", type=int, default=d.seed, help=f"seed of batches and data order (default: {d.seed})")
    add(
        "--hf-arg",
        dest="hf_args",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any transformers.TrainingArguments field, repeatable, e.g. --hf-arg deepspeed=ds.json (default: none)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``e2rank`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    if not sys.stderr.isatty():  # download and loading bars are noise in logs and pipes
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        if args.command == "demo":
            for name in ("top_k", "show"):
                if getattr(args, name) < 1:
                    raise CLIError(f"--{name.replace('_', '-')} must be >= 1")
            return run_demo(args, sys.stdout)
        if args.command == "embed":
            return run_embed(args, sys.stdin, sys.stdout)
        if args.command == "eval":
            return run_eval(args, sys.stdout)
        if args.command == "serve":
            return run_serve(args)
        if args.command == "index":
            from .errors import E2RankError
            from .indexing import run_index

            try:
                return run_index(args, sys.stdout, load_model)
            except (E2RankError, ValueError, OSError) as exc:
                raise CLIError(str(exc)) from exc
        if args.command == "mcp":
            return run_mcp(args)
        if args.command == "train":
            return run_train(args)
        return run_rerank(args, sys.stdin, sys.stdout)
    except CLIError as exc:
        print(f"e2rank {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"e2rank {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
