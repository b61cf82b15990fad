"""LangChain adapters: one E2Rank backend for retrieval (``E2RankEmbeddings``) and reranking (``E2RankRerank``).

Both are thin: they delegate to a Backend (a local ``E2RankModel`` or a remote client) and map the results back to
LangChain's own types. Needs the ``langchain`` extra (``langchain-core`` only).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterable, Sequence
from copy import deepcopy
from typing import Annotated, Any, cast

import numpy as np
import numpy.typing as npt

from ._optional import require

require("langchain_core", extra="langchain")  # a missing extra fails here, with the pip command that installs it

from langchain_core.callbacks import (  # noqa: E402
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
    Callbacks,
)
from langchain_core.documents import BaseDocumentCompressor, Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.tools import BaseTool, StructuredTool  # noqa: E402
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore  # noqa: E402
from pydantic import (  # noqa: E402
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from ._deprecation import rename_keywords, renamed  # noqa: E402
from .context import NO_RESULTS, PackedContext, apack_context, cite, pack_context, tool_description  # noqa: E402
from .errors import E2RankTypeError, E2RankValueError  # noqa: E402
from .prompts import AGENT_MAX_PROMPT_TOKENS, AGENT_NUM_PROMPT_DOCS  # noqa: E402
from .scoring import as_embeddings, select  # noqa: E402
from .types import AsyncBackend, Backend, RankResult, call_async, check_backend, check_sync_backend  # noqa: E402
from .validators import check_optional_positive_int, check_positive_int, check_query, check_texts, check_top_n  # noqa: E402

__all__ = ["E2RankEmbeddings", "E2RankRerank", "E2RankRetriever", "create_e2rank_tool"]

_BackendField = Annotated[Backend | AsyncBackend, BeforeValidator(check_backend)]
"""A Backend or AsyncBackend; anything else is refused with a TypeError naming the missing methods."""

_CONFIG = ConfigDict(extra="forbid", arbitrary_types_allowed=True, use_attribute_docstrings=True)

logger = logging.getLogger(__name__)


def _one_query(text: object) -> list[str]:
    """``[text]`` for the backend's ``embed_queries``, or a TypeError when ``text`` is not a string."""
    if not isinstance(text, str):
        raise E2RankTypeError(f"text must be a string, got {type(text).__name__}")
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

    instruction: str | None = None
    """Task description for queries; ``None`` keeps the backend's own default (the authors' web search one).
    ``query_instruction``, its old name, still works for one release, with a ``DeprecationWarning``."""

    batch_size: int = Field(default=256, gt=0)
    """Most texts sent to the backend in one call (one HTTP request with a remote client); the backend batches
    its forward passes within a call by itself."""

    show_progress: bool = False
    """Show a progress bar over the calls when embedding documents."""

    @model_validator(mode="before")
    @classmethod
    def _renamed_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return rename_keywords(data, {"query_instruction": "instruction"}, cls.__name__, stacklevel=4)

    @classmethod
    @renamed(query_instruction="instruction")
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        instruction: str | None = None,
        batch_size: int = 256,
        show_progress: bool = False,
        **model_kwargs: Any,
    ) -> E2RankEmbeddings:
        """Load an ``E2RankModel`` (needs the ``model`` extra) and wrap it.

        Args:
            name_or_path: A hub id such as ``"Alibaba-NLP/E2Rank-0.6B"`` or a local directory.
            instruction: See the field of that name (``query_instruction``, its old name, is deprecated).
            batch_size: See the field of that name.
            show_progress: See the field of that name.
            **model_kwargs: Passed to ``E2RankModel.from_pretrained`` (``device``, ``dtype``, ``cache``...).
        """
        from .model import E2RankModel  # here, not at import: a remote backend needs no torch

        backend = E2RankModel.from_pretrained(name_or_path, **model_kwargs)
        return cls(backend=backend, instruction=instruction, batch_size=batch_size, show_progress=show_progress)

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
        return {} if self.instruction is None else {"instruction": self.instruction}

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

    passes: int = 1
    """Rerank passes: 2 reranks again with the first pass's order in the prompt (one more prompt embedding)."""

    max_prompt_tokens: int | None = None
    """Token budget of the listwise prompt, its documents cut evenly to fit (``None``: the model's ``max_length``).
    The prompt is the one text a rerank embeds: its tokens are the cost of a call."""

    instruction: str | None = None
    """Task description opening the listwise prompt; ``None`` keeps the backend's default."""

    score_key: str = Field(default="relevance_score", min_length=1)
    """Metadata key the score is stored under."""

    @field_validator("top_n", mode="before")
    @classmethod
    def _check_top_n(cls, value: object) -> int | None:
        return check_top_n(value)

    @field_validator("num_prompt_docs", "passes", mode="before")
    @classmethod
    def _check_counts(cls, value: object, info: ValidationInfo) -> int:
        return check_positive_int(value, str(info.field_name))

    @field_validator("max_prompt_tokens", mode="before")
    @classmethod
    def _check_max_prompt_tokens(cls, value: object) -> int | None:
        return check_optional_positive_int(value, "max_prompt_tokens")

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        return self._rerank(documents, query, "acompress_documents")

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        return await self._arerank(documents, query)

    def _rerank(
        self, documents: Sequence[Document], query: str, async_api: str, doc_embeddings: npt.ArrayLike | None = None
    ) -> list[Document]:
        """:meth:`compress_documents`, with the candidates' stored vectors where the caller has them."""
        backend = check_sync_backend(self.backend, async_api)
        docs, texts = self._inputs(documents, query)
        if not docs:
            return []
        return self._outputs(docs, backend.rerank(query, texts, doc_embeddings=doc_embeddings, **self._rerank_kwargs()))

    async def _arerank(
        self, documents: Sequence[Document], query: str, doc_embeddings: npt.ArrayLike | None = None
    ) -> list[Document]:
        docs, texts = self._inputs(documents, query)
        if not docs:
            return []
        results = await call_async(
            self.backend, "rerank", query, texts, doc_embeddings=doc_embeddings, **self._rerank_kwargs()
        )
        return self._outputs(docs, results)

    def _inputs(self, documents: Sequence[Document], query: str) -> tuple[list[Document], list[str]]:
        """Check the arguments; return the Documents as a list and their texts, in retrieval order."""
        check_query(query)
        if isinstance(documents, (str, bytes, Document)):
            raise E2RankTypeError(f"documents must be a list of Documents, not a single {type(documents).__name__}")
        docs = list(documents)
        for i, doc in enumerate(docs):
            if not isinstance(doc, Document):
                raise E2RankTypeError(f"documents[{i}] must be a langchain_core Document, got {type(doc).__name__}")
            if not isinstance(doc.page_content, str):
                raise E2RankTypeError(
                    f"documents[{i}].page_content must be a string, got {type(doc.page_content).__name__}"
                )
        return docs, [doc.page_content for doc in docs]

    def _rerank_kwargs(self) -> dict[str, Any]:
        # All results come back; top_n and the threshold are applied together by `select`.
        return {
            "top_n": None,
            "instruction": self.instruction,
            "num_prompt_docs": self.num_prompt_docs,
            "passes": self.passes,
            "max_prompt_tokens": self.max_prompt_tokens,
        }

    def _outputs(self, docs: list[Document], results: Sequence[RankResult]) -> list[Document]:
        """New Documents, best first, each a copy of its input with the score added to (a copy of) its metadata."""
        kept = select(results, top_n=self.top_n, score_threshold=self.score_threshold)
        return [
            docs[r.index].model_copy(update={"metadata": {**deepcopy(docs[r.index].metadata), self.score_key: r.score}})
            for r in kept
        ]


