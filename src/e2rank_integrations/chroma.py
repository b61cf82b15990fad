"""Chroma: an embedding function that embeds through E2Rank, and reranking of query results on their stored vectors.

:class:`E2RankEmbeddingFunction` is registered with Chroma under the name ``"e2rank"``. A collection created with it
stores that name and :meth:`~E2RankEmbeddingFunction.get_config` in its configuration, so another process can
reopen the collection without passing an embedding function: Chroma rebuilds it from the stored configuration.
Chroma only knows the name once this module has been imported, so such a process must
``import e2rank_integrations.chroma`` (once, anywhere) before it opens the collection.

:func:`rerank_query_result` reranks what ``collection.query`` returned, using the embeddings Chroma stored, so a
rerank embeds one text (the listwise prompt). :class:`E2RankChromaRetriever` does the query and the rerank in one call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from ._deprecation import renamed
from ._optional import require
from .errors import E2RankTypeError, E2RankValueError
from .model import E2RankModel
from .prompts import DEFAULT_QUERY_INSTRUCTION, PromptFormat
from .registry import REGISTRY, shared_model
from .scoring import select
from .types import Backend, Embeddings, check_backend, client_types, is_async_backend
from .validators import (
    check_optional_positive_int,
    check_positive_int,
    check_query,
    check_score_threshold,
    check_texts,
    check_top_n,
)

require("chromadb", extra="chroma")

from chromadb.api.types import Documents, EmbeddingFunction, Space  # noqa: E402
from chromadb.api.types import Embeddings as ChromaEmbeddings  # noqa: E402
from chromadb.utils.embedding_functions import register_embedding_function  # noqa: E402

__all__ = [
    "ChromaHit",
    "E2RankChromaRetriever",
    "E2RankEmbeddingFunction",
    "check_collection",
    "open_client",
    "rerank_query_result",
]

# What a stored configuration holds. The source keys say which model embedded the collection's vectors. The stored
# key stays "model_name_or_path" (the parameter is now `model`): collections already written hold it.
_SOURCE_KEYS = ("model_name_or_path", "max_length", "prompts", "server_url", "api_key_env")
_CONFIG_KEYS = (*_SOURCE_KEYS, "instruction")
# A change of any of these would mix vectors from two models (or two encodings) in one collection.
_FIXED_KEYS = ("model_name_or_path", "max_length", "prompts", "server_url", "instruction")

# Chroma rebuilds the function from the stored configuration often (``is_legacy`` on every create,
# ``collection.configuration`` on every embed of a collection opened without a function): each rebuild must find the
# live backend in the registry (remembered under its source keys), never load the weights again.


@register_embedding_function
class E2RankEmbeddingFunction(EmbeddingFunction[Documents]):
    """A Chroma embedding function: documents as E2Rank stores them, queries with the retrieval instruction.

    Give it a Backend (a local :class:`~e2rank_integrations.E2RankModel` or an ``E2RankClient``), a model to load
    (shared per process with every other function on the same settings), or the URL of an ``e2rank serve`` server.
    Chroma calls ``__call__`` for the documents it adds and :meth:`embed_query` for ``query_texts``. Vectors are
    L2-normalised, so the default space is ``"cosine"``.

    Args:
        backend: The model or client to embed with.
        model: Instead of ``backend``: a hub id or local directory to load with
            :func:`~e2rank_integrations.registry.shared_model` (``model_name_or_path``, its old name, is deprecated;
            the stored configuration keeps that key).
        server_url: Instead of ``backend``: the URL of an ``e2rank serve`` server (needs the ``client`` extra).
        api_key_env: The environment variable that holds the server's API key. The key itself is never stored in
            the collection's configuration; the variable's name is.
        instruction: The retrieval instruction for queries (default: the backend's, the authors' evaluation one).
        **model_kwargs: With ``model``: passed to ``E2RankModel.from_pretrained`` (``device``,
            ``dtype``, ``max_length``, ``cache``...). With ``server_url``: passed to ``E2RankClient`` (``timeout``,
            ``max_retries``...; the key goes through ``api_key_env``).

    Example:
        >>> import chromadb
        >>> from e2rank_integrations.chroma import E2RankEmbeddingFunction
        >>> ef = E2RankEmbeddingFunction(model="Alibaba-NLP/E2Rank-0.6B")  # doctest: +SKIP
        >>> collection = chromadb.EphemeralClient().create_collection("docs", embedding_function=ef)  # doctest: +SKIP
        >>> collection.add(ids=["a"], documents=["Beijing is the capital of China."])  # doctest: +SKIP
    """

    @renamed(model_name_or_path="model")
    def __init__(
        self,
        backend: Backend | None = None,
        *,
        model: str | os.PathLike[str] | None = None,
        server_url: str | None = None,
        api_key_env: str | None = None,
        instruction: str | None = None,
        **model_kwargs: Any,
    ) -> None:
        sources = {"backend": backend, "model": model, "server_url": server_url}
        given = [name for name, value in sources.items() if value is not None]
        if len(given) != 1:
            raise E2RankValueError(
                "E2RankEmbeddingFunction needs exactly one of backend=, model= or server_url=; "
                f"got {', '.join(given) or 'none'}"
            )
        if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
            raise E2RankTypeError(f"api_key_env must be the name of an environment variable, got {api_key_env!r}")
        if instruction is not None:
            check_query(instruction, "instruction")
        if backend is not None:
            if model_kwargs:
                raise E2RankTypeError(
                    f"with backend=, no model options are taken; got {', '.join(sorted(model_kwargs))}"
                )
            backend = check_backend(backend)
        elif model is not None:
            backend = shared_model(model, **model_kwargs)
        else:
            backend = _shared_client(str(server_url), api_key_env, model_kwargs)
        if is_async_backend(backend):
            raise E2RankTypeError(
                "Chroma calls embedding functions synchronously: use E2RankClient, not AsyncE2RankClient"
            )
        self.backend = backend
        self.instruction = instruction if instruction is not None else _default_instruction(backend)
        self._source = _describe(backend, server_url, api_key_env)
        if api_key_env is not None and (self._source is None or self._source["server_url"] is None):
            raise E2RankValueError(
                "api_key_env names the API key of a server: give it with server_url= or an E2RankClient"
            )
        if self._source is not None:
            REGISTRY.remember(_source_key(self._source), backend)  # the newest function's backend wins

    @property
    def source(self) -> dict[str, Any] | None:
        """What a stored configuration says of the backend (model or server), or ``None`` if it cannot say."""
        return None if self._source is None else dict(self._source)

    def __call__(self, input: Documents) -> ChromaEmbeddings:
        """Embed documents (what Chroma stores): the text, then ``<|endoftext|>``; no instruction."""
        return list(self.backend.embed_documents(_check_input(input)))

    def embed_query(self, input: Documents) -> ChromaEmbeddings:
        """Embed search queries, each wrapped in the retrieval instruction (Chroma calls it for ``query_texts``)."""
        return list(self.backend.embed_queries(_check_input(input), instruction=self.instruction))

    @staticmethod
    def name() -> str:
        """The name Chroma stores in a collection's configuration and looks the class up by."""
        return "e2rank"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        # The vectors are L2-normalised: all three spaces order neighbours the same way.
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        """JSON values that rebuild this function: the model (or server URL), ``max_length``, instruction.

        Raises:
            ValueError: The backend is neither an ``E2RankModel`` loaded by name nor an ``E2RankClient`` of an
                ``e2rank serve`` server (``api="e2rank"``), so nothing could rebuild it (Chroma then stores the
                function as a "legacy" one, with a warning).
        """
        if self._source is None:
            raise E2RankValueError(
                f"E2RankEmbeddingFunction cannot describe its {type(self.backend).__name__} backend in a stored "
                "configuration; build it with model= or server_url= to make the collection reopenable"
            )
        return {**self._source, "instruction": self.instruction}

    @staticmethod
    def build_from_config(config: dict[str, Any], **options: Any) -> E2RankEmbeddingFunction:
        """Rebuild a function from :meth:`get_config`'s values, reusing the backend already live in this process.

        Args:
            config: What :meth:`get_config` returned.
            **options: Where no backend is live yet: more ``from_pretrained`` arguments for the stored model
                (``device``, ``cache``...) or ``E2RankClient`` arguments for the stored server (``timeout``...).
        """
        E2RankEmbeddingFunction.validate_config(config)
        source = {key: config.get(key) for key in _SOURCE_KEYS}
        instruction, api_key_env = config["instruction"], source["api_key_env"]
        backend = REGISTRY.find(_source_key(source))
        if backend is not None:
            return E2RankEmbeddingFunction(backend, api_key_env=api_key_env, instruction=instruction)
        if source["server_url"] is not None:
            return E2RankEmbeddingFunction(
                server_url=source["server_url"], api_key_env=api_key_env, instruction=instruction, **options
            )
        options["max_length"] = source["max_length"]
        if source["prompts"] is not None:
            options["prompts"] = PromptFormat(**source["prompts"])
        return E2RankEmbeddingFunction(model=source["model_name_or_path"], instruction=instruction, **options)

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """Raise ``ValueError`` unless ``config`` is what :meth:`get_config` returns."""
        if not isinstance(config, Mapping):
            raise E2RankValueError(f"an e2rank configuration must be a dict, got {type(config).__name__}")
        unknown = sorted(set(config) - set(_CONFIG_KEYS))
        if unknown:
            raise E2RankValueError(f"unknown keys in an e2rank configuration: {', '.join(unknown)}")
        if (config.get("model_name_or_path") is None) == (config.get("server_url") is None):
            raise E2RankValueError("an e2rank configuration needs exactly one of model_name_or_path and server_url")
        if not isinstance(config.get("instruction"), str):
            raise E2RankValueError("an e2rank configuration needs its query instruction (a string)")

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        """Refuse a change of model, server, encoding or instruction: the stored vectors would no longer match."""
        changed = [key for key in _FIXED_KEYS if old_config.get(key) != new_config.get(key)]
        if changed:
            details = "; ".join(f"{key}: {old_config.get(key)!r} -> {new_config.get(key)!r}" for key in changed)
            raise E2RankValueError(
                f"cannot change the E2Rank embedding function of a collection ({details}): its stored vectors were "
                "embedded with the old settings. Create a new collection and add the documents again instead."
            )

    def __repr__(self) -> str:
        return f"E2RankEmbeddingFunction({self.backend!r}, instruction={self.instruction!r})"


