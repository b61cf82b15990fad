"""What an agent pays per `e2rank mcp` call: tokens its model reads, and seconds with and without an open session.

1. Tokens: the text content of `search` and `rerank` (what langchain-mcp-adapters and `langchain.mcp` hand the
   model) at `--max-tokens 500`, top_n 2..20, counted with the model's tokenizer.
2. Seconds per `search` call through `langchain.mcp.MCPAdapter` over stdio: a server per call (fastmcp's
   `StdioTransport(keep_alive=False)`, no open session) against one session held open.

    python benchmarks/mcp_clients.py    # tiny-random, the built-in corpus; needs fastmcp and langchain>=1.4

Prints the numbers docs/mcp.md quotes.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import chromadb
from mcp import Client

from e2rank_integrations.checkpoints import tiny_random_checkpoint
from e2rank_integrations.chroma import E2RankEmbeddingFunction
from e2rank_integrations.corpus import builtin_corpus
from e2rank_integrations.mcp import E2RankTools, MCPSettings, create_server

QUERY = "Why is it colder in winter than in summer?"
E2RANK = str(Path(sys.executable).parent / "e2rank")


async def tokens(directory: str, model) -> None:
    texts = [passage["text"] for passage in builtin_corpus()]
    tools = E2RankTools(MCPSettings(chroma_dir=directory, max_tokens=500))
    tools.load()
    async with Client(create_server(tools, load_on_start=False)) as client:
        for top_n in (2, 5, 10, 20):
            counts = []
            for name, arguments in (("search", {}), ("rerank", {"documents": texts[:top_n]})):
                result = await client.call_tool(name, {"query": QUERY, "top_n": top_n, **arguments})
                counts.append(model.count_tokens(["\n".join(block.text for block in result.content)])[0])
            print(f"top_n={top_n}: search text content {counts[0]} tokens, rerank {counts[1]} tokens (budget 500)")


async def seconds(directory: str) -> None:
    from fastmcp.client.transports import StdioTransport
    from langchain.mcp import MCPAdapter

    call = {"name": "search", "args": {"query": QUERY, "top_n": 5}, "id": "call", "type": "tool_call"}

    def transport(keep_alive: bool) -> StdioTransport:
        arguments = ["mcp", "--chroma-dir", directory]
        return StdioTransport(E2RANK, arguments, env=dict(os.environ), keep_alive=keep_alive, log_file=Path(os.devnull))

    per_call = []
    tools = {tool.name: tool for tool in await MCPAdapter(transport(False)).list_tools()}
    for _ in range(3):
        start = time.perf_counter()
        await tools["search"].ainvoke(call)  # starts (and stops) a server of its own
        per_call.append(time.perf_counter() - start)
    held = []
    async with MCPAdapter(transport(True)) as adapter:  # one server for every call
        tools = {tool.name: tool for tool in await adapter.list_tools()}
        await tools["search"].ainvoke(call)  # waits for the model to load
        for _ in range(10):
            start = time.perf_counter()
            await tools["search"].ainvoke(call)
            held.append(time.perf_counter() - start)
    print(f"a server per call: median {statistics.median(per_call):.1f} s ({', '.join(f'{s:.1f}' for s in per_call)})")
    low, high = min(held) * 1000, max(held) * 1000
    print(f"one open session: median {statistics.median(held) * 1000:.0f} ms ({low:.0f}-{high:.0f})")


def main() -> None:
    warnings.simplefilter("ignore")  # langchain.mcp is in beta and says so
    directory = tempfile.mkdtemp()
    function = E2RankEmbeddingFunction(model=str(tiny_random_checkpoint()))
    collection = chromadb.PersistentClient(path=directory).create_collection("docs", embedding_function=function)
    corpus = builtin_corpus()
    collection.add(ids=[p["id"] for p in corpus], documents=[p["text"] for p in corpus])
    asyncio.run(tokens(directory, function.backend))
    asyncio.run(seconds(directory))


if __name__ == "__main__":
    main()
