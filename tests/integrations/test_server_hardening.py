"""The server under abuse and faults, over real HTTP: slow and idle clients, too many connections, huge requests
next to small ones, errors that are ours (400) or bugs (500), nothing blocking the event loop, the wire schemas."""

from __future__ import annotations

import json
import logging
import resource
import socket
import threading

import numpy as np
import pytest

pytest.importorskip("fastapi")  # the server extra
pytest.importorskip("httpx")  # the client extra

import httpx

from e2rank_integrations import E2RankModel
from e2rank_integrations.errors import E2RankValueError
from e2rank_integrations.protocol import ErrorResponse, StatsResponse
from e2rank_integrations.server import ServerSettings, create_app

from .serving import running_server, wait_until

# ---------------------------------------------------------------------------- slow, idle and too many clients


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=60)  # the timeout only guards against a hang


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One response (status, body) from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ")[1]), body


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_slow_and_idle_clients_are_cut_off(tiny_model, http):
    pytest.importorskip(http)
    settings = ServerSettings(request_head_timeout_s=1.0, request_read_timeout_s=1.0, timeout_keep_alive_s=1)
    with running_server(create_app(tiny_model, settings), http=http) as running:
        silent = connect(running.url)  # connects, sends nothing
        partial = connect(running.url)
        partial.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Le")  # never finishes its headers
        slow_body = connect(running.url)
        head = b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
        slow_body.sendall(head + b'\r\n{"input": ')  # headers in time, then the body stalls
        kept_alive = connect(running.url)
        kept_alive.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(kept_alive)[0] == 200
        kept_alive.sendall(b"GET /health HTTP/1.1\r\nHo")  # a second request, never finished

        assert read_until_closed(silent) == b""  # it asked nothing: no answer
        assert_408(read_until_closed(partial), "the request headers did not arrive within 1 s")
        assert_408(read_until_closed(slow_body), "the request body did not arrive within 1 s")
        assert_408(read_until_closed(kept_alive), "the request headers did not arrive within 1 s")
        idle = connect(running.url)  # uvicorn's own keep-alive timeout, as configured
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(idle)[0] == 200
        assert read_until_closed(idle) == b""
        for sock in (silent, partial, slow_body, kept_alive, idle):
            sock.close()
        assert httpx.get(running.url + "/health").status_code == 200  # the server is fine


def assert_408(answer: bytes, message: str) -> None:
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    error = ErrorResponse.model_validate_json(answer.partition(b"\r\n\r\n")[2]).error
    assert error.code == "request_timeout" and message in error.message


