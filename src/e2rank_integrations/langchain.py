"""LangChain adapters: one E2Rank backend for retrieval (``E2RankEmbeddings``) and reranking (``E2RankRerank``).

Both are thin: they delegate to a Backend (a local ``E2RankModel`` or a remote client) and map the results back to
LangChain's own types. Needs the ``langchain`` extra (``langchain-core`` only).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from copy import deepcopy
from typing import Annotated, Any

from ._optional import require

require("langchain_core", extra="langchain")  # a missing extra fails here, with the pip command that installs it

from langchain_core.callbacks import Callbacks  # noqa: E402
from langchain_core.documents import BaseDocumentCompressor, Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator  # noqa: E402

from .prompts import check_query, check_texts  # noqa: E402
from .scoring import check_positive_int, check_top_n, select  # noqa: E402
from .types import RankResult, call_async, check_backend, check_sync_backend  # noqa: E402

__all__ = ["E2RankEmbeddings", "E2RankRerank"]

_BackendField = Annotated[Any, BeforeValidator(check_backend)]
"""A Backend or AsyncBackend; anything else is refused with a TypeError naming the missing methods."""

_CONFIG = ConfigDict(extra="forbid", arbitrary_types_allowed=True, use_attribute_docstrings=True)


def _one_query(text: object) -> list[str]:
    """``[text]`` for the backend's ``embed_queries``, or a TypeError when ``text`` is not a string."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    return [text]


class E2RankEmbeddings(BaseModel, Embeddings):
    """LangChain ``Embeddings`` over an E2Rank backend: documents as stored, queries with the retrieval instruction.

    Documents embedded here fill the backend's cache, so an :class:`E2RankRerank` on the same backend later
    reranks them by embedding only its prompt.

    Example:
        >>> from e2rank_integrations.langchain import E2RankEmbeddings
        >>> embeddings = E2RankEmbeddings.from_pretrained("Alibaba-NLP/E2Rank-0.6B")  # doctest: +SKIP
        >>> len(embeddings.embed_query("What is the capital of China?"))  # doctest: +SKIP
        1024
        >>> vectors = embeddings.embed_documents(["Beijing is the capital of China."])  # doctest: +SKIP
    """

    model_config = _CONFIG

    backend: _BackendField
    """The model: a local ``E2RankModel``, an ``E2RankClient`` or ``AsyncE2RankClient``, or any Backend."""

    query_instruction: str | None = None
    """Task description for queries; ``None`` keeps the backend's own default (the authors' web search one)."""

    batch_size: int = Field(default=256, gt=0)
    """Most texts sent to the backend in one call (one HTTP request with a remote client); the backend batches
    its forward passes within a call by itself."""

    show_progress: bool = False
    """Show a progress bar over the calls when embedding documents."""

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        query_instruction: str | None = None,
        batch_size: int = 256,
        show_progress: bool = False,
        **model_kwargs: Any,
    ) -> E2RankEmbeddings:
        """Load an ``E2RankModel`` (needs the ``model`` extra) and wrap it.

        Args:
            name_or_path: A hub id such as ``"Alibaba-NLP/E2Rank-0.6B"`` or a local directory.
            query_instruction: See the field of that name.
            batch_size: See the field of that name.
            show_progress: See the field of that name.
            **model_kwargs: Passed to ``E2RankModel.from_pretrained`` (``device``, ``dtype``, ``cache``...).
        """
        from .model import E2RankModel  # here, not at import: a remote backend needs no torch

        backend = E2RankModel.from_pretrained(name_or_path, **model_kwargs)
        return cls(
            backend=backend, query_instruction=query_instruction, batch_size=batch_size, show_progress=show_progress
        )

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        backend = check_sync_backend(self.backend, "aembed_documents")
        return [row for chunk in self._chunks(texts) for row in backend.embed_documents(chunk).tolist()]

    def embed_query(self, text: str) -> list[float]:
        backend = check_sync_backend(self.backend, "aembed_query")
        vector: list[float] = backend.embed_queries(_one_query(text), **self._query_kwargs())[0].tolist()
        return vector

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        rows: list[list[float]] = []
        for chunk in self._chunks(texts):
            rows.extend((await call_async(self.backend, "embed_documents", chunk)).tolist())
        return rows

    async def aembed_query(self, text: str) -> list[float]:
        vectors = await call_async(self.backend, "embed_queries", _one_query(text), **self._query_kwargs())
        vector: list[float] = vectors[0].tolist()
        return vector

    def _query_kwargs(self) -> dict[str, str]:
        # Only when set: a backend keeps its own default, and one that takes no instruction still works.
        return {} if self.query_instruction is None else {"instruction": self.query_instruction}

    def _chunks(self, texts: list[str]) -> Iterable[list[str]]:
        items = check_texts(texts)
        chunks = [items[start : start + self.batch_size] for start in range(0, len(items), self.batch_size)]
        if not (self.show_progress and chunks):
            return chunks
        from tqdm.auto import tqdm

        progress: Iterable[list[str]] = tqdm(chunks, desc=f"Embedding {len(items)} documents", unit="batch")
        return progress


