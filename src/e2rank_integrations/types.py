"""The result type and the Backend protocol that every adapter accepts."""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast, overload, runtime_checkable

import numpy as np
import numpy.typing as npt

from .errors import E2RankTypeError
from .prompts import PromptFormat

if TYPE_CHECKING:
    from .client import AsyncE2RankClient, E2RankClient

__all__ = [
    "AsyncBackend",
    "Backend",
    "BackendInfo",
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
    """

    index: int
    score: float


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """What a backend serves, as :meth:`Backend.describe` says it.

    Attributes:
        model: The model's name or path (a hub id, a local directory, or the name a server gives it).
        fingerprint: The identity of the weights and encoding settings: vectors of two backends with equal
            fingerprints are comparable (``None`` where the backend cannot say).
        dimension: The length of every embedding (``None`` where unknown).
        prompts: The query, document and listwise prompt strings the backend embeds with (``None`` where unknown).
        max_length: The longest input in tokens; longer ones are cut (``None`` where unknown).
        base_url: A remote backend's server (``None`` for one in this process).
        api: How a remote backend speaks to its server: ``"e2rank"`` (an ``e2rank serve``, which formats texts
            itself: results equal the model's) or ``"openai"`` (the client formats texts for another engine);
            ``None`` for one in this process.
    """

    model: str
    fingerprint: str | None = None
    dimension: int | None = None
    prompts: PromptFormat | None = None
    max_length: int | None = None
    base_url: str | None = None
    api: Literal["e2rank", "openai"] | None = None


@runtime_checkable
class Backend(Protocol):
    """What the adapters, indexing and MCP need from a model: a local ``E2RankModel``, an ``E2RankClient``, or yours.

    A class of your own needs all seven methods: :func:`check_backend` refuses one that lacks any with an
    ``E2RankTypeError`` naming them. ``describe`` may fill :attr:`BackendInfo.model` alone (the rest default to
    ``None``: unknown); ``count_tokens`` may answer ``None`` where no tokenizer is at hand (token budgets then use
    an estimate).
    """

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

    def describe(self) -> BackendInfo:
        """What the backend serves: model, fingerprint, dimension, prompts (a remote one asks its server once)."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        """Token counts of ``texts`` as given (no prompt, before truncation), by the model's tokenizer.

        ``None`` where the backend has no tokenizer at hand (a remote client without one): callers then estimate.
        """
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

    async def describe(self) -> BackendInfo:
        """What the backend serves: model, fingerprint, dimension, prompts (a remote one asks its server once)."""
        ...

    async def count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        """Token counts of ``texts`` as given (no prompt, before truncation); ``None`` without a tokenizer at hand."""
        ...


_BACKEND_METHODS = ("embed_queries", "embed_documents", "embed_prompt", "rerank", "stats", "describe", "count_tokens")
AnyBackend = Backend | AsyncBackend
_B = TypeVar("_B", Backend, AsyncBackend)


def is_async_backend(backend: object) -> bool:
    """True when the backend's methods are coroutines (an :class:`AsyncBackend` such as ``AsyncE2RankClient``)."""
    return inspect.iscoroutinefunction(getattr(backend, "rerank", None))


@overload
def check_backend(backend: _B) -> _B: ...


@overload
def check_backend(backend: object) -> Backend | AsyncBackend: ...


def check_backend(backend: object) -> Backend | AsyncBackend:
    """Return ``backend`` if it has the Backend methods, else raise an ``E2RankTypeError`` naming what is missing."""
    missing = [name for name in _BACKEND_METHODS if not callable(getattr(backend, name, None))]
    if missing:
        raise E2RankTypeError(
            f"backend must be an E2RankModel, an E2RankClient or another Backend; {type(backend).__name__} "
            f"has no {', '.join(missing)}"
        )
    return cast(AnyBackend, backend)


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


async def call_async(backend: Backend | AsyncBackend, method: str, *args: Any, **kwargs: Any) -> Any:
    """Await ``backend.<method>(*args, **kwargs)``: directly on an async backend, in a worker thread otherwise.

    A local model computes for seconds; running it in a thread keeps the caller's event loop responsive.
    """
    function = getattr(check_backend(backend), method)
    if is_async_backend(backend):
        return await function(*args, **kwargs)
    return await asyncio.to_thread(function, *args, **kwargs)


def backend_name(backend: object) -> str:
    """The model a backend serves, for logs and framework metadata: ``describe().model``; a client's type name.

    A client is named by its type: its ``describe()`` is a request, and adapters are built before servers are up.
    """
    if is_async_backend(check_backend(backend)) or isinstance(backend, client_types()):
        return type(backend).__name__
    return cast(Backend, backend).describe().model or type(backend).__name__


def client_types() -> tuple[type[E2RankClient], type[AsyncE2RankClient]] | tuple[()]:
    """``(E2RankClient, AsyncE2RankClient)`` once their module is imported (no instance exists before), else ``()``."""
    module = sys.modules.get(f"{__package__}.client")
    return () if module is None else (module.E2RankClient, module.AsyncE2RankClient)
