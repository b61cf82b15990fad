"""E2RankClient and AsyncE2RankClient against real servers: equal to the model, retries, errors, openai mode."""

from __future__ import annotations

import asyncio
import json
import socket
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest

pytest.importorskip("fastapi")  # the server extra
pytest.importorskip("httpx")  # the client extra

import httpx

from e2rank_integrations import (
    AsyncBackend,
    AsyncE2RankClient,
    Backend,
    E2RankAPIError,
    E2RankClient,
    E2RankConnectionError,
    E2RankError,
    E2RankTimeoutError,
)
from e2rank_integrations.types import is_async_backend

from .conftest import API_KEY

DOCS = [f"Document {i} is about topic {i % 4}. " + "filler " * (i % 7) for i in range(20)]
QUERY = "Which document is about topic 2?"


def same_ranking(got, expected):
    assert [r.index for r in got] == [r.index for r in expected]
    np.testing.assert_allclose([r.score for r in got], [r.score for r in expected], atol=1e-5)


def test_client_equals_the_model(server, tiny_model):
    with E2RankClient(server.url) as client:
        assert isinstance(client, Backend) and not is_async_backend(client)
        np.testing.assert_allclose(client.embed_documents(DOCS), tiny_model.embed_documents(DOCS), atol=1e-5)
        np.testing.assert_allclose(client.embed_queries(DOCS[:3]), tiny_model.embed_queries(DOCS[:3]), atol=1e-5)
        np.testing.assert_allclose(
            client.embed_queries(["q"], instruction="Find"),
            tiny_model.embed_queries(["q"], instruction="Find"),
            atol=1e-5,
        )
        np.testing.assert_allclose(client.embed_prompt("content"), tiny_model.embed_prompt("content"), atol=1e-5)
        same_ranking(client.rerank(QUERY, DOCS), tiny_model.rerank(QUERY, DOCS))
        same_ranking(
            client.rerank(QUERY, DOCS, top_n=5, num_prompt_docs=3, passes=2, instruction="Rank:"),
            tiny_model.rerank(QUERY, DOCS, top_n=5, num_prompt_docs=3, passes=2, instruction="Rank:"),
        )
        assert client.rerank(QUERY, []) == []
        assert client.embed_documents([]).shape == (0, tiny_model.dimension)
        assert client.info()["fingerprint"] == tiny_model.fingerprint


def test_async_client_equals_the_model(server, tiny_model):
    async def run():
        async with AsyncE2RankClient(server.url) as client:
            assert isinstance(client, AsyncBackend) and is_async_backend(client)
            docs = await client.embed_documents(DOCS)
            queries = await client.embed_queries(DOCS[:2])
            prompt = await client.embed_prompt("content")
            ranked = await client.rerank(QUERY, DOCS, top_n=4)
            stats = await client.stats()
            return docs, queries, prompt, ranked, stats

    docs, queries, prompt, ranked, stats = asyncio.run(run())
    np.testing.assert_allclose(docs, tiny_model.embed_documents(DOCS), atol=1e-5)
    np.testing.assert_allclose(queries, tiny_model.embed_queries(DOCS[:2]), atol=1e-5)
    np.testing.assert_allclose(prompt, tiny_model.embed_prompt("content"), atol=1e-5)
    same_ranking(ranked, tiny_model.rerank(QUERY, DOCS, top_n=4))
    assert {"texts_embedded", "cache_hits"} <= set(stats)


def test_async_client_serves_one_event_loop_after_another(server, tiny_model):
    """asyncio connections cannot change loops: each loop the client meets gets its own (frameworks make loops)."""
    client = AsyncE2RankClient(server.url)
    expected = tiny_model.embed_documents(DOCS[:3])
    for _ in range(2):  # two asyncio.run calls: the first loop is closed when the second starts
        np.testing.assert_allclose(asyncio.run(client.embed_documents(DOCS[:3])), expected, atol=1e-5)

    async def nested():
        # Another loop in a worker thread while this one runs, as LlamaIndex's asyncio_run does.
        inner = await asyncio.to_thread(asyncio.run, client.embed_prompt("content"))
        outer = await client.embed_prompt("content")
        await client.aclose()
        return inner, outer

    for vector in asyncio.run(nested()):
        np.testing.assert_allclose(vector, tiny_model.embed_prompt("content"), atol=1e-5)


