"""How a model name is read (tiny-random, a directory, a path that is not there, a hub id), without loading weights.

These need no torch: the errors come before anything is loaded. Loading itself is in tests/model/test_loading.py.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from e2rank_integrations import E2RankHubUnreachableError, E2RankModelNotFoundError, loading
from e2rank_integrations.loading import looks_like_path, resolve_model


@pytest.fixture
def no_hub(monkeypatch):
    """The hub is a closed port on loopback and HF_HUB_OFFLINE is unset: what a firewall looks like."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    return f"http://127.0.0.1:{port}"


def assert_says_how_to_go_on(message: str, model_id: str) -> None:
    assert message.startswith(f"could not load model {model_id!r}: the Hugging Face Hub at ")
    assert " is unreachable (" in message
    assert "not in the local Hugging Face cache" in message and f"no local directory ./{model_id}" in message
    assert "/path/to/E2Rank-0.6B" in message and "'tiny-random'" in message
    assert "make_random_checkpoint" in message


@pytest.mark.parametrize(
    ("name", "is_path"),
    [
        ("Alibaba-NLP/E2Rank-0.6B", False),
        ("bert-base-uncased", False),  # a legacy id without an organisation
        ("./E2Rank-0.6B", True),
        ("../models/E2Rank-0.6B", True),
        ("/models/E2Rank-0.6B", True),
        ("~/E2Rank-0.6B", True),
        ("models/e2rank/v2", True),  # more than one "/"
        ("models\\e2rank", True),
        ("my model", True),
        ("Alibaba-NLP/", True),
    ],
)
def test_what_looks_like_a_path(name, is_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert looks_like_path(name) is is_path


def test_org_name_is_a_path_when_org_is_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not looks_like_path("models/e2rank")
    (tmp_path / "models").mkdir()
    assert looks_like_path("models/e2rank")
    assert looks_like_path(Path("e2rank"))  # a Path is always a path


@pytest.mark.parametrize("name", ["./missing-model", "relative/missing/model", "~/missing-e2rank-model"])
def test_a_path_that_does_not_exist_says_no_such_directory(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(E2RankModelNotFoundError, match="no such directory") as caught:
        resolve_model(name, {})
    assert str(caught.value).startswith(f"could not load model {name!r}: no such directory (")
    assert isinstance(caught.value, OSError)  # `except OSError` around transformers' loading still catches it


def test_relative_path_without_dot_slash_next_to_its_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    with pytest.raises(E2RankModelNotFoundError, match=r"'models/e2rank': no such directory"):
        resolve_model("models/e2rank", {})


def test_a_file_is_not_a_model_directory(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(E2RankModelNotFoundError, match="it is a file; give the directory it is in"):
        resolve_model(str(tmp_path / "model.safetensors"), {})


def test_an_empty_directory_lists_the_missing_files(tmp_path):
    with pytest.raises(E2RankModelNotFoundError) as caught:
        resolve_model(str(tmp_path), {})
    message = str(caught.value)
    assert f"the directory {tmp_path} is missing config.json; weights (model.safetensors or pytorch_model.bin); " in (
        message
    )
    assert "a tokenizer (tokenizer.json, or vocab.json and merges.txt)" in message


def test_a_directory_without_its_tokenizer_names_only_that(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(E2RankModelNotFoundError, match=r"is missing a tokenizer \(tokenizer.json") as caught:
        resolve_model(tmp_path, {})
    assert "config.json;" not in str(caught.value) and "weights" not in str(caught.value)


def test_a_complete_directory_is_loaded_from_disk(tmp_path):
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (tmp_path / name).write_text("{}")
    assert resolve_model(tmp_path, {"revision": "x"}) == (str(tmp_path), {"revision": "x"})
    (tmp_path / "sub").mkdir()
    with pytest.raises(E2RankModelNotFoundError, match=r"sub is missing config\.json"):
        resolve_model(tmp_path, {"subfolder": "sub"})


def test_unreachable_hub_fails_at_once_with_what_to_do(no_hub):
    with pytest.raises(E2RankHubUnreachableError) as caught:
        resolve_model("no/such-model", {})
    assert_says_how_to_go_on(str(caught.value), "no/such-model")
    assert f"the Hugging Face Hub at {no_hub} is unreachable (" in str(caught.value)
    assert isinstance(caught.value, E2RankModelNotFoundError) and isinstance(caught.value, OSError)


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_mode_is_honoured_without_a_request(variable, no_hub, monkeypatch):
    monkeypatch.setenv(variable, "1")
    with pytest.raises(E2RankHubUnreachableError) as caught:
        resolve_model("no/such-model", {})
    assert_says_how_to_go_on(str(caught.value), "no/such-model")
    assert f"({variable} is set, so the hub is not contacted)" in str(caught.value)


def test_a_hub_that_accepts_but_never_answers_times_out(no_hub, monkeypatch):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # connections complete in the backlog; nothing ever answers
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
    monkeypatch.setattr(loading, "HUB_TIMEOUT_S", 0.5)
    try:
        with pytest.raises(E2RankHubUnreachableError) as caught:
            resolve_model("no/such-model", {})
    finally:
        silent.close()
    assert_says_how_to_go_on(str(caught.value), "no/such-model")
    assert "timed out" in str(caught.value) or "no answer within 0.5 s" in str(caught.value)


def test_a_hub_that_answers_is_left_to_transformers(no_hub, monkeypatch):
    # Any HTTP answer (a 404 here) means the hub is there: transformers then reports on the model itself.
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        assert resolve_model("no/such-model", {"revision": "main"}) == ("no/such-model", {"revision": "main"})
    finally:
        server.shutdown()
        server.server_close()


def test_local_files_only_without_a_cached_copy(no_hub):
    with pytest.raises(E2RankHubUnreachableError, match="'no/such-model': local_files_only=True keeps the Hugging"):
        resolve_model("no/such-model", {"local_files_only": True})
