"""Latency of a one-text request while one large request runs on ``e2rank serve`` (issue 16, item 3).

A fresh server over a random-weight checkpoint gets, in order:
  1. `--small` one-text requests one after another on the idle server (the baseline, measured in the same run);
  2. one large request (`--texts` texts of about `--words` words each) and, while it runs, one-text requests one
     after another until it is answered.

Before the micro-batch interleaving, a small request queued behind the large one and waited for all of it; after,
it joins the next micro-batch. The worst latency of those sent while the large one runs (`during_max_s`) is the
figure: before, about the whole large request; after, about one micro-batch.

To measure another version of the server (e.g. `main`), point `--src` at its source tree: the server then runs
from there (`PYTHONPATH`), this script and its client do not change.

    python benchmarks/small_during_large.py --label after
    git archive main | tar -x -C /tmp/e2rank-main
    python benchmarks/small_during_large.py --label before --src /tmp/e2rank-main/src

Each run adds its `--label` to benchmarks/results/small_during_large.json and prints its numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, checkpoint, machine, passages


def model_path(name: str) -> Path:
    if name == "tiny":
        from e2rank_integrations.checkpoints import cached_random_checkpoint

        return cached_random_checkpoint("tiny")
    return checkpoint(layers=int(name.removeprefix("0.6b-")))  # e.g. 0.6b-2: the real shape, 2 of its layers


def serve(path: Path, src: str | None, threads: int | None) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ)
    if threads:  # on a shared, oversubscribed machine torch's threads can spin against each other: pin them
        env["OMP_NUM_THREADS"] = str(threads)
    if src:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(src).resolve()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [sys.executable, "-m", "e2rank_integrations.cli", "serve", "--model", str(path), "--port", str(port)]
    process = subprocess.Popen([*command, "--log-level", "warning"], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


def one_text(http: Any, text: str) -> float:
    start = time.perf_counter()
    http.post("/v1/embeddings", json={"input": [text]}).raise_for_status()
    return time.perf_counter() - start


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    process, url = serve(model_path(args.model), args.src, args.threads)
    try:
        with httpx.Client(base_url=url, timeout=3600) as http:
            one_text(http, "warm up the HTTP path")
            idle = [one_text(http, f"an idle one-text request {i}") for i in range(args.small)]

            large = passages(args.texts, seed=3, words=(args.words, args.words + 50))
            outcome: dict[str, float] = {}

            def send_large() -> None:
                with httpx.Client(base_url=url, timeout=3600) as own:
                    start = time.perf_counter()
                    own.post("/v1/embeddings", json={"input": large}).raise_for_status()
                    outcome["large_s"] = time.perf_counter() - start

            sender = threading.Thread(target=send_large)
            sender.start()
            # From the moment the server holds the large request (both versions count it in flight) until it is
            # answered. The first few may pass while it is still being tokenized; the worst one is the measure.
            while sender.is_alive() and http.get("/stats").json()["in_flight"] < 1:
                time.sleep(0.005)
            during = []
            while sender.is_alive():
                during.append(one_text(http, f"a one-text request during the large one {len(during)}"))
            sender.join()
            tokens = http.get("/stats").json()["tokens_embedded"]
    finally:
        process.terminate()
        process.wait(120)
    idle_p50 = statistics.median(idle)
    return {
        "model": args.model,
        "large_texts": args.texts,
        "large_tokens_about": tokens,
        "large_s": round(outcome["large_s"], 3),
        "idle_p50_s": round(idle_p50, 4),
        "during_requests": len(during),
        "during_p50_s": round(statistics.median(during), 4) if during else None,
        "during_max_s": round(max(during), 4) if during else None,
        "during_p50_vs_idle": round(statistics.median(during) / idle_p50, 1) if during else None,
        "during_max_vs_idle": round(max(during) / idle_p50, 1) if during else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", required=True, help="name of this run in the results file (before, after...)")
    parser.add_argument("--src", default=None, help="run the server from this source tree (its `src` directory)")
    parser.add_argument("--model", default="tiny", help="tiny (default), or 0.6b-N: the 0.6B shape with N layers")
    parser.add_argument("--texts", type=int, default=1024, help="texts in the large request (default 1024)")
    parser.add_argument("--words", type=int, default=400, help="words per large text (default 400, ~500 tokens)")
    parser.add_argument("--small", type=int, default=20, help="one-text requests on the idle server (default 20)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the server (OMP_NUM_THREADS)")
    parser.add_argument("--out", default=str(RESULTS / "small_during_large.json"))
    args = parser.parse_args()
    result = measure(args)
    print(json.dumps({args.label: result}, indent=2))
    out = Path(args.out)
    saved = json.loads(out.read_text()) if out.exists() else {}
    run = {**result, "date": time.strftime("%Y-%m-%d"), "src": args.src, "threads": args.threads}
    saved.setdefault("runs", {})[args.label] = run
    saved["machine"] = machine()
    out.write_text(json.dumps(saved, indent=2) + "\n")


if __name__ == "__main__":
    main()
