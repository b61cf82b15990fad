import ast
import asyncio
import threading
from pathlib import Path

import pytest

from e2rank_integrations.errors import E2RankTypeError
from e2rank_integrations.types import (
    AsyncBackend,
    Backend,
    BackendInfo,
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


class FiveMethodBackend:
    """A user's backend written for the old contract: the five embedding and rerank methods, nothing more."""

    def embed_queries(self, texts, *, instruction=None): ...
    def embed_documents(self, texts): ...
    def embed_prompt(self, text): ...
    def rerank(self, query, documents, **options): ...
    def stats(self): ...


def test_check_backend_names_the_missing_describe_and_count_tokens():
    with pytest.raises(E2RankTypeError, match=r"FiveMethodBackend has no describe, count_tokens$"):
        check_backend(FiveMethodBackend())
    assert not isinstance(FiveMethodBackend(), Backend)


def test_backend_info_defaults_say_nothing_known():
    info = BackendInfo(model="m")
    assert (info.fingerprint, info.dimension, info.prompts, info.max_length, info.base_url, info.api) == (None,) * 6
    with pytest.raises(AttributeError):
        info.model = "other"  # frozen: a description, not a setting


def test_no_code_probes_a_backend_for_what_the_protocol_does_not_declare():
    """getattr/hasattr on a backend outside types.py (whose checks enforce the protocol) would hide the contract."""
    src = Path(__file__).parents[2] / "src" / "e2rank_integrations"
    probes = []
    for path in src.rglob("*.py"):
        if path.name == "types.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr") and node.args:
                probed = ast.unparse(node.args[0])
                if "backend" in probed.lower() or "source" in probed.lower():
                    probes.append(f"{path.relative_to(src)}:{node.lineno}: {ast.unparse(node)}")
    assert not probes, probes