def check_collection(collection: Any, function: E2RankEmbeddingFunction) -> None:
    """Refuse to add ``function``'s vectors to ``collection`` unless it was made with the same model and settings.

    Chroma's ``get_or_create_collection`` returns an existing collection as it is, whatever function is passed, so a
    writer calls this before adding vectors: mixing two models' vectors in one collection would silently break search.

    Raises:
        E2RankValueError: The collection was created without an E2Rank function, or with another model, server, encoding
            or query instruction (the message names what differs).
    """
    stored = collection.configuration_json.get("embedding_function") or {}
    if stored.get("name") != function.name():
        raise E2RankValueError(
            f"collection {collection.name!r} was not created with E2RankEmbeddingFunction "
            f"(its function: {stored.get('name')!r}); index into another collection"
        )
    function.validate_config_update(stored.get("config") or {}, function.get_config())


@contextmanager
def chroma_refusals() -> Iterator[None]:
    """Re-raise Chroma's plain ``ValueError`` (a malformed ``where``, a bad metadata value) as an E2RankValueError.

    Chroma refuses bad input with ``ValueError``; as ours it is bad input, not a bug. Wrap Chroma's calls only.
    """
    try:
        yield
    except ValueError as exc:
        raise E2RankValueError(str(exc)) from exc


