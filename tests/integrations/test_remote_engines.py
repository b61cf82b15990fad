"""The remote path (``api="openai"``): exact, or a clear refusal, on every OpenAI-compatible engine.

Against our own server and stand-ins of vLLM, TEI and a sentence-transformers engine (tests/integrations/
engines.py, real loopback ports); the real Infinity runs in ``tox -e interop`` (tests/interop/).
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest

pytest.importorskip("fastapi")  # the server extra
pytest.importorskip("httpx")  # the client extra

from e2rank_integrations import (
    AsyncE2RankClient,
    E2RankClient,
    E2RankCompatibilityError,
    E2RankConnectionError,
    E2RankModel,
    PromptFormat,
)

from .engines import engine_server

DOCS = [f"Document {i} is about topic {i % 4}. " + "filler " * (i % 7) for i in range(12)]
QUERY = "Which document is about topic 2?"


def assert_equal_to_model(client, model, docs=DOCS):
    """Documents, queries, a prompt and reranks (one and two passes) agree with the in-process model to 1e-5."""
    np.testing.assert_allclose(client.embed_documents(docs), model.embed_documents(docs), atol=1e-5)
    np.testing.assert_allclose(client.embed_queries([QUERY]), model.embed_queries([QUERY]), atol=1e-5)
    np.testing.assert_allclose(client.embed_prompt("content\n\n"), model.embed_prompt("content\n\n"), atol=1e-5)
    for options in ({}, {"passes": 2, "num_prompt_docs": 4, "top_n": 5}):
        got, want = client.rerank(QUERY, docs, **options), model.rerank(QUERY, docs, **options)
        assert [r.index for r in got] == [r.index for r in want]
        np.testing.assert_allclose([r.score for r in got], [r.score for r in want], atol=1e-5)


@pytest.fixture(scope="module")
def tokenizer(tiny_path):
    """The checkpoint's tokenizer, loaded once (clients also take its path: the our-server test passes that)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tiny_path / "tokenizer.json"))


@pytest.fixture(scope="module", params=["vllm", "tei"])
def exact_engine(request, tiny_model):
    with engine_server(request.param, tiny_model) as served:
        yield served


@pytest.fixture(scope="module")
def st_engine(tiny_model):
    with engine_server("st", tiny_model) as served:
        yield served


# ---------------------------------------------------------------------------- our own server


@pytest.mark.parametrize("with_tokenizer", [False, True])
@pytest.mark.parametrize("suffix", ["", "/v1"])
def test_openai_mode_on_our_server_equals_the_model(server, tiny_model, tiny_path, with_tokenizer, suffix):
    """Recognised from /info and spoken to in its own API: exact with or without a tokenizer (it was 0.06 off)."""
    tokenizer = tiny_path if with_tokenizer else None
    with E2RankClient(server.url + suffix, api="openai", tokenizer=tokenizer) as client:
        assert_equal_to_model(client, tiny_model)
        assert client.info()["fingerprint"] == tiny_model.fingerprint


def test_openai_mode_with_prompts_of_its_own_sends_raw_texts(server, tiny_path):
    """Prompts other than the server's: the client formats, the server embeds exactly what it is sent."""
    prompts = PromptFormat(query_instruction="Find the passage", rerank_instruction="Rank these:")
    model = E2RankModel.from_pretrained(tiny_path, prompts=prompts)
    with E2RankClient(server.url, api="openai", prompts=prompts) as client:
        assert_equal_to_model(client, model)
        assert client.stats()["texts_embedded"] > 0  # the client's own counters: it formatted and cached


def test_openai_mode_counters_add_up_across_threads(server):
    """A sync client shared by threads (LangChain runs tools in threads) counts every text it embeds, exactly."""
    prompts = PromptFormat(query_instruction="Find the passage")  # not the server's: the client's own counters

    def work(client, thread):
        for i in range(20):
            client.embed_documents([f"thread {thread} text {i}", f"thread {thread} text {i} again"])

    with E2RankClient(server.url, api="openai", prompts=prompts) as client:
        for _ in range(2):  # new texts, then the same texts again: all from the cache
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(work, [client] * 8, range(8)))
        stats = client.stats()
    assert (stats["texts_embedded"], stats["cache_hits"], stats["cache_entries"]) == (320, 320, 320)


def test_async_openai_mode_on_our_server_equals_the_model(server, tiny_model, tokenizer):
    async def run():
        async with AsyncE2RankClient(server.url, api="openai", tokenizer=tokenizer) as client:
            return await client.embed_documents(DOCS), await client.rerank(QUERY, DOCS)

    docs, ranked = asyncio.run(run())
    np.testing.assert_allclose(docs, tiny_model.embed_documents(DOCS), atol=1e-5)
    np.testing.assert_allclose([r.score for r in ranked], [r.score for r in tiny_model.rerank(QUERY, DOCS)], atol=1e-5)


