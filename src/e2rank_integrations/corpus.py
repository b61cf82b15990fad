"""The passages shipped with the package: a few dozen short, real texts for demos, notebooks and benchmarks."""

from __future__ import annotations

import json
from importlib import resources

__all__ = ["builtin_corpus"]


def builtin_corpus() -> list[dict[str, str]]:
    """The built-in passages, each ``{"id", "title", "text"}``.

    Example:
        >>> corpus = builtin_corpus()
        >>> sorted(corpus[0])
        ['id', 'text', 'title']
    """
    text = resources.files("e2rank_integrations").joinpath("data/corpus.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
