"""The model's seams: bad cache rows, fixed settings, the tokenizer lock, close(), the shared registry, bad text."""

from __future__ import annotations

import gc
import logging
import sqlite3
import threading
import weakref

import numpy as np
import pytest

from e2rank_integrations import E2RankModel, E2RankValueError, SQLiteCache
from e2rank_integrations.cache import cache_key

DOCS = ["Paris is the capital of France.", "Gravity pulls masses together.", "A third document."]


# ---------------------------------------------------------------------------- bad cache rows


def test_cache_rows_of_the_wrong_length_or_norm_are_misses_and_are_rewritten(tiny_path, tmp_path, caplog):
    path = tmp_path / "cache.sqlite"
    with E2RankModel.from_pretrained(tiny_path, cache=False) as plain:
        expected = plain.embed_documents(DOCS * 2)
    with E2RankModel.from_pretrained(tiny_path, cache=path) as model:
        dim = model.dimension
        bad_rows = [
            np.float32(1.0),  # one float32: numpy would broadcast it into a whole row of 1.0s
            np.ones(dim - 1, np.float32),
            np.ones(2 * dim, np.float32),
            np.full(dim, np.nan, np.float32),
            np.full(dim, 3.0, np.float32),  # the right length, but not an embedding (not unit length)
            np.ones(dim, np.float32) / np.sqrt(dim),  # a unit vector, the right length: the cache cannot tell
        ]
        texts = [*DOCS, *(f"other {i}" for i in range(3))]
        keys = [cache_key(model.fingerprint, model.prompts.document(t)) for t in texts]
        with sqlite3.connect(path) as conn:  # as a crash, a bug or another program could have left them
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?)",
                [(key, np.asarray(row).tobytes()) for key, row in zip(keys, bad_rows)],
            )
        with caplog.at_level(logging.WARNING, logger="e2rank_integrations.model"):
            got = model.embed_documents(DOCS * 2)
        np.testing.assert_allclose(got, expected, atol=1e-5)  # never a broadcast or garbage row
        assert "3 cached embedding(s)" in caplog.text and "wrong length or norm" in caplog.text
        assert model.stats()["texts_embedded"] == 3  # the three bad rows, each once
    with sqlite3.connect(path) as conn:  # rewritten with the real vectors
        rows = dict(conn.execute("SELECT key, vector FROM embeddings"))
    for key, row in zip(keys[:3], expected[:3]):
        np.testing.assert_allclose(np.frombuffer(rows[key], dtype=np.float32), row, atol=1e-6)


def test_a_corrupt_cache_file_does_not_stop_a_model_from_loading(tiny_path, tmp_path, caplog):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)  # a file cut short just after its header
    with caplog.at_level(logging.WARNING, logger="e2rank_integrations.cache"):
        model = E2RankModel.from_pretrained(tiny_path, cache=path)
    assert "is corrupt" in caplog.text and "moved it to" in caplog.text
    assert model.embed_documents(DOCS).shape == (3, model.dimension)


# ---------------------------------------------------------------------------- fixed settings, close


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_length", 512),
        ("quantize", "int8"),
        ("model", None),
        ("tokenizer", None),
        ("fingerprint", "x"),
        ("name_or_path", "other"),
    ],
)
def test_settings_the_fingerprint_covers_are_read_only(tiny_model, name, value):
    before = getattr(tiny_model, name)
    with pytest.raises(AttributeError, match=rf"E2RankModel\.{name} is fixed .* Load a new model instead"):
        setattr(tiny_model, name, value)
    assert getattr(tiny_model, name) is before


def test_close_and_the_context_manager_close_the_sqlite_file(tiny_path, tmp_path):
    sqlite = SQLiteCache(tmp_path / "cache.sqlite")
    with E2RankModel.from_pretrained(tiny_path, cache=sqlite) as model:
        model.embed_documents(DOCS)
        assert not sqlite.closed
    assert sqlite.closed
    assert model.embed_documents(DOCS[:1]).shape == (1, model.dimension)  # still usable: it reopens
    model.close()
    assert sqlite.closed


# ---------------------------------------------------------------------------- the tokenizer lock


def test_every_tokenizer_call_holds_the_tokenizer_lock(tiny_path):
    model = E2RankModel.from_pretrained(tiny_path)
    lock, real, calls = model._tokenizer_lock, model.tokenizer, []

    class Checked:
        """The real tokenizer; every call into it records whether the model's tokenizer lock was held."""

        def __call__(self, *args, **kwargs):
            calls.append(("__call__", lock.locked()))
            return real(*args, **kwargs)

        def __len__(self):
            calls.append(("__len__", lock.locked()))
            return len(real)

        def __getattr__(self, name):
            attribute = getattr(real, name)
            if not callable(attribute):
                return attribute

            def checked(*args, **kwargs):
                calls.append((name, lock.locked()))
                return attribute(*args, **kwargs)

            return checked

    model._tokenizer = Checked()
    long_docs = [f"document {i} " + "word " * 400 for i in range(4)]
    model.rerank("a query", long_docs, max_prompt_tokens=300)  # cuts the prompt documents: decode, chat template
    model.embed_prompt("content")
    model.count_tokens(["a", "b"])
    model.decode([1, 2, 3])
    model.embed_queries(["q"])
    names = {name for name, _ in calls}
    assert {"__call__", "decode", "apply_chat_template"} <= names, names
    assert [call for call in calls if not call[1]] == []  # every one under the lock


# ---------------------------------------------------------------------------- the registry


def test_shared_models_are_keyed_on_settings_with_defaults_filled_in(tiny_path, tmp_path):
    from e2rank_integrations.registry import REGISTRY, shared_model

    first = shared_model(tiny_path)
    assert shared_model(str(tiny_path), device=None) is first  # device=None is no device
    assert shared_model(tiny_path, max_length=8192, dtype=None) is first  # the defaults, given
    cached = shared_model(tiny_path, cache=tmp_path / "shared.sqlite")
    assert cached is not first
    cached.embed_documents(DOCS)
    sqlite = cached.cache.tiers[-1]
    assert not sqlite.closed
    gone = weakref.ref(first)
    REGISTRY.close()  # closes what it loaded, and forgets it
    assert sqlite.closed
    del first, cached
    gc.collect()
    assert gone() is None  # the registry held the last reference: the weights are released
    assert shared_model(tiny_path).embed_documents(DOCS[:1]).shape[0] == 1  # loaded again on demand


# ---------------------------------------------------------------------------- text that is not Unicode


def test_a_lone_surrogate_is_named_not_passed_to_the_tokenizer(tiny_model):
    bad = "caf" + chr(0xD800)
    with pytest.raises(E2RankValueError, match=r"^texts\[1\] is not valid Unicode text: .*U\+D800"):
        tiny_model.embed_documents(["fine", bad])
    with pytest.raises(ValueError, match=r"documents\[0\] is not valid Unicode text"):
        tiny_model.rerank("a query", [bad])
    with pytest.raises(ValueError, match=r"^query is not valid Unicode text"):
        tiny_model.rerank(bad, ["a document"])


def test_concurrent_calls_through_the_tokenizer_agree_with_sequential_ones(tiny_path):
    model = E2RankModel.from_pretrained(tiny_path, cache=False)
    docs = [f"doc {i} " + "text " * (i * 30) for i in range(12)]
    expected = [model.listwise_prompt(f"query {i}", docs, max_prompt_tokens=200) for i in range(8)]
    results: dict[int, str] = {}

    def work(i):
        results[i] = model.listwise_prompt(f"query {i}", docs, max_prompt_tokens=200)
        model.count_tokens(docs)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [results[i] for i in range(8)] == expected
