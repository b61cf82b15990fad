"""The result type and the Backend protocol that every adapter accepts."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["AsyncBackend", "Backend", "Embeddings", "RankResult", "check_backend", "is_async_backend"]

Embeddings = npt.NDArray[np.float32]
"""A float32 array: one L2-normalised row per text, or one vector for a prompt."""


@dataclass(frozen=True, slots=True)
class RankResult:
    """One reranked candidate.

    Attributes:
        index: Position of the candidate in the ``documents`` that were passed to ``rerank``.
        score: Cosine similarity between the listwise prompt and the candidate (higher is better).
        document: The candidate's text, where the caller asked for it (the HTTP API's ``return_documents``).
    """

    index: int
    score: float
    document: str | None = None


@runtime_checkable
class Backend(Protocol):
    """What the adapters need from a model: a local ``E2RankModel`` or a remote ``E2RankClient``."""

    def embed_queries(self, texts: Sequence[str], *, instruction: str | None = None) -> Embeddings:
        """Embed search queries, each wrapped in the retrieval instruction."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        """Embed documents as they are stored for retrieval (no instruction)."""
        ...

    def embed_prompt(self, text: str) -> Embeddings:
        """Embed the content of a listwise prompt, wrapped in the model's chat template."""
        ...

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        doc_embeddings: npt.ArrayLike | None = None,
        instruction: str | None = None,
        num_prompt_docs: int = 20,
        passes: int = 1,
    ) -> list[RankResult]:
        """Rerank ``documents`` for ``query``; results sorted by score, best first."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counters: at least ``texts_embedded`` and ``cache_hits``."""
        ...


@runtime_checkable
class AsyncBackend(Protocol):
    """The same methods as :class:`Backend`, as coroutines (``AsyncE2RankClient``)."""

    async def embed_queries(self, texts: Sequence[str], *, instruction: str | None = None) -> Embeddings:
        """Embed search queries, each wrapped in the retrieval instruction."""
        ...

    async def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        """Embed documents as they are stored for retrieval (no instruction)."""
        ...

    async def embed_prompt(self, text: str) -> Embeddings:
        """Embed the content of a listwise prompt, wrapped in the model's chat template."""
        ...

    async def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        doc_embeddings: npt.ArrayLike | None = None,
        instruction: str | None = None,
        num_prompt_docs: int = 20,
        passes: int = 1,
    ) -> list[RankResult]:
        """Rerank ``documents`` for ``query``; results sorted by score, best first."""
        ...

    async def stats(self) -> dict[str, Any]:
        """Counters: at least ``texts_embedded`` and ``cache_hits``."""
        ...


_BACKEND_METHODS = ("embed_queries", "embed_documents", "embed_prompt", "rerank")


def is_async_backend(backend: object) -> bool:
    """True when the backend's methods are coroutines (an :class:`AsyncBackend` such as ``AsyncE2RankClient``)."""
    return inspect.iscoroutinefunction(getattr(backend, "rerank", None))


def check_backend(backend: object) -> Any:
    """Return ``backend`` if it has the Backend methods, else raise a ``TypeError`` naming what is missing."""
    missing = [name for name in _BACKEND_METHODS if not callable(getattr(backend, name, None))]
    if missing:
        raise TypeError(
            f"backend must be an E2RankModel, an E2RankClient or another Backend; {type(backend).__name__} "
            f"has no {', '.join(missing)}"
        )
    return backend
