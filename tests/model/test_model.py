from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from e2rank_integrations import E2RankModel, RankResult
from e2rank_integrations.types import Backend

DOCS = [f"Document {i} is about topic {i % 5}: " + "word " * (i * 7) for i in range(30)]


def test_model_is_a_backend(tiny_model):
    assert isinstance(tiny_model, Backend)


def test_outputs_are_normalised_float32(tiny_model):
    vectors = tiny_model.embed_documents(["a", "b c"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, tiny_model.dimension)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    prompt = tiny_model.embed_prompt("some listwise content")
    assert prompt.shape == (tiny_model.dimension,)
    assert tiny_model.embed_documents([]).shape == (0, tiny_model.dimension)


def test_defaults_on_cpu(tiny_model):
    assert tiny_model.device == "cpu"
    assert tiny_model.dtype == "float32"
    assert tiny_model.model.config._attn_implementation == "sdpa"


def test_batched_equals_one_at_a_time(tiny_path):
    texts = ["x", "short one", "medium " * 40, "long text " * 600, "", "北京 " * 50]
    batched = E2RankModel.from_pretrained(tiny_path, cache=False, batch_size=8).embed_documents(texts)
    single_model = E2RankModel.from_pretrained(tiny_path, cache=False, batch_size=1)
    single = np.stack([single_model.embed_documents([t])[0] for t in texts])
    cosine = np.sum(batched * single, axis=1)
    assert (cosine > 0.9999).all(), cosine


def test_batches_are_length_sorted_and_bounded(tiny_path):
    model = E2RankModel.from_pretrained(tiny_path, cache=False, batch_size=4, max_batch_tokens=64)
    lengths = [3, 50, 10, 40, 5, 60, 2, 1]
    batches = model._batches(lengths)
    assert sorted(i for b in batches for i in b) == list(range(8))
    for batch in batches:
        assert len(batch) <= 4
        assert len(batch) == 1 or len(batch) * lengths[batch[0]] <= 64
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)


def test_truncation_keeps_endoftext_last(tiny_path):
    model = E2RankModel.from_pretrained(tiny_path, max_length=16, cache=False)
    text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen"
    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    ids = tokenizer(text + "<|endoftext|>", add_special_tokens=False)["input_ids"]
    assert len(ids) > 16
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    kept = ids[:15] + [eos]
    reference = AutoModel.from_pretrained(tiny_path).eval()
    with torch.no_grad():
        hidden = reference(input_ids=torch.tensor([kept])).last_hidden_state[0, -1]
    expected = torch.nn.functional.normalize(hidden, dim=-1).numpy()
    np.testing.assert_allclose(model.embed_documents([text])[0], expected, atol=1e-5)
    assert model.stats()["tokens_embedded"] == 16


