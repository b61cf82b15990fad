"""E2RankClient and AsyncE2RankClient against real servers: equal to the model, retries, errors, openai mode."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

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
from e2rank_integrations.protocol import EmbeddingRequest, ErrorResponse, InfoResponse, RerankRequest
from e2rank_integrations.server import ServerSettings, create_app
from e2rank_integrations.types import is_async_backend

from .conftest import API_KEY
from .serving import running_server

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
        capped = {"num_prompt_docs": 4, "max_prompt_tokens": 60}  # the prompt documents are cut to fit
        same_ranking(client.rerank(QUERY, DOCS, **capped), tiny_model.rerank(QUERY, DOCS, **capped))
        assert client.rerank(QUERY, []) == []
        assert client.embed_documents([]).shape == (0, tiny_model.dimension)
        assert client.info()["fingerprint"] == tiny_model.fingerprint


def test_client_describes_the_served_model_as_the_model_describes_itself(server, tiny_model, tiny_path):
    served = tiny_model.describe()
    assert (served.model, served.fingerprint, served.dimension) == (
        tiny_model.name_or_path,
        tiny_model.fingerprint,
        tiny_model.dimension,
    )
    assert (served.prompts, served.max_length, served.base_url, served.api) == (
        tiny_model.prompts,
        tiny_model.max_length,
        None,
        None,
    )
    with E2RankClient(server.url) as client:
        info = client.describe()
        assert (info.model, info.fingerprint, info.dimension) == (served.model, served.fingerprint, served.dimension)
        assert (info.prompts, info.max_length, info.base_url, info.api) == (
            served.prompts,
            served.max_length,
            server.url,
            "e2rank",
        )
        assert client.count_tokens(DOCS[:2]) is None  # an e2rank server counts no tokens for its clients
    texts = ["Search Query: héllo 北京", *DOCS[:3]]
    with E2RankClient(server.url, api="openai", tokenizer=tiny_path) as counting:
        assert counting.count_tokens(texts) == tiny_model.count_tokens(texts)
        assert counting.describe().api == "openai"

    async def run():
        async with AsyncE2RankClient(server.url, api="openai", tokenizer=tiny_path) as client:
            return await client.describe(), await client.count_tokens(texts)

    info, counts = asyncio.run(run())
    assert (info.fingerprint, counts) == (served.fingerprint, tiny_model.count_tokens(texts))


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
    assert "pass api_key= to the client, or set $E2RANK_API_KEY" in str(caught.value)
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

    client = E2RankClient(strict_server.url, api_key=API_KEY)  # the default retry budget
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


# ---------------------------------------------------------------------------- API key, retries


def test_api_key_from_the_environment(keyed_server, monkeypatch):
    monkeypatch.setenv("E2RANK_API_KEY", API_KEY)
    with E2RankClient(keyed_server.url) as client:
        assert client.embed_documents(["a"]).shape[0] == 1
    with E2RankClient(keyed_server.url, api_key="wrong") as client, pytest.raises(E2RankAPIError) as caught:
        client.embed_documents(["a"])  # an explicit key wins over the environment
    assert caught.value.status_code == 401
    monkeypatch.delenv("E2RANK_API_KEY")
    with E2RankClient(keyed_server.url) as client, pytest.raises(E2RankAPIError, match=r"set \$E2RANK_API_KEY"):
        client.embed_documents(["a"])


def test_a_loading_server_is_waited_for(tiny_path, tiny_model):
    """503 while the model loads (JSON body, Retry-After): the client retries until it is ready."""
    from e2rank_integrations import E2RankModel

    loaded = threading.Event()

    def load():
        loaded.wait(30)
        return E2RankModel.from_pretrained(tiny_path)

    statuses = []
    with running_server(create_app(load), wait_ready=False) as running:
        client = E2RankClient(running.url)
        client._http.event_hooks["response"].append(lambda r: statuses.append(r.status_code))
        threading.Timer(1.0, loaded.set).start()
        with client:
            got = client.embed_documents(DOCS[:2])
    assert statuses[0] == 503 and statuses[-1] == 200
    np.testing.assert_allclose(got, tiny_model.embed_documents(DOCS[:2]), atol=1e-5)


def test_a_draining_server_is_retried_until_the_budget_is_spent(tiny_model):
    """A draining server answers a JSON 503 with Retry-After: retried (each wait honoured) within the budget, then
    reported with the server's message; ``max_retries=0`` does not retry."""
    sent = []
    with (
        running_server(create_app(tiny_model, ServerSettings(retry_after_s=1))) as running,
        E2RankClient(running.url, retry_budget=2.8) as client,
        E2RankClient(running.url, max_retries=0) as once,
    ):
        client.info(), once.info()  # found while ready
        running.state.begin_drain()
        client._http.event_hooks["response"].append(lambda r: sent.append((r.status_code, r.headers)))
        with pytest.raises(E2RankAPIError) as caught:
            client.embed_documents(["a"])
        once._http.event_hooks["response"].append(lambda r: sent.append((r.status_code, r.headers)))
        with pytest.raises(E2RankAPIError, match="shutting down"):
            once.embed_documents(["a"])
    assert caught.value.status_code == 503 and "shutting down" in caught.value.message
    assert len(sent) >= 3 and all(status == 503 and h["retry-after"] == "1" for status, h in sent)


