"""LlamaIndex adapters: ``E2RankEmbedding`` (a ``BaseEmbedding``) and ``E2RankRerank`` (a node postprocessor).

Both delegate to one Backend (a local ``E2RankModel`` or a remote client). Index with ``E2RankEmbedding`` and
rerank with ``E2RankRerank`` on the same backend: the candidates' vectors then come from the backend's cache (or
from ``node.embedding`` where a vector store returns it), so a rerank embeds one text, the listwise prompt.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ._deprecation import deprecated_alias
from ._optional import require
from .context import NO_RESULTS, PackedContext, apack_context, cite, pack_context, tool_description
from .errors import E2RankTypeError, E2RankValueError
from .prompts import AGENT_MAX_PROMPT_TOKENS, AGENT_NUM_PROMPT_DOCS
from .scoring import fill_embeddings, missing_rows, select
from .types import (
    AsyncBackend,
    Backend,
    Embeddings,
    RankResult,
    backend_name,
    call_async,
    check_backend,
    check_sync_backend,
)
from .validators import check_optional_positive_int, check_positive_int, check_query, check_top_n

# Imported through `require`, so that a missing extra names the pip command that installs it.
_instrumentation = require("llama_index.core.instrumentation", extra="llama-index")

from llama_index.core.base.base_retriever import BaseRetriever  # noqa: E402
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding  # noqa: E402
from llama_index.core.bridge.pydantic import Field, ValidationInfo, field_validator, model_validator  # noqa: E402
from llama_index.core.callbacks import CBEventType, EventPayload  # noqa: E402
from llama_index.core.callbacks.base import EventContext  # noqa: E402
from llama_index.core.indices.base import BaseIndex  # noqa: E402
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent  # noqa: E402
from llama_index.core.postprocessor.types import BaseNodePostprocessor  # noqa: E402
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle  # noqa: E402
from llama_index.core.tools import RetrieverTool, ToolMetadata, ToolOutput  # noqa: E402

# e2rank_retriever_tool: the deprecated old name of create_e2rank_tool, still star-imported for one release.
__all__ = ["E2RankEmbedding", "E2RankRerank", "create_e2rank_tool", "e2rank_retriever_tool"]

_dispatcher = _instrumentation.get_dispatcher(__name__)

_ASYNC_EMBED_API = "the async methods (aget_query_embedding, aget_text_embedding_batch, index.as_query_engine().aquery)"
_ASYNC_RERANK_API = "apostprocess_nodes (or aquery on a query engine)"


def _chunks(texts: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(texts), size):
        yield list(texts[start : start + size])


class E2RankEmbedding(BaseEmbedding):
    """A LlamaIndex embedding model backed by E2Rank: queries with the retrieval instruction, texts without.

    Any Backend works: a local ``E2RankModel`` or a remote client. With an async backend use the async API
    (``aget_query_embedding``, ``aget_text_embedding_batch``); the blocking methods then raise a ``TypeError``.

    Example:
        >>> from llama_index.core import Document, VectorStoreIndex
        >>> from e2rank_integrations import E2RankModel
        >>> model = E2RankModel.from_pretrained("Alibaba-NLP/E2Rank-0.6B")  # doctest: +SKIP
        >>> index = VectorStoreIndex.from_documents(
        ...     [Document(text="Paris is the capital of France.")], embed_model=E2RankEmbedding(backend=model)
        ... )  # doctest: +SKIP
    """

    backend: Backend | AsyncBackend = Field(
        exclude=True, description="The Backend that embeds: E2RankModel or a remote client."
    )
    instruction: str | None = Field(
        default=None, description="Task description for queries; None uses the backend's default."
    )
    # Larger than LlamaIndex's default of 10: the backend batches by length itself, and fewer calls mean fewer
    # round trips to a remote backend.
    embed_batch_size: int = Field(default=32, gt=0, le=2048, description="Most texts sent to the backend per call.")

    @field_validator("backend", mode="before")
    @classmethod
    def _check_backend(cls, backend: object) -> Backend | AsyncBackend:
        return check_backend(backend)

    @model_validator(mode="before")
    @classmethod
    def _name_from_backend(cls, data: Any) -> Any:
        if isinstance(data, dict) and "backend" in data and "model_name" not in data:
            return {**data, "model_name": backend_name(data["backend"])}
        return data

    @classmethod
    def class_name(cls) -> str:
        return "E2RankEmbedding"

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        instruction: str | None = None,
        embed_batch_size: int = 32,
        **model_kwargs: Any,
    ) -> E2RankEmbedding:
        """Load a local ``E2RankModel`` (see ``E2RankModel.from_pretrained`` for ``model_kwargs``) and wrap it.

        Share ``embedding.backend`` with :class:`E2RankRerank` so that reranking reuses the indexed vectors.
        """
        from .model import E2RankModel

        model = E2RankModel.from_pretrained(name_or_path, **model_kwargs)
        return cls(backend=model, instruction=instruction, embed_batch_size=embed_batch_size)

    def _sync(self) -> Backend:
        return check_sync_backend(self.backend, _ASYNC_EMBED_API)

    def _get_query_embedding(self, query: str) -> Embedding:
        vector: Embedding = self._sync().embed_queries([query], instruction=self.instruction)[0].tolist()
        return vector

    async def _aget_query_embedding(self, query: str) -> Embedding:
        vectors = await call_async(self.backend, "embed_queries", [query], instruction=self.instruction)
        vector: Embedding = vectors[0].tolist()
        return vector

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        backend = self._sync()
        out: list[Embedding] = []
        for chunk in _chunks(texts, self.embed_batch_size):
            out.extend(backend.embed_documents(chunk).tolist())
        return out

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        out: list[Embedding] = []
        for chunk in _chunks(texts, self.embed_batch_size):
            vectors: Embeddings = await call_async(self.backend, "embed_documents", chunk)
            out.extend(vectors.tolist())
        return out


class E2RankRerank(BaseNodePostprocessor):
    """A LlamaIndex node postprocessor that reranks retrieved nodes with one E2Rank listwise prompt.

    Nodes are reranked on ``node.get_content(metadata_mode=MetadataMode.EMBED)``, the text ``VectorStoreIndex``
    embeds, in the order given. Their vectors are ``node.embedding`` where a node carries one (used as is), else
    the backend's: after indexing through :class:`E2RankEmbedding` on the same backend they are cache hits, so a
    rerank embeds only the prompt. The result is new ``NodeWithScore`` objects scored by E2Rank, best first; the
    nodes passed in are not changed. With an async backend use ``apostprocess_nodes`` (``aquery``).

    Example:
        >>> from e2rank_integrations import E2RankModel
        >>> model = E2RankModel.from_pretrained("Alibaba-NLP/E2Rank-0.6B")  # doctest: +SKIP
        >>> engine = index.as_query_engine(  # doctest: +SKIP
        ...     similarity_top_k=50, node_postprocessors=[E2RankRerank(backend=model, top_n=5)], llm=llm
        ... )
    """

    backend: Backend | AsyncBackend = Field(
        exclude=True, description="The Backend that reranks: E2RankModel or a remote client."
    )
    top_n: int | None = Field(default=3, description="How many nodes to keep, best first; None keeps all.")
    score_threshold: float | None = Field(
        default=None, allow_inf_nan=False, description="Drop nodes whose rerank score (a cosine) is below this."
    )
    num_prompt_docs: int = Field(default=20, description="How many leading nodes go into the listwise prompt.")
    passes: int = Field(default=1, description="Rerank passes: 2 reranks again with the first pass's order.")
    max_prompt_tokens: int | None = Field(
        default=None,
        description="Token budget of the listwise prompt, its documents cut evenly to fit; None: the model's "
        "max_length.",
    )
    instruction: str | None = Field(
        default=None, description="Task description opening the listwise prompt; None uses the backend's default."
    )
    keep_retrieval_score: bool = Field(
        default=False, description='Keep each node\'s first-stage score in metadata["retrieval_score"].'
    )
    use_node_embeddings: bool = Field(
        default=True,
        description="Use node.embedding where a node carries one; turn off when the index was built with "
        "another embedding model.",
    )

    @field_validator("backend", mode="before")
    @classmethod
    def _check_backend(cls, backend: object) -> Backend | AsyncBackend:
        return check_backend(backend)

    @field_validator("top_n", mode="before")
    @classmethod
    def _check_top_n(cls, top_n: Any) -> int | None:
        return check_top_n(top_n)

    @field_validator("num_prompt_docs", "passes", mode="before")
    @classmethod
    def _check_counts(cls, value: Any, info: ValidationInfo) -> int:
        return check_positive_int(value, str(info.field_name))

    @field_validator("max_prompt_tokens", mode="before")
    @classmethod
    def _check_max_prompt_tokens(cls, value: Any) -> int | None:
        return check_optional_positive_int(value, "max_prompt_tokens")

    @classmethod
    def class_name(cls) -> str:
        return "E2RankRerank"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query = _query(query_bundle)
        backend = check_sync_backend(self.backend, _ASYNC_RERANK_API)
        texts, stored = self._candidates(nodes)
        if not texts:
            return []
        with self._rerank_event(nodes, query_bundle, query) as event:
            missing = missing_rows(stored) if stored is not None else []
            computed = backend.embed_documents([texts[i] for i in missing]) if missing else None
            results = backend.rerank(query, texts, doc_embeddings=_doc_embeddings(stored, computed), **self._options())
            return self._finish(event, nodes, results)

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query = _query(query_bundle)
        texts, stored = self._candidates(nodes)
        if not texts:
            return []
        with self._rerank_event(nodes, query_bundle, query) as event:
            missing = missing_rows(stored) if stored is not None else []
            computed = (
                await call_async(self.backend, "embed_documents", [texts[i] for i in missing]) if missing else None
            )
            results = await call_async(
                self.backend,
                "rerank",
                query,
                texts,
                doc_embeddings=_doc_embeddings(stored, computed),
                **self._options(),
            )
            return self._finish(event, nodes, results)

    def _candidates(self, nodes: Sequence[NodeWithScore]) -> tuple[list[str], list[Any] | None]:
        """The texts to rerank, and the nodes' own vectors (``None`` when no node carries one)."""
        if isinstance(nodes, (str, bytes)) or not isinstance(nodes, Sequence):
            raise E2RankTypeError(f"nodes must be a list of NodeWithScore, got {type(nodes).__name__}")
        for i, scored in enumerate(nodes):
            if not isinstance(scored, NodeWithScore):
                raise E2RankTypeError(f"nodes[{i}] must be a NodeWithScore, got {type(scored).__name__}")
        texts = [scored.node.get_content(metadata_mode=MetadataMode.EMBED) for scored in nodes]
        stored = [scored.node.embedding for scored in nodes] if self.use_node_embeddings else []
        # No vector at all: the backend's own cache serves every candidate (and a remote one gets none uploaded).
        return texts, stored if any(v is not None for v in stored) else None

    def _options(self) -> dict[str, Any]:
        return {
            "top_n": self.top_n if self.score_threshold is None else None,  # the threshold needs every score
            "instruction": self.instruction,
            "num_prompt_docs": self.num_prompt_docs,
            "passes": self.passes,
            "max_prompt_tokens": self.max_prompt_tokens,
        }

    @contextmanager
    def _rerank_event(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None, query: str
    ) -> Iterator[EventContext]:
        """LlamaIndex's ``ReRankStartEvent`` and ``RERANKING`` callback event, as its own rerankers send them."""
        model_name = backend_name(self.backend)
        top_n = len(nodes) if self.top_n is None else min(self.top_n, len(nodes))
        _dispatcher.event(ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=top_n, model_name=model_name))
        payload: dict[str, Any] = {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: model_name,
            EventPayload.QUERY_STR: query,
            EventPayload.TOP_K: top_n,
        }
        with self.callback_manager.event(CBEventType.RERANKING, payload=payload) as event:
            yield event

    def _finish(
        self, event: EventContext, nodes: list[NodeWithScore], results: Sequence[RankResult]
    ) -> list[NodeWithScore]:
        kept = select(results, top_n=self.top_n, score_threshold=self.score_threshold)
        out = [NodeWithScore(node=self._result_node(nodes[r.index]), score=r.score) for r in kept]
        event.on_end(payload={EventPayload.NODES: out})
        _dispatcher.event(ReRankEndEvent(nodes=out))
        return out

    def _result_node(self, scored: NodeWithScore) -> BaseNode:
        """The node to return: the same one, or a copy that records the first-stage score in its metadata."""
        node = scored.node
        if not self.keep_retrieval_score:
            return node
        # The score is not content: kept out of the embedded and LLM text, so the node's vector stays reusable.
        return node.model_copy(
            update={
                "metadata": {**node.metadata, "retrieval_score": scored.score},
                "excluded_embed_metadata_keys": [*node.excluded_embed_metadata_keys, "retrieval_score"],
                "excluded_llm_metadata_keys": [*node.excluded_llm_metadata_keys, "retrieval_score"],
            }
        )


