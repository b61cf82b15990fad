"""``e2rank mcp``: E2Rank search over a Chroma collection, and listwise reranking, as Model Context Protocol tools.

Any MCP host (a desktop assistant, an IDE agent, an agent framework's MCP client) launches ``e2rank mcp`` and gets
tools, built on the official MCP Python SDK (its ``MCPServer``, the former ``FastMCP``): their JSON schemas come
from the typed signatures below, their results are structured, and bad input is a tool error (``isError``) whose
text says what to change.

- ``search``: Chroma's ``k`` nearest records (with their stored vectors), reranked by E2Rank on those vectors, so
  the rerank embeds one text, the listwise prompt; plus a packed, cited context within ``max_tokens``
  (:func:`~e2rank_integrations.context.pack_context`).
- ``rerank``: a listwise rerank of passages the caller sends.
- ``add_documents``: embeds and adds passages; listed only on a server started writable.
- ``collection_info``: the collection, the model, the limits, and the model's counters.

What the host's model reads of ``search`` and ``rerank`` (the text content) is the cited context alone, within
``max_tokens`` counted with the model's tokenizer (an upper bound without one); ids, scores, metadata and full
texts travel as structured content, for the application. Unknown arguments and bad values are refused with a
message that names them.

The model starts loading in a background thread when the process starts, so a host's handshake never waits for
it; until it is ready every tool answers a "still loading" error. Logs go to stderr, the HTTP access log too: on
the stdio transport stdout carries the protocol (the SDK points file descriptor 1 at stderr while it serves).
Over HTTP beyond loopback a bearer key is required, and the SDK's Host/Origin checks stay on.

Example:
    >>> from e2rank_integrations.mcp import MCPSettings, create_server  # doctest: +SKIP
    >>> settings = MCPSettings(chroma_dir="./chroma-db", collection="docs")  # doctest: +SKIP
    >>> create_server(E2RankTools(settings)).run("stdio")  # doctest: +SKIP
"""

# No `from __future__ import annotations`: the SDK reads the tools' annotations, which hold this server's limits.
import logging
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np

from . import __version__
from ._deprecation import renamed_getattr
from ._optional import require
from .context import pack_context
from .errors import E2RankError, E2RankInputError, E2RankValueError
from .settings import LOCAL_HOST, MCP_PORT, MCPSettings
from .validators import check_query, check_texts

require("mcp", extra="mcp")

from mcp.server.mcpserver import Context, MCPServer  # noqa: E402
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError  # noqa: E402
from mcp.server.transport_security import TransportSecuritySettings  # noqa: E402
from mcp.types import CallToolResult, InputRequiredResult, TextContent, ToolAnnotations  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, ValidationError  # noqa: E402

from ._asgi import AuthMiddleware, is_loopback  # noqa: E402  (starlette: it comes with mcp)

__all__ = [
    "AddResult",
    "CollectionInfo",
    "E2RankTools",
    "MCPSettings",
    "RerankHit",
    "RerankToolResult",
    "SearchHit",
    "SearchResult",
    "create_http_app",
    "create_server",
    "run",
]

logger = logging.getLogger(__name__)

Transport = Literal["stdio", "streamable-http"]


# ---------------------------------------------------------------------------- what the tools return


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchHit(_Output):
    """One passage found by ``search``."""

    id: str = Field(description="The record's id in the collection.")
    score: float = Field(description="E2Rank relevance: cosine to the listwise prompt; higher is better.")
    text: str = Field(description="The passage.")
    metadata: dict[str, Any] | None = Field(description="The record's metadata, if it has any.")
    first_stage_rank: int = Field(description="Its rank by embedding similarity before the rerank (1 = nearest).")
    citation: int | None = Field(description="Its number [n] in `context`; null when left out of it.")


class SearchResult(_Output):
    """What ``search`` returns."""

    results: list[SearchHit] = Field(description="The best passages, best first.")
    context: str = Field(
        description="What the model reads (the tool's text content): the results as numbered, cited passages "
        "within the token budget, or a short note when none fits."
    )
    context_tokens: int = Field(description="Tokens of the cited passages in `context`.")
    k: int = Field(description="How many nearest candidates were asked of the first stage and reranked.")
    collection: str = Field(description="The collection searched.")


class RerankHit(_Output):
    """One passage of a ``rerank``."""

    index: int = Field(description="Its position in the `documents` sent (0-based).")
    score: float = Field(description="E2Rank relevance: cosine to the listwise prompt; higher is better.")
    text: str = Field(description="The passage.")


