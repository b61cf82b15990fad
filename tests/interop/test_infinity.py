"""The remote path against a real Infinity server (a sentence-transformers engine): exact where it can be, refused
where it cannot.

Runs in ``tox -e interop``, which installs Infinity 0.0.78 in its own environment (with a transformers that
knows Qwen3: see tox.ini). Elsewhere it is skipped, unless ``E2RANK_REQUIRE_INFINITY=1`` says it must run.
Infinity strips leading and trailing whitespace from every input (sentence-transformers' ``Transformer.tokenize``)
and refuses token ids (422): documents and queries come out exact; the listwise prompt, which ends with
``"</think>\\n\\n"``, would not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest

from e2rank_integrations import E2RankClient, E2RankCompatibilityError, E2RankModel
from e2rank_integrations.checkpoints import add_sentence_transformers_modules, make_random_checkpoint
from helpers import free_port, stop

REQUIRED = os.environ.get("E2RANK_REQUIRE_INFINITY") == "1"
INFINITY = shutil.which("infinity_emb", path=str(Path(sys.executable).parent))
if INFINITY is None:
    if REQUIRED:
        raise RuntimeError("E2RANK_REQUIRE_INFINITY=1 but infinity_emb is not installed in this environment")
    pytest.skip("Infinity is not installed (tox -e interop runs these tests)", allow_module_level=True)

DOCS = [f"Document {i} is about topic {i % 4}. " + "filler " * (i % 7) for i in range(12)]
QUERIES = ["Which document is about topic 2?", "topic 3"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny checkpoint with the sentence-transformers module files for last-token pooling."""
    return add_sentence_transformers_modules(make_random_checkpoint(tmp_path_factory.mktemp("tiny-st")))


@pytest.fixture(scope="module")
def model(checkpoint):
    return E2RankModel.from_pretrained(checkpoint)


@pytest.fixture(scope="module")
def infinity(checkpoint, tmp_path_factory):
    """``infinity_emb v2`` on a free loopback port, stopped at the end; yields its base URL (``.../v1``)."""
    port = free_port()
    command = [INFINITY, "v2", "--model-id", str(checkpoint), "--served-model-name", "e2rank", "--engine", "torch"]
    command += ["--device", "cpu", "--dtype", "float32", "--no-bettertransformer", "--no-compile"]
    command += ["--no-vector-disk-cache", "--no-model-warmup", "--url-prefix", "/v1"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "DO_NOT_TRACK": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0", "HF_HUB_OFFLINE": "1"}
    log = tmp_path_factory.mktemp("infinity") / "infinity.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not _ready(f"http://127.0.0.1:{port}/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Infinity did not start (exit {process.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(process)


def _ready(url):
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def scores_by_index(results):
    return np.asarray([r.score for r in sorted(results, key=lambda r: r.index)])


@pytest.mark.parametrize("with_tokenizer", [False, True])
def test_documents_and_queries_are_exact_and_rerank_is_refused(infinity, model, checkpoint, with_tokenizer):
    """Given a tokenizer, the client sends ids first, falls back from Infinity's 422 to text, and behaves the same."""
    with E2RankClient(infinity, api="openai", model="e2rank", tokenizer=checkpoint if with_tokenizer else None) as c:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # nothing to warn about: no text here loses whitespace
            docs, queries = c.embed_documents(DOCS), c.embed_queries(QUERIES)
        with pytest.raises(E2RankCompatibilityError) as refused:
            c.rerank(QUERIES[0], DOCS)
        with pytest.raises(E2RankCompatibilityError):
            c.embed_prompt("listwise content")
    np.testing.assert_allclose(docs, model.embed_documents(DOCS), atol=1e-5)
    np.testing.assert_allclose(queries, model.embed_queries(QUERIES), atol=1e-5)
    message = str(refused.value)
    assert "strips trailing whitespace" in message and "e2rank serve" in message and "allow_inexact=True" in message
    assert ("refused token ids: HTTP 422" in message) is with_tokenizer
    print(
        f"\nInfinity (tokenizer given: {with_tokenizer}): max abs difference documents "
        f"{np.abs(docs - model.embed_documents(DOCS)).max():.2e}, queries "
        f"{np.abs(queries - model.embed_queries(QUERIES)).max():.2e}; rerank: {type(refused.value).__name__}"
    )


def test_allow_inexact_reranks_with_a_warning(infinity, model):
    with (
        E2RankClient(infinity, api="openai", model="e2rank", allow_inexact=True) as client,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        ranked = client.rerank(QUERIES[0], DOCS)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1 and runtime[0].filename == __file__
    assert "approximate" in str(runtime[0].message)
    difference = np.abs(scores_by_index(ranked) - scores_by_index(model.rerank(QUERIES[0], DOCS))).max()
    assert difference > 1e-3  # inexact indeed: Infinity stripped the prompt's trailing "\n\n"
    print(f"\nInfinity with allow_inexact=True: rerank scores off by up to {difference:.3f}")


def test_documents_that_start_with_whitespace_warn(infinity, model):
    docs = ["  An indented passage.", "A plain passage."]
    with (
        E2RankClient(infinity, api="openai", model="e2rank") as client,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        vectors = client.embed_documents(docs)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1 and runtime[0].filename == __file__
    assert "strips leading whitespace: 1 of 2 document texts" in str(runtime[0].message)
    np.testing.assert_allclose(vectors[1], model.embed_documents(docs[1:])[0], atol=1e-5)
    assert np.abs(vectors[0] - model.embed_documents(docs[:1])[0]).max() > 1e-3  # what the warning is about
