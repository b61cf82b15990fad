"""The endpoints: thin handlers that map wire schemas to the :class:`Engine` and back."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from .. import __version__
from ..protocol import (
    AnyRerankRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorResponse,
    HealthResponse,
    InfoResponse,
    ModelCard,
    ModelList,
    RerankDocument,
    RerankResponse,
    RerankResultItem,
    StatsResponse,
    TEIEmbedRequest,
    TEIRankItem,
    TEIRerankRequest,
    Usage,
    embedding_response,
)
from .engine import Engine, Outcome
from .errors import APIError
from .state import ServerState

__all__ = ["PATHS", "RERANK_PATHS", "router"]

RERANK_PATHS = ("/v1/rerank", "/rerank", "/v2/rerank")
PATHS = ("/v1/embeddings", "/embed", *RERANK_PATHS, "/health", "/info", "/v1/models", "/metrics", "/stats")

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (400, "Bad input (the message names the field)"),
        (401, "Missing or wrong API key"),
        (413, "Body or batch over the limit"),
        (422, "A field of the wrong type"),
        (429, "Too many requests in flight (see Retry-After)"),
        (503, "Loading or draining (see Retry-After)"),
    )
}
_VECTORS = TypeAdapter(list[list[float]])
_TEI_RANKS = TypeAdapter(list[TEIRankItem])
_started = int(time.time())

router = APIRouter()


def get_state(request: Request) -> ServerState:
    """The app's :class:`ServerState`."""
    state: ServerState = request.app.state.e2rank
    return state


async def admitted(state: ServerState = Depends(get_state)) -> AsyncIterator[Engine]:  # noqa: B008
    """The engine for one model request, counted in flight until the response is done (429/503 otherwise)."""
    engine = state.admit()
    try:
        yield engine
    finally:
        state.release()


def _json(body: bytes, outcome: Outcome) -> Response:
    headers = {
        "x-queue-time": f"{outcome.queue_seconds * 1000:.3f}",
        "x-inference-time": f"{outcome.inference_seconds * 1000:.3f}",
    }
    return Response(body, media_type="application/json", headers=headers)


@router.post("/v1/embeddings", response_model=EmbeddingResponse, responses=_ERRORS, tags=["embeddings"])
async def embeddings(
    body: EmbeddingRequest,
    engine: Engine = Depends(admitted),  # noqa: B008
    state: ServerState = Depends(get_state),  # noqa: B008
) -> Response:
    """OpenAI embeddings; ``input_type`` picks the format (default: documents)."""
    if body.dimensions is not None and body.dimensions != engine.model.dimension:
        raise APIError(400, f"dimensions must be the model's dimension {engine.model.dimension} (or left out)")
    texts = body.texts()
    if texts is None:  # checked and decoded in a worker thread: a long id list must not stall the event loop
        formatted = await run_in_threadpool(lambda: engine.decode_ids(body.token_ids(), body.input_type, "input"))
    else:
        engine.check_count(len(texts), "input")
        formatted = engine.format(texts, body.input_type, body.instruction, "input")
    outcome = Outcome()
    vectors = await engine.embed(formatted, truncate=body.truncate, name="input", into=outcome)
    response = embedding_response(vectors, state.model_id, outcome.tokens, body.encoding_format)
    return _json(response.model_dump_json().encode(), outcome)


@router.post("/embed", response_model=list[list[float]], responses=_ERRORS, tags=["tei"])
async def tei_embed(body: TEIEmbedRequest, engine: Engine = Depends(admitted)) -> Response:  # noqa: B008
    """Text-embeddings-inference's ``/embed``: a list of float lists."""
    if not body.normalize:
        raise APIError(400, "normalize: false is not supported; embeddings are always L2-normalised")
    texts = body.texts()
    engine.check_count(len(texts), "inputs")
    formatted = engine.format(texts, body.input_type, body.instruction, "inputs")
    outcome = Outcome()
    vectors = await engine.embed(formatted, truncate=body.truncate, name="inputs", into=outcome)
    return _json(_VECTORS.dump_json(vectors.tolist()), outcome)


