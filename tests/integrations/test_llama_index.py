"""The LlamaIndex adapters in real LlamaIndex pipelines, on a tiny generated checkpoint."""

from __future__ import annotations

import asyncio
import copy
import json
from importlib.resources import files

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("llama_index.core")

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from e2rank_integrations import llama_index as adapter
from e2rank_integrations.llama_index import E2RankEmbedding, E2RankRerank
from helpers import AsyncModel

QUERY = "Why does the Moon cause tides?"


def corpus_texts() -> list[str]:
    rows = [
        json.loads(line) for line in files("e2rank_integrations").joinpath("data/corpus.jsonl").read_text().splitlines()
    ]
    texts = [row["text"] for row in rows]
    texts += [f"{row['title']}. {row['text']}" for row in rows[:18]]  # 60 distinct passages in all
    return texts


TEXTS = corpus_texts()


class RecordingModel:
    """A sync Backend over a local model that records how many texts each embed_documents call carried."""

    def __init__(self, model):
        self.model = model
        self.document_calls: list[int] = []

    def embed_queries(self, texts, *, instruction=None):
        return self.model.embed_queries(texts, instruction=instruction)

    def embed_documents(self, texts):
        self.document_calls.append(len(texts))
        return self.model.embed_documents(texts)

    def embed_prompt(self, text):
        return self.model.embed_prompt(text)

    def rerank(self, query, documents, **kwargs):
        return self.model.rerank(query, documents, **kwargs)

    def stats(self):
        return self.model.stats()

    def describe(self):
        return self.model.describe()

    def count_tokens(self, texts):
        return self.model.count_tokens(texts)


class Collect(BaseEventHandler):
    """A LlamaIndex instrumentation event handler that keeps the rerank events."""

    events: list = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "Collect"

    def handle(self, event, **kwargs):
        if isinstance(event, (ReRankStartEvent, ReRankEndEvent)):
            self.events.append(event)


@pytest.fixture
def rerank_events():
    handler = Collect()
    root = get_dispatcher()
    root.add_event_handler(handler)
    yield handler.events
    root.event_handlers.remove(handler)


@pytest.fixture
def index(fresh_model):
    """A VectorStoreIndex (default in-memory store) of 60 passages, embedded through ``fresh_model``."""
    docs = [Document(text=t, metadata={"n": i}) for i, t in enumerate(TEXTS)]
    return VectorStoreIndex.from_documents(docs, embed_model=E2RankEmbedding(backend=fresh_model))


def retrieve(index, k=50, query=QUERY):
    return index.as_retriever(similarity_top_k=k).retrieve(query)


def snapshot(nodes):
    return [(n.score, n.node.model_dump()) for n in nodes]


def node_texts(nodes):
    return [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]


# ---------------------------------------------------------------- package


def test_public_names():
    assert adapter.__all__ == ["E2RankEmbedding", "E2RankRerank", "create_e2rank_tool", "e2rank_retriever_tool"]
    assert E2RankEmbedding.class_name() == "E2RankEmbedding"
    assert E2RankRerank.class_name() == "E2RankRerank"


def test_bad_backend_is_a_clear_error():
    with pytest.raises(TypeError, match="str has no embed_queries"):
        E2RankEmbedding(backend="not a model")
    with pytest.raises(TypeError, match="has no embed_queries"):
        E2RankRerank(backend=object())


# ---------------------------------------------------------------- E2RankEmbedding


def test_embedding_queries_with_instruction_texts_without(tiny_model):
    embed = E2RankEmbedding(backend=tiny_model)
    assert embed.model_name == tiny_model.name_or_path
    np.testing.assert_allclose(embed.get_query_embedding("moon"), tiny_model.embed_queries(["moon"])[0], atol=1e-6)
    np.testing.assert_allclose(embed.get_text_embedding("moon"), tiny_model.embed_documents(["moon"])[0], atol=1e-6)
    assert not np.allclose(embed.get_query_embedding("moon"), embed.get_text_embedding("moon"))
    custom = E2RankEmbedding(backend=tiny_model, instruction="Find the passage")
    np.testing.assert_allclose(
        custom.get_query_embedding("moon"),
        tiny_model.embed_queries(["moon"], instruction="Find the passage")[0],
        atol=1e-6,
    )
    batch = embed.get_text_embedding_batch(TEXTS[:5])
    np.testing.assert_allclose(batch, tiny_model.embed_documents(TEXTS[:5]), atol=1e-6)
    assert all(isinstance(x, float) for x in batch[0])