def open_client(path: str | None = None, *, host: str | None = None, port: int = 8000) -> Any:
    """A Chroma client: ``HttpClient(host, port)`` when ``host`` is given, else ``PersistentClient(path)``.

    The one place the package opens Chroma (the MCP server, ``e2rank index``, ``e2rank demo``).

    Raises:
        E2RankValueError: Neither ``path`` nor ``host``, or Chroma refused them ("Could not connect...").
    """
    import chromadb

    with chroma_refusals():  # "Could not connect to a Chroma server" is a ValueError
        if host:
            return chromadb.HttpClient(host=host, port=port)
        if path is None:
            raise E2RankValueError("give `path` (an embedded Chroma database) or `host` (a Chroma server)")
        return chromadb.PersistentClient(path=path)


@dataclass(frozen=True)
class ChromaHit:
    """One candidate of a Chroma query after an E2Rank rerank.

    Attributes:
        id: The record's id.
        document: The record's document.
        metadata: A copy of the record's metadata (``None`` where it has none or it was not included).
        score: Cosine similarity to the listwise prompt (higher is better).
        distance: Chroma's first-stage distance to the query, where ``distances`` were included.
        index: The candidate's position in the first-stage results (0 = Chroma's nearest).
        embedding: The vector Chroma stored for the record, where ``embeddings`` were included.

    Example:
        >>> ChromaHit(id="a", document="text", metadata=None, score=0.8, distance=0.3, index=2).index
        2
    """

    id: str
    document: str
    metadata: dict[str, Any] | None
    score: float
    distance: float | None
    index: int
    embedding: Embeddings | None = field(default=None, compare=False, repr=False)