def test_rerank_after_indexing_embeds_only_the_prompt(server, tiny_model):
    docs = [d + " (indexed through the client)" for d in DOCS]
    with E2RankClient(server.url) as client:
        client.embed_documents(docs)
        before = client.stats()
        client.rerank(QUERY, docs)
        after = client.stats()
        assert after["texts_embedded"] - before["texts_embedded"] == 1
        assert after["cache_hits"] - before["cache_hits"] == len(docs)
        stored = tiny_model.embed_documents(docs)
        fresh = [d + " (stored in a vector store)" for d in docs]
        before = client.stats()
        same_ranking(
            client.rerank("other", fresh, doc_embeddings=stored),
            tiny_model.rerank("other", fresh, doc_embeddings=stored),
        )
        assert client.stats()["texts_embedded"] - before["texts_embedded"] == 1


def test_large_batches_are_split_to_the_server_limit(strict_server, tiny_path):
    from e2rank_integrations import E2RankModel

    model = E2RankModel.from_pretrained(tiny_path, max_length=64)
    seen = []

    def count(request):
        seen.append(json.loads(request.content)["input"] if request.url.path == "/v1/embeddings" else None)

    with E2RankClient(strict_server.url, api_key=API_KEY) as client:
        client._http.event_hooks["request"].append(count)
        np.testing.assert_allclose(client.embed_documents(DOCS), model.embed_documents(DOCS), atol=1e-5)
        with pytest.raises(ValueError, match="max_client_batch_size=8"):
            client.rerank(QUERY, DOCS)
    sizes = [len(batch) for batch in seen if batch is not None]
    assert sizes == [8, 8, 4]


def test_bad_arguments_fail_before_any_request():
    client = E2RankClient("http://127.0.0.1:9")  # nothing listens there: a request would fail differently
    with pytest.raises(TypeError, match="list of strings"):
        client.embed_documents("not a list")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        client.embed_queries(["a", 3])
    with pytest.raises(ValueError, match="query"):
        client.rerank("  ", ["a"])
    with pytest.raises(ValueError, match="top_n"):
        client.rerank("q", ["a"], top_n=0)
    with pytest.raises(ValueError, match="doc_embeddings"):
        client.rerank("q", ["a", "b"], doc_embeddings=np.ones((3, 4)))
    with pytest.raises(ValueError, match="base_url"):
        E2RankClient("localhost:8000")
    with pytest.raises(ValueError, match="api"):
        E2RankClient("http://x", api="cohere")
    with pytest.raises(ValueError, match="openai"):
        E2RankClient("http://x", tokenizer="tok.json")
    client.close()


def test_api_errors_are_typed(strict_server, server):
    with E2RankClient(strict_server.url, api_key="wrong") as client, pytest.raises(E2RankAPIError) as caught:
        client.embed_documents(["a"])
    assert caught.value.status_code == 401 and caught.value.type == "authentication_error"
    assert "invalid API key" in caught.value.message and caught.value.request_id
    with E2RankClient(server.url) as client, pytest.raises(E2RankAPIError, match="dimension") as bad:
        client.rerank("q", ["a"], doc_embeddings=np.ones((1, 3)))
    assert bad.value.status_code == 400 and isinstance(bad.value, E2RankError)


def test_connection_and_timeout_errors():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client = E2RankClient(f"http://127.0.0.1:{port}", max_retries=2, backoff=0.01)
    with pytest.raises(E2RankConnectionError, match="cannot reach"):
        client.embed_documents(["a"])
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        slow = E2RankClient(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.2)
        with pytest.raises(E2RankTimeoutError, match=r"within 0\.2 s"):
            slow.embed_documents(["a"])
    assert issubclass(E2RankTimeoutError, E2RankConnectionError)


