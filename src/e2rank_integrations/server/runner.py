"""Run an app with uvicorn: connection limits and timeouts, and a drain on SIGTERM.

On SIGTERM, in-flight requests finish while new ones get 503; requests still running when the drain times out
(or on SIGINT) get the JSON 503 with ``Retry-After``, then the process exits.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) but nothing else about a slow client: a
connection that never finishes its request's headers stays open for good, and it accepts every connection it is
offered. :func:`guarded_protocol` adds both limits; the rest (rates per client, TLS) belongs to a reverse proxy
(``docs/deployment.md``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import socket
import time
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from .._asgi import is_loopback
from ..protocol import ErrorDetail, ErrorResponse
from ..settings import LOCAL_HOST, SERVE_PORT
from .app import create_app
from .settings import ServerSettings
from .state import ModelSource, ServerState

__all__ = ["DrainingServer", "guarded_protocol", "serve", "server_config"]

logger = logging.getLogger("e2rank_integrations.server")


def guarded_protocol(state: ServerState, base: Any = AutoHTTPProtocol) -> type[asyncio.Protocol]:
    """The HTTP protocol class ``base`` of uvicorn with the limits of ``state.settings`` that uvicorn lacks.

    They act on the connection itself, before any request exists (a middleware would only see requests):

    - ``limit_concurrency`` and ``max_connections_per_client``: a connection beyond either is closed as soon as it
      is accepted, so a flood of idle connections from one address can neither use up the process's file handles
      nor the connections everyone else shares;
    - ``request_head_timeout_s``: a connection whose next request's headers have not all arrived that long after
      it opened (or after its previous response) is closed, with a 408 when part of a request had come.
    """
    settings = state.settings
    refused = state.metrics.connections_refused
    per_client: collections.Counter[str] = collections.Counter()  # open connections by client address
    timed_out = _head_timeout_response(settings.request_head_timeout_s)

    class GuardedProtocol(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_timer: asyncio.TimerHandle | None = None
            self._peer: str | None = None  # the address counted in per_client, once accepted
            self._head_started = False  # bytes of the next request came since the last response

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            peer = self.client[0] if self.client else None  # None on a Unix socket: only the total is capped
            if len(self.connections) > settings.limit_concurrency or (
                peer is not None and per_client[peer] >= settings.max_connections_per_client
            ):
                refused.inc()
                transport.close()
                return
            if peer is not None:
                self._peer = peer
                per_client[peer] += 1
            self._expect_head()

        def data_received(self, data: bytes) -> None:
            self._head_started = self._head_started or bool(data)
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._expect_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            if self._peer is not None:
                per_client[self._peer] -= 1
                if not per_client[self._peer]:
                    del per_client[self._peer]  # the counter holds only addresses with connections open
                self._peer = None
            super().connection_lost(exc)

        def _expect_head(self) -> None:
            self._stop_head_timer()
            self._head_started = False
            self._head_timer = self.loop.call_later(settings.request_head_timeout_s, self._head_timed_out)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            # A request being served had its headers in time (its body has its own limit, in the app).
            if self.cycle is None or self.cycle.response_complete:
                # 408 only to a client that began a request: to one that sent nothing (a new or kept-alive
                # connection), an unasked-for response could be read as the answer to its next request.
                if self._head_started:
                    self.transport.write(timed_out)
                self.transport.close()

    return GuardedProtocol


def _head_timeout_response(timeout: float) -> bytes:
    """The raw 408 for a request whose headers did not all arrive in time (no request exists to answer)."""
    body = ErrorResponse(
        error=ErrorDetail(
            message=f"the request headers did not arrive within {timeout:g} s",
            type="invalid_request_error",
            code="request_timeout",
        )
    ).model_dump_json()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return (head + body).encode()


def server_config(
    app: FastAPI, *, host: str = LOCAL_HOST, port: int = SERVE_PORT, log_level: str = "info"
) -> uvicorn.Config:
    """The uvicorn configuration for an app of :func:`~e2rank_integrations.server.create_app`, with its limits."""
    state: ServerState = app.state.e2rank
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=guarded_protocol(state),
        timeout_keep_alive=state.settings.timeout_keep_alive_s,
        timeout_graceful_shutdown=5,
    )


class DrainingServer(uvicorn.Server):
    """uvicorn's server, with a first SIGTERM that drains instead of stopping at once.

    Run an app of :func:`~e2rank_integrations.server.create_app` yourself as ``e2rank serve`` does:
    ``DrainingServer(server_config(app), app.state.e2rank).run()``.
    """

    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self.state = state
        self._drain_deadline: float | None = None
        self._announced = False  # "ready at URL" logged

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._drain_deadline is None:
            self.state.begin_drain()
            self._drain_deadline = time.monotonic() + self.state.settings.drain_timeout_s
            return
        super().handle_exit(sig, frame)  # SIGINT, or a second SIGTERM: uvicorn's own shutdown

    async def on_tick(self, counter: int) -> bool:
        if self.state.status == "ok" and not self._announced:
            self._announced = True
            logger.info("ready at %s", self.url())
        drained = self.state.finished or (self._drain_deadline is not None and time.monotonic() > self._drain_deadline)
        return drained or await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Before uvicorn closes the connections: what is still in flight is answered 503 now, not cut off.
        self.state.abort_in_flight()
        await super().shutdown(sockets)

    def url(self) -> str:
        """Where the server listens (the port the system chose, for ``--port 0``)."""
        host, port = self.config.host, self.config.port
        for server in self.servers:
            for sock in server.sockets:
                port = sock.getsockname()[1]
                break
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    backend: ModelSource,
    settings: ServerSettings,
    *,
    host: str = LOCAL_HOST,
    port: int = SERVE_PORT,
    log_level: str = "info",
) -> int:
    """Serve until SIGINT, or SIGTERM and a drain; returns the exit status (1 when the model failed to load)."""
    app = create_app(backend, settings)
    state: ServerState = app.state.e2rank
    config = server_config(app, host=host, port=port, log_level=log_level)  # it sets up uvicorn's logging
    package_logger = logging.getLogger("e2rank_integrations")
    if not package_logger.handlers:  # our lines look like uvicorn's, at the level asked for
        package_logger.handlers = list(logging.getLogger("uvicorn").handlers)
        package_logger.setLevel(log_level.upper())
        package_logger.propagate = False
    if settings.api_key is None and not is_loopback(host):
        logger.warning(
            "no API key: anyone who can reach %s:%d can use this server. Set --api-key or E2RANK_API_KEY, or listen "
            "on 127.0.0.1 behind a proxy that authenticates.",
            host,
            port,
        )
    DrainingServer(config, state).run()
    return 1 if state.status == "failed" else 0
