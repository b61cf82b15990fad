"""Plain ASGI middleware: request ids and metrics, bearer-key authentication, the body size and time limits."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Collection
from typing import TYPE_CHECKING

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._asgi import AuthMiddleware, error_response

if TYPE_CHECKING:
    from .state import ServerState

__all__ = ["AuthMiddleware", "BodyLimitMiddleware", "RequestContextMiddleware"]


class RequestContextMiddleware:
    """Echo ``X-Request-Id`` (or make one) and count every request and its latency, by route.

    It also answers a request that uvicorn cuts off while the server stops (it cancels what still runs a few
    seconds after a drain) with the JSON 503 and ``Retry-After`` that clients retry, not uvicorn's plain-text 500.
    """

    def __init__(self, app: ASGIApp, state: ServerState, paths: Collection[str]) -> None:
        self.app = app
        self.state = state
        self.metrics = state.metrics
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = Headers(scope=scope).get("x-request-id") or uuid.uuid4().hex
        path = scope["path"] if scope["path"] in self.paths else "other"  # no label per unknown URL
        start = time.perf_counter()
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            if status is not None or self.state.status != "draining":
                raise
            error = self.state.unavailable()  # the request ends here, answered: the cancellation is done with
            await error_response(error.status, error.message, error.code, error.headers)(scope, receive, send_with_id)
        finally:
            self.metrics.requests.labels(path, str(status or 500)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)


class BodyLimitMiddleware:
    """Refuse a body that is too large (413) or too slow (408).

    Too large: over ``limit`` bytes, by its Content-Length or while it streams in. Too slow: not all there within
    ``timeout`` seconds of the request's headers.
    """

    def __init__(self, app: ASGIApp, limit: int, timeout: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        # Read the whole body here (at most `limit` bytes, within `timeout`), then hand it on in one message.
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout)
        except asyncio.TimeoutError:
            message = f"the request body did not arrive within {self.timeout:g} s"
            await error_response(408, message, "request_timeout", {"Connection": "close"})(scope, receive, send)
            return
        if body is None:
            await self._refuse(scope, receive, send)
            return
        await self.app(scope, _replay([body], receive), send)

    async def _read(self, receive: Receive) -> Message | None:
        """The whole body as one message (or the disconnect that cut it short); ``None`` when over the limit."""
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return message  # a disconnect: let the app see it
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit_mb = self.limit / (1024 * 1024)
        response = error_response(
            413, f"the request body is larger than the limit of {limit_mb:g} MiB", "payload_too_large"
        )
        await response(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that returns ``messages`` first, then reads on."""
    queued = list(messages)

    async def replay() -> Message:
        return queued.pop(0) if queued else await receive()

    return replay
