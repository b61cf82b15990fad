"""Wire schemas of the HTTP API: the only definition, used by the server and by the client.

The shapes are those existing clients already speak: OpenAI embeddings (``/v1/embeddings``), Cohere/Jina rerank
(``/v1/rerank``, ``/rerank``, ``/v2/rerank``), TEI (``/embed``, and a rerank body with ``texts``). Fields marked
*extension* are ours; other servers ignore or refuse them. Requests ignore fields they do not know, because real
clients send some (``user``, ``model``, ``max_chunks_per_doc``...).

Example:
    >>> request = EmbeddingRequest(input=["a passage"], encoding_format="base64")
    >>> request.texts()
    ['a passage']
    >>> decode_vector(encode_vector([1.0, 0.5])).tolist()
    [1.0, 0.5]
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt

from ._deprecation import renamed_getattr
from ._optional import require
from .errors import E2RankValueError
from .types import Embeddings

require("pydantic", extra="client")  # the client and server extras bring it; the core does not
from pydantic import (  # noqa: E402
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    WithJsonSchema,
)

__all__ = [
    "MAX_PASSES",
    "AnyRerankRequest",
    "EmbeddingData",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "ErrorDetail",
    "ErrorResponse",
    "HealthResponse",
    "InfoResponse",
    "InputType",
    "ModelCard",
    "ModelList",
    "RerankDocument",
    "RerankRequest",
    "RerankResponse",
    "RerankResultItem",
    "StatsResponse",
    "TEIEmbedRequest",
    "TEIRankItem",
    "TEIRerankRequest",
    "Usage",
    "decode_vector",
    "embedding_response",
    "encode_vector",
]

MAX_PASSES = 8
"""Most rerank passes one request may ask for (each pass is one prompt embedding)."""

InputType = Literal["document", "query", "prompt", "raw"]
"""How texts are formatted before they are embedded (extension).

``document``: ``text<|endoftext|>``; ``query``: the retrieval instruction around it; ``prompt``: listwise content
wrapped in the chat template; ``raw``: embedded exactly as sent (what vLLM or TEI would do).
"""


def encode_vector(vector: npt.ArrayLike) -> str:
    """One vector as base64 of little-endian float32 bytes (OpenAI's ``encoding_format="base64"``)."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(data: str) -> Embeddings:
    """The inverse of :func:`encode_vector`; an ``E2RankValueError`` for anything that is not such a string."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise E2RankValueError("not valid base64") from None
    if len(raw) % 4:
        raise E2RankValueError(f"not a whole number of float32 values ({len(raw)} bytes of base64 data)")
    vector: Embeddings = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    return vector


# Request rules the schema states (a request breaking one is a 422 that names the field). Strict types: JSON has
# booleans and integers, so `"truncate": 0` or `"top_n": "3"` is a mistake to report, not to coerce.


def _non_blank(value: str) -> str:
    if not value.strip():
        raise E2RankValueError("must have a character other than whitespace")
    return value


# Checked in Python, not with pydantic's min_length/pattern: those cannot read a lone surrogate, and such a query
# must reach the server's own check (a 400 that says it is not valid Unicode).
NonBlank = Annotated[str, AfterValidator(_non_blank), Field(json_schema_extra={"minLength": 1, "pattern": r"\S"})]
"""A text with at least one non-space character (a query)."""


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


Int = Annotated[StrictInt, BeforeValidator(_whole)]
"""An integer; JSON Schema counts 3.0 as one, so it is 3 (but ``true`` or ``"3"`` is a 422)."""
TokenIds = Annotated[list[Int], Field(min_length=1)]


class WireModel(BaseModel):
    """Base of every schema: unknown request fields are ignored, not refused (real clients send some)."""

    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------------------- errors


class ErrorDetail(WireModel):
    """What went wrong, OpenAI style."""

    message: str = Field(description="A sentence for a person; names the field at fault.")
    type: str = Field(description="invalid_request_error, authentication_error, rate_limit_error, ...")
    code: str | None = Field(default=None, description="A stable machine-readable code.")


class ErrorResponse(WireModel):
    """The body of every error response."""

    error: ErrorDetail


# ---------------------------------------------------------------------------- embeddings


class EmbeddingRequest(WireModel):
    """``POST /v1/embeddings``: the OpenAI request, plus ``input_type``, ``instruction`` and ``truncate``."""

    # Int: a boolean is not a token id (pydantic would read true as 1), so `input: [true]` is a 422.
    input: (
        str | Annotated[list[str], Field(min_length=1)] | TokenIds | Annotated[list[TokenIds], Field(min_length=1)]
    ) = Field(
        description=(
            "A text, a list of texts, or this model's token ids (one list, or a list of lists; with "
            "input_type 'tokens', or on a server started with --allow-token-ids). An empty text is embedded as an "
            "empty document; with input_type raw or prompt it is refused (400)."
        ),
    )
    model: str | None = Field(default=None, description="Accepted and ignored: the server hosts one model.")
    encoding_format: Literal["float", "base64"] = Field(default="float", description="float lists or base64.")
    dimensions: Int | None = Field(default=None, description="Must be the model's dimension when given.")
    user: str | None = Field(default=None, description="Accepted and ignored.")
    input_type: InputType | Literal["tokens"] | None = Field(
        default=None,
        description=(
            "Extension: document (the default for text), query, prompt or raw; tokens: input holds this "
            "model's token ids, embedded as given."
        ),
    )
    instruction: str | None = Field(default=None, description="Extension: the task description of queries.")
    truncate: StrictBool = Field(
        default=True, description="Extension: false refuses over-long inputs instead of cutting."
    )

    def texts(self) -> list[str] | None:
        """The inputs as a list of texts, or ``None`` when they are token ids."""
        if isinstance(self.input, str):
            return [self.input]
        if all(isinstance(item, str) for item in self.input):
            return [str(item) for item in self.input]
        return None

    def token_ids(self) -> list[list[int]]:
        """The inputs as lists of token ids (call when :meth:`texts` is ``None``)."""
        if self.input and all(isinstance(item, int) for item in self.input):
            return [[int(i) for i in self.input]]  # type: ignore[arg-type]
        return [list(item) for item in self.input]  # type: ignore[arg-type]


class EmbeddingData(WireModel):
    """One embedding of an OpenAI response."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of little-endian float32.")


