"""E2RankRerank inside LlamaIndex's agent tools, create_e2rank_tool, and a real FunctionAgent run (mock LLM)."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("torch")
pytest.importorskip("llama_index.core")

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms import MockLLM
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.schema import MetadataMode
from llama_index.core.tools import QueryEngineTool, RetrieverTool

from e2rank_integrations.context import cite, pack_context
from e2rank_integrations.corpus import builtin_corpus
from e2rank_integrations.llama_index import E2RankEmbedding, E2RankRerank, create_e2rank_tool
from e2rank_integrations.prompts import AGENT_MAX_PROMPT_TOKENS, AGENT_NUM_PROMPT_DOCS
from helpers import AsyncModel

QUERY = "Why does the Moon cause tides?"
PASSAGES = builtin_corpus()


def build_index(backend) -> VectorStoreIndex:
    # As SimpleDirectoryReader makes them: the file name in metadata, left out of the embedded and LLM text.
    docs = [
        Document(
            text=p["text"],
            metadata={"file_name": f"{p['id']}.md", "title": p["title"]},
            excluded_embed_metadata_keys=["file_name"],
            excluded_llm_metadata_keys=["file_name"],
            doc_id=p["id"],
        )
        for p in PASSAGES
    ]
    return VectorStoreIndex.from_documents(docs, embed_model=E2RankEmbedding(backend=backend))


@pytest.fixture(scope="module")
def model(tiny_path):
    from e2rank_integrations import E2RankModel

    return E2RankModel.from_pretrained(tiny_path)  # its own: its cache holds the index below


@pytest.fixture(scope="module")
def index(model):
    return build_index(model)


AGENT = {"num_prompt_docs": AGENT_NUM_PROMPT_DOCS, "max_prompt_tokens": AGENT_MAX_PROMPT_TOKENS}


def reranked(index, model, query=QUERY, k=50, top_n=5, **levers):
    """What the tools should return: the first stage's k candidates, reranked by E2RankRerank."""
    candidates = index.as_retriever(similarity_top_k=k).retrieve(query)
    return E2RankRerank(backend=model, top_n=top_n, **levers).postprocess_nodes(candidates, query_str=query)


def node_ids(nodes) -> list[str]:
    return [n.node.node_id for n in nodes]


def llm_texts(nodes) -> list[str]:
    return [n.node.get_content(metadata_mode=MetadataMode.LLM) for n in nodes]


def scripted_llm(
    tool_name: str, tool_kwargs: dict, answer: str = "The Moon's pull, see [1]."
) -> MockFunctionCallingLLM:
    """LlamaIndex's mock function-calling LLM, scripted: one tool call, then an answer once a tool result is in."""

    def respond(messages, **kwargs):
        if any(m.role == MessageRole.TOOL for m in messages):
            return ChatMessage(role=MessageRole.ASSISTANT, content=answer)
        call = ToolCallBlock(tool_call_id="call-1", tool_name=tool_name, tool_kwargs=tool_kwargs)
        return ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])

    return MockFunctionCallingLLM(response_generator=respond)


async def run_agent(tool, tool_kwargs: dict) -> tuple[list[ToolCallResult], str]:
    agent = FunctionAgent(tools=[tool], llm=scripted_llm(tool.metadata.name, tool_kwargs), system_prompt="Cite.")
    handler = agent.run(user_msg="Why are there tides?")
    results = [event async for event in handler.stream_events() if isinstance(event, ToolCallResult)]
    return results, str(await handler)


# ---------------------------------------------------------------- E2RankRerank inside LlamaIndex's own tools


def test_retriever_tool_with_the_reranker(index, model):
    tool = RetrieverTool.from_defaults(
        retriever=index.as_retriever(similarity_top_k=50),
        node_postprocessors=[E2RankRerank(backend=model, top_n=5)],
        name="search",
    )
    output = tool.call(input=QUERY)
    query = output.raw_input["input"]  # how RetrieverTool words a keyword call
    assert query == f"\ninput is {QUERY}\n"
    assert node_ids(output.raw_output) == node_ids(reranked(index, model, query))
    assert output.content == "".join(f"{text}\n\n" for text in llm_texts(output.raw_output))
    assert node_ids(asyncio.run(tool.acall(input=QUERY)).raw_output) == node_ids(output.raw_output)


