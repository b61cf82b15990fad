"""Small generated ranking tasks whose teacher order can be learnt: for examples, tests and benchmarks, offline.

:func:`make_topic_task`: each query is a few words of one topic; each passage of its slate mixes words of that topic
with words of another, and the teacher ranks passages by how many words of the query's topic they hold.
:func:`make_query_topic_task`: every slate holds as many passages of each topic, and the teacher ranks those of the
query's topic first, so only a ranking that reads the query beats chance (:func:`chance_ndcg`). A tiny random-weight
model trained on it for a few dozen steps ranks held-out queries far above chance, which shows the whole loop (data,
encoding, loss, optimizer, saving) learns what the query asks for. It says nothing about quality on real data.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any

from ..errors import E2RankValueError

__all__ = ["WORDS", "chance_ndcg", "make_query_topic_task", "make_topic_task", "write_jsonl"]

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


def make_query_topic_task(
    n_slates: int,
    *,
    topics: int = 4,
    words_per_topic: int = 3,
    per_topic: int = 1,
    passage_words: int = 2,
    query_words: int = 3,
    every_topic: bool = False,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Slates whose teacher order depends on the query: the passages of the query's topic first.

    ``topics`` groups of ``words_per_topic`` words of :data:`WORDS`; a query is words of one topic, a passage
    ``passage_words`` words of one topic, and a slate holds ``per_topic`` passages of every topic in a random order.
    Every topic has as many passages in a slate, so a ranking that ignores the query cannot do better than chance.
    The defaults are the task the tests train on (a tiny random model learns it in about 100 steps at lr 1e-2).

    Args:
        n_slates: Slates to make (passage sets, with ``every_topic``).
        topics: Topics.
        words_per_topic: Words per topic.
        per_topic: Passages of each topic in a slate.
        passage_words: Words per passage.
        query_words: Words per query (different words of its topic).
        every_topic: Ask each slate's passages once with a query of every topic (``topics`` slates per passage
            set, same passages in the same order): a ranking that ignores the query then scores exactly
            :func:`chance_ndcg` on them, whatever it is.
        seed: Seed of the generator.

    Returns:
        ``{"query", "document", "ranking", "relevance"}`` dicts; ``relevance`` is 1 for a passage of the query's
        topic, 0 otherwise, and ``ranking`` sorts by it (ties in passage order).

    Example:
        >>> slate = make_query_topic_task(1, topics=2, per_topic=2)[0]
        >>> sorted(slate["relevance"])
        [0, 0, 1, 1]
    """
    if not 0 < topics * words_per_topic <= len(WORDS):
        raise E2RankValueError(f"`topics` x `words_per_topic` must be in 1..{len(WORDS)}")
    if not 0 < query_words <= words_per_topic:
        raise E2RankValueError(f"`query_words` must be in 1..{words_per_topic} (`words_per_topic`)")
    rng = random.Random(seed)
    groups = [WORDS[i * words_per_topic : (i + 1) * words_per_topic] for i in range(topics)]
    slates = []
    for _ in range(n_slates):
        passage_topics = [t for t in range(topics) for _ in range(per_topic)]
        rng.shuffle(passage_topics)
        documents = [" ".join(rng.choices(groups[t], k=passage_words)) for t in passage_topics]
        for topic in range(topics) if every_topic else [rng.randrange(topics)]:
            relevance = [int(t == topic) for t in passage_topics]
            ranking = sorted(range(len(documents)), key=lambda i: -relevance[i])
            query = " ".join(rng.sample(groups[topic], query_words))
            slates.append({"query": query, "document": documents, "ranking": ranking, "relevance": relevance})
    return slates


def chance_ndcg(topics: int, per_topic: int, k: int = 10) -> float:
    """nDCG@k (%) that every ranking scores on average over the topics of :func:`make_query_topic_task`'s queries.

    Each rank holds a passage of exactly one topic, so the gains summed over the topics' queries are the same for
    every order: a ranking that ignores the query scores this on ``every_topic`` slates, exactly.
    """
    size = topics * per_topic
    discounts = [1 / math.log2(rank + 2) for rank in range(min(k, size))]
    return 100 * sum(discounts) / topics / sum(discounts[:per_topic])


def write_jsonl(records: list[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write one JSON object per line; returns the path."""
    target = Path(path)
    target.write_text("".join(json.dumps(r) + "\n" for r in records))
    return target