def rerank_query_result(
    backend: Backend,
    query: str,
    result: Mapping[str, Any],
    *,
    top_n: int | None = None,
    query_index: int | None = None,
    instruction: str | None = None,
    num_prompt_docs: int = 20,
    passes: int = 1,
    max_prompt_tokens: int | None = None,
    score_threshold: float | None = None,
) -> list[ChromaHit]:
    """Rerank the candidates of one ``collection.query`` result with E2Rank, on the vectors Chroma stored.

    Query with ``include=["documents", "metadatas", "distances", "embeddings"]``: the stored embeddings are then
    the candidates' vectors and the rerank embeds one text, the listwise prompt. Without ``embeddings`` the
    backend finds the vectors in its cache (filled when the documents were added through it) or embeds them.

    Args:
        backend: The model or client that embedded the collection.
        query: The query the result is for.
        result: What ``collection.query`` returned (``documents`` must be included).
        top_n: Keep the best ``top_n`` (default all).
        query_index: Which query of the result to rerank; needed only when the result holds several.
        instruction: Rerank instruction opening the listwise prompt (default the authors').
        num_prompt_docs: How many leading candidates go into the prompt.
        passes: 2 reranks again with the first pass's order in the prompt.
        max_prompt_tokens: Token budget of the prompt (its documents are cut evenly to fit); ``None``: the model's
            ``max_length``.
        score_threshold: Drop candidates whose score (a cosine) is below this (``None``: keep all).

    Returns:
        :class:`ChromaHit` items sorted by score, best first; ties keep Chroma's order.

    Example:
        >>> result = collection.query(query_texts=[query], n_results=50,  # doctest: +SKIP
        ...                           include=["documents", "metadatas", "distances", "embeddings"])
        >>> [hit.id for hit in rerank_query_result(model, query, result, top_n=5)]  # doctest: +SKIP
        ['doc-7', 'doc-2', 'doc-31', 'doc-4', 'doc-12']
    """
    backend = _sync_backend(backend)
    query = check_query(query)
    top_n = check_top_n(top_n)
    score_threshold = check_score_threshold(score_threshold)
    columns = _query_columns(result, query_index)
    ids, documents = columns["ids"], columns["documents"]
    if documents is None:
        raise E2RankValueError('the query result has no documents: query with include=["documents", ...]')
    for record_id, document in zip(ids, documents):
        if not isinstance(document, str):
            raise E2RankValueError(f"record {record_id!r} has no document to rerank (got {type(document).__name__})")
    if not ids:
        return []
    stored = columns["embeddings"]
    ranked = backend.rerank(
        query,
        documents,
        top_n=top_n if score_threshold is None else None,  # the threshold needs every score
        doc_embeddings=stored,  # None: the backend's cache, then the model
        instruction=instruction,
        num_prompt_docs=num_prompt_docs,
        passes=passes,
        max_prompt_tokens=max_prompt_tokens,
    )
    ranked = select(ranked, top_n=top_n, score_threshold=score_threshold)
    metadatas, distances = columns["metadatas"], columns["distances"]
    return [
        ChromaHit(
            id=ids[r.index],
            document=documents[r.index],
            metadata=dict(metadatas[r.index]) if metadatas is not None and metadatas[r.index] is not None else None,
            score=r.score,
            distance=float(distances[r.index]) if distances is not None else None,
            index=r.index,
            embedding=None if stored is None else np.asarray(stored[r.index], dtype=np.float32),
        )
        for r in ranked
    ]