class RerankToolResult(_Output):
    """What the ``rerank`` tool returns (its structured content)."""

    results: list[RerankHit] = Field(description="The best passages, best first.")
    context: str = Field(
        description="What the model reads (the tool's text content): the passages, best first, numbered and "
        "labelled documents[i] by their index, within the token budget."
    )


class AddResult(_Output):
    """What ``add_documents`` returns."""

    ids: list[str] = Field(description="The ids of the passages added, in the order sent.")
    count: int = Field(description="Records in the collection now.")


class CollectionInfo(_Output):
    """What ``collection_info`` returns."""

    name: str = Field(description="The collection's name.")
    exists: bool = Field(description="False until the first add_documents creates it (writable servers only).")
    count: int = Field(description="Records in the collection.")
    model: str = Field(description="The E2Rank model (a hub id or directory) or the URL of the server running it.")
    dimension: int = Field(description="Dimension of the embeddings.")
    writable: bool = Field(description="Whether add_documents may add passages.")
    default_k: int = Field(description="Candidates a search retrieves by default.")
    default_top_n: int = Field(description="Results a search returns by default.")
    max_top_n: int = Field(description="The most results one call may ask for.")
    max_k: int = Field(description="The most candidates one search may ask for.")
    max_tokens: int = Field(description="The token budget of what search and rerank hand the model.")
    stats: dict[str, Any] = Field(
        description="The model's counters: texts_embedded (forward-pass inputs), cache_hits, batches..."
    )


# ---------------------------------------------------------------------------- the tools' logic


@dataclass
class _Ready:
    """What loading produced: the Chroma client, the embedding function (its backend), the collection's name."""

    client: Any
    function: Any
    name: str
    model: str
    dimension: int
    errors: tuple[type[Exception], ...]  # what Chroma raises for bad input (ChromaError; its ValueErrors: ours)