# ---------------------------------------------------------------------------- engines that embed as sent


@pytest.mark.parametrize("with_tokenizer", [True, False])
def test_exact_engines_equal_the_model(exact_engine, tiny_model, tokenizer, with_tokenizer):
    """vLLM and TEI: token ids when a tokenizer is given (checked on the engine's side), else text that the probe
    found unchanged; both exact."""
    url, engine = exact_engine
    engine.inputs.clear()
    with E2RankClient(url, api="openai", model="e2rank", tokenizer=tokenizer if with_tokenizer else None) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an exact engine: no warning of any kind
            assert_equal_to_model(client, tiny_model)
        assert {type(item) for item in engine.inputs} == ({list} if with_tokenizer else {str})


def test_a_prompt_token_cap_needs_the_tokenizer_and_then_equals_the_model(exact_engine, tiny_model, tokenizer):
    url, engine = exact_engine
    capped = {"num_prompt_docs": 4, "max_prompt_tokens": 60}
    with E2RankClient(url, api="openai", model="e2rank", tokenizer=tokenizer) as client:
        got, want = client.rerank(QUERY, DOCS, **capped), tiny_model.rerank(QUERY, DOCS, **capped)
    assert [r.index for r in got] == [r.index for r in want]
    np.testing.assert_allclose([r.score for r in got], [r.score for r in want], atol=1e-5)
    # Documents holding special tokens' text, cut to fit: the client keeps them in its cut as the model does.
    special = [f"Topic {i} <|im_end|> passage <|endoftext|> " * 6 for i in range(4)]
    options = {"num_prompt_docs": 4, "max_prompt_tokens": 90, "doc_embeddings": tiny_model.embed_documents(special)}
    with E2RankClient(url, api="openai", model="e2rank", tokenizer=tokenizer) as client:
        got = client.rerank(QUERY, special, **options)
    prompt = tiny_model.listwise_prompt(QUERY, special, num_prompt_docs=4, max_prompt_tokens=90)
    assert engine.inputs[-1] == tokenizer.encode(prompt, add_special_tokens=False).ids  # the one text embedded
    assert [r.index for r in got] == [r.index for r in tiny_model.rerank(QUERY, special, **options)]
    needs = "max_prompt_tokens on an OpenAI-compatible server needs the model's tokenizer"
    with E2RankClient(url, api="openai", model="e2rank") as client, pytest.raises(ValueError, match=needs):
        client.rerank(QUERY, DOCS, **capped)


def test_rerank_after_indexing_embeds_only_the_prompt(exact_engine, tokenizer):
    url, _ = exact_engine
    with E2RankClient(url, api="openai", model="e2rank", tokenizer=tokenizer) as client:
        client.embed_documents(DOCS)
        before = client.stats()
        client.rerank(QUERY, DOCS)
        after = client.stats()
    assert after["texts_embedded"] - before["texts_embedded"] == 1
    assert after["cache_hits"] - before["cache_hits"] == len(DOCS)


def test_api_e2rank_against_another_engine_says_what_to_pass(exact_engine):
    url, _ = exact_engine
    with E2RankClient(url) as client, pytest.raises(E2RankCompatibilityError, match="api='openai'"):
        client.embed_documents(["a"])


# ---------------------------------------------------------------------------- an engine that strips


@pytest.mark.parametrize("with_tokenizer", [False, True])
def test_stripping_engine_refuses_rerank(st_engine, tiny_model, tokenizer, with_tokenizer):
    """Refused with what the engine does and what would work; a tokenizer-given client falls back from the 422
    to text first, and behaves the same."""
    url, _ = st_engine
    with E2RankClient(url, api="openai", tokenizer=tokenizer if with_tokenizer else None) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            np.testing.assert_allclose(client.embed_documents(DOCS), tiny_model.embed_documents(DOCS), atol=1e-5)
            np.testing.assert_allclose(client.embed_queries([QUERY]), tiny_model.embed_queries([QUERY]), atol=1e-5)
        with pytest.raises(E2RankCompatibilityError) as refused:
            client.rerank(QUERY, DOCS)
        message = str(refused.value)
        assert "strips trailing whitespace" in message and "e2rank serve" in message
        assert "allow_inexact=True" in message and "vLLM" in message
        assert ("refused token ids: HTTP 422" in message) is with_tokenizer
        with pytest.raises(E2RankCompatibilityError, match="strips trailing whitespace"):
            client.embed_prompt("content")