def test_embedding_respects_embed_batch_size(tiny_model):
    recording = RecordingModel(tiny_model)
    embed = E2RankEmbedding(backend=recording, embed_batch_size=3)
    embed.get_text_embedding_batch(TEXTS[:7])
    embed._get_text_embeddings(TEXTS[:7])
    asyncio.run(embed.aget_text_embedding_batch(TEXTS[:7]))
    assert recording.document_calls == [3, 3, 1] * 3
    assert E2RankEmbedding(backend=tiny_model).embed_batch_size == 32
    with pytest.raises(ValueError, match="embed_batch_size"):
        E2RankEmbedding(backend=tiny_model, embed_batch_size=0)


def test_embedding_from_pretrained(tiny_path):
    embed = E2RankEmbedding.from_pretrained(str(tiny_path), instruction="Find it", embed_batch_size=8, cache=False)
    assert embed.backend.cache is None
    assert (embed.instruction, embed.embed_batch_size, embed.model_name) == ("Find it", 8, str(tiny_path))
    assert len(embed.get_query_embedding("moon")) == embed.backend.dimension


def test_embedding_serializes_without_its_backend(tiny_model):
    data = E2RankEmbedding(backend=tiny_model, instruction="Find it").to_dict()
    assert "backend" not in data
    assert data["class_name"] == "E2RankEmbedding"
    assert data["instruction"] == "Find it"


def test_embedding_async_backend(tiny_model):
    embed = E2RankEmbedding(backend=AsyncModel(tiny_model))
    with pytest.raises(TypeError, match=r"async backend.*aget_query_embedding"):
        embed.get_query_embedding("moon")
    with pytest.raises(TypeError, match="async backend"):
        embed.get_text_embedding_batch(["moon"])

    async def run():
        return (
            await embed.aget_query_embedding("moon"),
            await embed.aget_text_embedding("moon"),
            await embed.aget_text_embedding_batch(TEXTS[:3]),
        )

    query, text, batch = asyncio.run(run())
    np.testing.assert_allclose(query, tiny_model.embed_queries(["moon"])[0], atol=1e-6)
    np.testing.assert_allclose(text, tiny_model.embed_documents(["moon"])[0], atol=1e-6)
    np.testing.assert_allclose(batch, tiny_model.embed_documents(TEXTS[:3]), atol=1e-6)


def test_index_built_through_an_async_backend_matches_sync(fresh_model):
    docs = [Document(text=t) for t in TEXTS[:12]]
    sync_index = VectorStoreIndex.from_documents(docs, embed_model=E2RankEmbedding(backend=fresh_model))
    async_index = VectorStoreIndex.from_documents(
        docs, embed_model=E2RankEmbedding(backend=AsyncModel(fresh_model)), use_async=True
    )
    hits = asyncio.run(async_index.as_retriever(similarity_top_k=5).aretrieve(QUERY))
    expected = sync_index.as_retriever(similarity_top_k=5).retrieve(QUERY)
    assert [n.node.get_content() for n in hits] == [n.node.get_content() for n in expected]
    assert [n.score for n in hits] == pytest.approx([n.score for n in expected], abs=1e-5)


# ---------------------------------------------------------------- E2RankRerank in a query engine


def test_query_engine_returns_nodes_in_backend_rerank_order(index, fresh_model, rerank_events):
    debug = LlamaDebugHandler()
    engine = RetrieverQueryEngine.from_args(  # what index.as_query_engine builds, here with a callback handler
        index.as_retriever(similarity_top_k=50),
        llm=MockLLM(),
        node_postprocessors=[E2RankRerank(backend=fresh_model, top_n=5)],
        callback_manager=CallbackManager([debug]),
    )
    response = engine.query(QUERY)

    candidates = retrieve(index)
    expected = fresh_model.rerank(QUERY, node_texts(candidates), top_n=5)
    assert [n.node.node_id for n in response.source_nodes] == [candidates[r.index].node.node_id for r in expected]
    assert [n.score for n in response.source_nodes] == pytest.approx([r.score for r in expected], abs=1e-6)

    start, end = rerank_events
    assert isinstance(start, ReRankStartEvent) and isinstance(end, ReRankEndEvent)
    assert start.query.query_str == QUERY
    assert (start.top_n, start.model_name) == (5, fresh_model.name_or_path)
    assert [n.node.node_id for n in start.nodes] == [n.node.node_id for n in candidates]
    assert [n.node.node_id for n in end.nodes] == [n.node.node_id for n in response.source_nodes]

    (pair,) = debug.get_event_pairs(CBEventType.RERANKING)
    assert pair[0].payload[EventPayload.QUERY_STR] == QUERY
    assert pair[0].payload[EventPayload.TOP_K] == 5
    assert len(pair[0].payload[EventPayload.NODES]) == 50
    assert pair[1].payload[EventPayload.NODES] == response.source_nodes


