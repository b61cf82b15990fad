"""Overload: how many requests ``E2RankClient`` loses against ``e2rank serve --max-concurrent-requests 4``.

32 threads, each with an ``E2RankClient`` of its own, share 192 requests (``embed_documents`` of 8 new passages
each) against one ``e2rank serve`` on the tiny checkpoint that admits 4 requests at a time and answers the others
429 with ``Retry-After: 1``. A request is lost when the client raises. Two retry policies, each run ``--runs``
times in this process against the same server:

  before  3 retries (``max_retries=3``), the old default (whose waits were 1, 1 and 2 s, here 1 s each)
  after   the default: retries, each after the server's Retry-After, until ``retry_budget`` (300 s) is spent

    python benchmarks/client_overload.py [--runs 3] [--threads 32] [--requests 192]

Writes benchmarks/results/client_overload.json.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _common import RESULTS, machine, passages
from server_load import serve

POLICIES: dict[str, dict[str, Any]] = {"before": {"max_retries": 3}, "after": {}}


def texts(seed: int) -> list[str]:
    """8 new passages (the server's cache never answers)."""
    return [f"[{seed}-{i}] {p}" for i, p in enumerate(passages(8, seed=seed, words=(20, 40)))]


def run(url: str, policy: dict[str, Any], threads: int, requests: int, seeds: itertools.count) -> dict[str, Any]:
    from e2rank_integrations import E2RankClient, E2RankError

    # Made before the clock starts; shared: the threads take the requests between them.
    jobs = iter([texts(next(seeds)) for _ in range(requests)])
    lost: list[str] = []
    refused: list[bool] = []

    def worker() -> None:
        with E2RankClient(url, timeout=120, **policy) as client:
            client._http.event_hooks["response"].append(lambda r: refused.append(r.status_code == 429))
            for batch in jobs:
                try:
                    client.embed_documents(batch)
                except E2RankError as exc:
                    lost.append(type(exc).__name__)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    return {"lost": len(lost), "refusals_429": sum(refused), "seconds": round(time.perf_counter() - start, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--requests", type=int, default=192)
    parser.add_argument("--max-concurrent-requests", type=int, default=4)
    args = parser.parse_args()
    from e2rank_integrations.checkpoints import tiny_random_checkpoint

    process, url = serve(tiny_random_checkpoint(), True, "--max-concurrent-requests", str(args.max_concurrent_requests))
    seeds = itertools.count(1)
    results: dict[str, Any] = {name: [] for name in POLICIES}
    try:
        for _ in range(args.runs):
            for name, policy in POLICIES.items():
                results[name].append(run(url, policy, args.threads, args.requests, seeds))
                print(name, results[name][-1], flush=True)
    finally:
        process.terminate()
        process.wait(120)
    summary = {name: sum(r["lost"] for r in runs) for name, runs in results.items()}
    total = args.runs * args.requests
    print(f"lost of {total} requests: before {summary['before']}, after {summary['after']}")
    out = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "load_average_1_5_15_min": os.getloadavg(),  # the machine is shared: how busy it was at the end
        "setup": vars(args),
        "runs": results,
        "lost_in_all": summary,
        "requests_in_all": total,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "client_overload.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