class E2RankTools:
    """The logic of the tools over one Chroma collection and one model, loaded in a background thread.

    Every tool method raises ``ToolError`` (the SDK's ``isError`` result) with a message that says what to change.

    Args:
        settings: What to serve.
        load_wait_s: How long a tool call made while loading waits for it before answering "still loading".
            Some clients start a fresh server for every call (``langchain-mcp-adapters`` over stdio does): with
            no wait at all, their calls would never see a loaded model.
    """

    def __init__(self, settings: MCPSettings, *, load_wait_s: float = 30.0) -> None:
        self.settings = settings
        self.load_wait_s = load_wait_s
        self._done = threading.Event()  # set when loading ended, ready or failed
        self._ready: _Ready | None = None
        self._failure: str | None = None
        self._loading_since: float | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._collection: Any = None  # found (or created by add_documents) once, then kept
        self._retriever: Any = None
        self._collection_lock = threading.Lock()

    # ------------------------------------------------------------------ loading

    def start(self) -> None:
        """Start loading in a background thread (once; later calls do nothing)."""
        with self._start_lock:
            if self._thread is None:
                self._loading_since = time.monotonic()
                self._thread = threading.Thread(target=self.load, name="e2rank-mcp-load", daemon=True)
                self._thread.start()

    def load(self) -> None:
        """Open Chroma and load the model now, in this thread; a failure is kept and reported by every tool."""
        self._loading_since = self._loading_since or time.monotonic()
        try:
            self._ready = self._open()
        except Exception as exc:  # whatever it is, the host must see it, not a server that never gets ready
            self._failure = str(exc) or type(exc).__name__
            logger.error("e2rank mcp could not start: %s", self._failure)
            return
        finally:
            self._done.set()
        collection = self._find_collection()
        logger.info(
            "e2rank mcp ready: collection %r (%d records), model %s, %s",
            self._ready.name,
            collection.count() if collection is not None else 0,
            self._ready.model,
            "writable" if self.settings.writable else "read-only",
        )

    def _open(self) -> _Ready:
        settings = self.settings
        require("chromadb", extra="chroma")
        from chromadb.errors import ChromaError

        from .chroma import E2RankEmbeddingFunction, open_client

        if settings.chroma_dir is not None:
            logger.info("opening Chroma at %s", settings.chroma_dir)
            database = settings.chroma_dir
        else:
            logger.info("connecting to Chroma at %s:%d", settings.chroma_host, settings.chroma_port)
            database = f"the Chroma server at {settings.chroma_host}:{settings.chroma_port}"
        client = open_client(settings.chroma_dir, host=settings.chroma_host, port=settings.chroma_port)
        names = sorted(str(getattr(c, "name", c)) for c in client.list_collections())
        name = settings.collection
        if name is None:
            if len(names) != 1:
                held = f"holds {len(names)} collections ({', '.join(names)})" if names else "holds no collection"
                raise E2RankValueError(f"{database} {held}: name the one to serve with `collection`")
            name = names[0]
        collection = client.get_collection(name) if name in names else None
        stored = collection.configuration_json.get("embedding_function") if collection is not None else None
        stored_config = stored.get("config") if stored and stored.get("name") == "e2rank" else None
        local: dict[str, Any] = {"device": settings.device, "cache": settings.cache}
        local.update({k: v for k, v in (("dtype", settings.dtype), ("quantize", settings.quantize)) if v is not None})
        if settings.model is not None:
            logger.info("loading %s", settings.model)
            function = E2RankEmbeddingFunction(model=settings.model, **local)
        elif settings.server_url is not None:
            function = E2RankEmbeddingFunction(server_url=settings.server_url, api_key_env=settings.api_key_env)
        elif stored_config is not None:
            logger.info("loading %s (named by the collection)", stored_config.get("model_name_or_path"))
            options = local if stored_config.get("model_name_or_path") is not None else {}
            function = E2RankEmbeddingFunction.build_from_config(stored_config, **options)
        elif collection is None:
            raise E2RankValueError(
                f"{database} has no collection {name!r} (collections: {', '.join(names) or 'none'}), and without "
                "`model` the server learns the model from the collection: name an existing one with `collection`, "
                "or give `model` (with `writable`, add_documents then creates the collection)"
            )
        else:
            raise E2RankValueError(
                f"collection {name!r} was not created with E2RankEmbeddingFunction, so it does not name its model: "
                "give the model that embedded it with `model` (or `server_url`)"
            )
        dimension = function.backend.describe().dimension  # a server: one request
        assert dimension is not None  # the function's backend is a model or an e2rank server's client: both say it
        config = function.get_config()
        ready = _Ready(
            client=client,
            function=function,
            name=name,
            model=config["model_name_or_path"] or config["server_url"],
            dimension=dimension,
            errors=(E2RankInputError, ChromaError),
        )
        if collection is not None:
            try:
                self._use(collection, ready)
            except E2RankValueError as exc:  # a collection embedded by another local model (or other settings)
                raise E2RankValueError(
                    f"`model` {settings.model} did not embed collection {name!r}: {exc} Start the server without "
                    "`model` to use the collection's own."
                ) from exc
        return ready

    def _use(self, collection: Any, ready: _Ready) -> None:
        from .chroma import E2RankChromaRetriever

        self._retriever = E2RankChromaRetriever(
            collection,
            ready.function.backend,
            k=self.settings.default_k,
            top_n=self.settings.default_top_n,
            num_prompt_docs=self.settings.num_prompt_docs,
            max_prompt_tokens=self.settings.max_prompt_tokens,
        )
        self._collection = collection

    def _state(self) -> _Ready:
        """What loading produced, or a ``ToolError`` saying the server is still loading or failed to start."""
        if self._thread is not None:  # loading: wait a while (tools run in worker threads, the server goes on)
            self._done.wait(self.load_wait_s)
        if self._ready is not None:
            return self._ready
        if self._failure is not None:
            raise ToolError(
                f"the E2Rank MCP server could not start: {self._failure}. Fix the command that launches "
                "`e2rank mcp` (its log is on stderr) and restart it."
            )
        waited = time.monotonic() - (self._loading_since or time.monotonic())
        raise ToolError(
            f"E2Rank is still loading its model and collection ({waited:.0f} s so far); call this tool again in "
            "a few seconds."
        )

    def _find_collection(self) -> Any:
        """The collection, looked up again while it does not exist (another process may create it)."""
        ready = self._ready
        if self._collection is None and ready is not None:
            with self._collection_lock:
                if self._collection is None:
                    names = {str(getattr(c, "name", c)) for c in ready.client.list_collections()}
                    if ready.name in names:
                        self._use(ready.client.get_collection(ready.name), ready)
        return self._collection

    def _require_collection(self, ready: _Ready) -> Any:
        collection = self._find_collection()
        if collection is None:
            names = sorted(str(getattr(c, "name", c)) for c in ready.client.list_collections())
            hint = (
                "add_documents creates it"
                if self.settings.writable
                else f"restart the server with `collection` one of: {', '.join(names) or '(none)'}"
            )
            raise ToolError(f"the collection {ready.name!r} does not exist yet; {hint}")
        return collection

    def _top_n(self, top_n: int | None) -> int:
        if top_n is None:
            return self.settings.default_top_n
        if top_n > self.settings.max_top_n:
            raise ToolError(
                f"top_n={top_n} is over this server's limit of {self.settings.max_top_n}: ask for at most "
                f"{self.settings.max_top_n} results"
            )
        return top_n

    # ------------------------------------------------------------------ the tools

    def search(
        self, query: str, top_n: int | None = None, k: int | None = None, where: dict[str, Any] | None = None
    ) -> SearchResult:
        """Retrieve ``k`` candidates, rerank them on their stored vectors, pack the best into a cited context."""
        ready = self._state()
        with _bad_input():
            query = check_query(query)
        top_n = self._top_n(top_n)
        if k is not None and k > self.settings.max_k:
            raise ToolError(f"k={k} is over this server's limit of {self.settings.max_k}: ask for fewer candidates")
        k = max(self.settings.default_k if k is None else k, top_n)  # fewer candidates than results cannot be
        self._require_collection(ready)
        try:
            hits = self._retriever.retrieve(query, where=where or None, k=k, top_n=top_n)
        except ready.errors as exc:
            if not where:
                raise ToolError(f"search failed: {exc}") from exc
            raise ToolError(
                f"Chroma refused the where filter {where!r}: {exc}. Use Chroma's metadata filter syntax, e.g. "
                '{"topic": "news"}, {"year": {"$gte": 2020}} or {"$and": [{...}, {...}]}, or leave where out.'
            ) from exc
        except E2RankError as exc:
            raise ToolError(f"the E2Rank model server failed: {exc}") from exc
        packed = pack_context(
            query,
            [hit.document for hit in hits],
            max_tokens=self.settings.max_tokens,
            backend=ready.function.backend,  # its tokenizer counts the tokens; the vectors are the stored ones
            doc_embeddings=np.stack([hit.embedding for hit in hits]) if hits else None,
            # A loader's "source" (a file, a URL) cites better than an opaque id.
            sources=[_source(hit.metadata) or hit.id for hit in hits],
            ids=[hit.id for hit in hits],
            scores=[hit.score for hit in hits],
        )
        citations = {item.index: item.citation for item in packed.items}
        return SearchResult(
            results=[
                SearchHit(
                    id=hit.id,
                    score=hit.score,
                    text=hit.document,
                    metadata=hit.metadata,
                    first_stage_rank=hit.index + 1,
                    citation=citations.get(i),
                )
                for i, hit in enumerate(hits)
            ],
            context=packed.content,
            context_tokens=packed.tokens,
            k=k,
            collection=ready.name,
        )

    def rerank(self, query: str, documents: list[str], top_n: int | None = None) -> RerankToolResult:
        """Rerank the caller's passages with one listwise prompt."""
        ready = self._state()
        top_n = self._top_n(top_n)
        with _bad_input():
            query = check_query(query)
            documents = check_texts(documents, "documents")
            if not documents:
                raise E2RankValueError("documents is empty: send the passages to rerank, as a list of strings")
            ranked = ready.function.backend.rerank(
                query,
                documents,
                top_n=top_n,
                num_prompt_docs=self.settings.num_prompt_docs,
                max_prompt_tokens=self.settings.max_prompt_tokens,
            )
        packed = pack_context(
            query,
            [documents[r.index] for r in ranked],
            max_tokens=self.settings.max_tokens,
            backend=ready.function.backend,  # its tokenizer counts; no vectors are asked for (no dedup)
            dedup_threshold=None,  # the caller chose these passages: keep every one that fits
            sources=[f"documents[{r.index}]" for r in ranked],
        )
        return RerankToolResult(
            results=[RerankHit(index=r.index, score=r.score, text=documents[r.index]) for r in ranked],
            context=packed.content,
        )

    def add_documents(
        self,
        documents: list[str],
        ids: list[str] | None = None,
        metadatas: list[dict[str, Any] | None] | None = None,
    ) -> AddResult:
        """Embed passages with the model and add them to the collection (created with the model if it is new)."""
        if not self.settings.writable:
            raise ToolError(
                "add_documents is disabled: this server is read-only. Restart `e2rank mcp` with `writable` to let "
                "agents add documents."
            )
        ready = self._state()
        with _bad_input():
            documents = check_texts(documents, "documents")
            if not documents:
                raise E2RankValueError("documents is empty: send at least one passage")
            for name, values in (("ids", ids), ("metadatas", metadatas)):
                if values is not None and len(values) != len(documents):
                    raise E2RankValueError(
                        f"{name} must have one entry per document: {len(values)} for {len(documents)}"
                    )
        collection = self._find_collection()
        if collection is None:
            with self._collection_lock:
                collection = ready.client.get_or_create_collection(ready.name, embedding_function=ready.function)
                self._use(collection, ready)
            logger.info("created collection %r", ready.name)
        new_ids = list(ids) if ids is not None else [uuid.uuid4().hex for _ in documents]
        # Chroma refuses an empty metadata dict; {} and None both mean "none".
        new_metadatas = [m or None for m in metadatas] if metadatas is not None else None
        from .chroma import chroma_refusals

        try:
            embeddings = ready.function(documents)
            with chroma_refusals():
                collection.add(ids=new_ids, documents=documents, metadatas=new_metadatas, embeddings=embeddings)
        except ready.errors as exc:
            raise ToolError(f"Chroma refused the documents: {exc}") from exc
        except E2RankError as exc:
            raise ToolError(f"the E2Rank model server failed: {exc}") from exc
        return AddResult(ids=new_ids, count=collection.count())

    def collection_info(self) -> CollectionInfo:
        """The collection, the model, the limits and the model's counters."""
        ready = self._state()
        collection = self._find_collection()
        settings = self.settings
        return CollectionInfo(
            name=ready.name,
            exists=collection is not None,
            count=collection.count() if collection is not None else 0,
            model=ready.model,
            dimension=ready.dimension,
            writable=settings.writable,
            default_k=settings.default_k,
            default_top_n=settings.default_top_n,
            max_top_n=settings.max_top_n,
            max_k=settings.max_k,
            max_tokens=settings.max_tokens,
            stats=ready.function.backend.stats(),
        )