class E2RankRerank(BaseDocumentCompressor):
    """Rerank retrieved Documents listwise with E2Rank: one prompt embedding, every candidate scored against it.

    Returns new Documents (same ``id``, ``page_content`` and metadata, plus the score under ``score_key``), best
    first. The candidates' embeddings come from the backend's cache when they were indexed through the same backend
    (e.g. with :class:`E2RankEmbeddings`), so a rerank then embeds one text: the prompt. Use it as the
    ``base_compressor`` of a ``ContextualCompressionRetriever``, or call :meth:`compress_documents` in a chain.

    Example:
        >>> from e2rank_integrations.langchain import E2RankEmbeddings, E2RankRerank
        >>> embeddings = E2RankEmbeddings.from_pretrained("Alibaba-NLP/E2Rank-0.6B")  # doctest: +SKIP
        >>> reranker = E2RankRerank(backend=embeddings.backend, top_n=5)  # doctest: +SKIP
        >>> best = reranker.compress_documents(retrieved_docs, "What is the capital of China?")  # doctest: +SKIP
    """

    model_config = _CONFIG

    backend: _BackendField
    """The model: a local ``E2RankModel``, an ``E2RankClient`` or ``AsyncE2RankClient``, or any Backend."""

    top_n: int | None = 3
    """Keep the best ``top_n`` Documents (``None``: all; more than there are: all)."""

    score_threshold: float | None = Field(default=None, allow_inf_nan=False)
    """Drop Documents scoring below this cosine similarity (``None``: keep all)."""

    num_prompt_docs: int = 20
    """How many of the leading Documents (in retrieval order) go into the listwise prompt."""

    instruction: str | None = None
    """Task description opening the listwise prompt; ``None`` keeps the backend's default."""

    score_key: str = Field(default="relevance_score", min_length=1)
    """Metadata key the score is stored under."""

    @field_validator("top_n", mode="before")
    @classmethod
    def _check_top_n(cls, value: object) -> int | None:
        return check_top_n(value)

    @field_validator("num_prompt_docs", mode="before")
    @classmethod
    def _check_num_prompt_docs(cls, value: object) -> int:
        return check_positive_int(value, "num_prompt_docs")

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        backend = check_sync_backend(self.backend, "acompress_documents")
        docs, texts = self._inputs(documents, query)
        if not docs:
            return []
        return self._outputs(docs, backend.rerank(query, texts, **self._rerank_kwargs()))

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        docs, texts = self._inputs(documents, query)
        if not docs:
            return []
        return self._outputs(docs, await call_async(self.backend, "rerank", query, texts, **self._rerank_kwargs()))

    def _inputs(self, documents: Sequence[Document], query: str) -> tuple[list[Document], list[str]]:
        """Check the arguments; return the Documents as a list and their texts, in retrieval order."""
        check_query(query)
        if isinstance(documents, (str, bytes, Document)):
            raise TypeError(f"documents must be a list of Documents, not a single {type(documents).__name__}")
        docs = list(documents)
        for i, doc in enumerate(docs):
            if not isinstance(doc, Document):
                raise TypeError(f"documents[{i}] must be a langchain_core Document, got {type(doc).__name__}")
            if not isinstance(doc.page_content, str):
                raise TypeError(f"documents[{i}].page_content must be a string, got {type(doc.page_content).__name__}")
        return docs, [doc.page_content for doc in docs]

    def _rerank_kwargs(self) -> dict[str, Any]:
        # All results come back; top_n and the threshold are applied together by `select`.
        return {"top_n": None, "instruction": self.instruction, "num_prompt_docs": self.num_prompt_docs}

    def _outputs(self, docs: list[Document], results: Sequence[RankResult]) -> list[Document]:
        """New Documents, best first, each a copy of its input with the score added to (a copy of) its metadata."""
        kept = select(results, top_n=self.top_n, score_threshold=self.score_threshold)
        return [
            docs[r.index].model_copy(update={"metadata": {**deepcopy(docs[r.index].metadata), self.score_key: r.score}})
            for r in kept
        ]
