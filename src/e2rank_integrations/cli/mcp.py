"""``e2rank mcp``: E2Rank search over a Chroma collection, and reranking, as MCP tools; options are MCPSettings'."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..checkpoints import TINY_RANDOM
from ..settings import MCPSettings
from ._common import command, defaults, epilog


def add_parser(sub: Any) -> None:
    """The ``mcp`` subcommand's options; each setting's dest and default are its MCPSettings field's."""
    d = defaults(MCPSettings)
    mcp_p = command(
        sub,
        "mcp",
        "serve E2Rank search over a Chroma collection, and reranking, as MCP tools for agent hosts",
        epilog(
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
        default=d["model"],
        help=f"hub id, local directory or '{TINY_RANDOM}' (default: the model the collection's configuration names)",
    )
    source.add_argument(
        "--server-url",
        default=d["server_url"],
        help="use the model of this `e2rank serve` instead of a local one (default: none)",
    )
    mcp_p.add_argument(
        "--api-key-env",
        default=d["api_key_env"],
        help="environment variable holding --server-url's API key (default: none)",
    )
    store = mcp_p.add_mutually_exclusive_group(required=True)
    store.add_argument(
        "--chroma-dir",
        default=d["chroma_dir"],
        help="directory of a persistent Chroma database, which must exist (default: none)",
    )
    store.add_argument(
        "--chroma-host", default=d["chroma_host"], help="host of a Chroma server (`chroma run`) instead (default: none)"
    )
    add = mcp_p.add_argument
    add("--chroma-port", type=int, default=d["chroma_port"], help="port of the Chroma server (default: %(default)s)")
    add("--collection", default=d["collection"], help="collection to serve (default: the database's only one)")
    add(
        "--transport",
        choices=["stdio", "streamable-http"],
        default="stdio",
        help="MCP transport (default: %(default)s)",
    )
    add("--host", default="127.0.0.1", help="streamable-http address (default: %(default)s)")
    add("--port", type=int, default=8765, help="streamable-http port (default: %(default)s)")
    access = mcp_p.add_mutually_exclusive_group()
    access.add_argument(
        "--read-only", dest="writable", action="store_false", help="refuse add_documents (default: read-only)"
    )
    access.add_argument(
        "--writable", dest="writable", action="store_true", help="let add_documents add passages (default: off)"
    )
    mcp_p.set_defaults(writable=d["writable"])
    add(
        "--default-k",
        type=int,
        default=d["default_k"],
        help="candidates a search reranks by default (default: %(default)s)",
    )
    add(
        "--default-top-n",
        type=int,
        default=d["default_top_n"],
        help="results a search returns by default (default: %(default)s)",
    )
    add(
        "--max-top-n", type=int, default=d["max_top_n"], help="most results one call may ask for (default: %(default)s)"
    )
    add(
        "--max-tokens",
        type=int,
        default=d["max_tokens"],
        help="token budget of search's context (default: %(default)s)",
    )
    add("--device", default=d["device"], help="cuda, cpu, cuda:1... (default: cuda when available, else cpu)")
    add("--cache", default=d["cache"], help="SQLite file that keeps embeddings across runs (default: none)")


def run(args: argparse.Namespace) -> int:
    """Serve search and rerank as MCP tools until the host disconnects (the logic is in ``mcp.py``)."""
    settings = MCPSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(MCPSettings)})
    from .. import mcp

    return mcp.run(settings, args.transport, host=args.host, port=args.port)