def _query(query_bundle: QueryBundle | None) -> str:
    if query_bundle is None:
        raise E2RankValueError(
            "E2RankRerank needs the query: call postprocess_nodes(nodes, query_str=...) or pass query_bundle"
        )
    return check_query(query_bundle.query_str, "query_bundle.query_str")


def _doc_embeddings(stored: list[Any] | None, computed: Embeddings | None) -> Embeddings | None:
    return fill_embeddings(stored, computed, name="node embeddings") if stored is not None else None


def create_e2rank_tool(
    index_or_retriever: BaseIndex[Any] | BaseRetriever,
    backend: Backend | AsyncBackend,
    *,
    k: int | None = None,
    top_n: int = 5,
    name: str = "search",
    description: str | None = None,
    max_tokens: int | None = None,
    source_key: str = "file_name",
    num_prompt_docs: int = AGENT_NUM_PROMPT_DOCS,
    max_prompt_tokens: int | None = AGENT_MAX_PROMPT_TOKENS,
) -> RetrieverTool:
    """A ``RetrieverTool`` for agents: ``k`` candidates, reranked by :class:`E2RankRerank`, cited passages out.

    Named as the LangChain module's tool factory; ``e2rank_retriever_tool``, its old name, still works for one
    release, with a ``DeprecationWarning``.

    The tool takes LlamaIndex's default tool argument, ``input`` (the query, used as given), retrieves, reranks
    to the best ``top_n`` and returns them as numbered passages, ``[1] (source) text``, blank line, ``[2] ...``
    (each node's text as LlamaIndex shows it to an LLM). The ``ToolOutput``'s ``raw_output`` holds the cited
    ``NodeWithScore`` objects in citation order. With ``max_tokens`` the passages are packed by
    :func:`~e2rank_integrations.context.pack_context`: near-duplicates dropped on the vectors the rerank used
    (no forward pass after indexing through the same backend) and the text fitted to the budget. Agents call
    ``acall``, which awaits an async backend; ``call`` needs a sync one.

    Args:
        index_or_retriever: An index (searched with ``as_retriever(similarity_top_k=k)``) or a retriever, used
            as it is configured.
        backend: The model that reranks: ``E2RankModel``, ``E2RankClient`` or ``AsyncE2RankClient``; the one the
            index was embedded with, so that the rerank embeds only its prompt.
        k: Candidates retrieved from an index (default 50); for a retriever, set its own ``similarity_top_k``.
        top_n: Passages returned, best first.
        name: The tool's name, as the model sees it.
        description: What the model reads to decide when and how to call the tool.
        max_tokens: Budget of the returned text, counted with the backend's tokenizer where it has one.
        source_key: Node metadata key shown as each passage's source (absent: no source shown).
        num_prompt_docs: Leading candidates in the listwise prompt. The default is the agent setting
            (``prompts.AGENT_NUM_PROMPT_DOCS``), smaller than the paper's 20 so that a CPU call takes seconds;
            see the agent benchmark in the docs.
        max_prompt_tokens: Token budget of the listwise prompt (``None``: no cap but the model's ``max_length``);
            default the agent setting (``prompts.AGENT_MAX_PROMPT_TOKENS``).

    Example:
        >>> from llama_index.core.agent.workflow import FunctionAgent  # doctest: +SKIP
        >>> tool = create_e2rank_tool(index, model, k=50, top_n=5, max_tokens=1500)  # doctest: +SKIP
        >>> agent = FunctionAgent(tools=[tool], llm=llm)  # doctest: +SKIP
    """
    if isinstance(index_or_retriever, BaseIndex):
        retriever = index_or_retriever.as_retriever(similarity_top_k=check_positive_int(50 if k is None else k, "k"))
    elif isinstance(index_or_retriever, BaseRetriever):
        if k is not None:
            raise E2RankValueError("k applies to an index; set the retriever's own similarity_top_k instead")
        retriever = index_or_retriever
    else:
        raise E2RankTypeError(
            f"index_or_retriever must be a LlamaIndex index or retriever, got {type(index_or_retriever).__name__}"
        )
    if max_tokens is not None:
        max_tokens = check_positive_int(max_tokens, "max_tokens")
    reranker = E2RankRerank(
        backend=backend,
        top_n=check_positive_int(top_n, "top_n"),
        num_prompt_docs=num_prompt_docs,
        max_prompt_tokens=max_prompt_tokens,
    )
    default = tool_description(top_n, query_argument="input", max_tokens=max_tokens)
    metadata = ToolMetadata(name=name, description=description or default)
    return _E2RankRetrieverTool(
        retriever, metadata, [reranker], backend=backend, max_tokens=max_tokens, source_key=source_key
    )


