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


@dataclass
class Running:
    url: str
    app: Any

    @property
    def state(self) -> Any:
        return self.app.state.e2rank


@contextmanager
def running_server(app: Any, *, wait_ready: bool = True, port: int = 0) -> Iterator[Running]:
    """Serve ``app`` on a loopback port (a free one unless given) until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
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
