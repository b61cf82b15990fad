"""The server over real HTTP: protocols, equality with the in-process model, limits and errors, lifecycle."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")  # the server extra
pytest.importorskip("httpx")  # the client extra

import httpx
from tokenizers import Tokenizer

from e2rank_integrations import E2RankModel
from e2rank_integrations.protocol import decode_vector
from e2rank_integrations.server import ServerSettings, create_app

from .conftest import API_KEY
from .serving import running_server, wait_until

DOCS = ["Paris is the capital of France.", "Gravity pulls masses together.", "", "北京是中国的首都", "word " * 40]
QUERY = "What is the capital of France?"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def post(url, path, body, **kwargs):
    return httpx.post(url + path, json=body, timeout=60, **kwargs)


def assert_same_ranking(payload, expected):
    assert [r["index"] for r in payload["results"]] == [r.index for r in expected]
    scores = [r["relevance_score"] for r in payload["results"]]
    np.testing.assert_allclose(scores, [r.score for r in expected], atol=1e-5)


def vectors_of(response):
    data = sorted(response.json()["data"], key=lambda d: d["index"])
    rows = [decode_vector(d["embedding"]) if isinstance(d["embedding"], str) else d["embedding"] for d in data]
    return np.asarray(rows, dtype=np.float32)


# ---------------------------------------------------------------------------- equal to the model


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_equal_the_model(server, tiny_model, encoding):
    cases = [
        ({}, tiny_model.embed_documents(DOCS)),
        ({"input_type": "document"}, tiny_model.embed_documents(DOCS)),
        ({"input_type": "query"}, tiny_model.embed_queries(DOCS)),
        ({"input_type": "query", "instruction": "Find"}, tiny_model.embed_queries(DOCS, instruction="Find")),
        ({"input_type": "raw", "input": DOCS[:2]}, tiny_model.embed_formatted(DOCS[:2])),
        ({"input_type": "prompt", "input": DOCS[:2]}, np.stack([tiny_model.embed_prompt(t) for t in DOCS[:2]])),
    ]
    for extra, expected in cases:
        body = {"input": DOCS, "encoding_format": encoding, "model": "anything", "user": "u1", **extra}
        response = post(server.url, "/v1/embeddings", body)
        assert response.status_code == 200, response.text
        payload = response.json()
        assert payload["object"] == "list" and payload["usage"]["prompt_tokens"] > 0
        assert all(isinstance(d["embedding"], str if encoding == "base64" else list) for d in payload["data"])
        np.testing.assert_allclose(vectors_of(response), expected, atol=1e-5, err_msg=str(extra))


def test_single_string_input_and_tei_embed(server, tiny_model):
    one = post(server.url, "/v1/embeddings", {"input": DOCS[0]})
    np.testing.assert_allclose(vectors_of(one), tiny_model.embed_documents(DOCS[:1]), atol=1e-5)
    tei = post(server.url, "/embed", {"inputs": DOCS})
    assert tei.status_code == 200
    np.testing.assert_allclose(np.asarray(tei.json()), tiny_model.embed_documents(DOCS), atol=1e-5)
    tei_one = post(server.url, "/embed", {"inputs": "x", "input_type": "query"})
    np.testing.assert_allclose(np.asarray(tei_one.json()), tiny_model.embed_queries(["x"]), atol=1e-5)


def test_token_ids_are_embedded_exactly_when_asked_for(server, tiny_model, tiny_path):
    """Model token ids, on purpose: input_type "tokens" on any server, bare ids on one with --allow-token-ids."""
    tokenizer = Tokenizer.from_file(str(tiny_path / "tokenizer.json"))
    texts = [tiny_model.prompts.document(d) for d in DOCS if d] + [tiny_model.chat_wrap("content ends with\n\n")]
    ids = [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    response = post(server.url, "/v1/embeddings", {"input": ids, "input_type": "tokens"})
    np.testing.assert_allclose(vectors_of(response), tiny_model.embed_formatted(texts), atol=1e-5)
    single = post(server.url, "/v1/embeddings", {"input": ids[0], "input_type": "tokens"})  # one flat list: one input
    np.testing.assert_allclose(vectors_of(single)[0], tiny_model.embed_formatted(texts[:1])[0], atol=1e-5)
    refused = post(server.url, "/v1/embeddings", {"input": ids})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "token_ids_refused"
    with running_server(create_app(tiny_model, ServerSettings(allow_token_ids=True))) as allowing:
        bare = post(allowing.url, "/v1/embeddings", {"input": ids})
        np.testing.assert_allclose(vectors_of(bare), tiny_model.embed_formatted(texts), atol=1e-5)


def test_raw_embeddings_embed_untyped_texts_as_sent(raw_server, tiny_model):
    """--raw-embeddings: untyped texts are embedded as sent, as vLLM or TEI would (typed ones keep their format)."""
    texts = [tiny_model.prompts.document(DOCS[0]), "no end-of-text token"]
    raw = post(raw_server.url, "/v1/embeddings", {"input": texts})
    np.testing.assert_allclose(vectors_of(raw), tiny_model.embed_formatted(texts), atol=1e-5)
    typed = post(raw_server.url, "/v1/embeddings", {"input": DOCS[:1], "input_type": "document"})
    np.testing.assert_allclose(vectors_of(typed), tiny_model.embed_documents(DOCS[:1]), atol=1e-5)


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank", "/v2/rerank"])
def test_cohere_rerank_equals_the_model(server, tiny_model, path):
    documents = [DOCS[0], {"text": DOCS[1]}, *DOCS[2:]]
    body = {"query": QUERY, "documents": documents, "top_n": 3, "return_documents": True, "model": "x"}
    response = post(server.url, path, body)
    assert response.status_code == 200, response.text
    payload = response.json()
    expected = tiny_model.rerank(QUERY, DOCS, top_n=3)
    assert_same_ranking(payload, expected)
    assert [r["document"]["text"] for r in payload["results"]] == [DOCS[r.index] for r in expected]
    assert payload["id"] and payload["usage"]["total_tokens"] > 0
    bare = post(server.url, path, {"query": QUERY, "documents": DOCS}).json()
    assert len(bare["results"]) == len(DOCS) and "document" not in bare["results"][0]


@pytest.mark.parametrize("cap", [None, 40])
def test_rerank_options_equal_the_model(server, tiny_model, cap):
    options = {"instruction": "Rank these:", "num_prompt_docs": 2, "passes": 2, "max_prompt_tokens": cap}
    payload = post(server.url, "/v1/rerank", {"query": QUERY, "documents": DOCS, **options}).json()
    assert_same_ranking(payload, tiny_model.rerank(QUERY, DOCS, **options))


def test_tei_rerank_body_gets_the_tei_response(server, tiny_model):
    response = post(server.url, "/rerank", {"query": QUERY, "texts": DOCS, "return_text": True, "raw_scores": True})
    assert response.status_code == 200, response.text
    items = response.json()
    expected = tiny_model.rerank(QUERY, DOCS)
    assert [(i["index"], i["text"]) for i in items] == [(r.index, DOCS[r.index]) for r in expected]
    np.testing.assert_allclose([i["score"] for i in items], [r.score for r in expected], atol=1e-5)
    assert set(post(server.url, "/v1/rerank", {"query": QUERY, "texts": DOCS}).json()[0]) == {"index", "score"}


def test_rerank_with_stored_embeddings_embeds_only_the_prompt(server, tiny_model):
    stored = tiny_model.embed_documents(DOCS) * 3.0  # any scale: they are normalised
    docs = [d + " (never embedded on the server)" for d in DOCS]
    before = httpx.get(server.url + "/stats").json()["texts_embedded"]
    for rows in (stored.tolist(), list(map(_b64, stored))):
        payload = post(server.url, "/v1/rerank", {"query": QUERY, "documents": docs, "doc_embeddings": rows}).json()
        expected = tiny_model.rerank(QUERY, docs, doc_embeddings=stored)
        assert_same_ranking(payload, expected)
    # the two requests share one prompt: the first embeds it, the second finds it in the cache
    assert httpx.get(server.url + "/stats").json()["texts_embedded"] - before == 1


def _b64(row):
    from e2rank_integrations.protocol import encode_vector

    return encode_vector(row)


# ---------------------------------------------------------------------------- service endpoints and headers


def test_info_models_health_metrics(server, tiny_model):
    info = httpx.get(server.url + "/info").json()
    assert info["fingerprint"] == tiny_model.fingerprint and info["dimension"] == tiny_model.dimension
    assert info["max_client_batch_size"] == 1024 and info["max_input_length"] == tiny_model.max_length
    assert info["prompts"]["eos"] == "<|endoftext|>" and info["version"]
    models = httpx.get(server.url + "/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == info["model_id"]
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    post(server.url, "/v1/embeddings", {"input": ["metrics please"]})
    metrics = httpx.get(server.url + "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in (
        'e2rank_requests_total{path="/v1/embeddings",status="200"}',
        "e2rank_request_duration_seconds_bucket",
        "e2rank_queue_depth",
        "e2rank_batch_size_bucket",
        "e2rank_batch_tokens_sum",
        "e2rank_cache_hits_total",
        "e2rank_texts_embedded_total",
        "e2rank_requests_in_flight",
    ):
        assert name in metrics.text, name
    samples = dict(line.split(" ", 1) for line in metrics.text.splitlines() if line.startswith("e2rank_"))
    for histogram in ("e2rank_queue_duration_seconds_count", "e2rank_inference_duration_seconds_count"):
        assert float(samples[histogram]) >= 1, histogram  # observed for every batch run


def test_request_id_is_echoed_and_timings_are_sent(server):
    response = post(server.url, "/v1/embeddings", {"input": ["x"]}, headers={"X-Request-Id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert float(response.headers["x-queue-time"]) >= 0 and float(response.headers["x-inference-time"]) >= 0
    assert len(post(server.url, "/v1/embeddings", {"input": ["x"]}).headers["x-request-id"]) == 32


# ---------------------------------------------------------------------------- errors: the documented status, never 500


def assert_error(response, status, *words):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code"}
    for word in words:
        assert word in error["message"], error["message"]
    return error


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/v1/embeddings", {"input": []}, 422, ["input", "at least 1"]),
        ("/v1/embeddings", {"input": [1, "a"]}, 422, ["input"]),
        ("/v1/embeddings", {"input": None}, 422, ["input"]),
        ("/v1/embeddings", {}, 422, ["input", "required"]),
        ("/v1/embeddings", {"input": ["a"], "encoding_format": "int8"}, 422, ["encoding_format"]),
        ("/v1/embeddings", {"input": ["a"], "input_type": "passage"}, 422, ["input_type"]),
        ("/v1/embeddings", {"input": [""], "input_type": "raw"}, 400, ["input[0]"]),
        ("/v1/embeddings", {"input": [" "], "input_type": "prompt"}, 400, ["input[0]"]),
        ("/v1/embeddings", {"input": ["a"], "instruction": "x"}, 400, ["instruction"]),
        ("/v1/embeddings", {"input": ["a"], "dimensions": 3}, 400, ["dimensions"]),
        ("/v1/embeddings", {"input": [[1, 2], []], "input_type": "tokens"}, 422, ["input[1]"]),
        ("/v1/embeddings", {"input": [[1, 10**9]], "input_type": "tokens"}, 400, ["input[0]", "vocabulary"]),
        ("/v1/embeddings", {"input": [[-1]], "input_type": "tokens"}, 400, ["input[0]"]),
        ("/v1/embeddings", {"input": [[1]], "input_type": "query"}, 400, ["input_type must be 'tokens'"]),
        ("/v1/embeddings", {"input": ["a"], "input_type": "tokens"}, 400, ["input holds texts", "token ids"]),
        ("/v1/embeddings", {"input": [[1, 2]]}, 400, ["OpenAIEmbeddings", "check_embedding_ctx_length=False"]),
        ("/v1/embeddings", {"input": [1, 2]}, 400, ["tiktoken", "input_type: 'tokens'", "--allow-token-ids"]),
        ("/v1/embeddings", {"input": True}, 422, ["input"]),
        ("/v1/embeddings", {"input": [True, False]}, 422, ["input"]),
        ("/v1/embeddings", {"input": [[True]], "input_type": "tokens"}, 422, ["input"]),
        ("/embed", {"inputs": ["a"], "normalize": False}, 400, ["normalize"]),
        ("/embed", {"inputs": []}, 422, ["inputs"]),
        ("/embed", {"inputs": ["a"], "truncate": 0}, 422, ["truncate"]),
        ("/v1/embeddings", {"input": "a", "truncate": 0}, 422, ["truncate"]),
        ("/v1/embeddings", {"input": "a", "dimensions": "64"}, 422, ["dimensions"]),
        ("/v1/rerank", {"query": "", "documents": ["a"]}, 422, ["query"]),
        ("/rerank", {"query": "   ", "texts": ["a"]}, 422, ["query"]),
        ("/v2/rerank", {"query": "\n", "documents": ["a"]}, 422, ["query"]),
        ("/v1/rerank", {"query": "q", "documents": []}, 422, ["documents"]),
        ("/v1/rerank", {"query": "q", "documents": ["a"], "return_documents": "yes"}, 422, ["return_documents"]),
        ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": 1.5}, 422, ["top_n"]),
        ("/v1/rerank", {"query": "q"}, 422, ["documents"]),
        ("/v1/rerank", {"query": "q", "documents": [3]}, 422, ["documents[0]"]),
        ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, 422, ["top_n"]),
        ("/v1/rerank", {"query": "q", "documents": ["a"], "passes": 100}, 422, ["passes"]),
        ("/v1/rerank", {"query": "q", "documents": ["a"], "doc_embeddings": [[1.0, 2.0]]}, 400, ["doc_embeddings"]),
        ("/v1/rerank", {"query": "q", "documents": ["a", "b"], "doc_embeddings": ["!!"]}, 400, ["base64"]),
        ("/rerank", {"query": "q", "texts": "not a list"}, 422, ["texts"]),
        ("/v1/rerank", [1, 2], 422, []),
    ],
)
def test_bad_input_gets_its_status(server, path, body, status, words):
    assert_error(post(server.url, path, body), status, *words)


def test_malformed_json_wrong_method_unknown_path(server):
    json_type = {"content-type": "application/json"}
    bad = httpx.post(server.url + "/v1/embeddings", content=b'{"input": [', headers=json_type)
    assert_error(bad, 400, "JSON")
    assert_error(httpx.get(server.url + "/v1/embeddings"), 405)
    assert_error(httpx.get(server.url + "/nowhere"), 404)


def test_auth(strict_server):
    url = strict_server.url
    wrong = (({}, "missing"), ({"Authorization": "Bearer wrong"}, "invalid"), ({"Authorization": API_KEY}, ""))
    for headers, word in wrong:
        response = post(url, "/v1/embeddings", {"input": ["a"]}, headers=headers)
        assert_error(response, 401, word)
        assert response.headers["www-authenticate"] == "Bearer"
    lowercase = post(url, "/v1/embeddings", {"input": ["a"]}, headers={"Authorization": f"bearer {API_KEY}"})
    assert lowercase.status_code == 200  # the scheme is case-insensitive (RFC 9110), as documented
    for path in ("/info", "/metrics", "/v1/models", "/stats", "/openapi.json"):
        assert httpx.get(url + path).status_code == 401, path
    assert httpx.get(url + "/health").status_code == 200  # probes need no key
    assert post(url, "/v1/embeddings", {"input": ["a"]}, headers=AUTH).status_code == 200


def test_batch_and_payload_limits(strict_server):
    url = strict_server.url
    assert_error(post(url, "/v1/embeddings", {"input": ["a"] * 9}, headers=AUTH), 413, "max_client_batch_size=8")
    assert_error(post(url, "/v1/rerank", {"query": "q", "documents": ["a"] * 9}, headers=AUTH), 413, "documents")
    assert_error(post(url, "/embed", {"inputs": ["a"] * 9}, headers=AUTH), 413, "inputs")
    big = {"input": ["x" * 60_000]}
    assert_error(post(url, "/v1/embeddings", big, headers=AUTH), 413, "MiB")

    def chunks():  # no Content-Length: the limit holds while the body streams in
        yield b'{"input": ["'
        for _ in range(10):
            yield b"y" * 10_000
        yield b'"]}'

    headers = {**AUTH, "content-type": "application/json"}
    streamed = httpx.post(url + "/v1/embeddings", content=chunks(), headers=headers)
    assert_error(streamed, 413)


def test_huge_inputs_are_truncated_unless_refused(strict_server, tiny_path):
    url = strict_server.url
    text = "many words here " * 200  # far over the 64-token limit
    cut = post(url, "/v1/embeddings", {"input": [text]}, headers=AUTH)
    assert cut.status_code == 200 and cut.json()["usage"]["prompt_tokens"] == 64
    expected = E2RankModel.from_pretrained(tiny_path, max_length=64, cache=False).embed_documents([text])
    np.testing.assert_allclose(vectors_of(cut), expected, atol=1e-5)  # cut with <|endoftext|> kept last
    refused = post(url, "/v1/embeddings", {"input": ["short", text], "truncate": False}, headers=AUTH)
    assert_error(refused, 400, "input[1]", "64")
    assert_error(post(url, "/embed", {"inputs": [text], "truncate": False}, headers=AUTH), 400, "inputs[0]")
    rerank = post(url, "/v1/rerank", {"query": "q", "documents": ["a", text], "truncate": False}, headers=AUTH)
    assert_error(rerank, 400, "documents[1]")
    assert post(url, "/v1/rerank", {"query": "q", "documents": ["a", text]}, headers=AUTH).status_code == 200


def test_overload_gives_429_with_retry_after(strict_server):
    def one(i):
        body = {"input": [f"text {i} " * 30] * 8}
        return httpx.post(strict_server.url + "/v1/embeddings", json=body, headers=AUTH, timeout=60)

    with ThreadPoolExecutor(32) as pool:
        responses = list(pool.map(one, range(96)))
    statuses = {r.status_code for r in responses}
    assert statuses <= {200, 429}, statuses
    refused = [r for r in responses if r.status_code == 429]
    assert refused, "32 clients against max_concurrent_requests=2 were never refused"
    for r in refused:
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"]["type"] == "rate_limit_error"


# ---------------------------------------------------------------------------- lifecycle


def test_503_while_loading_then_ready(tiny_path):
    release = threading.Event()

    def load():
        release.wait(60)
        return E2RankModel.from_pretrained(tiny_path)

    with running_server(create_app(load), wait_ready=False) as running:
        health = httpx.get(running.url + "/health")
        assert health.status_code == 503 and health.json()["status"] == "loading"
        response = post(running.url, "/v1/embeddings", {"input": ["a"]})
        assert_error(response, 503, "loading")
        assert response.headers["retry-after"] == "1"
        assert_error(httpx.get(running.url + "/info"), 503)
        release.set()
        wait_until(lambda: httpx.get(running.url + "/health").status_code == 200, "never became ready")
        assert post(running.url, "/v1/embeddings", {"input": ["a"]}).status_code == 200


def test_failed_load_reports_why(tmp_path):
    def load():
        return E2RankModel.from_pretrained(tmp_path / "missing")

    with running_server(create_app(load), wait_ready=False) as running:
        wait_until(lambda: running.state.status == "failed", "the load did not fail")
        health = httpx.get(running.url + "/health")
        assert health.status_code == 503 and "could not load the model" in health.json()["message"]


def test_draining_refuses_new_requests(tiny_path):
    app = create_app(E2RankModel.from_pretrained(tiny_path), ServerSettings(model_id="drain-test"))
    with running_server(app) as running:
        assert httpx.get(running.url + "/v1/models").json()["data"][0]["id"] == "drain-test"
        running.state.begin_drain()
        assert_error(post(running.url, "/v1/embeddings", {"input": ["a"]}), 503, "shutting down")
        assert httpx.get(running.url + "/health").json()["status"] == "draining"
        assert running.state.finished