def _source(metadata: dict[str, Any] | None) -> str | None:
    source = (metadata or {}).get("source")
    return source if isinstance(source, str) and source else None


@contextmanager
def _bad_input() -> Iterator[None]:
    """Turn the core's argument errors (they name the field at fault) into tool errors the model can read.

    Any other exception is a bug: the SDK logs its traceback and tells the model only that the tool failed.
    """
    try:
        yield
    except E2RankInputError as exc:
        raise ToolError(str(exc)) from exc
    except E2RankError as exc:  # the remote model (--server-url) failed
        raise ToolError(f"the E2Rank model server failed: {exc}") from exc


# ---------------------------------------------------------------------------- the MCP server

_READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)

# How a bad argument is described to the model, by pydantic error type (its own text and URL are not shown).
_PROBLEMS = {
    "missing": "is required",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
}


class _E2RankServer(MCPServer[Any]):
    """``MCPServer`` that refuses unknown tools and arguments and says what is wrong in its own words.

    The SDK drops arguments a tool does not take without a word, and answers a bad value with pydantic's text.
    """

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        schemas = {tool.name: tool.input_schema for tool in await self.list_tools()}
        if name not in schemas:
            hint = " (add_documents is offered only by a server started writable)" if name == "add_documents" else ""
            raise ToolError(f"there is no tool {name!r}{hint}; the tools are: {', '.join(sorted(schemas))}")
        known = list(schemas[name].get("properties", {}))
        unknown = [key for key in arguments if key not in known]
        if unknown:
            raise ToolError(
                f"{name} takes no argument {', '.join(map(repr, unknown))}; its arguments are: "
                f"{', '.join(known) or 'none'}. Call it again without the others."
            )
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc, UnexpectedToolError) or not isinstance(exc.__cause__, ValidationError):
                raise
            raise ToolError(_argument_problems(name, exc.__cause__)) from None