def test_query_engine_sync_equals_async(index, fresh_model, rerank_events):
    def engine(backend):
        return index.as_query_engine(
            similarity_top_k=20, node_postprocessors=[E2RankRerank(backend=backend, top_n=4)], llm=MockLLM()
        )

    sync = engine(fresh_model).query(QUERY)
    thread = asyncio.run(engine(fresh_model).aquery(QUERY))  # sync backend, awaited in a worker thread
    awaited = asyncio.run(engine(AsyncModel(fresh_model)).aquery(QUERY))  # async backend, awaited directly
    for response in (thread, awaited):
        assert [n.node.node_id for n in response.source_nodes] == [n.node.node_id for n in sync.source_nodes]
        assert [n.score for n in response.source_nodes] == pytest.approx([n.score for n in sync.source_nodes])
    assert [type(e) for e in rerank_events] == [ReRankStartEvent, ReRankEndEvent] * 3


def test_retriever_then_postprocess_nodes(index, fresh_model):
    candidates = retrieve(index, k=10)
    before = snapshot(candidates)
    reranker = E2RankRerank(backend=fresh_model, top_n=None)
    out = reranker.postprocess_nodes(candidates, query_str=QUERY)
    same = reranker.postprocess_nodes(candidates, query_bundle=QueryBundle(QUERY))
    expected = fresh_model.rerank(QUERY, node_texts(candidates))
    assert [n.node.node_id for n in out] == [candidates[r.index].node.node_id for r in expected]
    assert [n.score for n in out] == [n.score for n in same]
    assert snapshot(candidates) == before  # scores, metadata, text, embeddings of the inputs untouched
    assert all(o is not c for o in out for c in candidates)  # new NodeWithScore objects
    assert sorted(n.node.node_id for n in out) == sorted(n.node.node_id for n in candidates)
    assert {n.node.node_id: n.node.metadata for n in out} == {n.node.node_id: n.node.metadata for n in candidates}


def test_keep_retrieval_score_copies_the_node(index, fresh_model):
    candidates = retrieve(index, k=6)
    before = snapshot(candidates)
    out = E2RankRerank(backend=fresh_model, top_n=None, keep_retrieval_score=True).postprocess_nodes(
        candidates, query_str=QUERY
    )
    first_stage = {n.node.node_id: n.score for n in candidates}
    for scored in out:
        assert scored.node.metadata["retrieval_score"] == first_stage[scored.node.node_id]
        assert "retrieval_score" not in scored.node.get_content(metadata_mode=MetadataMode.EMBED)
        assert "retrieval_score" not in scored.node.get_content(metadata_mode=MetadataMode.LLM)
        assert scored.node.metadata["n"] is not None
    assert snapshot(candidates) == before
    assert all("retrieval_score" not in n.node.metadata for n in candidates)


@pytest.mark.parametrize(("top_n", "expected"), [(None, 8), (3, 3), (100, 8)])
def test_top_n(tiny_model, top_n, expected):
    nodes = [NodeWithScore(node=TextNode(text=t), score=0.5) for t in TEXTS[:8]]
    out = E2RankRerank(backend=tiny_model, top_n=top_n).postprocess_nodes(nodes, query_str=QUERY)
    assert len(out) == expected
    assert [n.score for n in out] == sorted((n.score for n in out), reverse=True)


def test_defaults_and_bad_settings(tiny_model):
    reranker = E2RankRerank(backend=tiny_model)
    assert (reranker.top_n, reranker.num_prompt_docs, reranker.instruction) == (3, 20, None)
    assert (reranker.keep_retrieval_score, reranker.use_node_embeddings) == (False, True)
    assert "backend" not in reranker.to_dict()
    with pytest.raises(ValueError, match="top_n must be >= 1"):
        E2RankRerank(backend=tiny_model, top_n=0)
    for bad in ("3", True, 2.5):
        with pytest.raises(TypeError, match="top_n must be a positive integer or None"):
            E2RankRerank(backend=tiny_model, top_n=bad)
    with pytest.raises(ValueError, match="num_prompt_docs must be >= 1"):
        E2RankRerank(backend=tiny_model, num_prompt_docs=0)