e2rank_retriever_tool = deprecated_alias(create_e2rank_tool, "e2rank_retriever_tool")
"""Deprecated: the old name of :func:`create_e2rank_tool` (the name the LangChain adapter uses too)."""


class _E2RankRetrieverTool(RetrieverTool):
    """``RetrieverTool`` with the query passed as given and cited (optionally packed) passages as its content."""

    def __init__(
        self,
        retriever: BaseRetriever,
        metadata: ToolMetadata,
        node_postprocessors: list[BaseNodePostprocessor],
        *,
        backend: Backend | AsyncBackend,
        max_tokens: int | None,
        source_key: str,
    ) -> None:
        super().__init__(retriever, metadata, node_postprocessors)
        self._backend = backend
        self._max_tokens = max_tokens
        self._source_key = source_key

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        query = _tool_query(args, kwargs)
        backend = check_sync_backend(self._backend, "acall (as agents do)")
        nodes = self._apply_node_postprocessors(self.retriever.retrieve(query), QueryBundle(query))
        if self._max_tokens is None or not nodes:
            return self._output(query, nodes, None)
        vectors = _stored(nodes) or backend.embed_documents(_embed_texts(nodes))
        packed = pack_context(query, _llm_texts(nodes), **self._pack_options(nodes, vectors))
        return self._output(query, nodes, packed)

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        query = _tool_query(args, kwargs)
        retrieved = await self.retriever.aretrieve(query)
        nodes = await self._async_apply_node_postprocessors(retrieved, QueryBundle(query))
        if self._max_tokens is None or not nodes:
            return self._output(query, nodes, None)
        vectors = _stored(nodes) or await call_async(self._backend, "embed_documents", _embed_texts(nodes))
        packed = await apack_context(query, _llm_texts(nodes), **self._pack_options(nodes, vectors))
        return self._output(query, nodes, packed)

    def _pack_options(self, nodes: list[NodeWithScore], vectors: Any) -> dict[str, Any]:
        return {
            "max_tokens": self._max_tokens,
            "backend": self._backend,  # its tokenizer counts the budget; the vectors are given
            "doc_embeddings": vectors,
            "sources": self._sources(nodes),
            "ids": [scored.node.node_id for scored in nodes],
            "scores": [scored.score for scored in nodes],
        }

    def _sources(self, nodes: list[NodeWithScore]) -> list[str | None]:
        values = [scored.node.metadata.get(self._source_key) for scored in nodes]
        return [None if value is None else str(value) for value in values]

    def _output(self, query: str, nodes: list[NodeWithScore], packed: PackedContext | None) -> ToolOutput:
        if packed is not None:
            content = packed.content
            cited = [nodes[item.index] for item in packed.items]
        else:
            content = cite(_llm_texts(nodes), sources=self._sources(nodes)) if nodes else NO_RESULTS
            cited = nodes
        return ToolOutput(
            content=content, tool_name=self.metadata.get_name(), raw_input={"input": query}, raw_output=cited
        )


def _tool_query(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The query of a tool call: its one positional argument or ``input=``, as given (no "input is ..." prefix)."""
    if len(args) + len(kwargs) != 1 or (kwargs and "input" not in kwargs):
        given = [*(repr(a) for a in args), *kwargs]
        raise E2RankValueError(
            f"the search tool takes one argument, input (the query); got {', '.join(given) or 'none'}"
        )
    return check_query(args[0] if args else kwargs["input"], "input")


def _llm_texts(nodes: list[NodeWithScore]) -> list[str]:
    return [scored.node.get_content(metadata_mode=MetadataMode.LLM) for scored in nodes]


def _embed_texts(nodes: list[NodeWithScore]) -> list[str]:
    """The texts the index embedded (and the backend cached), as :class:`E2RankRerank` reranks them."""
    return [scored.node.get_content(metadata_mode=MetadataMode.EMBED) for scored in nodes]


def _stored(nodes: list[NodeWithScore]) -> list[Any] | None:
    """The nodes' own vectors when every node carries one."""
    vectors = [scored.node.embedding for scored in nodes]
    return vectors if all(v is not None for v in vectors) else None
