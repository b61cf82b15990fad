"""E2RankEmbeddings and E2RankRerank with real LangChain objects and tiny generated checkpoints."""

from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import ValidationError

from e2rank_integrations import E2RankModel
from e2rank_integrations import langchain as e2rank_langchain
from e2rank_integrations.errors import E2RankTypeError
from e2rank_integrations.langchain import E2RankEmbeddings, E2RankRerank
from helpers import AsyncModel, run_python

QUERY = "Which topic is document seven about?"
DOCS = [
    Document(
        page_content=f"Document {i} is about topic {i % 5}. " + "filler words " * (i % 9),
        metadata={"source": f"file-{i}.txt", "tags": ["t", str(i)], "nested": {"n": i}},
        id=f"doc-{i}",
    )
    for i in range(50)
]


# ---------------------------------------------------------------- the module


def test_public_names():
    assert e2rank_langchain.__all__ == ["E2RankEmbeddings", "E2RankRerank", "E2RankRetriever", "create_e2rank_tool"]


def test_import_needs_no_torch():
    result = run_python(
        """
        import sys
        import e2rank_integrations.langchain
        print(sorted({"torch", "transformers"} & set(sys.modules)))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------- E2RankEmbeddings


def test_embeddings_delegate_to_the_backend(tiny_model):
    embeddings = E2RankEmbeddings(backend=tiny_model)
    texts = [d.page_content for d in DOCS[:5]]
    np.testing.assert_array_equal(
        np.array(embeddings.embed_documents(texts), np.float32), tiny_model.embed_documents(texts)
    )
    np.testing.assert_array_equal(
        np.array(embeddings.embed_query(QUERY), np.float32), tiny_model.embed_queries([QUERY])[0]
    )
    assert embeddings.embed_documents([]) == []


def test_documents_and_queries_are_embedded_differently(tiny_model):
    embeddings = E2RankEmbeddings(backend=tiny_model)
    assert embeddings.embed_query("same text") != embeddings.embed_documents(["same text"])[0]


def test_instruction(tiny_model):
    embeddings = E2RankEmbeddings(backend=tiny_model, instruction="Find code for the question")
    expected = tiny_model.embed_queries([QUERY], instruction="Find code for the question")[0]
    np.testing.assert_array_equal(np.array(embeddings.embed_query(QUERY), np.float32), expected)
    assert embeddings.embed_query(QUERY) != E2RankEmbeddings(backend=tiny_model).embed_query(QUERY)


def test_query_instruction_is_the_deprecated_name_of_instruction(tiny_model, tiny_path):
    with pytest.warns(DeprecationWarning, match="`query_instruction` is deprecated, use `instruction`"):
        old = E2RankEmbeddings(backend=tiny_model, query_instruction="Find code for the question")
    assert old.instruction == "Find code for the question"
    new = E2RankEmbeddings(backend=tiny_model, instruction="Find code for the question")
    assert old.embed_query(QUERY) == new.embed_query(QUERY) != E2RankEmbeddings(backend=tiny_model).embed_query(QUERY)
    with pytest.raises(E2RankTypeError, match="give `instruction` only"):
        E2RankEmbeddings(backend=tiny_model, instruction="Q", query_instruction="Q")
    with pytest.warns(DeprecationWarning, match="E2RankEmbeddings.from_pretrained: `query_instruction`"):
        assert E2RankEmbeddings.from_pretrained(str(tiny_path), query_instruction="Q").instruction == "Q"
    with pytest.raises(E2RankTypeError, match="give `instruction` only"):
        E2RankEmbeddings.from_pretrained(str(tiny_path), instruction="Q", query_instruction="Q")


def test_batch_size_splits_calls_not_results(fresh_model, capsys):
    texts = [d.page_content for d in DOCS[:7]]
    embeddings = E2RankEmbeddings(backend=fresh_model, batch_size=3, show_progress=True)
    chunked = embeddings.embed_documents(texts)
    assert "Embedding 7 documents" in capsys.readouterr().err
    assert fresh_model.stats()["batches"] == 3  # one call per chunk of 3
    np.testing.assert_allclose(chunked, fresh_model.embed_documents(texts), atol=1e-6)


def test_from_pretrained_passes_model_options(tiny_path, tmp_path):
    embeddings = E2RankEmbeddings.from_pretrained(
        str(tiny_path), instruction="Q", batch_size=8, cache=tmp_path / "cache.sqlite"
    )
    assert isinstance(embeddings.backend, E2RankModel)
    assert (embeddings.instruction, embeddings.batch_size, embeddings.show_progress) == ("Q", 8, False)
    embeddings.embed_documents(["stored"])
    assert (tmp_path / "cache.sqlite").exists()


def test_embeddings_bad_arguments(tiny_model):
    with pytest.raises(TypeError, match="has no embed_queries"):
        E2RankEmbeddings(backend="Alibaba-NLP/E2Rank-0.6B")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        E2RankEmbeddings(backend=tiny_model, model_name="x")
    with pytest.raises(ValidationError, match="batch_size"):
        E2RankEmbeddings(backend=tiny_model, batch_size=0)
    embeddings = E2RankEmbeddings(backend=tiny_model)
    with pytest.raises(TypeError, match=r"texts\[1\] must be a string"):
        embeddings.embed_documents(["a", None])
    with pytest.raises(TypeError, match="not a single str"):
        embeddings.embed_documents("a")
    with pytest.raises(TypeError, match="text must be a string, got int"):
        embeddings.embed_query(3)


async def test_embeddings_async_backend(tiny_model):
    embeddings = E2RankEmbeddings(backend=AsyncModel(tiny_model), batch_size=2)
    texts = [d.page_content for d in DOCS[:5]]
    assert await embeddings.aembed_documents(texts) == E2RankEmbeddings(backend=tiny_model).embed_documents(texts)
    assert await embeddings.aembed_query(QUERY) == E2RankEmbeddings(backend=tiny_model).embed_query(QUERY)
    with pytest.raises(TypeError, match="use aembed_documents"):
        embeddings.embed_documents(texts)
    with pytest.raises(TypeError, match="use aembed_query"):
        embeddings.embed_query(QUERY)


async def test_embeddings_async_methods_on_a_sync_backend(tiny_model):
    embeddings = E2RankEmbeddings(backend=tiny_model)
    assert await embeddings.aembed_documents(["x", "y"]) == embeddings.embed_documents(["x", "y"])
    assert await embeddings.aembed_query("x") == embeddings.embed_query("x")


# ---------------------------------------------------------------- E2RankRerank


def test_order_and_scores_equal_backend_rerank(tiny_model):
    reranker = E2RankRerank(backend=tiny_model, top_n=None)
    out = reranker.compress_documents(DOCS, QUERY)
    expected = tiny_model.rerank(QUERY, [d.page_content for d in DOCS])
    assert [d.id for d in out] == [DOCS[r.index].id for r in expected]
    assert [d.metadata["relevance_score"] for d in out] == [r.score for r in expected]


def test_options_reach_the_backend(tiny_model):
    options = {"num_prompt_docs": 4, "instruction": "Rank these:", "max_prompt_tokens": 60}
    out = E2RankRerank(backend=tiny_model, top_n=None, **options).compress_documents(DOCS, QUERY)
    texts = [d.page_content for d in DOCS]
    expected = tiny_model.rerank(QUERY, texts, **options)
    assert [d.metadata["relevance_score"] for d in out] == [r.score for r in expected]
    assert expected != tiny_model.rerank(QUERY, texts)
    assert expected != tiny_model.rerank(QUERY, texts, num_prompt_docs=4, instruction="Rank these:")  # the cap cut


def test_new_documents_keep_ids_content_and_metadata(tiny_model):
    docs = copy.deepcopy(DOCS)  # the caller's Documents
    out = E2RankRerank(backend=tiny_model, top_n=None, score_key="e2rank").compress_documents(docs, QUERY)
    assert docs == DOCS  # not mutated
    by_id = {d.id: d for d in docs}
    for doc in out:
        original = by_id[doc.id]
        assert doc is not original and doc.metadata is not original.metadata
        assert doc.page_content == original.page_content
        assert doc.metadata == {**original.metadata, "e2rank": doc.metadata["e2rank"]}
        assert isinstance(doc.metadata["e2rank"], float)
    out[0].metadata["tags"].append("changed downstream")
    out[0].metadata["nested"]["n"] = -1
    assert docs == DOCS  # nested metadata is copied too


def test_top_n_and_threshold(tiny_model):
    scores = [r.score for r in tiny_model.rerank(QUERY, [d.page_content for d in DOCS])]
    assert len(E2RankRerank(backend=tiny_model).compress_documents(DOCS, QUERY)) == 3  # the default
    assert len(E2RankRerank(backend=tiny_model, top_n=1000).compress_documents(DOCS, QUERY)) == 50
    assert len(E2RankRerank(backend=tiny_model, top_n=None).compress_documents(DOCS, QUERY)) == 50
    median = scores[25]
    kept = E2RankRerank(backend=tiny_model, top_n=None, score_threshold=median).compress_documents(DOCS, QUERY)
    assert len(kept) == sum(s >= median for s in scores)
    assert all(d.metadata["relevance_score"] >= median for d in kept)
    both = E2RankRerank(backend=tiny_model, top_n=5, score_threshold=median).compress_documents(DOCS, QUERY)
    assert [d.id for d in both] == [d.id for d in kept[:5]]
    none = E2RankRerank(backend=tiny_model, score_threshold=scores[0] + 1e-3).compress_documents(DOCS, QUERY)
    assert none == []


def test_empty_and_single_document(tiny_model):
    reranker = E2RankRerank(backend=tiny_model)
    assert reranker.compress_documents([], QUERY) == []
    (only,) = reranker.compress_documents(DOCS[:1], QUERY)
    assert only.id == DOCS[0].id


def test_empty_page_content_is_scored_like_any_document(tiny_model):
    docs = [*DOCS[:4], Document(page_content="", id="empty")]
    out = E2RankRerank(backend=tiny_model, top_n=None).compress_documents(docs, QUERY)
    expected = tiny_model.rerank(QUERY, [d.page_content for d in docs])
    assert [d.id for d in out] == [docs[r.index].id for r in expected]
    assert "empty" in [d.id for d in out]


def test_rerank_bad_input(tiny_model):
    reranker = E2RankRerank(backend=tiny_model)
    with pytest.raises(ValueError, match="query must be a non-empty string"):
        reranker.compress_documents(DOCS, "  ")
    with pytest.raises(TypeError, match="query must be a string"):
        reranker.compress_documents(DOCS, None)
    with pytest.raises(TypeError, match=r"documents\[1\] must be a langchain_core Document, got str"):
        reranker.compress_documents([DOCS[0], "plain text"], QUERY)
    with pytest.raises(TypeError, match="not a single Document"):
        reranker.compress_documents(DOCS[0], QUERY)
    broken = DOCS[0].model_copy()
    broken.page_content = None  # Documents do not validate assignments
    with pytest.raises(TypeError, match=r"documents\[0\].page_content must be a string"):
        reranker.compress_documents([broken], QUERY)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"backend": object()}, TypeError, "has no embed_queries"),
        ({"top_n": 0}, ValueError, "top_n must be >= 1"),
        ({"top_n": True}, TypeError, "top_n must be a positive integer or None"),
        ({"num_prompt_docs": 0}, ValueError, "num_prompt_docs must be >= 1"),
        ({"score_threshold": float("nan")}, ValueError, "score_threshold"),
        ({"score_key": ""}, ValueError, "score_key"),
        ({"k": 3}, ValueError, "Extra inputs are not permitted"),
    ],
)
def test_rerank_bad_options(tiny_model, options, error, match):
    with pytest.raises(error, match=match):
        E2RankRerank(**{"backend": tiny_model, **options})


async def test_sync_and_async_agree(tiny_model):
    sync_out = E2RankRerank(backend=tiny_model, top_n=10).compress_documents(DOCS, QUERY)
    thread_out = await E2RankRerank(backend=tiny_model, top_n=10).acompress_documents(DOCS, QUERY)
    async_backend = E2RankRerank(backend=AsyncModel(tiny_model), top_n=10)
    async_out = await async_backend.acompress_documents(DOCS, QUERY)
    assert sync_out == thread_out == async_out
    assert await async_backend.acompress_documents([], QUERY) == []
    with pytest.raises(TypeError, match="use acompress_documents"):
        async_backend.compress_documents(DOCS, QUERY)


# ---------------------------------------------------------------- embedding reuse


def test_rerank_after_indexing_embeds_only_the_prompt(fresh_model):
    store = InMemoryVectorStore(E2RankEmbeddings(backend=fresh_model))
    store.add_documents([*DOCS, *(Document(page_content=f"unrelated {i}") for i in range(20))])
    retrieved = store.similarity_search(QUERY, k=50)
    assert len(retrieved) == 50
    fresh_model.reset_stats()
    E2RankRerank(backend=fresh_model, top_n=5).compress_documents(retrieved, QUERY)
    stats = fresh_model.stats()
    assert stats["texts_embedded"] == 1  # the listwise prompt
    assert stats["cache_hits"] == 50  # every candidate


def test_rerank_without_indexing_embeds_every_candidate(fresh_model):
    E2RankRerank(backend=fresh_model).compress_documents(DOCS, QUERY)
    assert fresh_model.stats()["texts_embedded"] == 51


def test_reuse_across_processes_through_a_persistent_cache(tiny_path, tmp_path):
    cache = tmp_path / "index.sqlite"
    E2RankEmbeddings.from_pretrained(str(tiny_path), cache=cache).embed_documents([d.page_content for d in DOCS])
    serving = E2RankModel.from_pretrained(tiny_path, cache=cache)  # a new model object: only the file is shared
    out = E2RankRerank(backend=serving, top_n=5).compress_documents(DOCS, QUERY)
    assert len(out) == 5
    assert serving.stats()["texts_embedded"] == 1
    assert serving.stats()["cache_hits"] == 50


# ---------------------------------------------------------------- inside LangChain


@pytest.fixture
def store(tiny_model):
    vector_store = InMemoryVectorStore(E2RankEmbeddings(backend=tiny_model))
    vector_store.add_documents(DOCS)
    return vector_store


async def test_contextual_compression_retriever(store, tiny_model):
    contextual_compression = pytest.importorskip("langchain_classic.retrievers.contextual_compression")
    base = store.as_retriever(search_kwargs={"k": 20})
    reranker = E2RankRerank(backend=tiny_model, top_n=5)
    retriever = contextual_compression.ContextualCompressionRetriever(base_compressor=reranker, base_retriever=base)
    got = retriever.invoke(QUERY)
    retrieved = base.invoke(QUERY)
    assert got == list(reranker.compress_documents(retrieved, QUERY))
    assert len(got) == 5 and all("relevance_score" in d.metadata for d in got)
    assert [d.id for d in got] != [d.id for d in retrieved[:5]]  # reordered, not the first stage's top 5
    assert await retriever.ainvoke(QUERY) == got


async def test_lcel_chain(store, tiny_model):
    reranker = E2RankRerank(backend=tiny_model, top_n=5)
    chain = {"docs": store.as_retriever(search_kwargs={"k": 20}), "query": RunnablePassthrough()} | RunnableLambda(
        lambda x: reranker.compress_documents(x["docs"], x["query"])
    )
    got = chain.invoke(QUERY)
    assert got == list(reranker.compress_documents(store.similarity_search(QUERY, k=20), QUERY))
    assert await chain.ainvoke(QUERY) == got


# ---------------------------------------------------------------- over the HTTP client (a real e2rank server)


def test_rerank_over_the_client_equals_local(remote_client, tiny_model):
    local = E2RankRerank(backend=tiny_model, top_n=None).compress_documents(DOCS, QUERY)
    remote = E2RankRerank(backend=remote_client, top_n=None).compress_documents(DOCS, QUERY)
    assert [d.id for d in remote] == [d.id for d in local]
    np.testing.assert_allclose(
        [d.metadata["relevance_score"] for d in remote], [d.metadata["relevance_score"] for d in local], atol=1e-5
    )
    assert [d.metadata["source"] for d in remote] == [d.metadata["source"] for d in local]
    options = {"top_n": 4, "num_prompt_docs": 5, "instruction": "Rank these:"}
    local = E2RankRerank(backend=tiny_model, **options).compress_documents(DOCS, QUERY)
    assert [d.id for d in E2RankRerank(backend=remote_client, **options).compress_documents(DOCS, QUERY)] == [
        d.id for d in local
    ]


def test_embeddings_over_the_client_equal_local(remote_client, tiny_model):
    texts = [d.page_content for d in DOCS[:7]]
    remote = E2RankEmbeddings(backend=remote_client, batch_size=3)  # three requests
    local = E2RankEmbeddings(backend=tiny_model)
    np.testing.assert_allclose(remote.embed_documents(texts), local.embed_documents(texts), atol=1e-5)
    np.testing.assert_allclose(remote.embed_query(QUERY), local.embed_query(QUERY), atol=1e-5)
    custom = {"instruction": "Find code for the question"}
    np.testing.assert_allclose(
        E2RankEmbeddings(backend=remote_client, **custom).embed_query(QUERY),
        E2RankEmbeddings(backend=tiny_model, **custom).embed_query(QUERY),
        atol=1e-5,
    )


async def test_async_client_equals_local(server, tiny_model):
    from e2rank_integrations import AsyncE2RankClient

    texts = [d.page_content for d in DOCS[:5]]
    local_embeddings = E2RankEmbeddings(backend=tiny_model)
    local = E2RankRerank(backend=tiny_model, top_n=10).compress_documents(DOCS, QUERY)
    async with AsyncE2RankClient(server.url) as client:
        embeddings = E2RankEmbeddings(backend=client)
        np.testing.assert_allclose(
            await embeddings.aembed_documents(texts), local_embeddings.embed_documents(texts), atol=1e-5
        )
        np.testing.assert_allclose(await embeddings.aembed_query(QUERY), local_embeddings.embed_query(QUERY), atol=1e-5)
        remote = await E2RankRerank(backend=client, top_n=10).acompress_documents(DOCS, QUERY)
        with pytest.raises(TypeError, match="use acompress_documents"):
            E2RankRerank(backend=client).compress_documents(DOCS, QUERY)
    assert [d.id for d in remote] == [d.id for d in local]
    np.testing.assert_allclose(
        [d.metadata["relevance_score"] for d in remote], [d.metadata["relevance_score"] for d in local], atol=1e-5
    )


def test_rerank_through_the_server_after_indexing_through_it_embeds_only_the_prompt(remote_client):
    docs = [d.model_copy(update={"page_content": d.page_content + " (served)"}) for d in DOCS]  # new to the server
    store = InMemoryVectorStore(E2RankEmbeddings(backend=remote_client))
    store.add_documents(docs)  # the server's cache now holds every document's vector
    retrieved = store.similarity_search(QUERY, k=50)
    before = remote_client.stats()
    E2RankRerank(backend=remote_client, top_n=5).compress_documents(retrieved, QUERY)
    after = remote_client.stats()
    assert after["texts_embedded"] - before["texts_embedded"] == 1  # the listwise prompt
    assert after["cache_hits"] - before["cache_hits"] == 50  # every candidate