class E2RankChromaRetriever:
    """Query a Chroma collection for ``k`` candidates, then rerank them with E2Rank on their stored vectors.

    The query and the listwise prompt are embedded by one backend, with the instruction stored in the collection's
    configuration: Chroma's own default function is never used, so a collection without an E2Rank function (vectors
    added directly, as LangChain's Chroma store does) works too when ``backend`` is given.

    Args:
        collection: A Chroma collection whose vectors were embedded with E2Rank.
        backend: The model or client that embedded the collection; default the backend of the collection's
            :class:`E2RankEmbeddingFunction`, rebuilt from its stored configuration (loaded once per process).
            A local model other than the stored one is refused.
        k: Candidates to retrieve.
        top_n: Candidates to return after the rerank (``None`` for all ``k``).
        num_prompt_docs: How many leading candidates go into the listwise prompt.
        passes: 2 reranks again with the first pass's order in the prompt.
        max_prompt_tokens: Token budget of the listwise prompt (``None``: the model's ``max_length``).
        instruction: Task description opening the listwise prompt (default the backend's). The query is embedded
            with the instruction the collection stores, as its vectors were.
        score_threshold: Drop candidates whose rerank score (a cosine) is below this (``None``: keep all).

    Example:
        >>> import e2rank_integrations.chroma  # registers "e2rank" with Chroma  # doctest: +SKIP
        >>> collection = chromadb.PersistentClient(path="./chroma-db").get_collection("docs")  # doctest: +SKIP
        >>> retriever = E2RankChromaRetriever(collection, k=50, top_n=5)  # doctest: +SKIP
        >>> [hit.id for hit in retriever.retrieve("What is the capital of China?")]  # doctest: +SKIP
        ['beijing', 'shanghai', ...]
    """

    def __init__(
        self,
        collection: Any,
        backend: Backend | None = None,
        *,
        k: int = 50,
        top_n: int | None = 5,
        num_prompt_docs: int = 20,
        passes: int = 1,
        max_prompt_tokens: int | None = None,
        instruction: str | None = None,
        score_threshold: float | None = None,
    ) -> None:
        if not callable(getattr(collection, "query", None)):
            raise E2RankTypeError(f"collection must be a Chroma collection, got {type(collection).__name__}")
        stored = collection.configuration_json.get("embedding_function") or {}  # as stored: nothing is built yet
        config = stored.get("config") if stored.get("name") == E2RankEmbeddingFunction.name() else None
        if backend is None:
            if config is None:
                raise E2RankTypeError(
                    f"collection {collection.name!r} was not created with E2RankEmbeddingFunction; "
                    "pass backend= (the model that embedded its vectors) to rerank it"
                )
            function = E2RankEmbeddingFunction.build_from_config(config)
        else:
            stored_instruction = config["instruction"] if config is not None else None  # the queries'
            function = E2RankEmbeddingFunction(backend, instruction=stored_instruction)
            mine = function.source or {}
            if config is not None and mine.get("model_name_or_path") and config.get("model_name_or_path"):
                # Both are local models: another one would score against vectors it did not make.
                function.validate_config_update(config, function.get_config())
        self.collection = collection
        self.backend = function.backend
        self.query_function = function
        self.k = check_positive_int(k, "k")
        self.top_n = check_top_n(top_n)
        self.num_prompt_docs = check_positive_int(num_prompt_docs, "num_prompt_docs")
        self.passes = check_positive_int(passes, "passes")
        self.max_prompt_tokens = check_optional_positive_int(max_prompt_tokens, "max_prompt_tokens")
        self.instruction = None if instruction is None else check_query(instruction, "instruction")
        self.score_threshold = check_score_threshold(score_threshold)

    def retrieve(
        self,
        query: str,
        *,
        where: Mapping[str, Any] | None = None,
        where_document: Mapping[str, Any] | None = None,
        k: int | None = None,
        top_n: int | None = None,
    ) -> list[ChromaHit]:
        """The ``top_n`` best of the ``k`` nearest records for ``query`` (Chroma's ``where`` filters apply).

        ``k`` and ``top_n`` override the retriever's for this call (``None``: the retriever's).
        """
        query = check_query(query)
        k = self.k if k is None else check_positive_int(k, "k")
        top_n = self.top_n if top_n is None else check_top_n(top_n)
        embedding = self.query_function.embed_query([query])
        with chroma_refusals():
            result = self.collection.query(
                query_embeddings=embedding,
                n_results=k,
                where=where,
                where_document=where_document,
                include=["documents", "metadatas", "distances", "embeddings"],
            )
        return rerank_query_result(
            self.backend,
            query,
            result,
            top_n=top_n,
            num_prompt_docs=self.num_prompt_docs,
            passes=self.passes,
            max_prompt_tokens=self.max_prompt_tokens,
            instruction=self.instruction,
            score_threshold=self.score_threshold,
        )

    def __repr__(self) -> str:
        return f"E2RankChromaRetriever({self.collection.name!r}, k={self.k}, top_n={self.top_n})"


# ---------------------------------------------------------------------------- helpers


def _check_input(texts: object) -> list[str]:
    """Chroma's ``Documents`` (a list, or a numpy array of strings) as plain strings; empty is an error."""
    items = check_texts(texts, "input")
    if not items:
        raise E2RankValueError("E2RankEmbeddingFunction needs at least one text to embed; got an empty list")
    return [str(text) for text in items]  # numpy's str_ items become plain str


