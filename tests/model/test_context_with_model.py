"""pack_context over a real model: the cache gives the vectors (no forward pass), the tokenizer the counts."""

from __future__ import annotations

from e2rank_integrations.context import apack_context, estimate_tokens, pack_context
from helpers import AsyncModel

DOCS = [f"Passage {i} is about topic {i % 4}. " + "detail " * (3 * i) for i in range(12)]


def test_after_indexing_packing_embeds_nothing_and_fits_the_model_tokens(fresh_model):
    fresh_model.embed_documents(DOCS)  # indexing fills the cache
    before = fresh_model.stats()["texts_embedded"]
    ranked = fresh_model.rerank("topic 2", DOCS)
    order = [r.index for r in ranked]
    packed = pack_context(
        "topic 2",
        [DOCS[i] for i in order],
        backend=fresh_model,
        max_tokens=120,
        scores=[r.score for r in ranked],
        diversity=0.3,
    )
    assert fresh_model.stats()["texts_embedded"] - before == 1  # the rerank's prompt; packing embedded nothing
    assert packed.tokens == fresh_model.count_tokens([packed.text])[0] <= 120  # the model's tokenizer counted
    assert packed.items and packed.items[-1].truncated


def test_near_duplicates_by_the_model_vectors(fresh_model):
    docs = [DOCS[0], DOCS[0] + " ", DOCS[5]]  # the first two differ by a space: not equal, nearly the same vector
    vectors = fresh_model.embed_documents(docs)
    assert float(vectors[0] @ vectors[1]) > 0.95
    packed = pack_context("topic", docs, backend=fresh_model, max_tokens=1000)
    assert [item.index for item in packed.items] == [0, 2] and packed.dropped == {1: "duplicate of [1]"}


async def test_async_backend_gives_the_same_packing(fresh_model):
    fresh_model.embed_documents(DOCS)
    options = {"max_tokens": 80, "diversity": 0.5, "count_tokens": lambda text: fresh_model.count_tokens([text])[0]}
    sync = pack_context("topic 1", DOCS, backend=fresh_model, **options)
    assert await apack_context("topic 1", DOCS, backend=AsyncModel(fresh_model), **options) == sync
    assert await apack_context("topic 1", DOCS, backend=fresh_model, **options) == sync  # a sync one, in a thread


def test_the_estimate_bounds_the_model_tokens_from_above(tiny_model):
    # What the issue measured the old estimate under-counting: numbers, URLs, base64, emoji (and CJK, prose).
    texts = [
        "3.14159265358979 2718281828 1618033988 " * 5,
        "https://example.com/a/b?c=1&d=%20e#f " * 5,
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0MTIzNDU2Nzg5Ky8=" * 5,
        "🙂🚀🎉👍🏽 " * 10,
        "北京是中国的首都。",
        "Paris is the capital of France.",
    ]
    for text, tokens in zip(texts, tiny_model.count_tokens(texts), strict=True):
        assert tokens <= estimate_tokens(text), text
    packed = pack_context("q", texts, max_tokens=40)  # no backend: the estimate counts, the real tokens fit
    assert tiny_model.count_tokens([packed.text])[0] <= packed.tokens <= 40
