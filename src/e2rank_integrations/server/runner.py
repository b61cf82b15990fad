"""Run an app with uvicorn, draining on SIGTERM: in-flight requests finish, new ones get 503, then exit."""

from __future__ import annotations

import copy
import logging
import signal
import time
from types import FrameType

import uvicorn

from .app import create_app
from .settings import ServerSettings
from .state import ModelSource, ServerState

__all__ = ["serve"]

logger = logging.getLogger("e2rank_integrations.server")


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, with a first SIGTERM that drains instead of stopping at once."""

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
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
) -> int:
    """Serve until SIGINT, or SIGTERM and a drain; returns the exit status (1 when the model failed to load)."""
    app = create_app(backend, settings)
    state: ServerState = app.state.e2rank
    # uvicorn's logging, plus this package's loggers ("loading MODEL on DEVICE", "ready at URL"), in its format.
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    level = log_level.upper()
    log_config["loggers"]["e2rank_integrations"] = {"handlers": ["default"], "level": level, "propagate": False}
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, log_config=log_config, timeout_graceful_shutdown=5
    )
    _DrainingServer(config, state).run()
    return 1 if state.status == "failed" else 0