def test_num_prompt_docs_and_instruction_reach_the_backend(tiny_model):
    nodes = [NodeWithScore(node=TextNode(text=t), score=0.5) for t in TEXTS[:8]]
    options = {"num_prompt_docs": 2, "instruction": "Rank these:", "max_prompt_tokens": 50}
    out = E2RankRerank(backend=tiny_model, top_n=None, **options).postprocess_nodes(nodes, query_str=QUERY)
    expected = tiny_model.rerank(QUERY, TEXTS[:8], **options)
    assert [n.score for n in out] == pytest.approx([r.score for r in expected], abs=1e-6)


def test_passes_and_score_threshold(tiny_model):
    nodes = [NodeWithScore(node=TextNode(text=t), score=0.5) for t in TEXTS[:8]]
    expected = tiny_model.rerank(QUERY, TEXTS[:8], passes=2)
    assert [r.score for r in expected] != [r.score for r in tiny_model.rerank(QUERY, TEXTS[:8])]  # a pass counts
    two = E2RankRerank(backend=tiny_model, top_n=None, passes=2).postprocess_nodes(nodes, query_str=QUERY)
    assert [n.score for n in two] == pytest.approx([r.score for r in expected], abs=1e-6)
    middle = expected[4].score
    kept = E2RankRerank(backend=tiny_model, top_n=3, passes=2, score_threshold=middle)
    assert [n.score for n in kept.postprocess_nodes(nodes, query_str=QUERY)] == [n.score for n in two[:3]]
    few = E2RankRerank(backend=tiny_model, top_n=None, passes=2, score_threshold=middle)
    assert [n.score for n in asyncio.run(few.apostprocess_nodes(nodes, query_str=QUERY))] == [n.score for n in two[:5]]
    with pytest.raises(ValueError, match="passes must be >= 1"):
        E2RankRerank(backend=tiny_model, passes=0)
    with pytest.raises(ValueError, match="score_threshold"):
        E2RankRerank(backend=tiny_model, score_threshold=float("nan"))


def test_empty_no_query_and_bad_nodes(tiny_model, rerank_events):
    reranker = E2RankRerank(backend=tiny_model)
    assert reranker.postprocess_nodes([], query_str=QUERY) == []
    assert asyncio.run(reranker.apostprocess_nodes([], query_str=QUERY)) == []
    nodes = [NodeWithScore(node=TextNode(text="a"), score=1.0)]
    with pytest.raises(ValueError, match="needs the query"):
        reranker.postprocess_nodes(nodes)
    with pytest.raises(ValueError, match="needs the query"):
        asyncio.run(reranker.apostprocess_nodes(nodes))
    with pytest.raises(ValueError, match="non-empty"):
        reranker.postprocess_nodes(nodes, query_str="  ")
    with pytest.raises(ValueError, match="needs the query"):
        reranker.postprocess_nodes([])
    with pytest.raises(TypeError, match=r"nodes\[0\] must be a NodeWithScore, got TextNode"):
        reranker.postprocess_nodes([TextNode(text="a")], query_str=QUERY)
    with pytest.raises(TypeError, match="list of NodeWithScore"):
        reranker.postprocess_nodes("some text", query_str=QUERY)
    assert rerank_events == []  # nothing was reranked


def test_async_backend_reranks_only_through_the_async_api(tiny_model):
    nodes = [NodeWithScore(node=TextNode(text=t), score=0.5) for t in TEXTS[:6]]
    reranker = E2RankRerank(backend=AsyncModel(tiny_model), top_n=None)
    with pytest.raises(TypeError, match=r"async backend.*apostprocess_nodes"):
        reranker.postprocess_nodes(nodes, query_str=QUERY)
    out = asyncio.run(reranker.apostprocess_nodes(nodes, query_str=QUERY))
    expected = E2RankRerank(backend=tiny_model, top_n=None).postprocess_nodes(nodes, query_str=QUERY)
    assert [n.node.node_id for n in out] == [n.node.node_id for n in expected]
    assert [n.score for n in out] == pytest.approx([n.score for n in expected])


# ---------------------------------------------------------------- embedding reuse


def test_rerank_of_50_nodes_after_indexing_embeds_one_text(index, fresh_model):
    candidates = retrieve(index)
    assert len(candidates) == 50
    assert all(n.node.embedding is None for n in candidates)  # the default store returns nodes without vectors
    fresh_model.reset_stats()
    E2RankRerank(backend=fresh_model, top_n=5).postprocess_nodes(candidates, query_str=QUERY)
    stats = fresh_model.stats()
    assert (stats["texts_embedded"], stats["cache_hits"]) == (1, 50)