class E2RankRetriever(BaseRetriever):
    """Retrieve and rerank in one call: ``k`` candidates from a vector store or a retriever, the best ``top_n`` out.

    The first stage is ``vectorstore.similarity_search(query, k=k, **search_kwargs)`` (filters pass through
    ``search_kwargs``), or ``base_retriever``; the second is :class:`E2RankRerank` on ``backend``. Documents come
    back best first, keeping their ``id``, ``page_content`` and metadata, with the score under
    ``metadata["relevance_score"]``. ``invoke(query, top_n=3)`` overrides ``top_n`` for one call.

    The rerank embeds one text, the listwise prompt, when the candidates' vectors are at hand: an
    ``InMemoryVectorStore`` built with :class:`E2RankEmbeddings` hands over its stored vectors, and any store
    indexed through :class:`E2RankEmbeddings` on the same backend leaves them in the backend's cache. Where neither
    holds them (a restart, ``cache=False``, an LRU smaller than the corpus), every call embeds the candidates again:
    the retriever then logs a warning, once, with how many it re-embedded and the fix (a persistent cache).
    ``ainvoke`` awaits an async backend (``AsyncE2RankClient``); ``invoke`` needs a sync one.

    Example:
        >>> from langchain_core.vectorstores import InMemoryVectorStore
        >>> from e2rank_integrations.langchain import E2RankEmbeddings, E2RankRetriever
        >>> embeddings = E2RankEmbeddings.from_pretrained("Alibaba-NLP/E2Rank-0.6B")  # doctest: +SKIP
        >>> store = InMemoryVectorStore.from_texts(["Paris is in France.", "Rome is in Italy."], embeddings)
        ... # doctest: +SKIP
        >>> retriever = E2RankRetriever(vectorstore=store, backend=embeddings.backend, k=50, top_n=5)
        ... # doctest: +SKIP
        >>> retriever.invoke("Where is Paris?")[0].metadata["relevance_score"]  # doctest: +SKIP
        0.62
    """

    model_config = _CONFIG

    backend: _BackendField
    """The model that reranks: a local ``E2RankModel``, an ``E2RankClient`` or ``AsyncE2RankClient``."""

    vectorstore: VectorStore | None = None
    """The first stage, searched with ``similarity_search`` (give this or ``base_retriever``)."""

    base_retriever: BaseRetriever | None = None
    """The first stage, when it is a retriever rather than a vector store; its first ``k`` results are reranked."""

    k: int = 50
    """How many candidates the first stage returns for the rerank."""

    top_n: int | None = 5
    """How many Documents come back, best first (``None``: every candidate)."""

    score_threshold: float | None = Field(default=None, allow_inf_nan=False)
    """Drop Documents whose rerank score (a cosine) is below this."""

    num_prompt_docs: int = 20
    """How many leading candidates (in first-stage order) go into the listwise prompt."""

    passes: int = 1
    """Rerank passes: 2 reranks again with the first pass's order in the prompt (one more prompt embedding)."""

    max_prompt_tokens: int | None = None
    """Token budget of the listwise prompt, its documents cut evenly to fit (``None``: the model's ``max_length``)."""

    instruction: str | None = None
    """Task description opening the listwise prompt; ``None`` keeps the backend's default."""

    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    """More arguments of ``vectorstore.similarity_search``, such as ``filter`` (``k`` is the field above)."""

    use_stored_embeddings: bool = True
    """Rerank on the vectors the vector store holds where it returns them (an ``InMemoryVectorStore`` or a
    ``langchain_chroma.Chroma`` built with :class:`E2RankEmbeddings`), so that not even a cache lookup is needed.
    Turn off if that store was built with another E2Rank model than ``backend``."""

    _warned: bool = PrivateAttr(default=False)  # the re-embedding warning is given once per retriever

    @field_validator("k", "num_prompt_docs", "passes", mode="before")
    @classmethod
    def _check_counts(cls, value: object, info: ValidationInfo) -> int:
        return check_positive_int(value, str(info.field_name))

    @field_validator("top_n", mode="before")
    @classmethod
    def _check_top_n(cls, value: object) -> int | None:
        return check_top_n(value)

    @field_validator("max_prompt_tokens", mode="before")
    @classmethod
    def _check_max_prompt_tokens(cls, value: object) -> int | None:
        return check_optional_positive_int(value, "max_prompt_tokens")

    @model_validator(mode="after")
    def _check_first_stage(self) -> E2RankRetriever:
        if (self.vectorstore is None) == (self.base_retriever is None):
            raise E2RankValueError("give exactly one first stage: vectorstore= or base_retriever=")
        if self.base_retriever is not None and self.search_kwargs:
            raise E2RankValueError("search_kwargs apply to vectorstore=; configure base_retriever= itself instead")
        if "k" in self.search_kwargs:
            raise E2RankValueError("set the number of candidates with k=, not search_kwargs={'k': ...}")
        return self

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, top_n: int | None = None
    ) -> list[Document]:
        reranker = self._reranker(query, top_n)
        backend = check_sync_backend(self.backend, "ainvoke")  # before the search, which would fail less clearly
        if self.vectorstore is not None:
            candidates = self.vectorstore.similarity_search(query, k=self.k, **self.search_kwargs)
        else:
            candidates = self._first_stage().invoke(query, config={"callbacks": run_manager.get_child()})[: self.k]
        stored = self._stored_embeddings(candidates)
        if stored is not None or self._warned:
            return reranker._rerank(candidates, query, "ainvoke", stored)
        before = backend.stats()["texts_embedded"]
        out = reranker._rerank(candidates, query, "ainvoke")
        self._warn_reembedded(backend.stats()["texts_embedded"] - before, len(candidates))
        return out

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, top_n: int | None = None
    ) -> list[Document]:
        reranker = self._reranker(query, top_n)
        if self.vectorstore is not None:
            candidates = await self.vectorstore.asimilarity_search(query, k=self.k, **self.search_kwargs)
        else:
            retrieved = await self._first_stage().ainvoke(query, config={"callbacks": run_manager.get_child()})
            candidates = retrieved[: self.k]
        stored = await asyncio.to_thread(self._stored_embeddings, candidates)  # a Chroma store may do I/O
        if stored is not None or self._warned:
            return await reranker._arerank(candidates, query, stored)
        before = (await call_async(self.backend, "stats"))["texts_embedded"]
        out = await reranker._arerank(candidates, query)
        self._warn_reembedded((await call_async(self.backend, "stats"))["texts_embedded"] - before, len(candidates))
        return out

    def _warn_reembedded(self, embedded: int, candidates: int) -> None:
        """Warn (once) when a rerank embedded candidates as well as its prompt: their vectors were nowhere at hand."""
        again = min(embedded - self.passes, candidates)  # the other texts are the listwise prompts, one per pass
        if again <= 0:
            return
        self._warned = True
        logger.warning(
            "E2RankRetriever re-embedded %d of %d candidates: the vector store hands back no vectors and the "
            "backend's cache did not hold them (a restart, cache=False, or an LRU smaller than the corpus), so every "
            "search pays for them again. Fix: index into a persistent cache, E2RankModel.from_pretrained(..., "
            "cache='embeddings.sqlite'), and load the model with the same cache when serving; or search an "
            "InMemoryVectorStore or langchain_chroma.Chroma built with E2RankEmbeddings, which hand back their "
            "vectors. (Warned once per retriever.)",
            again,
            candidates,
        )

    def _stored_embeddings(self, documents: Sequence[Document]) -> npt.NDArray[np.float32] | None:
        """The vector store's stored vectors of ``documents``, one row each, or ``None`` where it has none to give.

        An ``InMemoryVectorStore`` or a ``langchain_chroma.Chroma`` built with :class:`E2RankEmbeddings` (and
        ``use_stored_embeddings``) has them: LangChain's ``VectorStore`` interface returns no vectors, and another
        embedding model's would not fit. ``None`` costs nothing either after indexing through the same backend: its
        cache holds the vectors.
        """
        store = self.vectorstore
        if not (self.use_stored_embeddings and store is not None and isinstance(store.embeddings, E2RankEmbeddings)):
            return None
        ids = [doc.id for doc in documents if doc.id is not None]
        if not ids or len(ids) < len(documents):  # a Document without an id cannot be looked up
            return None
        chroma = sys.modules.get("langchain_chroma")  # not imported: the store cannot be one of its
        if isinstance(store, InMemoryVectorStore):
            rows = [store.store.get(i, {}).get("vector") for i in ids]
        elif chroma is not None and isinstance(store, chroma.Chroma):
            got = store.get(ids=list(dict.fromkeys(ids)), include=["embeddings"])  # Chroma answers in its own order
            vectors = dict(zip(got["ids"], got["embeddings"]))
            rows = [vectors.get(i) for i in ids]
        else:
            return None
        if any(row is None for row in rows):
            return None
        return as_embeddings(np.asarray(rows, dtype=np.float32), len(rows), name="stored vectors")

    def _reranker(self, query: str, top_n: int | None) -> E2RankRerank:
        check_query(query)
        return E2RankRerank(
            backend=self.backend,
            top_n=self.top_n if top_n is None else top_n,
            score_threshold=self.score_threshold,
            num_prompt_docs=self.num_prompt_docs,
            passes=self.passes,
            max_prompt_tokens=self.max_prompt_tokens,
            instruction=self.instruction,
        )

    def _first_stage(self) -> BaseRetriever:
        return cast(BaseRetriever, self.base_retriever)  # the validator allows nothing else without a vectorstore


