"""One loading path for every entry point: Python, the CLI and Chroma's rebuild all read a model name the same way.

The hub is never reached: it is a closed port on loopback (``HF_ENDPOINT``, with ``HF_HUB_OFFLINE`` unset), or
``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from e2rank_integrations import E2RankHubUnreachableError, E2RankModel, E2RankModelNotFoundError
from e2rank_integrations.checkpoints import _FORMAT_VERSION, TINY_RANDOM
from e2rank_integrations.cli import main

E2RANK = str(Path(sys.executable).parent / "e2rank")


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# Both ways of having no hub: a firewall (the endpoint refuses), and offline mode.
NO_HUB = {
    "unreachable": {"HF_ENDPOINT": closed_port(), "HF_HUB_OFFLINE": None, "TRANSFORMERS_OFFLINE": None},
    "offline": {"HF_HUB_OFFLINE": "1"},
}


@pytest.fixture(params=sorted(NO_HUB))
def no_hub(request, monkeypatch):
    for key, value in NO_HUB[request.param].items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    return request.param


def env_of(no_hub: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "E2RANK_MODEL"}
    for key, value in {**NO_HUB[no_hub], **extra}.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@pytest.fixture
def hf_cache(tmp_path, tiny_path):
    """A Hugging Face cache directory holding the tiny checkpoint as the hub model ``someone/cached-model``."""
    cache = tmp_path / "hf-cache"
    repo = cache / "models--someone--cached-model"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_path, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    return cache


def test_from_pretrained_unreachable_hub_fails_at_once(no_hub):
    with pytest.raises(E2RankHubUnreachableError) as caught:
        E2RankModel.from_pretrained("no/such-model")
    message = str(caught.value)
    assert message.startswith("could not load model 'no/such-model': the Hugging Face Hub at ")
    assert " is unreachable (" in message and "'tiny-random'" in message and "make_random_checkpoint" in message
    assert isinstance(caught.value, OSError)


def test_a_model_in_the_hub_cache_still_loads_without_the_hub(no_hub, hf_cache, tiny_model):
    model = E2RankModel.from_pretrained("someone/cached-model", cache_dir=str(hf_cache))
    assert model.name_or_path == "someone/cached-model"
    texts = ["Paris is the capital of France.", "Bees make honey."]
    np.testing.assert_allclose(model.embed_documents(texts), tiny_model.embed_documents(texts), atol=1e-6)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("./missing-model", "could not load model './missing-model': no such directory"),
        ("models/missing-model", "could not load model 'models/missing-model': no such directory"),
    ],
)
def test_from_pretrained_path_errors(name, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    with pytest.raises(E2RankModelNotFoundError, match=message):
        E2RankModel.from_pretrained(name)


def test_from_pretrained_empty_directory_names_the_missing_files(tmp_path):
    with pytest.raises(E2RankModelNotFoundError, match=r"is missing config.json; weights .*; a tokenizer"):
        E2RankModel.from_pretrained(tmp_path)


def test_tiny_random_works_in_python_and_says_when_it_is_generated(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("E2RANK_CACHE_DIR", str(tmp_path))
    model = E2RankModel.from_pretrained("tiny-random")
    assert (model.name_or_path, model.dimension, model.embed_documents(["a"]).shape) == ("tiny-random", 64, (1, 64))
    err = capfd.readouterr().err
    target = tmp_path / f"{TINY_RANDOM}-v{_FORMAT_VERSION}"
    assert f"e2rank: generating the random-weight checkpoint tiny-random in {target} (once" in err
    assert "e2rank: tiny-random ready in " in err
    E2RankModel.from_pretrained("tiny-random")
    assert "generating" not in capfd.readouterr().err  # generated once, then reused


def test_cli_unreachable_hub_fails_with_the_message():
    result = subprocess.run(
        [E2RANK, "rerank", "--query", "q", "--model", "no/such-model"],
        input="a passage\n",
        capture_output=True,
        text=True,
        env=env_of("unreachable"),
        timeout=300,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("e2rank rerank: error: could not load model 'no/such-model': the Hugging Face Hub")
    assert " is unreachable (" in result.stderr and "--model /path/to/E2Rank-0.6B" in result.stderr
    assert "'tiny-random'" in result.stderr and "Traceback" not in result.stderr


def run_main(*args: str, stdin: str = "a\n") -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        original, sys.stdin = sys.stdin, io.StringIO(stdin)
        try:
            code = main(list(args))
        finally:
            sys.stdin = original
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("no/such-model", "the Hugging Face Hub at "),
        ("relative/missing/model", "no such directory"),
        ("models/missing", "no such directory"),
        ("empty", "is missing config.json; weights"),
    ],
)
def test_cli_errors_in_process(model, message, no_hub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "empty").mkdir()
    code, _, err = run_main("embed", "--model", model)
    assert code == 1
    assert err.startswith(f"e2rank embed: error: could not load model '{model}': ")
    assert message in err


def test_cli_tiny_random(tiny_cache_dir, no_hub, monkeypatch):
    monkeypatch.setenv("E2RANK_CACHE_DIR", str(tiny_cache_dir))
    code, out, err = run_main("rerank", "--model", TINY_RANDOM, "--query", "q", "--top-n", "1", stdin="alpha\nbeta\n")
    assert code == 0, err
    assert len(out.splitlines()) == 1


def test_chroma_rebuilds_a_tiny_random_function_in_another_process(tiny_cache_dir, tmp_path, monkeypatch):
    chromadb = pytest.importorskip("chromadb")
    from e2rank_integrations.chroma import E2RankEmbeddingFunction

    monkeypatch.setenv("E2RANK_CACHE_DIR", str(tiny_cache_dir))
    function = E2RankEmbeddingFunction(model=TINY_RANDOM)
    collection = chromadb.PersistentClient(path=str(tmp_path / "db")).create_collection(
        "docs", embedding_function=function
    )
    collection.add(ids=["a", "b"], documents=["Paris is the capital of France.", "Bees make honey."])
    assert collection.configuration_json["embedding_function"]["config"]["model_name_or_path"] == TINY_RANDOM
    code = (
        "import chromadb, e2rank_integrations.chroma\n"
        f"collection = chromadb.PersistentClient(path={str(tmp_path / 'db')!r}).get_collection('docs')\n"
        "print(collection.query(query_texts=['capital of France?'], n_results=2)['ids'][0])\n"
    )
    env = env_of("unreachable", E2RANK_CACHE_DIR=str(tiny_cache_dir))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    expected = collection.query(query_texts=["capital of France?"], n_results=2)["ids"][0]
    assert result.stdout.strip() == str(expected)