def test_rerank_of_50_nodes_async_after_indexing_embeds_one_text(index, fresh_model):
    candidates = retrieve(index)
    fresh_model.reset_stats()
    asyncio.run(E2RankRerank(backend=AsyncModel(fresh_model)).apostprocess_nodes(candidates, query_str=QUERY))
    stats = fresh_model.stats()
    assert (stats["texts_embedded"], stats["cache_hits"]) == (1, 50)


def with_embeddings(nodes, vectors):
    """Copies of ``nodes`` whose nodes carry the given vectors (``None`` leaves one without)."""
    out = []
    for scored, vector in zip(nodes, vectors):
        node = scored.node.model_copy(update={"embedding": None if vector is None else list(map(float, vector))})
        out.append(NodeWithScore(node=node, score=scored.score))
    return out


def test_node_embeddings_are_used_as_is(tiny_path, tiny_model):
    """Nodes that all carry vectors: nothing is embedded but the prompt, and the scores use those vectors."""
    from e2rank_integrations import E2RankModel

    texts = TEXTS[:50]
    vectors = tiny_model.embed_documents(texts[::-1])  # deliberately another text's vector for each node
    nodes = with_embeddings([NodeWithScore(node=TextNode(text=t), score=0.1) for t in texts], vectors)
    model = E2RankModel.from_pretrained(tiny_path)  # empty cache: a cache hit is impossible
    out = E2RankRerank(backend=model, top_n=None).postprocess_nodes(nodes, query_str=QUERY)
    stats = model.stats()
    assert (stats["texts_embedded"], stats["cache_hits"]) == (1, 0)
    expected = model.rerank(QUERY, texts, doc_embeddings=vectors)
    assert [n.node.node_id for n in out] == [nodes[r.index].node.node_id for r in expected]
    assert [n.score for n in out] == pytest.approx([r.score for r in expected], abs=1e-6)
    assert out[0].node.embedding is not None  # returned nodes keep their vectors


def test_some_nodes_with_embeddings_some_without(index, fresh_model):
    candidates = retrieve(index)
    carried = fresh_model.embed_documents(node_texts(candidates[:25]))
    nodes = with_embeddings(candidates, [*carried, *[None] * 25])
    fresh_model.reset_stats()
    out = E2RankRerank(backend=fresh_model, top_n=None).postprocess_nodes(nodes, query_str=QUERY)
    stats = fresh_model.stats()
    assert (stats["texts_embedded"], stats["cache_hits"]) == (1, 25)  # only the 25 without vectors are looked up
    expected = fresh_model.rerank(QUERY, node_texts(candidates))
    assert [n.node.node_id for n in out] == [candidates[r.index].node.node_id for r in expected]
    assert [n.score for n in out] == pytest.approx([r.score for r in expected], abs=1e-5)


def test_only_the_nodes_without_embeddings_are_embedded(tiny_path, tiny_model):
    from e2rank_integrations import E2RankModel

    texts = TEXTS[:10]
    nodes = with_embeddings(
        [NodeWithScore(node=TextNode(text=t)) for t in texts],
        [*tiny_model.embed_documents(texts[:6]), None, None, None, None],
    )
    model = E2RankModel.from_pretrained(tiny_path)
    asyncio.run(E2RankRerank(backend=AsyncModel(model)).apostprocess_nodes(nodes, query_str=QUERY))
    stats = model.stats()
    assert (stats["texts_embedded"], stats["cache_hits"]) == (4 + 1, 0)  # the four without vectors, the prompt


def test_node_embeddings_of_another_dimension(tiny_model):
    nodes = with_embeddings([NodeWithScore(node=TextNode(text=t)) for t in TEXTS[:3]], [[0.1] * 7, None, [0.2] * 7])
    with pytest.raises(ValueError, match="dimension 7 but the computed ones 64"):
        E2RankRerank(backend=tiny_model).postprocess_nodes(nodes, query_str=QUERY)
    all_wrong = with_embeddings(nodes, [[0.1] * 7] * 3)
    with pytest.raises(ValueError, match="model's dimension 64"):
        E2RankRerank(backend=tiny_model).postprocess_nodes(all_wrong, query_str=QUERY)
    # Built with another embedding model: ignore the nodes' vectors.
    out = E2RankRerank(backend=tiny_model, use_node_embeddings=False).postprocess_nodes(all_wrong, query_str=QUERY)
    assert len(out) == 3


