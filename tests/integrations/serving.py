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

from helpers import free_port, stop


@dataclass
class Running:
    url: str
    app: Any

    @property
    def state(self) -> Any:
        return self.app.state.e2rank


@contextmanager
def running_server(
    app: Any, *, wait_ready: bool = True, http: str = "auto", draining: bool = False, port: int = 0
) -> Iterator[Running]:
    """Serve ``app`` on a loopback port (a free one unless given) until the block ends, configured as ``e2rank serve``.

    ``http``: the uvicorn protocol under the server's connection limits (``h11`` or ``httptools``).
    ``draining``: stop as ``e2rank serve`` stops (what is still in flight gets 503), and exit on a failed load.
    """
    from e2rank_integrations.server.runner import DrainingServer, guarded_protocol, server_config

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    if getattr(app.state, "e2rank", None) is None:  # another engine's app (a stand-in for vLLM, TEI...)
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
    else:
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


def wait_until(condition: Any, message: str, limit: float = 300.0) -> None:
    """Poll ``condition`` until it holds; fail (instead of hanging) if it never does.

    ``limit`` only turns a hang into a failure with this message (before pytest's 600 s timeout): it is no speed
    bound, so it is generous (a process loading torch on a busy 2-core machine can take minutes to answer).
    """
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.02)


@contextmanager
def chroma_server(path: Any) -> Iterator[tuple[str, int]]:
    """Chroma's own server (`chroma run`, the client-server mode production uses) on a free loopback port."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    chroma = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    port = free_port()
    process = subprocess.Popen(
        [chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"chroma run exited with status {process.returncode}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, "the Chroma server did not start")
        yield "127.0.0.1", port
    finally:
        stop(process)
