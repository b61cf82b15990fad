"""A small generated ranking task whose teacher order can be learnt: for examples, tests and benchmarks, offline.

Each query is a few words; each passage of its slate repeats some of them among other words, and the teacher ranks
passages by how many query words they share. A tiny random-weight model trained on it for a few dozen steps ranks
held-out queries clearly better than before, which shows the whole loop (data, encoding, loss, optimizer, saving)
works end to end. It says nothing about quality on real data.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

__all__ = ["WORDS", "make_word_overlap_task", "write_jsonl"]

WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "music",
    "garden",
    "window",
    "silver",
    "forest",
    "candle",
    "engine",
    "pepper",
    "island",
    "violin",
    "mirror",
    "rocket",
    "castle",
    "meadow",
    "thunder",
    "lemon",
    "anchor",
    "basket",
    "copper",
    "desert",
    "falcon",
    "harbor",
    "jungle",
    "ladder",
    "marble",
    "needle",
    "orange",
    "parrot",
    "quartz",
    "saddle",
    "tiger",
    "velvet",
    "walnut",
    "yellow",
    "zebra",
    "bridge",
    "camera",
    "dragon",
    "feather",
    "glacier",
    "hammer",
    "jacket",
    "kettle",
    "lantern",
    "magnet",
]
"""The task's vocabulary: common English words, one Qwen token each (with their leading space)."""


def make_word_overlap_task(
    n_queries: int,
    *,
    slate_size: int = 8,
    query_words: int = 3,
    passage_words: int = 8,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Slates in the training format, the teacher ranking passages by how many query words they contain.

    Args:
        n_queries: Slates to make.
        slate_size: Passages per slate.
        query_words: Words per query.
        passage_words: Words per passage.
        seed: Seed of the generator.

    Returns:
        ``{"query", "document", "ranking", "relevance"}`` dicts; passages are in a random (first-stage) order,
        ``relevance`` is the number of query words a passage contains.

    Example:
        >>> slate = make_word_overlap_task(1, slate_size=4)[0]
        >>> sorted(slate["ranking"]) == [0, 1, 2, 3]
        True
    """
    if not 0 < query_words < passage_words:
        raise ValueError("need 0 < query_words < passage_words")
    rng = random.Random(seed)
    slates = []
    for _ in range(n_queries):
        query = rng.sample(WORDS, query_words)
        others = [w for w in WORDS if w not in query]
        documents, relevance = [], []
        for _ in range(slate_size):
            shared = min(query_words, int(rng.expovariate(1.0)))  # mostly 0: few relevant passages per slate
            words = rng.sample(query, shared) + rng.sample(others, passage_words - shared)
            rng.shuffle(words)
            documents.append(" ".join(words))
            relevance.append(shared)
        # best first; ties in the order the passages came (a stable teacher)
        ranking = sorted(range(slate_size), key=lambda i: -relevance[i])
        slates.append({"query": " ".join(query), "document": documents, "ranking": ranking, "relevance": relevance})
    return slates


def write_jsonl(records: list[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write one JSON object per line; returns the path."""
    target = Path(path)
    target.write_text("".join(json.dumps(r) + "\n" for r in records))
    return target