def test_long_prompt_is_cut_evenly_to_fit(tiny_path):
    model = E2RankModel.from_pretrained(tiny_path, max_length=300, cache=False)
    docs = ["short document", "alpha beta " * 200, "gamma delta " * 200]
    prompt = model.listwise_prompt("query", docs)
    assert model.count_tokens([prompt])[0] <= 300
    assert "[1] short document\n" in prompt
    assert prompt.endswith("Search Query: query<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
    # the two long documents get about the same share
    assert abs(prompt.count("alpha") - prompt.count("gamma")) <= 3
    budgeted = model.listwise_prompt("query", docs, max_prompt_tokens=150)
    assert model.count_tokens([budgeted])[0] <= 150
    assert len(model.rerank("query", docs, max_prompt_tokens=150)) == 3
    with pytest.raises(ValueError, match="without its documents"):
        model.listwise_prompt("query " * 400, docs)


def test_prompt_documents_are_cut_to_1024_words(tiny_model):
    long_doc = " ".join(f"w{i}" for i in range(1500))
    prompt = tiny_model.listwise_prompt("q", [long_doc])
    assert "w1023\nSearch Query: q" in prompt and "w1024" not in prompt


def test_cache_returns_identical_vectors_and_counts(fresh_model):
    first = fresh_model.embed_documents(DOCS[:5])
    stats = fresh_model.stats()
    assert stats["texts_embedded"] == 5 and stats["cache_hits"] == 0
    second = fresh_model.embed_documents(DOCS[:5])
    np.testing.assert_array_equal(first, second)
    stats = fresh_model.stats()
    assert stats["texts_embedded"] == 5 and stats["cache_hits"] == 5


def test_duplicates_in_one_call_are_embedded_once(fresh_model):
    out = fresh_model.embed_documents(["same", "same", "other"])
    np.testing.assert_array_equal(out[0], out[1])
    assert fresh_model.stats()["texts_embedded"] == 2


def test_rerank_after_indexing_embeds_only_the_prompt(fresh_model):
    fresh_model.embed_documents(DOCS)
    fresh_model.reset_stats()
    results = fresh_model.rerank("topic 3", DOCS)
    assert fresh_model.stats()["texts_embedded"] == 1
    assert fresh_model.stats()["cache_hits"] == len(DOCS)
    assert sorted(r.index for r in results) == list(range(len(DOCS)))


def test_rerank_tokenizes_its_prompt_once(fresh_model, monkeypatch):
    fresh_model.embed_documents(DOCS)
    expected = fresh_model.rerank("topic 3", DOCS)
    real, calls = fresh_model.tokenizer, []

    class Counting:
        def __call__(self, texts, **kwargs):
            calls.append(list(texts))
            return real(texts, **kwargs)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(fresh_model, "_tokenizer", Counting())  # the tokenizer is read-only: under the hood
    assert fresh_model.rerank("topic 4", DOCS) != expected
    # The prompt is measured against the token budget, then embedded from the same ids.
    assert len(calls) == 1 and len(calls[0]) == 1 and "topic 4" in calls[0][0]


def test_queries_and_documents_do_not_share_cache_entries(fresh_model):
    fresh_model.embed_documents(["hello"])
    fresh_model.embed_queries(["hello"])
    assert fresh_model.stats()["texts_embedded"] == 2


def test_another_model_or_setting_never_hits(tiny_path, other_tiny_path, tmp_path):
    path = tmp_path / "cache.sqlite"
    first = E2RankModel.from_pretrained(tiny_path, cache=path)
    first.embed_documents(DOCS[:4])
    other = E2RankModel.from_pretrained(other_tiny_path, cache=path)
    other.embed_documents(DOCS[:4])
    assert other.stats()["cache_hits"] == 0
    shorter = E2RankModel.from_pretrained(tiny_path, cache=path, max_length=64)
    shorter.embed_documents(DOCS[:4])
    assert shorter.stats()["cache_hits"] == 0
    same = E2RankModel.from_pretrained(tiny_path, cache=path)
    same.embed_documents(DOCS[:4])
    assert same.stats()["cache_hits"] == 4 and same.stats()["texts_embedded"] == 0
    assert len({first.fingerprint, other.fingerprint, shorter.fingerprint}) == 3


INDEXER = """
import sys
from e2rank_integrations import E2RankModel
model = E2RankModel.from_pretrained(sys.argv[1], cache=sys.argv[2])
model.embed_documents([f"doc {i}" for i in range(20)])
print(model.stats()["texts_embedded"])
"""


def test_sqlite_cache_survives_a_process_restart(tiny_path, tmp_path):
    path = tmp_path / "index.sqlite"
    out = subprocess.run([sys.executable, "-c", INDEXER, str(tiny_path), str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "20"
    model = E2RankModel.from_pretrained(tiny_path, cache=path)
    model.rerank("doc 3", [f"doc {i}" for i in range(20)])
    assert model.stats()["texts_embedded"] == 1  # only the prompt
    assert model.stats()["cache_hits"] == 20


def test_concurrent_reranks_equal_sequential(tiny_path):
    model = E2RankModel.from_pretrained(tiny_path, cache=False)
    queries = [f"topic {i}" for i in range(6)]
    expected = {q: model.rerank(q, DOCS) for q in queries}
    got: dict[str, list[RankResult]] = {}
    errors: list[BaseException] = []

    def work(q):
        try:
            got[q] = model.rerank(q, DOCS)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(q,)) for q in queries * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for q in queries:
        assert [r.index for r in got[q]] == [r.index for r in expected[q]]
        np.testing.assert_allclose([r.score for r in got[q]], [r.score for r in expected[q]], atol=1e-6)


def test_inputs_are_not_mutated(tiny_model):
    docs = list(DOCS[:6])
    before = copy.deepcopy(docs)
    stored = tiny_model.embed_documents(docs)
    stored_before = stored.copy()
    tiny_model.rerank("q", docs, doc_embeddings=stored)
    assert docs == before
    np.testing.assert_array_equal(stored, stored_before)


# ---------------------------------------------------------------- bad input


def test_empty_document_list_gives_empty_result(tiny_model):
    assert tiny_model.rerank("q", []) == []


def test_empty_string_documents_are_scored(tiny_model):
    results = tiny_model.rerank("q", ["", "text", ""])
    assert sorted(r.index for r in results) == [0, 1, 2]


@pytest.mark.parametrize("query", ["", "   ", "\n"])
def test_empty_query_is_a_value_error(tiny_model, query):
    with pytest.raises(ValueError, match="query must be a non-empty string"):
        tiny_model.rerank(query, ["a"])


def test_non_string_items_name_the_index(tiny_model):
    with pytest.raises(TypeError, match=r"documents\[1\] must be a string, got int"):
        tiny_model.rerank("q", ["a", 3])
    with pytest.raises(TypeError, match=r"texts\[0\] must be a string, got NoneType"):
        tiny_model.embed_documents([None])
    with pytest.raises(TypeError, match="not a single str"):
        tiny_model.embed_queries("one query")
    with pytest.raises(TypeError, match="query must be a string"):
        tiny_model.rerank(["q"], ["a"])


@pytest.mark.parametrize(("top_n", "error"), [(0, ValueError), (-2, ValueError), (1.5, TypeError)])
def test_bad_top_n(tiny_model, top_n, error):
    with pytest.raises(error, match="top_n"):
        tiny_model.rerank("q", ["a", "b"], top_n=top_n)


def test_top_n_larger_than_the_list_returns_all(tiny_model):
    assert len(tiny_model.rerank("q", ["a", "b"], top_n=10)) == 2
    assert len(tiny_model.rerank("q", ["a", "b", "c"], top_n=2)) == 2


def test_mismatched_doc_embeddings(tiny_model):
    with pytest.raises(ValueError, match=r"shape \(2, dim\)"):
        tiny_model.rerank("q", ["a", "b"], doc_embeddings=np.ones((3, tiny_model.dimension)))
    with pytest.raises(ValueError, match="dimension"):
        tiny_model.rerank("q", ["a", "b"], doc_embeddings=np.ones((2, 7)))
    with pytest.raises(ValueError, match="NaN"):
        tiny_model.rerank("q", ["a"], doc_embeddings=np.full((1, tiny_model.dimension), np.nan))


@pytest.mark.parametrize("name", ["num_prompt_docs", "passes", "max_prompt_tokens"])
def test_bad_counts(tiny_model, name):
    with pytest.raises(ValueError, match=f"{name} must be >= 1"):
        tiny_model.rerank("q", ["a"], **{name: 0})


def test_bad_load_arguments(tiny_path):
    with pytest.raises(ValueError, match="dtype must be one of"):
        E2RankModel.from_pretrained(tiny_path, dtype="float8")
    with pytest.raises(ValueError, match="quantize"):
        E2RankModel.from_pretrained(tiny_path, quantize="int4")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        E2RankModel.from_pretrained(tiny_path, batch_size=0)


def test_checkpoint_is_written_like_the_real_ones(tiny_path):
    config = json.loads((tiny_path / "config.json").read_text())
    assert config["rope_theta"] == 1000000 and "rope_parameters" not in config
    assert config["vocab_size"] == 151669
    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    for token, expected in [("<|endoftext|>", 151643), ("<|im_start|>", 151644), ("<think>", 151667)]:
        assert tokenizer.convert_tokens_to_ids(token) == expected
    loaded = AutoModel.from_pretrained(tiny_path).config
    theta = (getattr(loaded, "rope_parameters", None) or {}).get("rope_theta", getattr(loaded, "rope_theta", None))
    assert theta == 1000000


def test_checkpoint_is_deterministic(tiny_path, tmp_path):
    from e2rank_integrations.checkpoints import make_random_checkpoint

    again = make_random_checkpoint(tmp_path / "again", seed=0)
    assert (again / "model.safetensors").read_bytes() == (tiny_path / "model.safetensors").read_bytes()
    assert E2RankModel.from_pretrained(again).fingerprint == E2RankModel.from_pretrained(tiny_path).fingerprint


def test_shared_model_loads_once_per_settings(tiny_path):
    from e2rank_integrations.model import shared_model

    first = shared_model(tiny_path)
    assert shared_model(str(tiny_path)) is first
    assert shared_model(tiny_path, max_length=128) is not first
    assert shared_model(tiny_path, max_length=128).max_length == 128


def test_int8_quantization_agrees_with_float32(tiny_path, tiny_model):
    int8 = E2RankModel.from_pretrained(tiny_path, quantize="int8")
    assert int8.dtype == "int8"
    assert int8.fingerprint != tiny_model.fingerprint  # int8 vectors never come out of a float32 cache entry
    layers = {name: type(m) for name, m in int8.model.named_modules() if name.endswith("_proj")}
    quantized = torch.ao.nn.quantized.dynamic.Linear
    assert {kind for name, kind in layers.items() if name.endswith("o_proj")} == {torch.nn.Linear}
    assert {kind for name, kind in layers.items() if not name.endswith("o_proj")} == {quantized}
    texts = [f"Document {i} about topic {i % 5}. " + "words " * (3 * i) for i in range(12)]
    cosine = np.sum(int8.embed_documents(texts) * tiny_model.embed_documents(texts), axis=1)
    assert cosine.min() > 0.95, cosine
    assert sorted(r.index for r in int8.rerank("topic 3", texts)) == list(range(12))
