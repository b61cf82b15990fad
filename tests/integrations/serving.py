"""Run a real server (uvicorn, a real loopback port) in a background thread, for tests and the README examples."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string


@dataclass
class Running:
    url: str
    app: Any

    @property
    def state(self) -> Any:
        return self.app.state.e2rank


@contextmanager
def running_server(
    app: Any, *, wait_ready: bool = True, http: str = "auto", draining: bool = False
) -> Iterator[Running]:
    """Serve ``app`` on a free loopback port until the block ends, configured as ``e2rank serve`` configures it.

    ``http``: the uvicorn protocol under the server's connection limits (``h11`` or ``httptools``).
    ``draining``: stop as ``e2rank serve`` stops (what is still in flight gets 503), and exit on a failed load.
    """
    from e2rank_integrations.server.runner import DrainingServer, guarded_protocol, server_config

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = server_config(app, log_level="warning")
    if http != "auto":
        config.http = guarded_protocol(app.state.e2rank, base=import_from_string(HTTP_PROTOCOLS[http]))
    server = DrainingServer(config, app.state.e2rank) if draining else uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: server.started, "the server did not start")
        if wait_ready:
            wait_until(lambda: httpx.get(f"{url}/health").status_code == 200, "the model did not get ready")
        yield Running(url, app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def wait_until(condition: Any, message: str, limit: float = 120.0) -> None:
    """Poll ``condition`` until it holds; fail (instead of hanging) if it never does."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.02)
