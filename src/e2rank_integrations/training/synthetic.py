"""A small generated ranking task whose teacher order can be learnt: for examples, tests and benchmarks, offline.

Each query is a few words of one topic; each passage of its slate mixes words of that topic with words of another,
and the teacher ranks passages by how many words of the query's topic they hold. A tiny random-weight model trained
on it for a few dozen steps ranks held-out queries clearly better than before, which shows the whole loop (data,
encoding, loss, optimizer, saving) works end to end. It says nothing about quality on real data.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from ..errors import E2RankValueError

__all__ = ["WORDS", "make_topic_task", "write_jsonl"]

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


def make_topic_task(
    n_queries: int,
    *,
    slate_size: int = 8,
    topics: int = 5,
    query_words: int = 3,
    passage_words: int = 6,
    preferred_topic: int | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Slates in the training format: the teacher ranks passages by how many words of the query's topic they hold.

    The vocabulary :data:`WORDS` is split into ``topics`` topics. A query is a few words of one topic; each passage
    mixes some words of the query's topic with words of one other topic.

    Args:
        n_queries: Slates to make.
        slate_size: Passages per slate.
        topics: Topics the vocabulary is split into.
        query_words: Words per query.
        passage_words: Words per passage.
        preferred_topic: When set, the teacher ranks by words of this topic whatever the query (an easier,
            query-independent teacher: a tiny random model learns it in a few dozen steps).
        seed: Seed of the generator.

    Returns:
        ``{"query", "document", "ranking", "relevance"}`` dicts; passages are in a random (first-stage) order,
        ``relevance`` is the number of words of the query's topic a passage holds, and ``ranking`` sorts by it
        (ties in passage order).

    Example:
        >>> slate = make_topic_task(1, slate_size=4)[0]
        >>> sorted(slate["ranking"]) == [0, 1, 2, 3]
        True
    """
    rng = random.Random(seed)
    size = len(WORDS) // topics
    groups = [WORDS[i * size : (i + 1) * size] for i in range(topics)]
    if not 0 < query_words <= size:
        raise E2RankValueError(f"`query_words` must be in 1..{size}")
    slates = []
    for _ in range(n_queries):
        topic = rng.randrange(topics) if preferred_topic is None else preferred_topic
        query = rng.sample(groups[topic if preferred_topic is None else rng.randrange(topics)], query_words)
        documents, relevance = [], []
        for _ in range(slate_size):
            shared = rng.choice([0, 0, 0, 1, 2, passage_words // 2, passage_words])  # mostly off-topic
            other = groups[rng.choice([t for t in range(topics) if t != topic])]
            words = rng.choices(groups[topic], k=shared) + rng.choices(other, k=passage_words - shared)
            rng.shuffle(words)
            documents.append(" ".join(words))
            relevance.append(shared)
        ranking = sorted(range(slate_size), key=lambda i: -relevance[i])
        slates.append({"query": " ".join(query), "document": documents, "ranking": ranking, "relevance": relevance})
    return slates


def write_jsonl(records: list[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write one JSON object per line; returns the path."""
    target = Path(path)
    target.write_text("".join(json.dumps(r) + "\n" for r in records))
    return target
