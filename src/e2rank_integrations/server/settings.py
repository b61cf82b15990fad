"""Server settings: limits, authentication and batching, with the defaults of ``e2rank serve``."""

from __future__ import annotations

from dataclasses import dataclass

from ..scoring import check_positive_int

__all__ = ["ServerSettings"]


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
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.drain_timeout_s < 0:
            raise ValueError(f"drain_timeout_s must be >= 0, got {self.drain_timeout_s}")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key must not be empty (use None for no authentication)")

    @property
    def payload_limit_bytes(self) -> int:
        """The body limit in bytes."""
        return int(self.payload_limit_mb * 1024 * 1024)
