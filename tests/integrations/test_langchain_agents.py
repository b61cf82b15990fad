"""E2RankRetriever and create_e2rank_tool with real LangChain objects, a real agent loop and tiny checkpoints."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import ValidationError

from e2rank_integrations.context import cite, pack_context
from e2rank_integrations.corpus import builtin_corpus
from e2rank_integrations.langchain import E2RankEmbeddings, E2RankRerank, E2RankRetriever, create_e2rank_tool
from e2rank_integrations.prompts import AGENT_MAX_PROMPT_TOKENS, AGENT_NUM_PROMPT_DOCS
from helpers import AsyncModel

QUERY = "Which topic is document seven about?"
DOCS = [
    Document(
        page_content=f"Document {i} is about topic {i % 5}. " + "filler words " * (i % 9),
        metadata={"source": f"file-{i}.txt", "topic": i % 5, "nested": {"n": i}},
        id=f"doc-{i}",
    )
    for i in range(60)
]


def indexed(backend, docs=DOCS) -> InMemoryVectorStore:
    store = InMemoryVectorStore(E2RankEmbeddings(backend=backend))
    store.add_documents(copy.deepcopy(docs))
    return store


@pytest.fixture(scope="module")
def store(tiny_path):
    from e2rank_integrations import E2RankModel

    return indexed(E2RankModel.from_pretrained(tiny_path))  # a model of its own: its cache holds DOCS


@pytest.fixture
def retriever(store):
    return E2RankRetriever(vectorstore=store, backend=store.embeddings.backend)


def as_agent(retriever: E2RankRetriever) -> E2RankRetriever:
    """The retriever a tool searches with: the agent setting of the prompt where the retriever set none."""
    levers = {"num_prompt_docs": AGENT_NUM_PROMPT_DOCS, "max_prompt_tokens": AGENT_MAX_PROMPT_TOKENS}
    return retriever.model_copy(update=levers)


def ids(docs) -> list[str]:
    return [d.id for d in docs]


def scores(docs) -> list[float]:
    return [d.metadata["relevance_score"] for d in docs]


def tool_call(args: dict, name: str = "search") -> dict:
    return {"name": name, "args": args, "id": "call-1", "type": "tool_call"}


class ScriptedChatModel(GenericFakeChatModel):
    """LangChain's fake chat model, answering with the scripted messages; binding tools changes nothing.

    ``GenericFakeChatModel`` has no ``bind_tools`` (agents call it); the script already holds the tool calls.
    """

    def bind_tools(self, tools, **kwargs):
        return self


def script(*tool_args: dict, answer: str = "Topic 2, see [1].") -> ScriptedChatModel:
    calls = [
        AIMessage(content="", tool_calls=[{**tool_call(args), "id": f"call-{i}"}]) for i, args in enumerate(tool_args)
    ]
    return ScriptedChatModel(messages=iter([*calls, AIMessage(content=answer)]))


# ---------------------------------------------------------------- E2RankRetriever


def test_retrieve_then_rerank_in_one_call(retriever, store):
    got = retriever.invoke(QUERY)
    expected = E2RankRerank(backend=store.embeddings.backend, top_n=5).compress_documents(
        store.similarity_search(QUERY, k=50), QUERY
    )
    assert ids(got) == ids(expected)
    np.testing.assert_allclose(scores(got), scores(expected), atol=1e-6)
    assert ids(got) != ids(store.similarity_search(QUERY, k=5))  # reordered, not the first stage's top 5


def test_documents_keep_id_and_metadata_and_gain_the_score(retriever):
    for doc in retriever.invoke(QUERY):
        original = DOCS[int(doc.id.split("-")[1])]
        assert doc.page_content == original.page_content
        assert doc.metadata == {**original.metadata, "relevance_score": doc.metadata["relevance_score"]}
    assert DOCS[0].metadata == {"source": "file-0.txt", "topic": 0, "nested": {"n": 0}}  # nothing was mutated


def test_after_indexing_a_call_embeds_the_query_and_the_prompt_only(fresh_model):
    store = indexed(fresh_model)
    fresh_model.reset_stats()
    assert len(E2RankRetriever(vectorstore=store, backend=fresh_model).invoke(QUERY)) == 5
    stats = fresh_model.stats()
    assert stats["texts_embedded"] == 2  # the query (first stage) and the listwise prompt (rerank)
    assert stats["cache_hits"] == 0  # the store's own vectors were passed: not even a cache lookup


def test_without_the_stored_vectors_the_cache_serves_them(fresh_model):
    store = indexed(fresh_model)
    fresh_model.reset_stats()
    E2RankRetriever(vectorstore=store, backend=fresh_model, use_stored_embeddings=False).invoke(QUERY)
    assert fresh_model.stats()["texts_embedded"] == 2
    assert fresh_model.stats()["cache_hits"] == 50  # every candidate

    fresh_model.reset_stats()
    base = E2RankRetriever(base_retriever=store.as_retriever(search_kwargs={"k": 60}), backend=fresh_model, k=50)
    assert len(base.invoke(QUERY + " Again.")) == 5  # a new query: neither it nor its prompt is cached
    assert fresh_model.stats()["texts_embedded"] == 2
    assert fresh_model.stats()["cache_hits"] == 50  # the first k of the base retriever's 60


def test_a_store_built_with_another_embedding_model_is_never_read(tiny_model):
    from langchain_core.embeddings import DeterministicFakeEmbedding

    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=tiny_model.dimension))  # same size, other vectors
    store.add_documents(copy.deepcopy(DOCS[:10]))
    retriever = E2RankRetriever(vectorstore=store, backend=tiny_model, top_n=None)
    candidates = store.similarity_search(QUERY, k=10)
    assert retriever._stored_embeddings(candidates) is None
    expected = tiny_model.rerank(QUERY, [d.page_content for d in candidates])  # on E2Rank's own vectors
    got = retriever.invoke(QUERY)
    assert ids(got) == [candidates[r.index].id for r in expected]
    np.testing.assert_allclose(scores(got), [r.score for r in expected], atol=1e-6)


def test_k_top_n_threshold_and_filters(store, retriever):
    backend = store.embeddings.backend
    assert len(E2RankRetriever(vectorstore=store, backend=backend, k=7, top_n=None).invoke(QUERY)) == 7
    assert len(retriever.invoke(QUERY, top_n=2)) == 2  # per call
    assert ids(retriever.invoke(QUERY, top_n=2)) == ids(retriever.invoke(QUERY))[:2]
    every = E2RankRetriever(vectorstore=store, backend=backend, top_n=None).invoke(QUERY)
    middle = scores(every)[25]
    kept = E2RankRetriever(vectorstore=store, backend=backend, top_n=None, score_threshold=middle).invoke(QUERY)
    assert ids(kept) == ids(every)[: sum(s >= middle for s in scores(every))]
    topic3 = E2RankRetriever(
        vectorstore=store, backend=backend, top_n=None, search_kwargs={"filter": lambda d: d.metadata["topic"] == 3}
    ).invoke(QUERY)
    assert len(topic3) == 12 and {d.metadata["topic"] for d in topic3} == {3}


def test_prompt_options_reach_the_backend(store, tiny_model):
    options = {"num_prompt_docs": 4, "instruction": "Rank these:", "max_prompt_tokens": 60}
    got = E2RankRetriever(vectorstore=store, backend=tiny_model, top_n=None, **options).invoke(QUERY)
    candidates = store.similarity_search(QUERY, k=50)
    expected = tiny_model.rerank(QUERY, [d.page_content for d in candidates], **options)
    assert ids(got) == [candidates[r.index].id for r in expected]


def test_passes_reach_the_rerank_and_are_not_taken_for_re_embedded_candidates(fresh_model, caplog):
    store = indexed(fresh_model)
    retriever = E2RankRetriever(vectorstore=store, backend=fresh_model, top_n=None, passes=2)
    with caplog.at_level(logging.WARNING, logger="e2rank_integrations.langchain"):
        got = retriever.model_copy(update={"use_stored_embeddings": False}).invoke(QUERY)  # the cache serves them
    assert not [r for r in caplog.records if "re-embedded" in r.getMessage()]  # the second prompt is no candidate
    candidates = store.similarity_search(QUERY, k=50)
    texts = [d.page_content for d in candidates]
    expected = fresh_model.rerank(QUERY, texts, passes=2)
    assert [r.score for r in expected] != [r.score for r in fresh_model.rerank(QUERY, texts)]  # a pass counts
    assert ids(got) == [candidates[r.index].id for r in expected]
    np.testing.assert_allclose(scores(got), [r.score for r in expected], atol=1e-6)
    reranked = E2RankRerank(backend=fresh_model, top_n=None, passes=2).compress_documents(candidates, QUERY)
    assert ids(reranked) == ids(got)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"vectorstore": None}, "exactly one first stage"),
        ({"base_retriever": "STORE"}, "exactly one first stage"),
        ({"search_kwargs": {"k": 3}}, "with k=, not search_kwargs"),
        ({"k": 0}, "k must be >= 1"),
        ({"top_n": 0}, "top_n must be >= 1"),
        ({"num_prompt_docs": 0}, "num_prompt_docs must be >= 1"),
        ({"passes": 0}, "passes must be >= 1"),
        ({"score_threshold": float("inf")}, "score_threshold"),
        ({"n": 3}, "Extra inputs are not permitted"),
        ({"vectorstore": "a store"}, "instance of VectorStore"),
        ({"backend": "Alibaba-NLP/E2Rank-0.6B"}, "has no embed_queries"),
    ],
)
def test_bad_options(store, tiny_model, options, match):
    given = {"backend": tiny_model, "vectorstore": store, **options}
    if given.get("base_retriever") == "STORE":
        given["base_retriever"] = store.as_retriever()  # and the vector store too: two first stages
    with pytest.raises((ValidationError, TypeError), match=match):
        E2RankRetriever(**given)


def test_search_kwargs_belong_to_the_vector_store(store, tiny_model):
    with pytest.raises(ValidationError, match="configure base_retriever= itself"):
        E2RankRetriever(backend=tiny_model, base_retriever=store.as_retriever(), search_kwargs={"filter": None})


def test_bad_queries(retriever):
    with pytest.raises(ValueError, match="query must be a non-empty string"):
        retriever.invoke("  ")
    with pytest.raises(ValidationError, match="top_n must be >= 1"):
        retriever.invoke(QUERY, top_n=0)


async def test_sync_and_async_agree(retriever):
    assert await retriever.ainvoke(QUERY) == retriever.invoke(QUERY)


async def test_async_backend_is_awaited(tiny_model):
    backend = AsyncModel(tiny_model)
    store = InMemoryVectorStore(E2RankEmbeddings(backend=backend))
    await store.aadd_documents(copy.deepcopy(DOCS))
    retriever = E2RankRetriever(vectorstore=store, backend=backend)
    got = await retriever.ainvoke(QUERY)
    local = E2RankRetriever(vectorstore=indexed(tiny_model), backend=tiny_model).invoke(QUERY)
    assert ids(got) == ids(local)
    with pytest.raises(TypeError, match="use ainvoke"):
        retriever.invoke(QUERY)


async def test_over_the_async_client(server, tiny_model):
    from e2rank_integrations import AsyncE2RankClient

    # Texts and queries new to the session's server (other tests share it), so its counters show this test's work.
    docs = [d.model_copy(update={"page_content": d.page_content + " (agents)"}) for d in DOCS]
    first, second = "Which topic is document seven about, agent?", "What is document 3 about, agent?"
    local = E2RankRetriever(vectorstore=indexed(tiny_model, docs), backend=tiny_model)
    async with AsyncE2RankClient(server.url) as client:
        store = InMemoryVectorStore(E2RankEmbeddings(backend=client))
        await store.aadd_documents(copy.deepcopy(docs))
        retriever = E2RankRetriever(vectorstore=store, backend=client)
        before = await client.stats()
        got = await retriever.ainvoke(first)
        after = await client.stats()
        assert after["texts_embedded"] - before["texts_embedded"] == 2  # the query and the prompt
        tool = create_e2rank_tool(retriever, max_tokens=120)
        message = await tool.ainvoke(tool_call({"query": second}))
        assert (await client.stats())["texts_embedded"] - after["texts_embedded"] == 2  # packing embedded nothing
    assert ids(got) == ids(local.invoke(first))
    np.testing.assert_allclose(scores(got), scores(local.invoke(first)), atol=1e-5)
    assert message.content.startswith("[1] (file-") and message.artifact
    reranked = ids(as_agent(local).invoke(second))
    assert ids(message.artifact) == [i for i in reranked if i in ids(message.artifact)]  # in rerank order


def test_a_cold_cache_re_embeds_the_candidates_with_one_warning(tiny_path, caplog):
    from e2rank_integrations import E2RankModel

    model = E2RankModel.from_pretrained(tiny_path, cache=False)  # as after a restart: nothing holds the vectors
    store = indexed(model)
    retriever = E2RankRetriever(vectorstore=store, backend=model, use_stored_embeddings=False)
    for i in range(3):
        before = model.stats()["texts_embedded"]
        with caplog.at_level(logging.WARNING, logger="e2rank_integrations.langchain"):
            retriever.invoke(f"{QUERY} ({i})")
        assert model.stats()["texts_embedded"] - before == 52  # the query, the 50 candidates, the prompt
    warned = [r.getMessage() for r in caplog.records if "re-embedded" in r.getMessage()]
    assert len(warned) == 1  # once per retriever, not once per call
    assert "re-embedded 50 of 50 candidates" in warned[0] and "persistent cache" in warned[0]

    caplog.clear()  # the store's own vectors, or a warm cache: nothing re-embedded, nothing said
    warm = E2RankModel.from_pretrained(tiny_path)
    with caplog.at_level(logging.WARNING, logger="e2rank_integrations.langchain"):
        E2RankRetriever(vectorstore=store, backend=model).invoke(QUERY)
        E2RankRetriever(vectorstore=indexed(warm), backend=warm, use_stored_embeddings=False).invoke(QUERY)
    assert not [r for r in caplog.records if "re-embedded" in r.getMessage()]


def test_langchain_chroma_hands_back_its_vectors(tiny_path, caplog):
    chromadb = pytest.importorskip("chromadb")
    langchain_chroma = pytest.importorskip("langchain_chroma")
    from e2rank_integrations import E2RankModel

    model = E2RankModel.from_pretrained(tiny_path, cache=False)  # no cache: only the store can spare a forward pass
    store = langchain_chroma.Chroma(
        collection_name="agents",
        embedding_function=E2RankEmbeddings(backend=model),
        client=chromadb.EphemeralClient(),
        collection_metadata={"hnsw:space": "cosine"},
    )
    flat = [d.model_copy(update={"metadata": {"source": d.metadata["source"]}}) for d in DOCS]  # Chroma: no dicts
    store.add_documents(flat)
    retriever = E2RankRetriever(vectorstore=store, backend=model)
    model.reset_stats()
    with caplog.at_level(logging.WARNING, logger="e2rank_integrations.langchain"):
        got = retriever.invoke(QUERY)
    assert model.stats()["texts_embedded"] == 2  # the query and the prompt: Chroma's stored vectors were reranked
    assert not caplog.records
    candidates = store.similarity_search(QUERY, k=50)
    expected = model.rerank(QUERY, [d.page_content for d in candidates], top_n=5)
    assert ids(got) == [candidates[r.index].id for r in expected]


def test_retriever_levers_bound_the_prompt(fresh_model):
    store = indexed(fresh_model)
    tokens = {}
    for options in ({}, {"num_prompt_docs": 5}, {"num_prompt_docs": 5, "max_prompt_tokens": 90}):
        fresh_model.reset_stats()
        E2RankRetriever(vectorstore=store, backend=fresh_model, **options).invoke(QUERY)
        tokens[len(tokens)] = fresh_model.stats()["tokens_embedded"]  # the query (the same each time) and the prompt
    assert tokens[0] > tokens[1] > tokens[2]
    with pytest.raises(ValidationError, match="max_prompt_tokens must be >= 1"):
        E2RankRetriever(vectorstore=store, backend=fresh_model, max_prompt_tokens=0)


# ---------------------------------------------------------------- create_e2rank_tool


def test_tool_reranks_with_the_agent_setting_unless_the_retriever_has_its_own(retriever, store):
    def searched_with(tool_retriever: E2RankRetriever) -> list[float]:
        return scores(create_e2rank_tool(tool_retriever).invoke(tool_call({"query": QUERY})).artifact)

    assert searched_with(retriever) == scores(as_agent(retriever).invoke(QUERY))
    assert "num_prompt_docs" not in retriever.model_fields_set  # the caller's retriever was copied, not changed
    own = E2RankRetriever(vectorstore=store, backend=retriever.backend, num_prompt_docs=20, max_prompt_tokens=None)
    assert searched_with(own) == scores(own.invoke(QUERY))  # set on the retriever: kept
    assert searched_with(own) != searched_with(retriever)


def test_tool_schema_is_strict_and_bounded(retriever):
    tool = create_e2rank_tool(retriever, name="kb_search", description="Search the handbook.")
    assert tool.args_schema.model_json_schema()["additionalProperties"] is False  # what the tool accepts
    seen = convert_to_openai_tool(tool)["function"]["parameters"]  # what a chat model is shown
    assert seen["required"] == ["query"] and seen["properties"]["query"]["type"] == "string"
    assert seen["properties"]["top_n"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 5}
    assert "1 to 5" in seen["properties"]["top_n"]["description"]
    assert (tool.name, tool.description, tool.response_format) == (
        "kb_search",
        "Search the handbook.",
        "content_and_artifact",
    )
    default = create_e2rank_tool(
        E2RankRetriever(vectorstore=retriever.vectorstore, backend=retriever.backend, top_n=None, k=20)
    )
    assert "up to 20 passages" in default.description and "cite" in default.description
    assert "1500 tokens" in create_e2rank_tool(retriever, max_tokens=1500).description


def test_tool_cites_every_reranked_document(retriever):
    message = create_e2rank_tool(retriever).invoke(tool_call({"query": QUERY}))
    docs = as_agent(retriever).invoke(QUERY)
    assert isinstance(message, ToolMessage) and message.status == "success"
    assert message.artifact == docs
    assert message.content == cite([d.page_content for d in docs], sources=[d.metadata["source"] for d in docs])
    assert message.content.startswith(f"[1] ({docs[0].metadata['source']}) {docs[0].page_content}")
    two = create_e2rank_tool(retriever).invoke(tool_call({"query": QUERY, "top_n": 2}))
    assert two.artifact == docs[:2] and "[3]" not in two.content


def test_tool_packs_to_the_budget_without_embedding(fresh_model):
    store = indexed(fresh_model)
    retriever = E2RankRetriever(vectorstore=store, backend=fresh_model)
    fresh_model.reset_stats()
    message = create_e2rank_tool(retriever, max_tokens=60).invoke(tool_call({"query": QUERY}))
    assert fresh_model.stats()["texts_embedded"] == 2  # the query and the prompt: packing cost no forward pass
    docs = as_agent(retriever).invoke(QUERY)
    packed = pack_context(
        QUERY,
        [d.page_content for d in docs],
        max_tokens=60,
        backend=fresh_model,
        sources=[d.metadata["source"] for d in docs],
    )
    assert message.content == packed.text
    assert fresh_model.count_tokens([message.content])[0] <= 60
    assert ids(message.artifact) == [docs[item.index].id for item in packed.items]
    assert 0 < len(message.artifact) < 5  # the budget left some out


def test_tool_content_fits_the_budget_in_the_model_tokens_whatever_top_n(store):
    backend = store.embeddings.backend
    tool = create_e2rank_tool(E2RankRetriever(vectorstore=store, backend=backend, top_n=20), max_tokens=100)
    for top_n in (2, 5, 10, 20):
        message = tool.invoke(tool_call({"query": QUERY, "top_n": top_n}))
        assert backend.count_tokens([message.content])[0] <= 100, top_n  # what the model reads
        assert message.artifact and all(d.id and d.metadata for d in message.artifact)  # ids, metadata: artifact


def test_tool_drops_near_duplicates(tiny_model):
    # Real, distinct passages (the tiny model puts them below 0.95 cosine of each other), and a copy of one.
    passages = [
        Document(page_content=p["text"], metadata={"source": p["title"]}, id=p["id"]) for p in builtin_corpus()[:10]
    ]
    twin = passages[3].model_copy(update={"id": "copy", "metadata": {"source": "copy"}})
    retriever = E2RankRetriever(vectorstore=indexed(tiny_model, [*passages, twin]), backend=tiny_model, top_n=None)
    assert {passages[3].id, "copy"} <= set(ids(retriever.invoke(QUERY)))
    message = create_e2rank_tool(retriever, max_tokens=10_000).invoke(tool_call({"query": QUERY}))
    assert len(message.artifact) == 10 and len({passages[3].id, "copy"} & set(ids(message.artifact))) == 1
    assert message.content.count(passages[3].page_content) == 1


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"query": QUERY, "top_n": 6}, "top_n: Input should be less than or equal to 5"),
        ({"query": QUERY, "top_n": 0}, "top_n: Input should be greater than or equal to 1"),
        ({"query": "   "}, "query: Value error, query must be a non-empty string"),
        ({"top_n": 2}, "query: Field required"),
        ({"query": QUERY, "k": 100}, "k: Extra inputs are not permitted"),
    ],
)
def test_bad_tool_arguments_are_a_tool_error_not_a_crash(retriever, args, named):
    message = create_e2rank_tool(retriever).invoke(tool_call(args))
    assert message.status == "error"
    assert named in message.content and "nothing was searched" in message.content


def test_no_results_says_so(store, tiny_model):
    picky = E2RankRetriever(vectorstore=store, backend=tiny_model, score_threshold=1.0)
    for max_tokens in (None, 100):
        message = create_e2rank_tool(picky, max_tokens=max_tokens).invoke(tool_call({"query": QUERY}))
        assert message.content.startswith("No passages found") and message.artifact == []


def test_bad_tool_options(retriever):
    with pytest.raises(TypeError, match="retriever must be an E2RankRetriever"):
        create_e2rank_tool(retriever.vectorstore.as_retriever())
    with pytest.raises(ValueError, match="max_tokens must be >= 1"):
        create_e2rank_tool(retriever, max_tokens=0)


async def test_tool_async_equals_sync(retriever):
    for max_tokens in (None, 80):
        tool = create_e2rank_tool(retriever, max_tokens=max_tokens)
        sync, not_sync = tool.invoke(tool_call({"query": QUERY})), await tool.ainvoke(tool_call({"query": QUERY}))
        assert (not_sync.content, not_sync.artifact) == (sync.content, sync.artifact)


# ---------------------------------------------------------------- in a real agent loop


def test_agent_calls_the_tool_and_gets_cited_context(retriever):
    agents = pytest.importorskip("langchain.agents")
    tool = create_e2rank_tool(retriever, max_tokens=200)
    agent = agents.create_agent(script({"query": QUERY}), [tool], system_prompt="Answer from the search results.")
    messages = agent.invoke({"messages": [("user", "What is document seven about?")]})["messages"]
    (result,) = [m for m in messages if isinstance(m, ToolMessage)]
    docs = as_agent(retriever).invoke(QUERY)
    assert result.name == "search" and result.status == "success"
    assert result.content.startswith(f"[1] ({docs[0].metadata['source']}) {docs[0].page_content}")
    assert "[2] (" in result.content
    assert result.artifact[0] == docs[0] and all(d.metadata["relevance_score"] for d in result.artifact)
    assert messages[-1].content == "Topic 2, see [1]."


async def test_agent_async_loop_recovers_from_a_bad_call(retriever):
    agents = pytest.importorskip("langchain.agents")
    tool = create_e2rank_tool(retriever)
    model = script({"query": QUERY, "top_n": 50}, {"query": QUERY, "top_n": 3})
    messages = (await agents.create_agent(model, [tool]).ainvoke({"messages": [("user", "Document seven?")]}))[
        "messages"
    ]
    bad, good = [m for m in messages if isinstance(m, ToolMessage)]
    assert bad.status == "error" and "less than or equal to 5" in bad.content
    assert good.status == "success" and good.artifact == as_agent(retriever).invoke(QUERY, top_n=3)


@pytest.mark.filterwarnings("ignore:This API is in beta")  # LangChain marks Runnable.as_tool as beta
def test_as_tool_works_in_an_agent(retriever):
    agents = pytest.importorskip("langchain.agents")
    tool = retriever.as_tool(name="search", description="Search the knowledge base.")
    model = ScriptedChatModel(
        messages=iter([AIMessage(content="", tool_calls=[tool_call({"__arg1": QUERY})]), AIMessage(content="Done.")])
    )
    messages = agents.create_agent(model, [tool]).invoke({"messages": [("user", "Document seven?")]})["messages"]
    (result,) = [m for m in messages if isinstance(m, ToolMessage)]
    assert result.status == "success"
    assert all(d.page_content in result.content for d in retriever.invoke(QUERY))