def _argument_problems(name: str, error: ValidationError) -> str:
    """``top_n must be at least 1 (got 0)``... for each bad argument, and what to do."""
    problems = []
    for e in error.errors(include_url=False):
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in e["loc"]).lstrip(".")
        limits = e.get("ctx") or {}
        if e["type"] == "greater_than_equal":
            what = f"must be at least {limits['ge']}"
        elif e["type"] == "less_than_equal":
            what = f"must be at most {limits['le']}"
        else:
            what = _PROBLEMS.get(e["type"], "has a value of the wrong kind")
        given = "" if e["type"] == "missing" else f" (got {_short(e['input'])})"
        problems.append(f"{where or 'the arguments'} {what}{given}")
    return f"invalid arguments, nothing was done: {'; '.join(problems)}. Call {name} again with valid arguments."


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _answer(result: SearchResult | RerankToolResult) -> CallToolResult:
    """The model reads ``context`` alone (the text content); the whole result is structured content."""
    return CallToolResult(
        content=[TextContent(type="text", text=result.context)], structured_content=result.model_dump(mode="json")
    )


def create_server(tools: E2RankTools, *, load_on_start: bool = True) -> MCPServer[Any]:
    """The MCP server of ``tools``: ``search``, ``rerank``, ``collection_info`` (and ``add_documents`` if writable).

    Args:
        tools: The tools' logic.
        load_on_start: Start loading the model when the transport is up (stdout is already the protocol's then);
            ``False`` leaves it to the caller (:meth:`E2RankTools.start` or :meth:`E2RankTools.load`).
    """
    settings = tools.settings
    collection = f"the {settings.collection!r} collection" if settings.collection else "the server's collection"

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[None]:
        if load_on_start:
            tools.start()
        yield

    server = _E2RankServer(
        "e2rank",
        version=__version__,
        instructions=(
            f"E2Rank search over {collection}: call `search` with a question to get the most relevant passages, "
            "reranked, with a cited context to quote from. `rerank` orders passages you already have."
        ),
        lifespan=lifespan,
    )

    @server.tool(
        annotations=_READ_ONLY,
        description=(
            f"Search {collection} for passages relevant to `query`. Retrieves the `k` nearest passages by "
            "embedding, reranks them with the E2Rank model and returns the best `top_n`, numbered [1], [2]... "
            f"with their source, to quote and cite, within {settings.max_tokens} tokens. Ids, scores and "
            "metadata are in the structured result."
        ),
    )
    def search(
        query: Annotated[str, Field(description="What to find: a question or keywords, in natural language.")],
        top_n: Annotated[
            int | None,
            Field(
                ge=1,
                le=settings.max_top_n,
                description=f"How many results to return (default {settings.default_top_n}, "
                f"at most {settings.max_top_n}).",
            ),
        ] = None,
        k: Annotated[
            int | None,
            Field(
                ge=1,
                le=settings.max_k,
                description=f"How many nearest candidates to rerank (default {settings.default_k}, at most "
                f"{settings.max_k}); more finds more, slower.",
            ),
        ] = None,
        where: Annotated[
            dict[str, Any] | None,
            Field(description='Optional Chroma metadata filter, e.g. {"topic": "news"} or {"year": {"$gte": 2020}}.'),
        ] = None,
    ) -> Annotated[CallToolResult, SearchResult]:
        return _answer(tools.search(query, top_n, k, where))

    @server.tool(annotations=_READ_ONLY)
    def rerank(
        query: Annotated[str, Field(description="The question or search query.")],
        documents: Annotated[list[str], Field(description="The passages to order, as plain strings.")],
        top_n: Annotated[
            int | None,
            Field(
                ge=1,
                le=settings.max_top_n,
                description=f"How many to return (default {settings.default_top_n}, at most {settings.max_top_n}).",
            ),
        ] = None,
    ) -> Annotated[CallToolResult, RerankToolResult]:
        """Order passages you already have by relevance to `query` (E2Rank listwise reranking).

        Returns the best `top_n`, best first, numbered and labelled documents[i] by their index in `documents`
        (cut to the server's token budget); indexes and scores are in the structured result.
        """
        return _answer(tools.rerank(query, documents, top_n))

    if settings.writable:  # a read-only server does not offer it at all

        @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False))
        def add_documents(
            documents: Annotated[list[str], Field(description="The passages to add, as plain strings.")],
            ids: Annotated[
                list[str] | None, Field(description="One unique id per passage (default: generated).")
            ] = None,
            metadatas: Annotated[
                list[dict[str, Any] | None] | None,
                Field(
                    description="One metadata object per passage (string, number or boolean values), e.g. "
                    '{"source": "notes.md"}.'
                ),
            ] = None,
        ) -> AddResult:
            """Add passages to the collection so that `search` finds them."""
            return tools.add_documents(documents, ids, metadatas)

    @server.tool(annotations=_READ_ONLY)
    def collection_info() -> CollectionInfo:
        """The collection served (name, record count), the model, the embedding dimension and the tools' limits."""
        return tools.collection_info()

    return server


