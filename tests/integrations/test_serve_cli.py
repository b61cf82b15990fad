"""``e2rank serve`` as a real process: it serves, drains on SIGTERM (in-flight requests finish, new ones get 503)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("fastapi")  # the server extra
pytest.importorskip("httpx")  # the client extra

import httpx

from helpers import free_port

from .serving import wait_until

E2RANK = str(Path(sys.executable).parent / "e2rank")


def start(*args: str, api_key: str | None = "from-env") -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("E2RANK_API_KEY", None)
    if api_key is not None:
        env["E2RANK_API_KEY"] = api_key
    return subprocess.Popen(
        [E2RANK, "serve", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@contextmanager
def serving(model: Path, *args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``e2rank serve --model MODEL ARGS`` on a free port, ready; killed at the end if it is still running."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start("--model", str(model), "--port", str(port), "--log-level", "warning", *args)
    try:
        wait_until(lambda: _health(url) == 200, "e2rank serve never became ready")
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def large_request_in_flight(url: str, texts: int) -> tuple[threading.Thread, dict]:
    """Send ``texts`` long texts in one request from a thread; return once the server has it in flight."""
    auth = {"Authorization": "Bearer from-env"}
    big = {"input": [f"long text {i} " * 500 for i in range(texts)]}
    outcome: dict = {}
    worker = threading.Thread(
        target=lambda: outcome.update(r=httpx.post(url + "/v1/embeddings", json=big, headers=auth, timeout=600))
    )
    worker.start()
    wait_until(lambda: httpx.get(url + "/stats", headers=auth).json()["in_flight"] == 1, "no request in flight")
    return worker, outcome


def test_serve_drains_on_sigterm(tiny_path):
    auth = {"Authorization": "Bearer from-env"}
    with serving(tiny_path, "--drain-timeout", "600") as (process, url):
        assert httpx.post(url + "/v1/embeddings", json={"input": ["a"]}).status_code == 401  # the key from the env
        worker, outcome = large_request_in_flight(url, 64)  # seconds of work for the tiny model
        process.send_signal(signal.SIGTERM)
        wait_until(lambda: _health(url) in (503, None), "SIGTERM did not start a drain")
        if worker.is_alive():  # the drain waits for it, so the server still answers, with 503
            late = httpx.post(url + "/v1/embeddings", json={"input": ["a"]}, headers=auth)
            assert late.status_code == 503 and late.json()["error"]["code"] == "draining"
        worker.join(600)
        assert outcome["r"].status_code == 200 and len(outcome["r"].json()["data"]) == 64
        assert process.wait(120) == 0


def test_serve_cuts_forward_passes_by_tokens_not_texts(tiny_path):
    auth = {"Authorization": "Bearer from-env"}
    with serving(tiny_path, "--allow-token-ids") as (_, url):
        before = httpx.get(url + "/stats", headers=auth).json()["batches"]
        texts = [f"short text {i}" for i in range(64)]  # a few hundred tokens: one pass, not two of 32 texts
        assert httpx.post(url + "/v1/embeddings", json={"input": texts}, headers=auth).status_code == 200
        assert httpx.get(url + "/stats", headers=auth).json()["batches"] == before + 1
        ids = httpx.post(url + "/v1/embeddings", json={"input": [[9707, 1879]]}, headers=auth)  # --allow-token-ids
        assert ids.status_code == 200 and len(ids.json()["data"]) == 1


def _health(url: str) -> int | None:
    try:
        return httpx.get(url + "/health", timeout=5).status_code
    except httpx.TransportError:
        return None


def test_serve_with_a_missing_model_exits_with_the_reason(tmp_path):
    process = start("--model", str(tmp_path / "missing"), "--port", str(free_port()))
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 1
    assert "could not load model" in out and "no such directory" in out


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--max-batch-tokens", "0"),
        ("--payload-limit-mb", "-1"),
        ("--max-connections-per-client", "0"),
        ("--timeout-request-head", "0"),
    ],
)
def test_serve_refuses_bad_limits(flag, value, capsys):
    from e2rank_integrations.cli import main

    assert main(["serve", "--model", "x", flag, value]) == 1
    assert "error:" in capsys.readouterr().err


def test_requests_still_running_when_the_drain_times_out_get_the_json_503(tiny_path):
    from e2rank_integrations.protocol import ErrorResponse

    with serving(tiny_path, "--drain-timeout", "0") as (process, url):
        worker, outcome = large_request_in_flight(url, 256)  # far more work than a drain of 0 s allows
        process.send_signal(signal.SIGTERM)
        worker.join(600)
        response = outcome["r"]
        assert response.status_code == 503, response.text  # not uvicorn's plain-text 500
        assert response.headers["retry-after"] == "1"
        error = ErrorResponse.model_validate_json(response.content).error
        assert error.code == "draining" and "shutting down" in error.message
        assert process.wait(120) == 0


@pytest.mark.parametrize("where", ["flag", "environment"])
def test_an_empty_api_key_is_refused_not_taken_for_none(where, monkeypatch, capsys):
    from e2rank_integrations.cli import main

    args = ["serve", "--model", "x"]
    if where == "flag":
        args += ["--api-key", ""]  # e2rank serve --api-key "$KEY", with KEY unset
    else:
        monkeypatch.setenv("E2RANK_API_KEY", "")
    assert main(args) == 1
    err = capsys.readouterr().err
    source = "--api-key" if where == "flag" else "E2RANK_API_KEY"
    assert f"{source} is empty" in err and "without authentication" in err


def test_serving_beyond_loopback_without_a_key_warns(tiny_path):
    process = start("--model", str(tiny_path), "--host", "0.0.0.0", "--port", str(free_port()), api_key=None)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("no API key" in line for line in lines) or process.poll() is not None, "no warning")
        (warning,) = [line for line in lines if "no API key" in line]
        assert warning.startswith("WARNING") and "anyone who can reach 0.0.0.0" in warning
    finally:
        process.terminate()
        process.wait(120)


def test_serve_logs_loading_and_ready(tiny_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start("--model", str(tiny_path), "--port", str(port))
    try:
        wait_until(lambda: _health(url) == 200, "e2rank serve never became ready")
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=120)
    lines = out.splitlines()
    from e2rank_integrations.loading import default_device

    loading = next(i for i, line in enumerate(lines) if f"loading {tiny_path} on {default_device()}" in line)
    ready = next(i for i, line in enumerate(lines) if f"ready at {url}" in line)
    assert loading < ready