def _sync_backend(backend: object) -> Backend:
    if is_async_backend(check_backend(backend)):
        raise E2RankTypeError("Chroma's client is synchronous: rerank with E2RankClient, not AsyncE2RankClient")
    return cast(Backend, backend)


def _default_instruction(backend: Backend) -> str:
    if isinstance(backend, E2RankModel):
        return backend.prompts.query_instruction
    if isinstance(backend, client_types()):  # its own prompts (openai mode), as before
        return backend.prompts.query_instruction
    return DEFAULT_QUERY_INSTRUCTION


def _describe(backend: Backend, server_url: str | None, api_key_env: str | None) -> dict[str, Any] | None:
    """The source keys of a stored configuration for ``backend``, or ``None`` where nothing could rebuild it.

    Only this package's model and client can be rebuilt from a configuration; their attributes are read (no request).
    """
    source: dict[str, Any] = dict.fromkeys(_SOURCE_KEYS)
    if isinstance(backend, E2RankModel):
        name = backend.name_or_path
        if not name:
            return None
        # A relative directory would not be found from another working directory: store it absolute.
        source["model_name_or_path"] = os.path.abspath(name) if os.path.isdir(name) else name
        source["max_length"] = backend.max_length
        source["prompts"] = None if backend.prompts == PromptFormat() else backend.prompts.to_dict()
        return source
    client = backend if isinstance(backend, client_types()) else None
    url = server_url if server_url is not None else (client.base_url if client is not None else None)
    # A client in api="openai" mode (vLLM, TEI...) formats texts itself; rebuilt from the URL alone it would speak
    # the e2rank protocol to that server. Only e2rank servers are stored.
    if url is None or (client is not None and client.api != "e2rank"):
        return None
    source["server_url"] = str(url).rstrip("/")
    source["api_key_env"] = api_key_env
    return source


def _source_key(source: Mapping[str, Any]) -> str:
    return "chroma-source:" + json.dumps(source, sort_keys=True)


def _shared_client(server_url: str, api_key_env: str | None, client_kwargs: dict[str, Any]) -> Backend:
    """An ``E2RankClient`` for the URL, shared per process; the API key is read from ``api_key_env``."""
    if client_kwargs.get("api", "e2rank") != "e2rank":
        raise E2RankValueError(
            "server_url= is for an `e2rank serve` server; for an OpenAI-compatible engine pass "
            "backend=E2RankClient(url, api='openai') (its collections cannot be reopened from their configuration)"
        )
    if "api_key" in client_kwargs:
        raise E2RankTypeError(
            "pass the server's API key through api_key_env= (the name of the environment variable that holds it), "
            "not api_key=: the collection stores where to find the key, never the key"
        )
    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise E2RankValueError(
                f"the environment variable {api_key_env} (api_key_env) is not set: it holds the API key"
            )
    key = "client:" + json.dumps([server_url, api_key_env, client_kwargs], sort_keys=True, default=repr)
    client_module = require("e2rank_integrations.client", extra="client")
    return cast(
        Backend, REGISTRY.get(key, lambda: client_module.E2RankClient(server_url, api_key=api_key, **client_kwargs))
    )


def _query_columns(result: Mapping[str, Any], query_index: int | None) -> dict[str, Any]:
    """The per-query lists of one query of a ``collection.query`` result (``None`` for what was not included)."""
    if not isinstance(result, Mapping) or not isinstance(result.get("ids"), Sequence):
        raise E2RankTypeError(
            f"result must be what collection.query returned (a dict of lists), got {type(result).__name__}"
        )
    queries = len(result["ids"])
    if query_index is None:
        if queries != 1:
            raise E2RankValueError(f"the query result holds {queries} queries; pass query_index= to choose one")
        query_index = 0
    if isinstance(query_index, bool) or not isinstance(query_index, int) or not 0 <= query_index < queries:
        raise E2RankValueError(f"query_index must be an int in [0, {queries}), got {query_index!r}")
    columns: dict[str, Any] = {}
    for key in ("ids", "documents", "metadatas", "distances", "embeddings"):
        batch = result.get(key)
        columns[key] = None if batch is None else batch[query_index]
    ids = columns["ids"] = list(columns["ids"])
    for key in ("documents", "metadatas", "distances", "embeddings"):
        if columns[key] is not None and len(columns[key]) != len(ids):
            raise E2RankValueError(f"the query result has {len(columns[key])} {key} for {len(ids)} ids")
    return columns
