"""The server's life: loading and warming the model, admitting requests, draining on shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Literal, TypeAlias

from starlette.concurrency import run_in_threadpool

from ..types import Embeddings
from .batching import Batcher
from .engine import Engine, ServableModel
from .errors import APIError
from .metrics import Metrics
from .settings import ServerSettings

__all__ = ["ModelSource", "ServerState"]

logger = logging.getLogger("e2rank_integrations.server")

ModelSource: TypeAlias = "ServableModel | Callable[[], ServableModel]"
"""A loaded model, or a function that loads one (the server answers 503 until it returns); a model is not callable."""

Status = Literal["loading", "ok", "draining", "failed"]


class ServerState:
    """Status, the engine once the model is ready, and the count of model requests in flight."""

    def __init__(self, source: ModelSource, settings: ServerSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.status: Status = "loading"
        self.message: str | None = None
        self.in_flight = 0
        self.engine: Engine | None = None
        self._source = source
        self._model: ServableModel | None = None
        self._loader: asyncio.Task[None] | None = None
        self.batcher = Batcher(
            self._embed_formatted,
            max_batch_tokens=settings.max_batch_tokens,
            batching=settings.batching,
            on_batch=self.metrics.observe_batch,
        )
        self.metrics.watch(lambda: self.batcher.depth, lambda: self.in_flight)

    # ------------------------------------------------------------------ lifecycle

    @property
    def model(self) -> ServableModel | None:
        """The model, once loaded."""
        return self._model

    def _embed_formatted(self, texts: list[str]) -> Embeddings:
        assert self._model is not None
        return self._model.embed_formatted(texts)

    async def start(self) -> None:
        """Start the batcher, then load (if needed) and warm the model: in the background when it must be loaded."""
        self.batcher.start()
        if not callable(self._source):  # a model already loaded: ready once startup ends, no 503 race
            await self._load()
            return
        self._loader = asyncio.get_running_loop().create_task(self._load(), name="e2rank-load")

    async def _load(self) -> None:
        source = self._source
        try:
            # A function loads one (off the event loop); a model is no function.
            model = await run_in_threadpool(source) if callable(source) else source
            self._model = model
            self.engine = Engine(model, self.batcher, self.settings)
            await self.batcher.embed([model.prompts.document("warm up")], tokens=[4])
            self.metrics.watch_backend(model.stats)
        except Exception as exc:
            self.status, self.message = "failed", f"could not load the model: {exc}"
            logger.error(self.message, exc_info=exc)  # the traceback says where, the message only what
            return
        if self.status == "loading":
            self.status = "ok"
            logger.info("model ready: %s", self.model_id)

    async def stop(self) -> None:
        """Stop loading (if still running) and the batcher."""
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()
            await asyncio.gather(self._loader, return_exceptions=True)
        await self.batcher.stop()

    @property
    def model_id(self) -> str:
        """The name clients see."""
        if self.settings.model_id:
            return self.settings.model_id
        return self._model.name_or_path if self._model is not None and self._model.name_or_path else "e2rank"

    # ------------------------------------------------------------------ admission and draining

    def unavailable(self) -> APIError:
        """The 503 (with ``Retry-After``) for a request the server cannot take now: loading, draining, failed."""
        message = self.message or f"the server is {self.status}"
        return APIError(503, message, self.status, {"Retry-After": str(self.settings.retry_after_s)})

    def loaded_model(self) -> ServableModel:
        """The model, or a 503 while it loads (or after it failed to)."""
        if self._model is None:
            raise self.unavailable()
        return self._model

    def ready_engine(self) -> Engine:
        """The engine, or a 503 while the model loads, failed, or the server drains."""
        if self.status != "ok" or self.engine is None:
            raise self.unavailable()
        return self.engine

    def admit(self) -> Engine:
        """Count one more model request in flight, or refuse it: 503 when not ready, 429 when at the limit."""
        engine = self.ready_engine()
        limit = self.settings.max_concurrent_requests
        if self.in_flight >= limit:
            raise APIError(
                429,
                f"the server is at max_concurrent_requests={limit}; retry after {self.settings.retry_after_s} s",
                "queue_full",
                {"Retry-After": str(self.settings.retry_after_s)},
            )
        self.in_flight += 1
        return engine

    def release(self) -> None:
        """One model request finished."""
        self.in_flight -= 1

    def begin_drain(self) -> None:
        """Refuse new model requests with 503; those in flight go on."""
        if self.status in ("ok", "loading"):
            self.status, self.message = "draining", "the server is shutting down"
            logger.info("draining: %d request(s) in flight", self.in_flight)

    def abort_in_flight(self) -> None:
        """Answer the model requests still in flight with 503 (and ``Retry-After``) now: the server is stopping.

        Called when a drain runs out of time (or on SIGINT), before uvicorn stops: a request it cut off instead
        would get a plain-text 500 that no client knows to retry.
        """
        self.begin_drain()
        if self.in_flight:
            logger.warning("stopping: %d request(s) still in flight get 503", self.in_flight)
        self.batcher.abort(self.unavailable)

    @property
    def finished(self) -> bool:
        """True once draining found nothing left in flight, or loading failed: time to exit."""
        return self.status == "failed" or (self.status == "draining" and self.in_flight == 0)
