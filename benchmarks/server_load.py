"""Load test of ``e2rank serve``: requests/s and p50/p99 latency, dynamic batching on and off, one case per process.

Cases:
  load       a fresh ``e2rank serve`` (``--no-batching`` for the baseline) under `--clients` concurrent clients:
             `embed` sends 32 new texts per request (no cache hits: every request computes), `rerank` sends 100
             candidates indexed beforehand and a new query (so each request embeds its listwise prompt only);
             `mixed` sends, of every 8 requests, 3 one-text queries, 2 embeds, 2 reranks and 1 bulk embed of 128
             new texts, and reports p50, p99 and max for each kind (`--tiny`: the tiny-random checkpoint)
  inprocess  the same 32-text embeds through ``E2RankModel`` in this process (the HTTP overhead's baseline)

The server's peak RSS is reported as `server_peak_rss_mb`.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import case_main, checkpoint, passages

E2RANK = [sys.executable, "-m", "e2rank_integrations.cli"]  # the `e2rank` command, also where it is not installed


def embed_texts(seed: int) -> list[str]:
    """32 short passages no other request sends (the cache never answers)."""
    return [f"[{seed}-{i}] {p}" for i, p in enumerate(passages(32, seed=seed, words=(20, 40)))]


def rerank_body(seed: int, docs: list[str]) -> dict[str, Any]:
    return {"query": f"What do these passages say about topic {seed}?", "documents": docs, "top_n": 10}


MIXED = ["query", "query", "query", "embed", "embed", "rerank", "rerank", "bulk"]  # by seed, in turn


def request(scenario: str, seed: int, docs: list[str]) -> tuple[str, str, dict[str, Any]]:
    """(kind, path, body) of request number `seed`."""
    kind = MIXED[seed % len(MIXED)] if scenario == "mixed" else scenario
    if kind == "query":
        return kind, "/v1/embeddings", {"input": [f"What is topic {seed} about?"], "input_type": "query"}
    if kind == "bulk":
        texts = [t for i in range(4) for t in embed_texts(seed * 100 + i)]  # 128 new texts
        return kind, "/v1/embeddings", {"input": texts, "encoding_format": "base64"}
    if kind == "embed":
        return kind, "/v1/embeddings", {"input": embed_texts(seed), "encoding_format": "base64"}
    return kind, "/v1/rerank", rerank_body(seed, docs)


def summary(latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "p50_s": statistics.median(ordered),
        "p99_s": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "max_s": ordered[-1],
    }


def serve(path: Path, batching: bool, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [*E2RANK, "serve", "--model", str(path), "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen([*command, *flags, *([] if batching else ["--no-batching"])])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


async def drive(url: str, scenario: str, clients: int, requests: int, docs: list[str]) -> dict[str, Any]:
    import httpx

    latencies: dict[str, list[float]] = {}
    seeds = iter(range(1, requests + 1))  # shared: the clients take the requests between them
    limits = httpx.Limits(max_connections=clients)  # one connection per client, as separate clients would have
    async with httpx.AsyncClient(base_url=url, timeout=900, limits=limits) as http:

        async def client() -> None:
            for seed in seeds:
                kind, path, body = request(scenario, seed, docs)
                start = time.perf_counter()
                response = await http.post(path, json=body)
                latencies.setdefault(kind, []).append(time.perf_counter() - start)
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    every = [latency for kind in latencies.values() for latency in kind]
    result = {**summary(every), "requests_per_s": len(every) / elapsed}
    if scenario == "mixed":
        result["kinds"] = {kind: summary(values) for kind, values in sorted(latencies.items())}
    return result


def case_load(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    if args.tiny:
        from e2rank_integrations.checkpoints import tiny_random_checkpoint

        path = tiny_random_checkpoint()
    else:
        path = checkpoint(args.layers)
    process, url = serve(path, batching=args.batching == "on")
    try:
        docs = passages(100, seed=7, words=(30, 50))
        # Warm-up: one request of each shape; for rerank it also indexes the candidates (the E2Rank use case).
        httpx.post(url + "/v1/embeddings", json={"input": embed_texts(10**6)}, timeout=900).raise_for_status()
        if args.scenario in ("rerank", "mixed"):
            httpx.post(url + "/v1/embeddings", json={"input": docs}, timeout=900).raise_for_status()
            httpx.post(url + "/v1/rerank", json=rerank_body(10**6, docs), timeout=900).raise_for_status()
        result = asyncio.run(drive(url, args.scenario, args.clients, args.requests, docs))
    finally:
        process.terminate()
        process.wait(120)
    result["server_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    return result


def case_inprocess(args: argparse.Namespace) -> dict[str, Any]:
    from e2rank_integrations import E2RankModel

    model = E2RankModel.from_pretrained(checkpoint(args.layers))
    model.embed_documents(embed_texts(10**6))
    latencies = []
    for seed in range(1, args.requests + 1):
        texts = embed_texts(seed)
        start = time.perf_counter()
        model.embed_documents(texts)
        latencies.append(time.perf_counter() - start)
    return {"requests": len(latencies), "p50_s": statistics.median(latencies)}


CASES = {"load": case_load, "inprocess": case_inprocess}


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", choices=["embed", "rerank", "mixed"], default="embed")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--batching", choices=["on", "off"], default="on")
    parser.add_argument("--requests", type=int, default=8, help="requests in all, shared by the clients")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="serve the tiny-random checkpoint instead")


if __name__ == "__main__":
    case_main(CASES, add_args)
