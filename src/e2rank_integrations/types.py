"""The result type and the Backend protocol that every adapter accepts."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np
import numpy.typing as npt

from .errors import E2RankTypeError

__all__ = [
    "AsyncBackend",
    "Backend",
    "Embeddings",
    "RankResult",
    "backend_name",
    "call_async",
    "check_backend",
    "check_sync_backend",
    "is_async_backend",
]

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
        max_prompt_tokens: int | None = None,
    ) -> list[RankResult]:
        """Rerank ``documents`` for ``query``; results sorted by score, best first.

        ``num_prompt_docs`` and ``max_prompt_tokens`` bound the listwise prompt, the one text a rerank embeds:
        its cost grows with its tokens (see the docs' agent benchmark for the trade-off).
        """
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
        max_prompt_tokens: int | None = None,
    ) -> list[RankResult]:
        """Rerank ``documents`` for ``query``; results sorted by score, best first.

        ``num_prompt_docs`` and ``max_prompt_tokens`` bound the listwise prompt, the one text a rerank embeds:
        its cost grows with its tokens (see the docs' agent benchmark for the trade-off).
        """
        ...

    async def stats(self) -> dict[str, Any]:
        """Counters: at least ``texts_embedded`` and ``cache_hits``."""
        ...


_BACKEND_METHODS = ("embed_queries", "embed_documents", "embed_prompt", "rerank", "stats")


def is_async_backend(backend: object) -> bool:
    """True when the backend's methods are coroutines (an :class:`AsyncBackend` such as ``AsyncE2RankClient``)."""
    return inspect.iscoroutinefunction(getattr(backend, "rerank", None))


def check_backend(backend: object) -> Any:
    """Return ``backend`` if it has the Backend methods, else raise a ``TypeError`` naming what is missing."""
    missing = [name for name in _BACKEND_METHODS if not callable(getattr(backend, name, None))]
    if missing:
        raise E2RankTypeError(
            f"backend must be an E2RankModel, an E2RankClient or another Backend; {type(backend).__name__} "
            f"has no {', '.join(missing)}"
        )
    return backend


def check_sync_backend(backend: object, async_api: str) -> Backend:
    """Return ``backend`` for a blocking call, or raise a ``TypeError`` pointing to the async API.

    Args:
        backend: A Backend or an AsyncBackend.
        async_api: What the caller should use instead with an async backend, e.g. ``"aembed_documents"``.
    """
    if is_async_backend(backend):
        raise E2RankTypeError(
            f"{type(backend).__name__} is an async backend and cannot serve a blocking call: use {async_api} "
            "instead, or pass a sync backend (E2RankModel or E2RankClient)"
        )
    return cast(Backend, check_backend(backend))


async def call_async(backend: object, method: str, *args: Any, **kwargs: Any) -> Any:
    """Await ``backend.<method>(*args, **kwargs)``: directly on an async backend, in a worker thread otherwise.

    A local model computes for seconds; running it in a thread keeps the caller's event loop responsive.
    """
    function = getattr(check_backend(backend), method)
    if is_async_backend(backend):
        return await function(*args, **kwargs)
    return await asyncio.to_thread(function, *args, **kwargs)


def backend_name(backend: object) -> str:
    """The model a backend serves, for logs and framework metadata: its ``name_or_path``, else its type name."""
    name = getattr(backend, "name_or_path", None)
    return str(name) if name else type(backend).__name__
