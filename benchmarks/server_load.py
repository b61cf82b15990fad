"""Load test of ``e2rank serve``: requests/s and p50/p99 latency, dynamic batching on and off, one case per process.

Cases:
  load       a fresh ``e2rank serve`` (``--no-batching`` for the baseline) under `--clients` concurrent clients:
             `embed` sends 32 new texts per request (no cache hits: every request computes), `rerank` sends 100
             candidates indexed beforehand and a new query (so each request embeds its listwise prompt only)
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

    latencies: list[float] = []
    seeds = iter(range(1, requests + 1))  # shared: the clients take the requests between them
    async with httpx.AsyncClient(base_url=url, timeout=900) as http:

        async def client() -> None:
            for seed in seeds:
                if scenario == "embed":
                    path, body = "/v1/embeddings", {"input": embed_texts(seed), "encoding_format": "base64"}
                else:
                    path, body = "/v1/rerank", rerank_body(seed, docs)
                start = time.perf_counter()
                response = await http.post(path, json=body)
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "requests_per_s": len(ordered) / elapsed,
        "p50_s": statistics.median(ordered),
        "p99_s": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
    }


def case_load(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    process, url = serve(checkpoint(args.layers), batching=args.batching == "on")
    try:
        docs = passages(100, seed=7, words=(30, 50))
        # Warm-up: one request of each shape; for rerank it also indexes the candidates (the E2Rank use case).
        httpx.post(url + "/v1/embeddings", json={"input": embed_texts(10**6)}, timeout=900).raise_for_status()
        if args.scenario == "rerank":
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
    parser.add_argument("--scenario", choices=["embed", "rerank"], default="embed")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--batching", choices=["on", "off"], default="on")
    parser.add_argument("--requests", type=int, default=8, help="requests in all, shared by the clients")
    parser.add_argument("--layers", type=int, default=2)


if __name__ == "__main__":
    case_main(CASES, add_args)
