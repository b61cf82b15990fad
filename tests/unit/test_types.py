import asyncio
import threading

import pytest

from e2rank_integrations.types import (
    AsyncBackend,
    Backend,
    backend_name,
    call_async,
    check_backend,
    check_sync_backend,
    is_async_backend,
)
from helpers import StubAsyncBackend, StubBackend


def test_backend_protocols():
    assert isinstance(StubBackend(), Backend)
    assert isinstance(StubAsyncBackend(), AsyncBackend)
    assert not is_async_backend(StubBackend())
    assert is_async_backend(StubAsyncBackend())
    backend, async_backend = StubBackend(), StubAsyncBackend()
    assert check_backend(backend) is backend and check_backend(async_backend) is async_backend
    with pytest.raises(TypeError, match="str has no embed_queries, embed_documents, embed_prompt, rerank"):
        check_backend("not a backend")


def test_check_sync_backend():
    backend = StubBackend()
    assert check_sync_backend(backend, "aembed") is backend
    with pytest.raises(
        TypeError, match="StubAsyncBackend is an async backend and cannot serve a blocking call: use aembed"
    ):
        check_sync_backend(StubAsyncBackend(), "aembed")
    with pytest.raises(TypeError, match="str has no embed_queries"):
        check_sync_backend("nope", "aembed")


def test_call_async_awaits_async_backends_and_threads_sync_ones():
    sync = StubBackend()
    out = asyncio.run(call_async(sync, "embed_queries", ["a", "b"], instruction="x"))
    assert out.shape == (2, 2)
    assert sync.threads and sync.threads[0] is not threading.main_thread()  # the event loop was not blocked
    assert asyncio.run(call_async(StubAsyncBackend(), "embed_queries", ["a"], instruction="x"))[0, 0] == 2.0
    with pytest.raises(TypeError, match="int has no embed_queries"):
        asyncio.run(call_async(3, "embed_queries", ["a"]))


def test_backend_name():
    assert backend_name(StubBackend()) == "some/model"
    assert backend_name(StubAsyncBackend()) == "StubAsyncBackend"