def create_http_app(
    server: MCPServer[Any],
    *,
    host: str = LOCAL_HOST,
    api_key: str | None = None,
    allowed_hosts: Sequence[str] = (),
) -> Any:
    """The streamable-HTTP ASGI app of ``server``, at ``/mcp``.

    The SDK's Host/Origin checks (against DNS rebinding) stay on whatever ``host`` is: the names accepted are
    loopback's, ``host`` itself, this machine's name and ``allowed_hosts``. With ``api_key`` every request needs
    ``Authorization: Bearer <api_key>`` (``e2rank serve``'s own middleware).

    Args:
        server: The MCP server (:func:`create_server`).
        host: The address served on.
        api_key: The bearer key clients must send; ``None``: none.
        allowed_hosts: More names clients may reach the server by (``Host`` header, with or without a port).
    """
    names = ["127.0.0.1", "localhost", "[::1]"]
    if not is_loopback(host):
        wildcard = host in ("0.0.0.0", "::", "")
        names += [*([] if wildcard else [f"[{host}]" if ":" in host else host]), socket.gethostname(), socket.getfqdn()]
    names = list(dict.fromkeys([*names, *allowed_hosts]))
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[pattern for name in names for pattern in (name, f"{name}:*")],
        allowed_origins=[
            f"{scheme}://{name}{port}" for name in names for scheme in ("http", "https") for port in ("", ":*")
        ],
    )
    app = server.streamable_http_app(streamable_http_path="/mcp", transport_security=security, host=host)
    return app if api_key is None else AuthMiddleware(app, api_key=api_key, open_paths=())


