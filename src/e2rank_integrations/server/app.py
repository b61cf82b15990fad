"""The app factory: one FastAPI app over one model, with its middleware, error bodies and lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from .errors import install_error_handlers
from .middleware import AuthMiddleware, BodyLimitMiddleware, RequestContextMiddleware
from .routes import PATHS, router
from .settings import ServerSettings
from .state import ModelSource, ServerState

__all__ = ["create_app"]

_DESCRIPTION = (
    "E2Rank over HTTP: OpenAI embeddings, Cohere/Jina and TEI rerank, TEI embed. Requests from many clients are "
    'batched together; errors are `{"error": {"message", "type", "code"}}`.'
)


def create_app(backend: ModelSource, settings: ServerSettings | None = None) -> FastAPI:
    """A FastAPI app serving one E2Rank model.

    Args:
        backend: A loaded ``E2RankModel``, or a function that loads one: the app then answers 503 (``/health``
            included) until it has loaded and warmed the model in the background.
        settings: Limits, authentication and batching (default :class:`ServerSettings`).

    Returns:
        The app; ``app.state.e2rank`` is its :class:`~e2rank_integrations.server.state.ServerState`
        (``begin_drain()`` refuses new model requests with 503 while those in flight finish).

    Example:
        >>> import uvicorn  # doctest: +SKIP
        >>> from e2rank_integrations import E2RankModel
        >>> from e2rank_integrations.server import ServerSettings, create_app
        >>> model = E2RankModel.from_pretrained("Alibaba-NLP/E2Rank-0.6B")  # doctest: +SKIP
        >>> app = create_app(model, ServerSettings(api_key="secret"))  # doctest: +SKIP
        >>> uvicorn.run(app, port=8000)  # doctest: +SKIP
    """
    settings = settings or ServerSettings()
    state = ServerState(backend, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(title="E2Rank server", version=__version__, description=_DESCRIPTION, lifespan=lifespan)
    app.state.e2rank = state
    install_error_handlers(app)
    app.include_router(router)
    # Added innermost first: a request meets the request id and metrics, then authentication, then the body limit.
    app.add_middleware(BodyLimitMiddleware, limit=settings.payload_limit_bytes, timeout=settings.request_read_timeout_s)
    if settings.api_key is not None:
        app.add_middleware(AuthMiddleware, api_key=settings.api_key)
    app.add_middleware(RequestContextMiddleware, state=state, paths=PATHS)
    return app