# ---------------------------------------------------------------------------- one protocol definition


def test_request_bodies_round_trip_through_the_server_models(server):
    """Every body the client sends validates on the server's model, with no field ignored or changed."""
    sent = []
    with E2RankClient(server.url) as client:
        client._http.event_hooks["request"].append(lambda r: sent.append((r.url.path, r.content)))
        client.embed_documents(DOCS[:2])
        client.embed_queries(["q"], instruction="Find")
        client.embed_prompt("content")
        client.rerank(QUERY, DOCS[:4], top_n=2, passes=2, instruction="Rank:", doc_embeddings=np.eye(4, 64))
    models = {"/v1/embeddings": EmbeddingRequest, "/v1/rerank": RerankRequest}
    bodies = [(path, json.loads(content)) for path, content in sent if content]
    assert [path for path, _ in bodies] == ["/v1/embeddings"] * 3 + ["/v1/rerank"]
    for path, body in bodies:
        assert models[path].model_validate(body).model_dump(mode="json", exclude_unset=True) == body


def test_server_answers_parse_in_the_client_models(strict_server):
    info = httpx.get(strict_server.url + "/info", headers={"Authorization": f"Bearer {API_KEY}"})
    assert InfoResponse.model_validate_json(info.content).max_client_batch_size == 8
    for response in (
        httpx.post(strict_server.url + "/v1/embeddings", json={"input": ["a"]}),  # 401
        httpx.post(
            strict_server.url + "/v1/embeddings", json={"input": 3}, headers={"Authorization": f"Bearer {API_KEY}"}
        ),  # 422
    ):
        error = ErrorResponse.model_validate_json(response.content).error
        assert error.type and error.message


def test_async_openai_mode_keeps_blocking_work_off_the_event_loop(tmp_path, tiny_path, tiny_model):
    """SQLite cache and tokenizer calls run in worker threads, never on the loop's thread."""
    from tokenizers import Tokenizer

    from e2rank_integrations import SQLiteCache

    from .engines import engine_server

    threads = []

    class RecordingCache(SQLiteCache):  # a real SQLite cache that notes the thread of each call
        def get_many(self, keys):
            threads.append(("get_many", threading.current_thread()))
            return super().get_many(keys)

        def put_many(self, items):
            threads.append(("put_many", threading.current_thread()))
            super().put_many(items)

        def __len__(self):
            threads.append(("__len__", threading.current_thread()))
            return super().__len__()

    class RecordingTokenizer:  # the real tokenizer, through the one method the client calls
        def __init__(self, inner):
            self.inner = inner

        def encode_batch(self, *args, **kwargs):
            threads.append(("encode_batch", threading.current_thread()))
            return self.inner.encode_batch(*args, **kwargs)

    tokenizer = RecordingTokenizer(Tokenizer.from_file(str(tiny_path / "tokenizer.json")))
    cache = RecordingCache(tmp_path / "cache.sqlite")

    async def run(url):
        async with AsyncE2RankClient(url, api="openai", tokenizer=tokenizer, cache=cache) as client:
            vectors = await client.embed_documents(DOCS[:3])
            ranked = await client.rerank(QUERY, DOCS[:3])
            await client.stats()
            return threading.current_thread(), vectors, ranked

    with engine_server("vllm", tiny_model) as (url, _):
        loop_thread, vectors, ranked = asyncio.run(run(url))
    names = {name for name, _ in threads}
    assert {"encode_batch", "get_many", "put_many", "__len__"} <= names
    assert all(thread is not loop_thread for _, thread in threads)
    np.testing.assert_allclose(vectors, tiny_model.embed_documents(DOCS[:3]), atol=1e-5)
    same_ranking(ranked, tiny_model.rerank(QUERY, DOCS[:3]))