def test_query_engine_tool_with_the_reranker(index, model):
    engine = index.as_query_engine(
        similarity_top_k=50, node_postprocessors=[E2RankRerank(backend=model, top_n=5)], llm=MockLLM()
    )
    tool = QueryEngineTool.from_defaults(engine, name="ask", description="Answers from the knowledge base.")
    output = tool.call(input=QUERY)
    assert node_ids(output.raw_output.source_nodes) == node_ids(reranked(index, model))
    assert node_ids(asyncio.run(tool.acall(input=QUERY)).raw_output.source_nodes) == node_ids(reranked(index, model))


def test_function_agent_calls_the_query_engine_tool(index, model):
    engine = index.as_query_engine(
        similarity_top_k=50, node_postprocessors=[E2RankRerank(backend=model, top_n=3)], llm=MockLLM()
    )
    tool = QueryEngineTool.from_defaults(engine, name="ask", description="Answers from the knowledge base.")
    (result,), answer = asyncio.run(run_agent(tool, {"input": QUERY}))
    assert not result.tool_output.is_error
    assert node_ids(result.tool_output.raw_output.source_nodes) == node_ids(reranked(index, model, top_n=3))
    assert answer == "The Moon's pull, see [1]."


# ---------------------------------------------------------------- create_e2rank_tool


def test_tool_returns_cited_reranked_passages(index, model):
    tool = create_e2rank_tool(index, model, k=50, top_n=5)
    assert isinstance(tool, RetrieverTool) and tool.metadata.name == "search"
    output = tool.call(input=QUERY)
    expected = reranked(index, model, **AGENT)  # the query as given, without RetrieverTool's "input is ..." wording
    assert node_ids(output.raw_output) == node_ids(expected)
    sources = [n.node.metadata["file_name"] for n in expected]
    assert output.content == cite(llm_texts(expected), sources=sources)
    assert output.content.startswith(f"[1] ({sources[0]}) ")
    assert output.raw_input == {"input": QUERY}
    assert asyncio.run(tool.acall(input=QUERY)).content == output.content
    assert tool.call(QUERY).content == output.content  # a positional query too


def test_tool_options(index, model):
    seven = create_e2rank_tool(index, model, k=7, top_n=7).call(input=QUERY).raw_output
    assert sorted(node_ids(seven)) == sorted(node_ids(index.as_retriever(similarity_top_k=7).retrieve(QUERY)))
    retriever = index.as_retriever(similarity_top_k=12)
    assert len(create_e2rank_tool(retriever, model, top_n=20).call(input=QUERY).raw_output) == 12
    custom = create_e2rank_tool(index, model, name="kb", description="Searches the handbook.")
    assert (custom.metadata.name, custom.metadata.description) == ("kb", "Searches the handbook.")
    default = create_e2rank_tool(index, model, top_n=4, max_tokens=900).metadata.description
    assert "up to 4 passages" in default and "cite" in default and "900 tokens" in default
    assert list(custom.metadata.get_parameters_dict()["properties"]) == ["input"]


def test_tool_packs_to_the_budget_without_embedding(tiny_path):
    from e2rank_integrations import E2RankModel

    model = E2RankModel.from_pretrained(tiny_path)
    index = build_index(model)
    model.reset_stats()
    output = create_e2rank_tool(index, model, top_n=5, max_tokens=120).call(input=QUERY)
    assert model.stats()["texts_embedded"] == 2  # the query and the prompt: packing cost no forward pass
    expected = reranked(index, model, **AGENT)
    packed = pack_context(
        QUERY,
        llm_texts(expected),
        max_tokens=120,
        backend=model,
        sources=[n.node.metadata["file_name"] for n in expected],
    )
    assert output.content == packed.text and model.count_tokens([output.content])[0] <= 120
    assert node_ids(output.raw_output) == [expected[item.index].node.node_id for item in packed.items]
    assert 0 < len(output.raw_output) < 5  # the budget left some out
    assert asyncio.run(create_e2rank_tool(index, model, max_tokens=120).acall(input=QUERY)).content == packed.text


