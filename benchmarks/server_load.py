"""Load test of ``e2rank serve``: requests/s and p50/p99 latency, with dynamic batching on and off.

Scenarios: embed (32 texts per request) and rerank (100 candidates per request), at 1 and 32 concurrent clients.
Each runs against a fresh ``e2rank serve`` subprocess (``--no-batching`` for the baseline) over a generated
checkpoint of E2Rank-0.6B's shape with fewer layers. Every request carries texts of its own, so the embedding
cache never answers and every request computes. Ratios are against the batching-off run of the same scenario.

    python benchmarks/server_load.py [--layers 4] [--requests-per-client 2] [--solo-requests 6]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from e2rank_integrations.checkpoints import make_random_checkpoint

E2RANK = str(Path(sys.executable).parent / "e2rank")
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
]


def text(seed: int, words: int) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(WORDS, size=words)) + f" #{seed}"


def body(kind: str, seed: int) -> tuple[str, dict]:
    if kind == "embed":
        return "/v1/embeddings", {"input": [text(seed * 1000 + i, 24) for i in range(32)], "encoding_format": "base64"}
    docs = [text(seed * 1000 + i, 40) for i in range(100)]
    return "/v1/rerank", {"query": text(seed, 8), "documents": docs, "top_n": 10}


async def load(url: str, kind: str, clients: int, per_client: int, offset: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:

        async def client(c: int) -> None:
            for r in range(per_client):
                path, payload = body(kind, offset + c * per_client + r)
                start = time.perf_counter()
                response = await http.post(path, json=payload)
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        return time.perf_counter() - start, latencies


def serve(checkpoint: Path, batching: bool) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [E2RANK, "serve", "--model", str(checkpoint), "--port", str(port), "--log-level", "warning"]
    if not batching:
        args.append("--no-batching")
    process = subprocess.Popen(args)
    url = f"http://127.0.0.1:{port}"
    for _ in range(3000):
        try:
            if httpx.get(url + "/health").status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--requests-per-client", type=int, default=2, help="at 32 clients")
    parser.add_argument("--solo-requests", type=int, default=6, help="at 1 client")
    parser.add_argument("--checkpoint", type=Path, default=None, help="reuse a generated checkpoint")
    args = parser.parse_args()
    checkpoint = args.checkpoint or Path(tempfile.mkdtemp(prefix="e2rank-bench-")) / "ckpt"
    if not (checkpoint / "model.safetensors").exists():
        make_random_checkpoint(checkpoint, shape="e2rank-0.6b", num_hidden_layers=args.layers)
    print(f"checkpoint: E2Rank-0.6B shape, {args.layers} of 28 layers, random weights, float32 on CPU; no cache hits")
    rows = []
    offset = 0
    for batching in (False, True):
        process, url = serve(checkpoint, batching)
        try:
            for kind in ("embed", "rerank"):
                for clients in (1, 32):
                    per_client = args.solo_requests if clients == 1 else args.requests_per_client
                    asyncio.run(load(url, kind, 1, 1, 10**6 + offset))  # warm this shape up
                    offset += 10_000
                    elapsed, latencies = asyncio.run(load(url, kind, clients, per_client, offset))
                    offset += 10_000
                    p50, p99 = np.percentile(latencies, [50, 99])
                    rows.append((kind, clients, batching, len(latencies) / elapsed, p50, p99))
                    print(f"  {kind:6} clients={clients:2} batching={'on ' if batching else 'off'} done", flush=True)
        finally:
            process.terminate()
            process.wait(120)
    base = {(k, c): (rps, p50, p99) for k, c, b, rps, p50, p99 in rows if not b}
    print(f"\n{'scenario':28} {'batching':8} {'req/s':>8} {'p50 s':>8} {'p99 s':>8}  vs off: req/s  p50   p99")
    for kind, clients, batching, rps, p50, p99 in rows:
        b_rps, b_p50, b_p99 = base[(kind, clients)]
        label = f"{kind} ({'32 texts' if kind == 'embed' else '100 candidates'}), {clients} client(s)"
        print(
            f"{label:28} {'on' if batching else 'off':8} {rps:8.2f} {p50:8.3f} {p99:8.3f}  "
            f"x{rps / b_rps:5.2f}  x{p50 / b_p50:4.2f}  x{p99 / b_p99:4.2f}"
        )


if __name__ == "__main__":
    main()
