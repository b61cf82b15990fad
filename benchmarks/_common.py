"""Shared pieces of the benchmarks: the checkpoint, BEIR-like passages, timing, memory and the machine.

Every benchmark runs one *case* per process (`python benchmarks/X.py --case NAME --json`), so each case's peak RSS
is its own; `run_all.py` runs the cases, computes ratios against baselines measured in the same run, and writes
the results, plots and README table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
CORPUS = ROOT / "src" / "e2rank_integrations" / "data" / "corpus.jsonl"


def checkpoint(layers: int, dtype: str = "bfloat16") -> Path:
    """A random-weight checkpoint of the real E2Rank-0.6B shape with `layers` of its 28 layers, cached on disk."""
    from e2rank_integrations.checkpoints import cached_random_checkpoint

    return cached_random_checkpoint("e2rank-0.6b", num_hidden_layers=layers, dtype=dtype)


def sentences() -> list[str]:
    """The sentences of the built-in corpus (real English prose)."""
    out: list[str] = []
    for line in CORPUS.read_text().splitlines():
        text = json.loads(line)["text"]
        out.extend(s.strip() + "." for s in text.split(". ") if s.strip())
    return out


def passages(n: int, *, seed: int = 0, words: tuple[int, int] = (120, 190)) -> list[str]:
    """`n` BEIR-like passages of about 150 to 250 tokens, made of shuffled real sentences."""
    rng = random.Random(seed)
    pool = sentences()
    out = []
    for _ in range(n):
        target = rng.randint(*words)
        parts: list[str] = []
        while sum(len(p.split()) for p in parts) < target:
            parts.append(rng.choice(pool))
        out.append(" ".join(parts))
    return out


def mixed_texts(n: int, *, seed: int = 0) -> list[str]:
    """`n` texts of very different lengths (a log-uniform spread from a few words to about 700 words)."""
    rng = random.Random(seed)
    pool = sentences()
    out = []
    for _ in range(n):
        target = round(2 ** rng.uniform(2, 9.5))
        parts: list[str] = []
        while sum(len(p.split()) for p in parts) < target:
            parts.append(rng.choice(pool))
        out.append(" ".join(" ".join(parts).split()[:target]))
    return out


def cache_random_vectors(model: Any, docs: list[str], *, seed: int = 0) -> None:
    """Put random unit vectors for `docs` in `model`'s cache, as if they had been indexed through it.

    Stored vectors' values do not change what a search or a rerank costs: this saves a CPU run the minutes that
    embedding 1,000 passages takes, and every later `embed_documents` of them is a cache hit, as after indexing.
    """
    import numpy as np

    from e2rank_integrations.cache import cache_key

    vectors = np.random.default_rng(seed).standard_normal((len(docs), model.dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    model.cache.put_many({cache_key(model.fingerprint, model.prompts.document(d)): v for d, v in zip(docs, vectors)})


def timed(fn: Callable[[], Any], *, repeat: int, warmup: int = 1) -> dict[str, float]:
    """Median and spread of `repeat` calls after `warmup` calls, in seconds."""
    torch = sys.modules.get("torch")
    cuda = torch is not None and torch.cuda.is_available()
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        if cuda:  # GPU work is asynchronous: wait for it before reading the clock
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "runs": repeat}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def matmul_flops(seconds: float = 2.0, size: int = 2048, device: str = "cpu", dtype: str = "float32") -> float:
    """The matmul FLOP/s torch reaches on this device and dtype (the roofline for dense layers)."""
    import torch

    a, b = (torch.randn(size, size, device=device, dtype=getattr(torch, dtype)) for _ in range(2))
    sync = torch.cuda.synchronize if a.is_cuda else (lambda: None)
    torch.mm(a, b)
    sync()
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        sync()
        runs += 1
    return 2 * size**3 * runs / (time.perf_counter() - start)


def flops_per_token(path: Any) -> int:
    """Dense-layer FLOPs one token costs in a forward pass of the checkpoint at `path` (attention scores excluded)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    d, f = config.hidden_size, config.intermediate_size
    q, kv = config.num_attention_heads * config.head_dim, config.num_key_value_heads * config.head_dim
    per_layer = d * q + 2 * d * kv + q * d + 3 * d * f  # dense weights a token passes through
    return int(2 * per_layer * config.num_hidden_layers)


def case_main(cases: dict[str, Callable[[argparse.Namespace], dict[str, Any]]], add_args: Callable[..., None]) -> None:
    """Command line of a benchmark script: run one case and print its result as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", required=True, choices=sorted(cases))
    add_args(parser)
    args = parser.parse_args()
    result = cases[args.case](args)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