_SCORE_KEY = "relevance_score"  # where E2RankRerank puts the score by default


def create_e2rank_tool(
    retriever: E2RankRetriever,
    *,
    name: str = "search",
    description: str | None = None,
    max_tokens: int | None = None,
    source_key: str = "source",
) -> BaseTool:
    """An agent tool over an :class:`E2RankRetriever`: passages with numbered citations, and the Documents.

    The tool's ``response_format`` is ``"content_and_artifact"``: the model reads the content, ``[1] (source)
    passage``, blank line, ``[2] ...``, best first; the application gets the Documents of those citations, in
    the same order, as the ``ToolMessage``'s ``artifact`` (``artifact[n - 1]`` is passage ``[n]``). With
    ``max_tokens`` the content is :func:`~e2rank_integrations.context.pack_context`'s: near-duplicates dropped
    and the passages fitted to the budget (the last one cut and marked ``[...]``), on vectors the backend already
    holds, so packing embeds nothing. Without it, every Document the retriever returns is cited.

    The rerank's prompt is bounded for an agent loop: the retriever's ``num_prompt_docs`` and ``max_prompt_tokens``
    where they were set on it, else the agent setting (``prompts.AGENT_NUM_PROMPT_DOCS`` and
    ``prompts.AGENT_MAX_PROMPT_TOKENS``, smaller than the paper's 20 documents so that a CPU call takes seconds; see
    the agent benchmark in the docs). The retriever passed in is not changed: the tool searches with a copy.

    The arguments are ``query`` (a non-empty string) and an optional ``top_n`` from 1 to the retriever's
    ``top_n`` (its ``k`` when that is ``None``); anything else, or a missing query, comes back to the model as
    an error message naming the argument (``status="error"``) rather than raising in the agent loop.

    Args:
        retriever: The retriever to search with.
        name: The tool's name, as the model sees it.
        description: What the model reads to decide when and how to call the tool; the default explains the
            arguments and the citations.
        max_tokens: Budget of the content, counted with the backend's tokenizer where it has one.
        source_key: Metadata key shown as each passage's source (absent: no source shown).

    Example:
        >>> from langchain.agents import create_agent  # doctest: +SKIP
        >>> tool = create_e2rank_tool(retriever, max_tokens=1500)  # doctest: +SKIP
        >>> agent = create_agent(chat_model, [tool])  # doctest: +SKIP
    """
    if not isinstance(retriever, E2RankRetriever):
        raise E2RankTypeError(f"retriever must be an E2RankRetriever, got {type(retriever).__name__}")
    if max_tokens is not None:
        max_tokens = check_positive_int(max_tokens, "max_tokens")
    agent = {"num_prompt_docs": AGENT_NUM_PROMPT_DOCS, "max_prompt_tokens": AGENT_MAX_PROMPT_TOKENS}
    retriever = retriever.model_copy(update={k: v for k, v in agent.items() if k not in retriever.model_fields_set})
    limit = retriever.top_n or retriever.k
    schema = create_model(
        "E2RankSearch",
        __config__=ConfigDict(extra="forbid"),
        query=(
            Annotated[str, AfterValidator(check_query)],  # a blank query is an argument error, not a crash
            Field(description="What to search for: a self-contained question or phrase."),
        ),
        top_n=(
            int | None,
            Field(default=None, ge=1, le=limit, description=f"How many passages to return, 1 to {limit}."),
        ),
    )
    more = f" `top_n` (optional, 1 to {limit}): ask for fewer passages."
    default = tool_description(limit, query_argument="query", more=more, max_tokens=max_tokens)

    def search(query: str, top_n: int | None = None) -> tuple[str, list[Document]]:
        docs = retriever.invoke(query, top_n=top_n)
        if max_tokens is None or not docs:
            return _cited(docs, source_key), docs
        packed = pack_context(query, **_pack_arguments(retriever, docs, max_tokens, source_key))
        return _packed_output(packed, docs)

    async def asearch(query: str, top_n: int | None = None) -> tuple[str, list[Document]]:
        docs = await retriever.ainvoke(query, top_n=top_n)
        if max_tokens is None or not docs:
            return _cited(docs, source_key), docs
        packed = await apack_context(query, **_pack_arguments(retriever, docs, max_tokens, source_key))
        return _packed_output(packed, docs)

    return StructuredTool.from_function(
        func=search,
        coroutine=asearch,
        name=name,
        description=description or default,
        args_schema=schema,
        response_format="content_and_artifact",
        handle_validation_error=_argument_error,
    )


