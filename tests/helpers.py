"""Test helpers shared by several test modules (importable because tests/conftest.py puts tests/ on sys.path).

Nothing here imports torch or a framework: the ``core`` tox env, which has neither, uses it too.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import threading
from typing import Any

import numpy as np

from e2rank_integrations.types import BackendInfo


def run_python(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` (dedented) in a fresh interpreter of this environment; capture its output as text."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )


def free_port() -> int:
    """A loopback port that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM ``process`` and wait for it; SIGKILL it if it has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class AsyncModel:
    """An AsyncBackend over a real E2RankModel: the shape of AsyncE2RankClient, for the adapters' async paths.

    Each call runs the model in a worker thread, as a remote call would leave the event loop free.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    async def embed_queries(self, texts, *, instruction=None):
        return await asyncio.to_thread(self.model.embed_queries, texts, instruction=instruction)

    async def embed_documents(self, texts):
        return await asyncio.to_thread(self.model.embed_documents, texts)

    async def embed_prompt(self, text):
        return await asyncio.to_thread(self.model.embed_prompt, text)

    async def rerank(self, query, documents, **options):
        return await asyncio.to_thread(self.model.rerank, query, documents, **options)

    async def stats(self):
        return self.model.stats()

    async def describe(self):
        return self.model.describe()

    async def count_tokens(self, texts):
        return self.model.count_tokens(texts)


class StubBackend:
    """A sync Backend without a model: ``embed_queries`` records its thread and returns ones; the rest do nothing."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def embed_queries(self, texts, *, instruction=None):
        self.threads.append(threading.current_thread())
        return np.ones((len(texts), 2), dtype=np.float32)

    def embed_documents(self, texts): ...
    def embed_prompt(self, text): ...
    def rerank(self, query, documents, **options): ...
    def stats(self): ...
    def count_tokens(self, texts): ...

    def describe(self):
        return BackendInfo(model="some/model")


class StubAsyncBackend:
    """An AsyncBackend without a model: ``embed_queries`` returns 2.0 with an instruction, 3.0 without."""

    async def embed_queries(self, texts, *, instruction=None):
        return np.full((len(texts), 2), 2.0 if instruction else 3.0, dtype=np.float32)

    async def embed_documents(self, texts): ...
    async def embed_prompt(self, text): ...
    async def rerank(self, query, documents, **options): ...
    async def stats(self): ...
    async def describe(self): ...
    async def count_tokens(self, texts): ...
