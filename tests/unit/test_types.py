import asyncio
import threading

import numpy as np
import pytest

from e2rank_integrations.types import backend_name, call_async, check_sync_backend


class Sync:
    name_or_path = "some/model"

    def __init__(self):
        self.threads = []

    def embed_queries(self, texts, *, instruction=None):
        self.threads.append(threading.current_thread())
        return np.ones((len(texts), 2), dtype=np.float32)

    def embed_documents(self, texts): ...
    def embed_prompt(self, text): ...
    def rerank(self, query, documents, **kwargs): ...
    def stats(self): ...


class Async:
    async def embed_queries(self, texts, *, instruction=None):
        return np.full((len(texts), 2), 2.0 if instruction else 3.0, dtype=np.float32)

    async def embed_documents(self, texts): ...
    async def embed_prompt(self, text): ...
    async def rerank(self, query, documents, **kwargs): ...
    async def stats(self): ...


def test_check_sync_backend():
    backend = Sync()
    assert check_sync_backend(backend, "aembed") is backend
    with pytest.raises(TypeError, match="Async is an async backend and cannot serve a blocking call: use aembed"):
        check_sync_backend(Async(), "aembed")
    with pytest.raises(TypeError, match="str has no embed_queries"):
        check_sync_backend("nope", "aembed")


def test_call_async_awaits_async_backends_and_threads_sync_ones():
    sync = Sync()
    out = asyncio.run(call_async(sync, "embed_queries", ["a", "b"], instruction="x"))
    assert out.shape == (2, 2)
    assert sync.threads and sync.threads[0] is not threading.main_thread()  # the event loop was not blocked
    assert asyncio.run(call_async(Async(), "embed_queries", ["a"], instruction="x"))[0, 0] == 2.0
    with pytest.raises(TypeError, match="int has no embed_queries"):
        asyncio.run(call_async(3, "embed_queries", ["a"]))


def test_backend_name():
    assert backend_name(Sync()) == "some/model"
    assert backend_name(Async()) == "Async"
