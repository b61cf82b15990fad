"""One `search` call in process against the same call through `e2rank mcp` (stdio and streamable HTTP).

The in-process baseline runs the very code the tool runs (`E2RankTools.search`: Chroma query for k candidates
with their stored vectors, the E2Rank rerank on them, the packed context); the MCP cases add the protocol, the
JSON encoding and the transport. Each call asks a new query, so no embedding comes from a cache. The ratio
mcp / in-process is the cost of reaching the model over MCP.

The three ways run in interleaved rounds (one call each per round), so a shared machine's drifting load hits
them alike; the report gives the ratio of the medians and the median of the per-round ratios.

    python benchmarks/mcp_latency.py [--layers 2] [--docs 200] [--repeat 20]   # an E2Rank-0.6B-shaped model
    python benchmarks/mcp_latency.py --tiny --words 30                           # the protocol's own cost

Writes benchmarks/results/mcp_latency.json (mcp_latency_tiny.json with --tiny).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from _common import RESULTS, checkpoint, machine, passages

from e2rank_integrations.checkpoints import tiny_random_checkpoint

QUERY = "Why is it colder in winter than in summer, and what role does the tilt of the Earth play?"
E2RANK = str(Path(sys.executable).parent / "e2rank")


def build_collection(directory: Path, model_path: Path, docs: int, words: int) -> None:
    import chromadb

    from e2rank_integrations.chroma import E2RankEmbeddingFunction

    function = E2RankEmbeddingFunction(model=str(model_path), device="cpu")
    collection = chromadb.PersistentClient(path=str(directory)).create_collection("bench", embedding_function=function)
    texts = passages(docs, words=(words * 4 // 5, words * 6 // 5))
    collection.add(ids=[f"p{i}" for i in range(docs)], documents=texts, metadatas=[{"n": i} for i in range(docs)])


def queries() -> Any:
    """A new query for every call: the query and the prompt are always embedded, never read from a cache."""
    n = 0
    while True:
        n += 1
        yield f"{QUERY} ({n})"


def in_process_tools(directory: Path) -> Any:
    from e2rank_integrations.mcp import E2RankTools, MCPSettings

    tools = E2RankTools(MCPSettings(chroma_dir=str(directory), device="cpu"))
    tools.load()
    return tools


async def ready(session: Any) -> Any:
    for _ in range(2400):  # the model loads after the handshake; the tools say "still loading" until then
        if not (await session.call_tool("collection_info", {})).is_error:
            return session
        await asyncio.sleep(0.5)
    raise RuntimeError("e2rank mcp never became ready")


async def stdio_session(stack: AsyncExitStack, directory: Path) -> Any:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=E2RANK, args=["mcp", "--chroma-dir", str(directory), "--device", "cpu"], env=dict(os.environ)
    )
    quiet = stack.enter_context(open(os.devnull, "w"))  # noqa: SIM115 (closed by the stack)
    read, write = await stack.enter_async_context(stdio_client(params, errlog=quiet))
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


async def http_session(stack: AsyncExitStack, directory: Path) -> Any:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [E2RANK, "mcp", "--chroma-dir", str(directory), "--device", "cpu"]
    command += ["--transport", "streamable-http", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.callback(process.wait, 30)
    stack.callback(process.terminate)
    for _ in range(2400):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        await asyncio.sleep(0.25)
    read, write = await stack.enter_async_context(streamable_http_client(f"http://127.0.0.1:{port}/mcp"))
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


async def measure(directory: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    """Rounds of one call per way, interleaved, so that the machine's load drifts alike for all three."""
    tools = in_process_tools(directory)
    async with AsyncExitStack() as stack:
        sessions = {
            "stdio": await ready(await stdio_session(stack, directory)),
            "streamable_http": await ready(await http_session(stack, directory)),
        }
        asked = queries()
        times: dict[str, list[float]] = {"in_process": [], **{name: [] for name in sessions}}
        for run in range(args.repeat + 1):  # round 0 warms up
            start = time.perf_counter()
            tools.search(next(asked), top_n=args.top_n, k=args.k)
            elapsed = {"in_process": time.perf_counter() - start}
            for name, session in sessions.items():
                arguments = {"query": next(asked), "top_n": args.top_n, "k": args.k}
                start = time.perf_counter()
                result = await session.call_tool("search", arguments)
                elapsed[name] = time.perf_counter() - start
                if result.is_error:
                    raise RuntimeError(result.content[0].text)
            if run:
                for name, seconds in elapsed.items():
                    times[name].append(seconds)
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=2, help="layers of the E2Rank-0.6B-shaped random checkpoint")
    parser.add_argument("--tiny", action="store_true", help="the tiny test checkpoint instead: protocol cost dominates")
    parser.add_argument("--docs", type=int, default=200, help="passages in the collection")
    parser.add_argument("--words", type=int, default=150, help="words per passage, about (BEIR-like: 150)")
    parser.add_argument("--k", type=int, default=50, help="candidates per search")
    parser.add_argument("--top-n", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    model_path = tiny_random_checkpoint() if args.tiny else checkpoint(args.layers)
    with tempfile.TemporaryDirectory(prefix="mcp-bench-") as tmp:
        directory = Path(tmp) / "chroma"
        directory.mkdir()
        build_collection(directory, model_path, args.docs, args.words)
        times = asyncio.run(measure(directory, args))
    results = {name: summary(values) for name, values in times.items()}
    ratios = {}
    for name in ("stdio", "streamable_http"):
        local = times["in_process"]
        paired = [mcp / here for mcp, here in zip(times[name], local)]
        ratios[name] = {
            "of_medians": round(results[name]["median_s"] / results["in_process"]["median_s"], 3),
            "median_of_round_ratios": round(statistics.median(paired), 3),
            "extra_ms_median": round(
                1000 * statistics.median(m - i for m, i in zip(times[name], times["in_process"])), 1
            ),
        }
    report = {
        "machine": machine(),
        "grid": {
            "model": "tiny-random" if args.tiny else f"e2rank-0.6b shape, {args.layers} layers",
            "docs": args.docs,
            "words": args.words,
            "k": args.k,
            "top_n": args.top_n,
            "repeat": args.repeat,
        },
        "date": time.strftime("%Y-%m-%d"),
        "search": results,
        "ratio_vs_in_process": ratios,
    }
    RESULTS.mkdir(exist_ok=True)
    name = "mcp_latency_tiny.json" if args.tiny else "mcp_latency.json"
    (RESULTS / name).write_text(json.dumps(report, indent=2) + "\n")
    for way, result in results.items():
        ratio = ratios.get(way)
        note = (
            f"  {ratio['of_medians']:.2f}x in-process (paired {ratio['median_of_round_ratios']:.2f}x)" if ratio else ""
        )
        print(f"{way:16s} median {result['median_s'] * 1000:9.1f} ms{note}")


def summary(values: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(values), "min_s": min(values), "max_s": max(values), "runs": len(values)}


if __name__ == "__main__":
    main()