def run(
    settings: MCPSettings,
    transport: Transport = "stdio",
    *,
    host: str = LOCAL_HOST,
    port: int = MCP_PORT,
    api_key: str | None = None,
    allowed_hosts: Sequence[str] = (),
) -> int:
    """Serve ``settings`` over ``transport`` until the host disconnects (stdio) or SIGINT (HTTP); returns 0.

    The model starts loading at once: over HTTP before the port opens, over stdio as soon as the SDK holds
    stdout for the protocol (so nothing printed while loading can corrupt it). Every log line goes to stderr.

    Args:
        settings: What to serve.
        transport: ``stdio`` (a host launches the server) or ``streamable-http``.
        host: The HTTP address; one beyond loopback needs ``api_key``.
        port: The HTTP port.
        api_key: The bearer key HTTP clients must send (see :func:`create_http_app`).
        allowed_hosts: More names HTTP clients may reach the server by.

    Raises:
        E2RankValueError: HTTP beyond loopback without ``api_key``, or an empty ``api_key``.
        ImportError: An extra the settings need is not installed.
    """
    if api_key is not None and not api_key.strip():
        raise E2RankValueError("`api_key` is empty: give the key clients must send, or None for none")
    if transport == "streamable-http" and api_key is None and not is_loopback(host):
        raise E2RankValueError(
            f"`host` {host} is reachable from other machines and no `api_key` is set: anyone there could use the "
            "tools. Give `api_key` (clients then send 'Authorization: Bearer <key>'), or serve on 127.0.0.1"
        )
    settings.check_installed()
    tools = E2RankTools(settings)
    server = create_server(tools)
    # force: one plain line per record on stderr, in place of the handler the SDK set up (rich, when installed).
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True
    )
    if transport == "stdio":
        logger.info("e2rank mcp: serving over stdio; the model loads in the background")
        server.run("stdio")
        return 0
    import uvicorn

    tools.start()  # before the port opens: the first client should not wait for it
    app = create_http_app(server, host=host, api_key=api_key, allowed_hosts=allowed_hosts)
    logger.info("e2rank mcp: serving on http://%s:%d/mcp; the model loads in the background", host, port)
    # log_config=None: uvicorn's loggers, the access log included, go to the root logger's handler on stderr.
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None)).run()
    return 0


__getattr__ = renamed_getattr(__name__, {"RerankResult": "RerankToolResult"}, globals())  # old name, one release
