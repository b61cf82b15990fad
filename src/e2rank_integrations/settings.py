"""Settings of the parts behind an extra (the server, MCP): plain dataclasses, importable without that extra.

They live here, outside ``server/`` and ``mcp.py`` (which need their extras to import), so that the ``e2rank``
command can read their defaults to build its options, and ``--help`` works in any install. Errors name the
parameters (in backticks); the command line shows each as its flag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ._optional import check_extras
from .errors import E2RankValueError
from .loading import looks_like_path
from .prompts import AGENT_MAX_PROMPT_TOKENS, AGENT_NUM_PROMPT_DOCS
from .validators import check_positive_int

__all__ = ["API_KEY_ENV", "LOCAL_HOST", "MCP_PORT", "SERVE_PORT", "MCPSettings", "ServerSettings"]

API_KEY_ENV = "E2RANK_API_KEY"
"""The environment variable that holds the API key of an ``e2rank serve`` server, for its clients and itself."""

LOCAL_HOST = "127.0.0.1"
"""Where ``e2rank serve`` and ``e2rank mcp`` listen unless told otherwise: this machine only."""

SERVE_PORT = 8000
"""The port of ``e2rank serve`` (and of :func:`~e2rank_integrations.server.runner.serve`) by default."""

MCP_PORT = 8765
"""The port of ``e2rank mcp --transport streamable-http`` by default."""


@dataclass(frozen=True)
class ServerSettings:
    """How the server behaves; every field has the default of ``e2rank serve``.

    Attributes:
        model_id: Name reported in responses, ``/info`` and ``/v1/models`` (default: the model's path or hub id).
        api_key: When set, every endpoint but ``/health`` needs ``Authorization: Bearer <api_key>``.
        max_batch_tokens: Most tokens one micro-batch of queued requests may hold.
        max_client_batch_size: Most texts (or documents) one request may carry; more gives 413.
        max_concurrent_requests: Most model requests in flight at once; more gives 429 with ``Retry-After``.
        payload_limit_mb: Largest request body in MiB; larger gives 413.
        batching: ``False`` runs each request's texts alone (the baseline the benchmark compares against).
        raw_embeddings: Embed ``/v1/embeddings`` and ``/embed`` texts exactly as sent when a request gives no
            ``input_type``, as vLLM or TEI would (default: as documents, ``text<|endoftext|>``).
        allow_token_ids: Embed bare token ids sent to ``/v1/embeddings`` as this model's ids (default: refused
            with 400, because clients such as LangChain's ``OpenAIEmbeddings`` send tiktoken ids; a request can
            still send model ids on purpose with ``input_type: "tokens"``).
        retry_after_s: The ``Retry-After`` seconds sent with 429 and 503.
        drain_timeout_s: On SIGTERM, how long ``e2rank serve`` waits for in-flight requests before exiting.
        max_request_tokens: Most tokens (after truncation) one request may have embedded; more gives 413.
        limit_concurrency: Most open client connections; one more is closed as soon as it is accepted.
        max_connections_per_client: Most open connections from one client address; one more is closed as soon
            as it is accepted, so one client cannot hold all of ``limit_concurrency``.
        timeout_keep_alive_s: How long an idle keep-alive connection stays open after a response.
        request_head_timeout_s: How long a client may take to send a request's headers, from the connection's
            start or the end of its previous response; then a partly sent request gets 408 and the connection is
            closed (one that sent nothing is closed without an answer).
        request_read_timeout_s: How long a client may take to send a request's body once its headers arrived;
            a slower one gets 408.

    Example:
        >>> ServerSettings(api_key="secret", max_concurrent_requests=64).max_client_batch_size
        1024
    """

    model_id: str | None = None
    api_key: str | None = None
    max_batch_tokens: int = 16384
    max_client_batch_size: int = 1024
    max_concurrent_requests: int = 512
    payload_limit_mb: float = 16.0
    batching: bool = True
    raw_embeddings: bool = False
    allow_token_ids: bool = False
    retry_after_s: int = 1
    drain_timeout_s: float = 30.0
    # Abuse limits: one request's work, connections, and how slowly a client may send.
    max_request_tokens: int = 1_048_576
    limit_concurrency: int = 1024
    max_connections_per_client: int = 64
    timeout_keep_alive_s: int = 5
    request_head_timeout_s: float = 10.0
    request_read_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in (
            "max_batch_tokens",
            "max_client_batch_size",
            "max_concurrent_requests",
            "retry_after_s",
            "max_request_tokens",
            "limit_concurrency",
            "max_connections_per_client",
            "timeout_keep_alive_s",
        ):
            check_positive_int(getattr(self, name), name)
        for name in ("payload_limit_mb", "request_head_timeout_s", "request_read_timeout_s"):
            if not getattr(self, name) > 0:
                raise E2RankValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.drain_timeout_s < 0:
            raise E2RankValueError(f"drain_timeout_s must be >= 0, got {self.drain_timeout_s}")
        if self.api_key is not None and not self.api_key.strip():
            raise E2RankValueError("api_key must not be empty (use None for no authentication)")

    @property
    def payload_limit_bytes(self) -> int:
        """The body limit in bytes."""
        return int(self.payload_limit_mb * 1024 * 1024)


@dataclass(frozen=True)
class MCPSettings:
    """What ``e2rank mcp`` serves: a Chroma collection, the model that embedded it, and the limits of the tools.

    Attributes:
        chroma_dir: The directory of a ``chromadb.PersistentClient`` (it must exist).
        chroma_host: Instead of ``chroma_dir``: the host of a Chroma server (``chroma run``).
        chroma_port: The Chroma server's port.
        collection: The collection to serve; ``None``: the database's only collection.
        model: A hub id or local directory to load (``tiny-random`` for a generated test checkpoint); ``None`` with
            ``server_url`` ``None``: the model the collection's stored configuration names (a collection created with
            ``E2RankEmbeddingFunction``).
        server_url: Instead of ``model``: the URL of an ``e2rank serve`` server (the ``client`` extra).
        api_key_env: The environment variable holding that server's API key.
        device: Where a local model runs (``cuda``, ``cpu``...; default cuda when available).
        cache: A SQLite file to keep embeddings in across runs.
        writable: Whether ``add_documents`` may add to the collection (default read-only).
        default_k: Candidates ``search`` retrieves when the caller gives no ``k``.
        default_top_n: Results ``search`` returns when the caller gives no ``top_n`` (also ``rerank``'s default).
        max_top_n: The most results one call may ask for.
        max_tokens: The token budget of what the host's model reads of ``search`` and ``rerank``.
        max_k: The most candidates one ``search`` may ask for.
        dtype: A local model's dtype (``bfloat16``, ``float16``, ``float32``; default bfloat16 on GPU, float32 on CPU).
        quantize: ``int8``: a local model's linear layers in dynamic int8 on CPU (faster, slightly less exact).
        num_prompt_docs: Leading candidates in the listwise prompt of ``search`` and ``rerank``; default the agent
            setting (``prompts.AGENT_NUM_PROMPT_DOCS``), smaller than the paper's 20 so that a CPU call takes seconds.
        max_prompt_tokens: Token budget of that prompt (``None``: the model's ``max_length``); default the agent
            setting (``prompts.AGENT_MAX_PROMPT_TOKENS``).
    """

    chroma_dir: str | None = None
    chroma_host: str | None = None
    chroma_port: int = 8000
    collection: str | None = None
    model: str | None = None
    server_url: str | None = None
    api_key_env: str | None = None
    device: str | None = None
    cache: str | None = None
    writable: bool = False
    default_k: int = 50
    default_top_n: int = 5
    max_top_n: int = 50
    max_tokens: int = 4000
    dtype: str | None = None
    quantize: str | None = None
    num_prompt_docs: int = AGENT_NUM_PROMPT_DOCS
    max_prompt_tokens: int | None = AGENT_MAX_PROMPT_TOKENS
    max_k: int = 1000

    def __post_init__(self) -> None:
        if (self.chroma_dir is None) == (self.chroma_host is None):
            raise E2RankValueError("give exactly one of `chroma_dir` and `chroma_host` (with `chroma_port`)")
        if self.model is not None and self.server_url is not None:
            raise E2RankValueError("give `model` (a local model) or `server_url` (an e2rank server), not both")
        if self.api_key_env is not None and self.server_url is None:
            raise E2RankValueError("`api_key_env` names the API key of a server: give it with `server_url`")
        if self.server_url is not None and (self.dtype is not None or self.quantize is not None):
            raise E2RankValueError("`dtype` and `quantize` load a local model: the server at `server_url` has its own")
        if self.quantize not in (None, "int8"):
            raise E2RankValueError(f"`quantize` must be int8 (or unset), got {self.quantize!r}")
        if self.dtype not in (None, "bfloat16", "float16", "float32"):
            raise E2RankValueError(f"`dtype` must be bfloat16, float16 or float32, got {self.dtype!r}")
        positive = ("chroma_port", "default_k", "default_top_n", "max_top_n", "max_tokens", "num_prompt_docs", "max_k")
        for name in (*positive, *(("max_prompt_tokens",) if self.max_prompt_tokens is not None else ())):
            try:
                check_positive_int(getattr(self, name), name)
            except (TypeError, ValueError) as exc:
                raise E2RankValueError(f"`{name}` must be a positive integer") from exc
        if self.default_top_n > self.max_top_n:
            raise E2RankValueError(f"`default_top_n` ({self.default_top_n}) is over `max_top_n` ({self.max_top_n})")
        if self.default_k > self.max_k:
            raise E2RankValueError(f"`default_k` ({self.default_k}) is over `max_k` ({self.max_k})")
        if self.chroma_dir is not None and not os.path.isdir(self.chroma_dir):
            # Never create it: a mistyped path would serve an empty database without a word.
            raise E2RankValueError(
                f"`chroma_dir` {self.chroma_dir}: no such directory. Point it at the directory a "
                "chromadb.PersistentClient wrote; for a new, empty database create the directory and set `writable`"
            )
        model = self.model
        if model is not None and looks_like_path(model) and not os.path.isdir(os.path.expanduser(model)):
            raise E2RankValueError(f"`model` {model}: no such directory")  # at start-up, not at the first tool call

    def check_installed(self) -> None:
        """Raise ``ImportError`` naming every extra these settings need, if one is missing (nothing is imported)."""
        check_extras(["mcp", "chroma", "client" if self.server_url is not None else "model"], "`e2rank mcp`")