def test_one_client_cannot_hold_every_connection(tiny_model):
    """1,100 idle connections from 127.0.0.2 (more than limit_concurrency): the 64 allowed per client stay open,
    the rest are closed on accept, and a client at 127.0.0.1 is answered all along."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:  # the test holds both ends of each connection
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.2", 0))
        except OSError:
            pytest.skip("127.0.0.2 is not a local address here (macOS routes only 127.0.0.1 without an alias)")
    settings = ServerSettings()
    assert settings.max_connections_per_client == 64 and settings.limit_concurrency == 1024
    with running_server(create_app(tiny_model, settings)) as running:
        host, port = running.url.removeprefix("http://").split(":")
        idle: list[socket.socket] = []
        try:
            for i in range(1100):
                sock = socket.socket()
                sock.bind(("127.0.0.2", 0))
                sock.connect((host, int(port)))
                idle.append(sock)
                if i % 100 == 99:  # a new connection from another address, after all those before it
                    assert httpx.get(running.url + "/health", timeout=60).status_code == 200, i
            idle[-1].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_until_closed(idle[-1]) == b""  # beyond the client's 64: closed unanswered
            idle[0].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(idle[0])[0] == 200  # within them: served
        finally:
            for sock in idle:
                sock.close()
        assert refused_connections(running.url) >= 1100 - 64


def refused_connections(url: str) -> float:
    metrics = httpx.get(url + "/metrics").text
    return float(
        next(line for line in metrics.splitlines() if line.startswith("e2rank_connections_refused_total")).split()[1]
    )


def test_connections_beyond_the_limit_are_closed_on_accept(tiny_model):
    with running_server(create_app(tiny_model, ServerSettings(limit_concurrency=2))) as running:
        held = [connect(running.url) for _ in range(2)]
        extra = connect(running.url)
        extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_until_closed(extra) == b""  # closed unanswered: the process holds no more than 2
        held[0].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # those within the limit are served
        assert read_response(held[0])[0] == 200
        for sock in (*held, extra):
            sock.close()
        wait_until(lambda: httpx.get(running.url + "/health").status_code == 200, "never served again")
        assert refused_connections(running.url) >= 1


# ---------------------------------------------------------------------------- large requests next to small ones


@pytest.fixture(scope="module")
def interleaving_server(tiny_path):
    """Micro-batches of 256 tokens (one long text each) and a 20,000-token cap per request."""
    model = E2RankModel.from_pretrained(tiny_path, cache=False)
    with running_server(create_app(model, ServerSettings(max_batch_tokens=256, max_request_tokens=20_000))) as running:
        yield running


LONG = [f"long text {i} " + "word " * 200 for i in range(64)]  # about 200 tokens each: 64 micro-batches


def test_a_small_request_does_not_wait_for_a_large_one(interleaving_server, tiny_model, monkeypatch):
    url = interleaving_server.url
    model = interleaving_server.state.model
    passes: list[list[str]] = []  # the forward passes, in order (the server calls embed_formatted once per pass)
    forward = model.embed_formatted
    monkeypatch.setattr(model, "embed_formatted", lambda texts: passes.append(list(texts)) or forward(texts))
    outcome = {}
    large = threading.Thread(
        target=lambda: outcome.update(r=httpx.post(url + "/v1/embeddings", json={"input": LONG}, timeout=600))
    )
    large.start()
    wait_until(lambda: interleaving_server.state.model.stats()["texts_embedded"] > 1, "the large request never ran")
    small = httpx.post(url + "/v1/embeddings", json={"input": ["a small one"]}, timeout=600)
    assert small.status_code == 200
    large.join(600)
    # The small text had its own pass while the large request still had passes to go (not "is the large one still
    # running?", which on a busy machine it may have stopped being before this thread looks).
    small_pass = next(i for i, texts in enumerate(passes) if any(t.startswith("a small one") for t in texts))
    last_large = max(i for i, texts in enumerate(passes) if any(t.startswith("long text") for t in texts))
    assert small_pass < last_large, "the small request was embedded only after the large one"
    assert outcome["r"].status_code == 200
    rows = np.asarray([d["embedding"] for d in outcome["r"].json()["data"]], dtype=np.float32)
    np.testing.assert_allclose(rows, tiny_model.embed_documents(LONG), atol=1e-5)  # every row in its place
    np.testing.assert_allclose(
        small.json()["data"][0]["embedding"], tiny_model.embed_documents(["a small one"])[0], atol=1e-5
    )


def test_a_request_over_the_token_cap_is_a_413(interleaving_server, tiny_model, tiny_path, monkeypatch):
    url = interleaving_server.url
    model = interleaving_server.state.model
    before = model.stats()["texts_embedded"]
    counted = []
    real_count = model.count_tokens
    monkeypatch.setattr(model, "count_tokens", lambda texts: counted.extend(texts) or real_count(texts))
    huge = [f"{i} " + "word " * 200 for i in range(1000)]  # about 200,000 tokens: 10x the cap
    response = httpx.post(url + "/v1/embeddings", json={"input": huge}, timeout=60)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_tokens"
    assert len(counted) < len(huge) // 2  # refused once the count passed the cap, not after tokenizing it all
    too_many = {"input": LONG + LONG[:40]}  # 104 texts of about 200 tokens
    response = httpx.post(url + "/v1/embeddings", json=too_many, timeout=60)
    assert response.status_code == 413
    error = response.json()["error"]
    assert "more than max_request_tokens=20000" in error["message"] and error["code"] == "too_many_tokens"
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tiny_path / "tokenizer.json"))
    ids = [tokenizer.encode(tiny_model.prompts.document(t), add_special_tokens=False).ids for t in too_many["input"]]
    by_ids = httpx.post(url + "/v1/embeddings", json={"input": ids, "input_type": "tokens"}, timeout=60)
    assert by_ids.status_code == 413 and "max_request_tokens" in by_ids.json()["error"]["message"]
    rerank = httpx.post(url + "/v1/rerank", json={"query": "q", "documents": too_many["input"]}, timeout=60)
    assert rerank.status_code == 413
    assert interleaving_server.state.model.stats()["texts_embedded"] == before  # refused before any work


def test_equal_texts_get_equal_rows_and_ties_keep_input_order(interleaving_server):
    url = interleaving_server.url
    documents = ["the same text", "another one", "the same text", "a third", "the same text"]
    results = httpx.post(url + "/v1/rerank", json={"query": "q", "documents": documents}, timeout=60).json()
    same = [r for r in results["results"] if documents[r["index"]] == "the same text"]
    assert [r["index"] for r in same] == [0, 2, 4]  # next to each other, in input order
    assert len({r["relevance_score"] for r in same}) == 1
    embedded = httpx.post(url + "/v1/embeddings", json={"input": documents}, timeout=60).json()
    rows = [d["embedding"] for d in embedded["data"]]
    assert rows[0] == rows[2] == rows[4] and rows[0] != rows[1]
    single = httpx.post(url + "/v1/embeddings", json={"input": documents[:2]}, timeout=60).json()
    assert embedded["usage"]["prompt_tokens"] > single["usage"]["prompt_tokens"]  # usage counts every input


# ---------------------------------------------------------------------------- 400 for bad input, 500 for bugs


@pytest.fixture
def own_server(tiny_path):
    model = E2RankModel.from_pretrained(tiny_path)
    with running_server(create_app(model)) as running:
        yield running


def post_json(url, body):
    """JSON as Python writes it (lone surrogates become \\ud800 escapes, which httpx's encoder refuses)."""
    return httpx.post(url, content=json.dumps(body), headers={"content-type": "application/json"}, timeout=60)


def test_bad_input_is_a_400_in_our_words(own_server):
    url = own_server.url
    bad_text = "caf" + chr(0xD800)
    for path, body, message in [
        ("/v1/embeddings", {"input": ["a", "b", "c", bad_text]}, "input[3] is not valid Unicode text"),
        ("/embed", {"inputs": [bad_text]}, "inputs[0] is not valid Unicode text"),
        ("/v1/rerank", {"query": "q", "documents": ["a", bad_text]}, "documents[1] is not valid Unicode text"),
        ("/v1/rerank", {"query": bad_text, "documents": ["a"]}, "query is not valid Unicode text"),
        (
            "/v1/rerank",
            {"query": "q", "documents": ["a", "b"], "doc_embeddings": [[1.0, 0.0], [1.0]]},
            "doc_embeddings[1] has 1 values but doc_embeddings[0] has 2",
        ),
        (
            "/v1/rerank",
            {"query": "q", "documents": ["a"], "doc_embeddings": ["AACAPw==", "!"]},
            "doc_embeddings[1] is not",
        ),
    ]:
        response = post_json(url + path, body)
        assert response.status_code == 400, (path, response.text)
        error = ErrorResponse.model_validate_json(response.content).error
        assert message in error.message, error.message
        assert "TextEncodeInput" not in error.message and "inhomogeneous" not in error.message


def test_a_bug_is_a_logged_500_not_a_400(own_server, caplog):
    model = own_server.state.model

    def broken(texts):
        raise ValueError("an internal invariant broke")  # a bug, not the caller's input

    model.embed_formatted = broken
    with caplog.at_level(logging.ERROR, logger="e2rank_integrations.server"):
        response = httpx.post(own_server.url + "/v1/embeddings", json={"input": ["a new text"]}, timeout=60)
    assert response.status_code == 500
    error = ErrorResponse.model_validate_json(response.content).error
    assert error.type == "server_error" and error.code == "internal_error" and "invariant" not in error.message
    logged = [r for r in caplog.records if "unexpected error on POST /v1/embeddings" in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # with its traceback


def test_bad_input_found_inside_the_model_is_a_400_in_its_words(own_server):
    def refuses(texts):
        raise E2RankValueError("`input` holds a text this model refuses")  # the package's own: bad input

    own_server.state.model.embed_formatted = refuses
    response = httpx.post(own_server.url + "/v1/embeddings", json={"input": ["another new text"]}, timeout=60)
    assert response.status_code == 400
    error = ErrorResponse.model_validate_json(response.content).error
    assert error.code == "invalid_value" and error.message == "`input` holds a text this model refuses"


def test_a_failed_load_logs_its_traceback(tmp_path, caplog):
    def load():
        return E2RankModel.from_pretrained(tmp_path / "missing")

    with (
        caplog.at_level(logging.ERROR, logger="e2rank_integrations.server"),
        running_server(create_app(load), wait_ready=False) as running,
    ):
        wait_until(lambda: running.state.status == "failed", "the load did not fail")
    (record,) = [r for r in caplog.records if "could not load the model" in r.getMessage()]
    assert record.exc_info is not None


# ---------------------------------------------------------------------------- stopping


def test_requests_still_running_when_the_server_stops_get_the_json_503(tiny_path):
    model = E2RankModel.from_pretrained(tiny_path)
    real, entered, release = model.count_tokens, threading.Event(), threading.Event()

    def count_tokens(texts):  # a long tokenization in a worker thread, which nothing can interrupt
        if any("stuck" in t for t in texts):
            entered.set()
            assert release.wait(120)
        return real(texts)

    model.count_tokens = count_tokens
    outcome = {}

    def client(url):
        outcome["r"] = httpx.post(url + "/v1/embeddings", json={"input": ["stuck"]}, timeout=120)
        release.set()

    with running_server(create_app(model), draining=True) as running:
        caller = threading.Thread(target=client, args=(running.url,))
        caller.start()
        assert entered.wait(60)
    # The server stopped: what was still running was answered (uvicorn gives up on it after its grace period).
    caller.join(120)
    response = outcome["r"]
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    error = ErrorResponse.model_validate_json(response.content).error
    assert error.code == "draining" and "shutting down" in error.message


# ---------------------------------------------------------------------------- the event loop stays free


def test_stats_and_metrics_read_the_model_off_the_event_loop(tiny_path):
    model = E2RankModel.from_pretrained(tiny_path)
    real, held, entered, release = model.stats, threading.Event(), threading.Event(), threading.Event()

    def stats():  # slow while `held`, as counting a large SQLite cache would be
        if held.is_set():
            entered.set()
            assert release.wait(60)
        return real()

    model.stats = stats
    with running_server(create_app(model)) as running:
        for path in ("/stats", "/metrics"):
            held.set()
            outcome = {}
            reader = threading.Thread(
                target=lambda p=path, out=outcome: out.update(r=httpx.get(running.url + p, timeout=120))
            )
            reader.start()
            try:
                assert entered.wait(60)
                # While the model's counters are being read, the event loop still answers others.
                assert httpx.get(running.url + "/health", timeout=30).status_code == 200
                embedded = httpx.post(running.url + "/v1/embeddings", json={"input": ["x"]}, timeout=30)
                assert embedded.status_code == 200
            finally:
                held.clear()
                release.set()
                reader.join(120)
                entered.clear()
                release.clear()
            assert outcome["r"].status_code == 200, path


# ---------------------------------------------------------------------------- wire schemas


def test_stats_has_a_schema_and_errors_are_error_responses(own_server):
    url = own_server.url
    stats = httpx.get(url + "/stats").json()
    assert set(stats) == set(StatsResponse.model_fields)
    assert StatsResponse.model_validate(stats).in_flight == 0
    schema = httpx.get(url + "/openapi.json").json()
    ok = schema["paths"]["/stats"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/StatsResponse"}
    for response in (httpx.get(url + "/nowhere"), httpx.post(url + "/v1/embeddings", json={"input": []})):
        assert ErrorResponse.model_validate_json(response.content).error.message