def test_tool_content_fits_the_budget_in_the_model_tokens_whatever_top_n(index, model):
    for top_n in (2, 10, 20):
        output = create_e2rank_tool(index, model, k=20, top_n=top_n, max_tokens=100).call(input=QUERY)
        assert model.count_tokens([output.content])[0] <= 100, top_n  # what the model reads
        assert output.raw_output and all(n.node.node_id for n in output.raw_output)  # ids and scores: raw_output


def test_async_backend_through_acall(index, model):
    tool = create_e2rank_tool(index, AsyncModel(model), max_tokens=200)
    output = asyncio.run(tool.acall(input=QUERY))
    expected = reranked(index, model, **AGENT)
    packed = pack_context(
        QUERY,
        llm_texts(expected),
        max_tokens=200,
        sources=[n.node.metadata["file_name"] for n in expected],
        doc_embeddings=model.embed_documents([n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in expected]),
    )
    assert output.content == packed.text  # counted with estimate_tokens: this backend has no tokenizer
    with pytest.raises(TypeError, match="use acall"):
        tool.call(input=QUERY)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((), {}, "takes one argument, input .*got none"),
        ((), {"input": "  "}, "input must be a non-empty string"),
        ((), {"query": QUERY}, "takes one argument, input .*got query"),
        ((QUERY,), {"input": QUERY}, "takes one argument"),
    ],
)
def test_bad_calls(index, model, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_e2rank_tool(index, model).call(*args, **kwargs)


def test_e2rank_retriever_tool_is_the_deprecated_name_of_create_e2rank_tool(index, model):
    from e2rank_integrations import llama_index

    with pytest.warns(DeprecationWarning, match="`e2rank_retriever_tool` is deprecated, use `create_e2rank_tool`"):
        old = llama_index.e2rank_retriever_tool(index, model, k=20, top_n=3)
    assert old.call(input=QUERY).content == create_e2rank_tool(index, model, k=20, top_n=3).call(input=QUERY).content


def test_bad_options(index, model):
    with pytest.raises(ValueError, match="k applies to an index"):
        create_e2rank_tool(index.as_retriever(), model, k=10)
    with pytest.raises(TypeError, match="must be a LlamaIndex index or retriever, got list"):
        create_e2rank_tool([], model)
    with pytest.raises(ValueError, match="top_n must be >= 1"):
        create_e2rank_tool(index, model, top_n=0)
    with pytest.raises(ValueError, match="max_tokens must be >= 1"):
        create_e2rank_tool(index, model, max_tokens=0)
    with pytest.raises(TypeError, match="has no embed_queries"):
        create_e2rank_tool(index, "Alibaba-NLP/E2Rank-0.6B")


def test_function_agent_gets_packed_cited_context(index, model):
    tool = create_e2rank_tool(index, model, top_n=5, max_tokens=200)
    (result,), answer = asyncio.run(run_agent(tool, {"input": QUERY}))
    expected = tool.call(input=QUERY)
    assert not result.tool_output.is_error and result.tool_kwargs == {"input": QUERY}
    assert result.tool_output.content == expected.content and expected.content.startswith("[1] (")
    assert node_ids(result.tool_output.raw_output) == node_ids(expected.raw_output)
    assert answer == "The Moon's pull, see [1]."


def test_function_agent_sees_a_bad_call_as_a_tool_error(index, model):
    (result,), _ = asyncio.run(run_agent(create_e2rank_tool(index, model), {"query": QUERY}))
    assert result.tool_output.is_error and "takes one argument, input" in result.tool_output.content