def test_inputs_are_not_mutated_with_embeddings(tiny_model):
    nodes = with_embeddings(
        [NodeWithScore(node=TextNode(text=t, metadata={"k": i}), score=float(i)) for i, t in enumerate(TEXTS[:5])],
        [*tiny_model.embed_documents(TEXTS[:2]), None, None, None],
    )
    before = copy.deepcopy(snapshot(nodes))
    E2RankRerank(backend=tiny_model, keep_retrieval_score=True).postprocess_nodes(nodes, query_str=QUERY)
    assert snapshot(nodes) == before


# ---------------------------------------------------------------- over the HTTP client (a real e2rank server)


def indexed_through(backend, **options):
    """A VectorStoreIndex of the 60 passages, embedded through ``backend`` (the server's cache fills)."""
    docs = [Document(text=t, metadata={"n": i}) for i, t in enumerate(TEXTS)]
    return VectorStoreIndex.from_documents(docs, embed_model=E2RankEmbedding(backend=backend), **options)


def test_embedding_over_the_client_equals_local(remote_client, tiny_model):
    remote, local = E2RankEmbedding(backend=remote_client, embed_batch_size=4), E2RankEmbedding(backend=tiny_model)
    np.testing.assert_allclose(remote.get_query_embedding(QUERY), local.get_query_embedding(QUERY), atol=1e-5)
    np.testing.assert_allclose(
        remote.get_text_embedding_batch(TEXTS[:9]), local.get_text_embedding_batch(TEXTS[:9]), atol=1e-5
    )


def test_query_engine_over_the_client_equals_local_and_reuses_the_indexed_vectors(remote_client, tiny_model):
    index = indexed_through(remote_client)
    candidates = retrieve(index)
    before = remote_client.stats()
    E2RankRerank(backend=remote_client, top_n=5).postprocess_nodes(candidates, query_str=QUERY)
    after = remote_client.stats()
    assert after["texts_embedded"] - before["texts_embedded"] == 1  # the listwise prompt
    assert after["cache_hits"] - before["cache_hits"] == 50  # every candidate, indexed through the server

    engine = index.as_query_engine(
        similarity_top_k=50, node_postprocessors=[E2RankRerank(backend=remote_client, top_n=5)], llm=MockLLM()
    )
    response = engine.query(QUERY)
    expected = tiny_model.rerank(QUERY, node_texts(candidates), top_n=5)  # the local model on the same candidates
    assert [n.node.node_id for n in response.source_nodes] == [candidates[r.index].node.node_id for r in expected]
    np.testing.assert_allclose([n.score for n in response.source_nodes], [r.score for r in expected], atol=1e-5)


def test_async_client_aquery_and_apostprocess_nodes(server, tiny_model):
    """The truly async path: every call awaits the server; the index is built with use_async=True."""
    from e2rank_integrations import AsyncE2RankClient

    query = "What makes the seasons change?"  # a prompt no other test has sent to this server
    client = AsyncE2RankClient(server.url)
    index = indexed_through(client, use_async=True)  # LlamaIndex runs this on an event loop of its own
    engine = index.as_query_engine(
        similarity_top_k=20, node_postprocessors=[E2RankRerank(backend=client, top_n=4)], llm=MockLLM()
    )
    with pytest.raises(TypeError, match="async backend"):
        engine.query(query)

    async def run():
        candidates = await index.as_retriever(similarity_top_k=50).aretrieve(query)
        before = await client.stats()
        reranked = await E2RankRerank(backend=client, top_n=None).apostprocess_nodes(candidates, query_str=query)
        after = await client.stats()
        response = await engine.aquery(query)
        await client.aclose()
        return response, candidates, reranked, after["texts_embedded"] - before["texts_embedded"]

    response, candidates, reranked, embedded = asyncio.run(run())
    assert embedded == 1  # the prompt: the 50 candidates' vectors came from the server's cache
    expected = tiny_model.rerank(query, node_texts(candidates))
    assert [n.node.node_id for n in reranked] == [candidates[r.index].node.node_id for r in expected]
    np.testing.assert_allclose([n.score for n in reranked], [r.score for r in expected], atol=1e-5)
    top20 = tiny_model.rerank(query, node_texts(candidates[:20]), top_n=4)
    assert [n.node.node_id for n in response.source_nodes] == [candidates[r.index].node.node_id for r in top20]