def _sources(docs: Sequence[Document], source_key: str) -> list[str | None]:
    return [None if doc.metadata.get(source_key) is None else str(doc.metadata[source_key]) for doc in docs]


def _cited(docs: Sequence[Document], source_key: str) -> str:
    if not docs:
        return NO_RESULTS
    return cite([doc.page_content for doc in docs], sources=_sources(docs, source_key))


def _pack_arguments(
    retriever: E2RankRetriever, docs: list[Document], max_tokens: int, source_key: str
) -> dict[str, Any]:
    """``pack_context``'s arguments for reranked Documents: their vectors come from the store or the backend."""
    return {
        "documents": [doc.page_content for doc in docs],
        "max_tokens": max_tokens,
        "backend": retriever.backend,
        "doc_embeddings": retriever._stored_embeddings(docs),
        "sources": _sources(docs, source_key),
        "ids": [doc.id for doc in docs],
        "scores": [doc.metadata[_SCORE_KEY] for doc in docs],
    }


def _packed_output(packed: PackedContext, docs: list[Document]) -> tuple[str, list[Document]]:
    """The tool's content and artifact: the packed text, and the Documents it cites in citation order."""
    return packed.content, [docs[item.index] for item in packed.items]


def _argument_error(error: ValidationError) -> str:
    """What the model reads when it called the tool with bad arguments: each argument and what was wrong."""
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in error.errors())
    return f"Invalid arguments, nothing was searched: {problems}. Call the tool again with valid arguments."