async def rerank(
    body: AnyRerankRequest,
    engine: Engine = Depends(admitted),  # noqa: B008
    state: ServerState = Depends(get_state),  # noqa: B008
) -> Response:
    """Cohere/Jina rerank (``documents``), or TEI's (``texts``), answered in the dialect asked."""
    outcome = Outcome()
    tei = isinstance(body, TEIRerankRequest)
    documents = body.texts if isinstance(body, TEIRerankRequest) else body.texts()
    results = await engine.rerank(
        body.query,
        documents,
        top_n=None if isinstance(body, TEIRerankRequest) else body.top_n,
        instruction=body.instruction,
        num_prompt_docs=body.num_prompt_docs,
        passes=body.passes,
        max_prompt_tokens=body.max_prompt_tokens,
        doc_embeddings=None if isinstance(body, TEIRerankRequest) else body.embeddings(),
        truncate=body.truncate,
        name="texts" if tei else "documents",
        into=outcome,
    )
    if isinstance(body, TEIRerankRequest):
        items = [
            TEIRankItem(index=r.index, score=r.score, text=documents[r.index] if body.return_text else None)
            for r in results
        ]
        return _json(_TEI_RANKS.dump_json(items, exclude_none=True), outcome)
    response = RerankResponse(
        id=uuid.uuid4().hex,
        model=state.model_id,
        results=[
            RerankResultItem(
                index=r.index,
                relevance_score=r.score,
                document=RerankDocument(text=documents[r.index]) if body.return_documents else None,
            )
            for r in results
        ],
        usage=Usage(prompt_tokens=outcome.tokens, total_tokens=outcome.tokens),
    )
    return _json(response.model_dump_json(exclude_none=True).encode(), outcome)


for _path in RERANK_PATHS:
    router.add_api_route(
        _path,
        rerank,
        methods=["POST"],
        response_model=RerankResponse | list[TEIRankItem],
        responses=_ERRORS,
        tags=["rerank"],
        name=f"rerank{_path.replace('/', '_')}",
    )


@router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}}, tags=["service"])
async def health(state: ServerState = Depends(get_state)) -> Response:  # noqa: B008
    """200 once the model is loaded and warmed; 503 while loading, draining, or after a failed load."""
    body = HealthResponse(status=state.status, message=state.message)
    status = 200 if state.status == "ok" else 503
    return Response(body.model_dump_json(exclude_none=True), status_code=status, media_type="application/json")


@router.get("/info", response_model=InfoResponse, responses=_ERRORS, tags=["service"])
async def info(state: ServerState = Depends(get_state)) -> InfoResponse:  # noqa: B008
    """The model, its fingerprint and dimension, and the server's limits."""
    model = state.loaded_model()
    settings = state.settings
    return InfoResponse(
        model_id=state.model_id,
        fingerprint=model.fingerprint,
        dimension=model.dimension,
        max_input_length=model.max_length,
        max_batch_tokens=settings.max_batch_tokens,
        max_client_batch_size=settings.max_client_batch_size,
        max_concurrent_requests=settings.max_concurrent_requests,
        payload_limit_bytes=settings.payload_limit_bytes,
        raw_embeddings=settings.raw_embeddings,
        prompts=model.prompts.to_dict(),
        version=__version__,
    )


@router.get("/v1/models", response_model=ModelList, responses=_ERRORS, tags=["service"])
async def models(state: ServerState = Depends(get_state)) -> ModelList:  # noqa: B008
    """The one model this server hosts (OpenAI's model list)."""
    return ModelList(data=[ModelCard(id=state.model_id, created=_started)])


@router.get("/stats", response_model=StatsResponse, responses=_ERRORS, tags=["service"])
async def stats(state: ServerState = Depends(get_state)) -> StatsResponse:  # noqa: B008
    """The model's counters (``texts_embedded``, ``cache_hits``...) and the server's queue."""
    model = state.model
    # In a worker thread: the count of cache entries reads the SQLite file.
    counters: dict[str, Any] = await run_in_threadpool(model.stats) if model is not None else {}
    return StatsResponse(**counters, in_flight=state.in_flight, queue_depth=state.batcher.depth)


@router.get("/metrics", response_class=Response, responses=_ERRORS, tags=["service"])
async def metrics(state: ServerState = Depends(get_state)) -> Response:  # noqa: B008
    """Prometheus metrics: requests, latencies, queue depth, batch sizes and tokens, cache hits."""
    body = await run_in_threadpool(state.metrics.render)  # it reads the model's counters, as /stats does
    return Response(body, media_type=state.metrics.content_type)