class Usage(WireModel):
    """Tokens embedded for a request (after truncation), counted whether or not they came from the cache."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(WireModel):
    """The OpenAI embeddings response."""

    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage

    def vectors(self) -> Embeddings:
        """The embeddings as one float32 matrix, in input order, whichever encoding was used."""
        rows = sorted(self.data, key=lambda item: item.index)
        vectors = [decode_vector(r.embedding) if isinstance(r.embedding, str) else r.embedding for r in rows]
        return np.asarray(vectors, dtype=np.float32).reshape(len(rows), -1)


class TEIEmbedRequest(WireModel):
    """``POST /embed``: text-embeddings-inference's request; the response is a list of float lists."""

    inputs: str | Annotated[list[str], Field(min_length=1)] = Field(description="A text or a list of texts.")
    normalize: StrictBool = Field(default=True, description="Embeddings are always L2-normalised; false is refused.")
    truncate: StrictBool = Field(default=True, description="false refuses over-long inputs instead of cutting them.")
    input_type: InputType | None = Field(default=None, description="Extension, as in /v1/embeddings.")
    instruction: str | None = Field(default=None, description="Extension, as in /v1/embeddings.")

    def texts(self) -> list[str]:
        """The inputs as a list."""
        return [self.inputs] if isinstance(self.inputs, str) else list(self.inputs)


# ---------------------------------------------------------------------------- rerank


class RerankDocument(WireModel):
    """A document given (or returned) as an object."""

    text: str


class _RerankOptions(WireModel):
    """Fields every rerank body shares: the listwise method's options (extensions) and truncation."""

    query: NonBlank = Field(description="The search query.")
    instruction: str | None = Field(default=None, description="Extension: the task description of the prompt.")
    num_prompt_docs: Int = Field(default=20, ge=1, description="Extension: leading candidates in the prompt.")
    passes: Int = Field(default=1, ge=1, le=MAX_PASSES, description="Extension: 2 reranks again in the new order.")
    max_prompt_tokens: Annotated[Int, Field(ge=1), WithJsonSchema({"type": "integer", "minimum": 1})] | None = Field(
        default=None, description="Extension: token budget of the prompt; its documents are cut evenly to fit."
    )  # spelled out as top_n is: pydantic writes ge under a union as a bare "ge"
    truncate: StrictBool = Field(default=True, description="false refuses over-long documents instead of cutting them.")


