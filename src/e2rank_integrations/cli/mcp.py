"""``e2rank mcp``: E2Rank search over a Chroma collection, and reranking, as MCP tools; options are MCPSettings'."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..loading import TINY_RANDOM
from ..settings import LOCAL_HOST, MCP_PORT, MCPSettings
from ._common import api_key, command, defaults, epilog, port


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
              add_documents(documents, ids?, metadatas?) (listed with --writable only).
            streamable-http beyond loopback needs --api-key (or $E2RANK_API_KEY).
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
    add("--chroma-port", type=port, default=d["chroma_port"], help="port of the Chroma server (default: %(default)s)")
    add("--collection", default=d["collection"], help="collection to serve (default: the database's only one)")
    add(
        "--transport",
        choices=["stdio", "streamable-http"],
        default="stdio",
        help="MCP transport (default: %(default)s)",
    )
    add("--host", default=LOCAL_HOST, help="streamable-http address (default: %(default)s)")
    add("--port", type=port, default=MCP_PORT, help="streamable-http port (default: %(default)s)")
    add(
        "--api-key",
        default=None,
        help="streamable-http: require 'Authorization: Bearer KEY', needed beyond loopback "
        "(default: $E2RANK_API_KEY; none when unset)",
    )
    add(
        "--allowed-host",
        dest="allowed_hosts",
        action="append",
        default=[],
        metavar="NAME",
        help="streamable-http: a Host name clients may use besides loopback, --host and this machine's name; "
        "repeatable (default: none)",
    )
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
    add("--max-k", type=int, default=d["max_k"], help="most candidates one search may ask for (default: %(default)s)")
    add(
        "--max-tokens",
        type=int,
        default=d["max_tokens"],
        help="token budget of what search and rerank hand the model (default: %(default)s)",
    )
    add("--device", default=d["device"], help="cuda, cpu, cuda:1... (default: cuda when available, else cpu)")
    add("--cache", default=d["cache"], help="SQLite file that keeps embeddings across runs (default: none)")
    add(
        "--dtype",
        default=d["dtype"],
        help="bfloat16, float16 or float32 (default: bfloat16 on a GPU, float32 on a CPU)",
    )
    add("--quantize", default=d["quantize"], help="int8: dynamic int8 linear layers, faster on a CPU (default: none)")
    add(
        "--num-prompt-docs",
        type=int,
        default=d["num_prompt_docs"],
        help="passages in the listwise prompt; the paper's is 20, slower on a CPU (default: %(default)s)",
    )
    add(
        "--max-prompt-tokens",
        type=_prompt_cap,
        default=d["max_prompt_tokens"],
        help="token cap of the listwise prompt, its passages cut evenly; 0: none (default: %(default)s)",
    )


def _prompt_cap(text: str) -> int | None:
    """``--max-prompt-tokens``: 0 is no cap (``None``); other values are checked by MCPSettings."""
    value = int(text)
    return None if value == 0 else value


def run(args: argparse.Namespace) -> int:
    """Serve search and rerank as MCP tools until the host disconnects (the logic is in ``mcp.py``)."""
    settings = MCPSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(MCPSettings)})
    settings.check_installed()  # before `mcp.py`, which needs the mcp extra to import, names one extra only
    from .. import mcp

    key = api_key(args.api_key)
    return mcp.run(
        settings, args.transport, host=args.host, port=args.port, api_key=key, allowed_hosts=args.allowed_hosts
    )