@pytest.mark.parametrize("with_tokenizer", [False, True])
def test_allow_inexact_warns_once_at_the_callers_line(st_engine, tiny_model, tokenizer, with_tokenizer):
    url, _ = st_engine
    given = tokenizer if with_tokenizer else None
    with E2RankClient(url, api="openai", tokenizer=given, allow_inexact=True) as client, recorded() as caught:
        line = _line() + 1
        ranked = client.rerank(QUERY, DOCS)
        client.rerank(QUERY, DOCS[:5])  # once per client
    assert len(caught) == 1
    assert (caught[0].filename, caught[0].lineno) == (__file__, line)
    assert "approximate" in str(caught[0].message)
    scores = np.asarray([r.score for r in sorted(ranked, key=lambda r: r.index)])
    exact = np.asarray([r.score for r in sorted(tiny_model.rerank(QUERY, DOCS), key=lambda r: r.index)])
    assert np.abs(scores - exact).max() > 1e-3  # inexact indeed: the prompt lost its trailing "\n\n"


def test_documents_that_lose_whitespace_warn_once(st_engine, tiny_model):
    url, _ = st_engine
    docs = ["  Indented passage.", "\nAfter a newline.", "Plain passage."]
    with E2RankClient(url, api="openai") as client, recorded() as caught:
        line = _line() + 1
        vectors = client.embed_documents(docs)
        client.embed_documents(["  another one"])
    assert len(caught) == 1 and (caught[0].filename, caught[0].lineno) == (__file__, line)
    assert "strips leading whitespace: 2 of 3 document texts" in str(caught[0].message)
    np.testing.assert_allclose(vectors[2], tiny_model.embed_documents(docs[2:])[0], atol=1e-5)  # untouched: exact
    assert np.abs(vectors[0] - tiny_model.embed_documents(docs[:1])[0]).max() > 1e-3


def test_async_client_refuses_and_warns_at_the_callers_line(st_engine):
    url, _ = st_engine

    async def run():
        async with AsyncE2RankClient(url, api="openai") as strict:
            with pytest.raises(E2RankCompatibilityError, match="strips trailing whitespace"):
                await strict.rerank(QUERY, DOCS)
        async with AsyncE2RankClient(url, api="openai", allow_inexact=True) as lenient:
            with recorded() as caught:
                line = _line() + 1
                await lenient.rerank(QUERY, DOCS)
        return caught, line

    caught, line = asyncio.run(run())
    assert len(caught) == 1 and (caught[0].filename, caught[0].lineno) == (__file__, line)


# ---------------------------------------------------------------------------- once per client


def test_the_server_is_checked_once_across_threads(tiny_model, tokenizer):
    start = threading.Barrier(16)
    with (
        engine_server("vllm", tiny_model) as (url, engine),
        E2RankClient(url, api="openai", tokenizer=tokenizer, cache=False) as client,
        ThreadPoolExecutor(16) as pool,
    ):

        def first_call(i):
            start.wait()
            return client.embed_documents([DOCS[i % len(DOCS)]])

        results = list(pool.map(first_call, range(16)))
        assert engine.requests["GET /info"] == 1
        assert engine.requests["POST /v1/embeddings"] == 16 + 1  # one probe
    for i, got in enumerate(results):
        np.testing.assert_allclose(got, tiny_model.embed_documents([DOCS[i % len(DOCS)]]), atol=1e-5)


def test_the_server_is_checked_once_across_tasks(tiny_model):
    async def run(url):
        async with AsyncE2RankClient(url, api="openai", cache=False) as client:
            return await asyncio.gather(*(client.embed_documents([d]) for d in DOCS))

    with engine_server("tei", tiny_model) as (url, engine):
        results = asyncio.run(run(url))
        assert engine.requests["GET /info"] == 1
        assert engine.requests["POST /v1/embeddings"] == len(DOCS) + 1
    np.testing.assert_allclose(np.concatenate(results), tiny_model.embed_documents(DOCS), atol=1e-5)


def test_a_failed_check_is_tried_again(tiny_model):
    """The first check meets no server: an error, nothing remembered; the next call, once a server is up, works."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with E2RankClient(f"http://127.0.0.1:{port}/v1", api="openai", retry_budget=0) as client:
        with pytest.raises(E2RankConnectionError, match="cannot reach"):
            client.embed_documents(DOCS[:1])
        with engine_server("tei", tiny_model, port=port) as (_, engine):
            got = client.embed_documents(DOCS[:1])
            assert engine.requests["GET /info"] == 1
    np.testing.assert_allclose(got, tiny_model.embed_documents(DOCS[:1]), atol=1e-5)


def _line():
    """The line this is called from."""
    return inspect.currentframe().f_back.f_lineno


@contextmanager
def recorded():
    """The RuntimeWarnings raised in the block (others, such as a ResourceWarning of an earlier test, left out)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runtime: list[warnings.WarningMessage] = []
        yield runtime
    runtime.extend(w for w in caught if issubclass(w.category, RuntimeWarning))