class RerankRequest(_RerankOptions):
    """``POST /v1/rerank`` (Cohere/Jina), plus ``doc_embeddings`` so stored vectors are not embedded again."""

    documents: list[str | RerankDocument] = Field(min_length=1, description="Candidates, in first-stage order.")
    # Its schema spelled out: pydantic wrote ge=1 under a union as a bare "ge", a keyword JSON Schema ignores.
    top_n: Annotated[Int, Field(ge=1), WithJsonSchema({"type": "integer", "minimum": 1})] | None = Field(
        default=None, description="Keep the best top_n (default all)."
    )
    return_documents: StrictBool = Field(default=False, description="Include each document's text in its result.")
    model: str | None = Field(default=None, description="Accepted and ignored: the server hosts one model.")
    doc_embeddings: list[list[float]] | list[str] | None = Field(
        default=None,
        description="Extension: the documents' stored embeddings, float lists or base64, one per document.",
    )

    def texts(self) -> list[str]:
        """The documents' texts."""
        return [d if isinstance(d, str) else d.text for d in self.documents]

    def embeddings(self) -> list[Any] | None:
        """``doc_embeddings`` as float rows (base64 rows decoded)."""
        if self.doc_embeddings is None:
            return None
        rows: list[Any] = []
        for i, row in enumerate(self.doc_embeddings):
            try:
                rows.append(decode_vector(row) if isinstance(row, str) else row)
            except E2RankValueError as exc:
                raise E2RankValueError(f"doc_embeddings[{i}] is {exc}") from None
        return rows


class RerankResultItem(WireModel):
    """One item of ``RerankResponse.results``: a document's index in the request, its score, its text if asked."""

    index: int
    relevance_score: float
    document: RerankDocument | None = None


class RerankResponse(WireModel):
    """The Cohere/Jina rerank response (results best first)."""

    id: str
    model: str
    results: list[RerankResultItem]
    usage: Usage


class TEIRerankRequest(_RerankOptions):
    """A TEI rerank body (it has ``texts``): the response is a list of :class:`TEIRankItem`."""

    texts: list[str] = Field(min_length=1, description="Candidates, in first-stage order.")
    raw_scores: StrictBool = Field(default=False, description="Accepted: scores are always raw cosine similarities.")
    return_text: StrictBool = Field(default=False, description="Include each text in its result.")


class TEIRankItem(WireModel):
    """One result of a TEI rerank."""

    index: int
    score: float
    text: str | None = None


# A plain union, as the schema's anyOf says: a body valid as either dialect is taken (Cohere's when both fit).
# A discriminator on the keys present refused bodies the schema allowed (texts, documents and top_n 0: TEI's).
AnyRerankRequest = RerankRequest | TEIRerankRequest
"""A rerank body: Cohere's (``documents``) or TEI's (``texts``), whichever it is valid as (Cohere's if both)."""


# ---------------------------------------------------------------------------- service


class HealthResponse(WireModel):
    """``GET /health``: ``ok`` (200), else ``loading``, ``draining`` or ``failed`` (503)."""

    status: Literal["ok", "loading", "draining", "failed"]
    message: str | None = None


class InfoResponse(WireModel):
    """``GET /info``: what the server hosts and the limits it enforces."""

    model_id: str
    fingerprint: str
    dimension: int
    max_input_length: int = Field(description="Tokens per input; longer ones are cut unless truncate is false.")
    max_batch_tokens: int
    max_client_batch_size: int = Field(description="Most texts (or documents) in one request.")
    max_concurrent_requests: int
    payload_limit_bytes: int
    raw_embeddings: bool = Field(description="Untyped /v1/embeddings and /embed inputs are embedded as sent.")
    prompts: dict[str, Any] = Field(description="The query, document and listwise prompt strings.")
    version: str


class StatsResponse(WireModel):
    """``GET /stats``: the model's counters since load and the server's queue, now."""

    texts_embedded: int = Field(default=0, description="Texts run through the network (cache misses).")
    tokens_embedded: int = Field(default=0, description="Tokens of those texts.")
    cache_hits: int = Field(default=0, description="Texts answered from the embedding cache.")
    batches: int = Field(default=0, description="Forward passes.")
    embed_seconds: float = Field(default=0.0, description="Time spent in forward passes.")
    cache_entries: int = Field(default=0, description="Entries in the embedding cache.")
    in_flight: int = Field(description="Model requests being served.")
    queue_depth: int = Field(description="Requests waiting for (more of) their texts to be embedded.")


class ModelCard(WireModel):
    """One entry of ``GET /v1/models``."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "e2rank-integrations"


class ModelList(WireModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


def embedding_response(vectors: npt.ArrayLike, model: str, tokens: int, encoding: str) -> EmbeddingResponse:
    """Build an OpenAI response without validating every float again (they come from the model)."""
    data = [
        EmbeddingData.model_construct(
            object="embedding",
            index=i,
            embedding=encode_vector(v) if encoding == "base64" else np.asarray(v, dtype=np.float32).tolist(),
        )
        for i, v in enumerate(np.asarray(vectors, dtype=np.float32))
    ]
    usage = Usage(prompt_tokens=tokens, total_tokens=tokens)
    return EmbeddingResponse.model_construct(object="list", data=data, model=model, usage=usage)


__getattr__ = renamed_getattr(__name__, {"RerankResult": "RerankResultItem"}, globals())  # old name, one release
