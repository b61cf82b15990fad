"""``e2rank serve`` as a real process: it serves, drains on SIGTERM (in-flight requests finish, new ones get 503)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("fastapi")  # the server extra
pytest.importorskip("httpx")  # the client extra

import httpx

from .serving import wait_until

E2RANK = str(Path(sys.executable).parent / "e2rank")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "E2RANK_API_KEY": "from-env"}
    return subprocess.Popen(
        [E2RANK, "serve", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_serve_drains_on_sigterm(tiny_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer from-env"}
    process = start("--model", str(tiny_path), "--port", str(port), "--log-level", "warning", "--drain-timeout", "600")
    try:
        wait_until(lambda: _health(url) == 200, "e2rank serve never became ready")
        assert httpx.post(url + "/v1/embeddings", json={"input": ["a"]}).status_code == 401  # the key from the env
        big = {"input": [f"long text {i} " * 500 for i in range(64)]}  # seconds of work for the tiny model
        outcome = {}
        worker = threading.Thread(
            target=lambda: outcome.update(r=httpx.post(url + "/v1/embeddings", json=big, headers=auth, timeout=600))
        )
        worker.start()
        wait_until(lambda: httpx.get(url + "/stats", headers=auth).json()["in_flight"] == 1, "no request in flight")
        process.send_signal(signal.SIGTERM)
        wait_until(lambda: _health(url) in (503, None), "SIGTERM did not start a drain")
        if worker.is_alive():  # the drain waits for it, so the server still answers, with 503
            late = httpx.post(url + "/v1/embeddings", json={"input": ["a"]}, headers=auth)
            assert late.status_code == 503 and late.json()["error"]["code"] == "draining"
        worker.join(600)
        assert outcome["r"].status_code == 200 and len(outcome["r"].json()["data"]) == 64
        assert process.wait(120) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_cuts_forward_passes_by_tokens_not_texts(tiny_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer from-env"}
    process = start("--model", str(tiny_path), "--port", str(port), "--log-level", "warning")
    try:
        wait_until(lambda: _health(url) == 200, "e2rank serve never became ready")
        before = httpx.get(url + "/stats", headers=auth).json()["batches"]
        texts = [f"short text {i}" for i in range(64)]  # a few hundred tokens: one pass, not two of 32 texts
        assert httpx.post(url + "/v1/embeddings", json={"input": texts}, headers=auth).status_code == 200
        assert httpx.get(url + "/stats", headers=auth).json()["batches"] == before + 1
    finally:
        process.kill()
        process.wait()


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


@pytest.mark.parametrize(("flag", "value"), [("--max-batch-tokens", "0"), ("--payload-limit-mb", "-1")])
def test_serve_refuses_bad_limits(flag, value, capsys):
    from e2rank_integrations.cli import main

    assert main(["serve", "--model", "x", flag, value]) == 1
    assert "error:" in capsys.readouterr().err


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