def test_retrying_client_gets_every_answer_under_overload(strict_server, tiny_path):
    from e2rank_integrations import E2RankModel

    model = E2RankModel.from_pretrained(tiny_path, max_length=64)
    texts = [[f"client {i} text {j} " * 10 for j in range(8)] for i in range(48)]
    refused = []

    def note(response):
        if response.status_code == 429:
            refused.append(response.headers["retry-after"])

    client = E2RankClient(strict_server.url, api_key=API_KEY, max_retries=30, backoff=0.05)
    client._http.event_hooks["response"].append(note)
    with client, ThreadPoolExecutor(24) as pool:
        results = list(pool.map(client.embed_documents, texts))
    assert refused, "24 clients against max_concurrent_requests=2 were never refused"
    for got, batch in zip(results, texts):
        np.testing.assert_allclose(got, model.embed_documents(batch), atol=1e-5)


def test_concurrent_mixed_clients_get_their_own_rows(server, tiny_model):
    """64 concurrent clients, embeds and reranks mixed: every answer equals its single-request result."""
    jobs = []
    for i in range(64):
        docs = [f"client {i} passage {j} about {(i * j) % 5}" + " more" * (i % 9) for j in range(3 + i % 6)]
        jobs.append(("rerank" if i % 2 else "embed", f"query {i}", docs))
    expected = [
        tiny_model.rerank(q, docs) if kind == "rerank" else tiny_model.embed_documents(docs) for kind, q, docs in jobs
    ]

    async def run():
        async with AsyncE2RankClient(server.url, timeout=120) as client:

            async def one(kind, query, docs):
                return await (client.rerank(query, docs) if kind == "rerank" else client.embed_documents(docs))

            return await asyncio.gather(*(one(*job) for job in jobs))

    for (kind, _, _), got, want in zip(jobs, asyncio.run(run()), expected):
        if kind == "rerank":
            same_ranking(got, want)
        else:
            np.testing.assert_allclose(got, want, atol=1e-5)


# ---------------------------------------------------------------------------- openai mode


def test_openai_mode_with_token_ids_equals_the_server_rerank(server, tiny_path):
    with E2RankClient(server.url) as native, E2RankClient(server.url, api="openai", tokenizer=tiny_path) as remote:
        same_ranking(remote.rerank(QUERY, DOCS), native.rerank(QUERY, DOCS))
        same_ranking(
            remote.rerank(QUERY, DOCS, passes=2, num_prompt_docs=4),
            native.rerank(QUERY, DOCS, passes=2, num_prompt_docs=4),
        )
        np.testing.assert_allclose(remote.embed_queries(["q"]), native.embed_queries(["q"]), atol=1e-5)
        np.testing.assert_allclose(remote.embed_prompt("c\n\n"), native.embed_prompt("c\n\n"), atol=1e-5)


def test_openai_mode_with_text_on_an_exact_server(raw_server, server):
    """vLLM or TEI embed texts as sent: the client formats them and scores on its side, and caches documents."""
    with (
        E2RankClient(server.url) as native,
        E2RankClient(raw_server.url + "/v1", api="openai", model="e2rank") as remote,
    ):
        np.testing.assert_allclose(remote.embed_documents(DOCS), native.embed_documents(DOCS), atol=1e-5)
        before = remote.stats()
        with _no_warning():
            same_ranking(remote.rerank(QUERY, DOCS, top_n=7), native.rerank(QUERY, DOCS, top_n=7))
        after = remote.stats()
        assert after["texts_embedded"] - before["texts_embedded"] == 1  # the documents came from its cache
        assert after["cache_hits"] - before["cache_hits"] == len(DOCS)


def test_openai_mode_warns_when_the_server_strips_whitespace(raw_server, server):
    """A server that strips inputs (as sentence-transformers servers do) changes the prompt: the client says so."""

    def stripping(request):
        body = json.loads(request.content)
        body["input"] = [text.strip() for text in body["input"]]
        return httpx.post(raw_server.url + request.url.path, json=body)

    remote = E2RankClient(raw_server.url, api="openai", transport=httpx.MockTransport(stripping))
    with pytest.warns(RuntimeWarning, match="strips whitespace"):
        remote.rerank(QUERY, DOCS)
    with _no_warning():  # once per client
        remote.rerank(QUERY, DOCS[:5])


@contextmanager
def _no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield
