"""``e2rank serve``: the model over HTTP (OpenAI, Cohere/Jina and TEI protocols); options are ServerSettings'."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

from .._optional import check_extras
from ..settings import LOCAL_HOST, SERVE_PORT, ServerSettings
from ._common import api_key, command, default_model, defaults, epilog, load_model, model_options, port


def add_parser(sub: Any) -> None:
    """The ``serve`` subcommand's options; each server limit's dest and default are its ServerSettings field's."""
    d = defaults(ServerSettings)
    serve_p = command(
        sub,
        "serve",
        "serve the model over HTTP (OpenAI, Cohere/Jina and TEI protocols)",
        epilog(
            "model,server",
            """
            e2rank serve --model Alibaba-NLP/E2Rank-0.6B --port 8000
            E2RANK_API_KEY=secret e2rank serve --model tiny-random --host 0.0.0.0
            curl localhost:8000/v1/rerank -H 'Content-Type: application/json' \\
                -d '{"query": "capital of France?", "documents": ["Lyon is big.", "Paris is the capital."]}'
            """,
        ),
    )
    model_options(serve_p, default_model())
    add = serve_p.add_argument
    add("--dtype", default=None, help="bfloat16, float16 or float32 (default: bfloat16 on a GPU, float32 on a CPU)")
    add("--host", default=LOCAL_HOST, help="address to listen on (default: %(default)s)")
    add("--port", type=port, default=SERVE_PORT, help="port to listen on (default: %(default)s)")
    add(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' (default: $E2RANK_API_KEY; none when unset)",
    )
    add("--model-id", default=d["model_id"], help="model name shown to clients (default: --model)")
    add(
        "--max-batch-tokens",
        type=int,
        default=d["max_batch_tokens"],
        help="tokens of queued requests merged into one micro-batch (default: %(default)s)",
    )
    add(
        "--max-client-batch-size",
        type=int,
        default=d["max_client_batch_size"],
        help="texts per request; more get 413 (default: %(default)s)",
    )
    add(
        "--max-concurrent-requests",
        type=int,
        default=d["max_concurrent_requests"],
        help="requests in flight; more get 429 (default: %(default)s)",
    )
    add(
        "--payload-limit-mb",
        type=float,
        default=d["payload_limit_mb"],
        help="largest body in MiB; larger get 413 (default: %(default)s)",
    )
    add(
        "--no-batching",
        dest="batching",
        action="store_false",
        default=d["batching"],
        help="run each request alone, for comparisons (default: off)",
    )
    add(
        "--raw-embeddings",
        action="store_true",
        default=d["raw_embeddings"],
        help="embed untyped /v1/embeddings inputs as sent, like vLLM (default: off: as documents)",
    )
    add(
        "--drain-timeout",
        dest="drain_timeout_s",
        metavar="DRAIN_TIMEOUT",
        type=float,
        default=d["drain_timeout_s"],
        help="on SIGTERM, seconds to let requests in flight finish (default: %(default)s)",
    )
    add(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log level (default: %(default)s)",
    )
    add(
        "--allow-token-ids",
        action="store_true",
        default=d["allow_token_ids"],
        help="embed bare token ids sent to /v1/embeddings as this model's ids (default: off: refused with 400, "
        "since LangChain's OpenAIEmbeddings sends tiktoken ids unless check_embedding_ctx_length=False)",
    )
    # Abuse limits (docs/deployment.md says what each bounds and what is left to a reverse proxy).
    add(
        "--max-request-tokens",
        type=int,
        default=d["max_request_tokens"],
        help="tokens one request may embed; more get 413 (default: %(default)s)",
    )
    add(
        "--limit-concurrency",
        type=int,
        default=d["limit_concurrency"],
        help="open connections; more are closed on accept (default: %(default)s)",
    )
    add(
        "--max-connections-per-client",
        type=int,
        default=d["max_connections_per_client"],
        help="open connections from one client address; more are closed on accept; behind a reverse proxy, "
        "set it to --limit-concurrency (default: %(default)s)",
    )
    add(
        "--timeout-keep-alive",
        dest="timeout_keep_alive_s",
        metavar="TIMEOUT_KEEP_ALIVE",
        type=int,
        default=d["timeout_keep_alive_s"],
        help="seconds an idle keep-alive connection stays open (default: %(default)s)",
    )
    add(
        "--timeout-request-head",
        dest="request_head_timeout_s",
        metavar="TIMEOUT_REQUEST_HEAD",
        type=float,
        default=d["request_head_timeout_s"],
        help="seconds a client may take to send a request's line and headers; then 408 (if it sent part of one) "
        "and the connection is closed (default: %(default)s)",
    )
    add(
        "--timeout-request-read",
        dest="request_read_timeout_s",
        metavar="TIMEOUT_REQUEST_READ",
        type=float,
        default=d["request_read_timeout_s"],
        help="seconds a client may take to send a request's body once its headers came; then 408 "
        "(default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    """Serve the model over HTTP until SIGINT, or SIGTERM and a drain; the port opens while the model loads."""
    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(ServerSettings) if hasattr(args, f.name)}
    settings = ServerSettings(**{**options, "api_key": api_key(args.api_key)})
    check_extras(["model", "server"], "`e2rank serve`")  # the model loads after the port opens: check it first
    from ..loading import default_device
    from ..server.runner import serve

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
