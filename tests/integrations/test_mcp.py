"""``e2rank mcp`` over the real protocol: the MCP SDK's own clients drive the server as a subprocess.

One Chroma directory is built per module with ``E2RankEmbeddingFunction`` on a tiny generated checkpoint, so the
servers start without ``--model`` (the collection names it). A read-only streamable-HTTP server, on every
interface with a bearer key and a 500-token budget, is shared by the tests that only read; the stdio test starts
its own writable server on a copy of the directory. Results are compared with the in-process ``E2RankModel``: a
brute-force first stage, then ``model.rerank`` on the documents.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
import sys
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("mcp")
chromadb = pytest.importorskip("chromadb")
pytest.importorskip("torch")

from mcp import Client, ClientSession, StdioServerParameters, stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from e2rank_integrations import __version__  # noqa: E402
from e2rank_integrations.chroma import E2RankEmbeddingFunction  # noqa: E402
from e2rank_integrations.cli import build_parser  # noqa: E402
from e2rank_integrations.corpus import builtin_corpus  # noqa: E402
from e2rank_integrations.errors import E2RankValueError  # noqa: E402
from e2rank_integrations.mcp import E2RankTools, MCPSettings, create_server, run  # noqa: E402
from e2rank_integrations.prompts import AGENT_MAX_PROMPT_TOKENS, AGENT_NUM_PROMPT_DOCS  # noqa: E402
from helpers import free_port, run_python, stop  # noqa: E402

from .serving import wait_until  # noqa: E402

E2RANK = str(Path(sys.executable).parent / "e2rank")
CORPUS = builtin_corpus()[:24]
IDS = [passage["id"] for passage in CORPUS]
TEXTS = [passage["text"] for passage in CORPUS]
METADATAS = [{"title": passage["title"], "n": i} for i, passage in enumerate(CORPUS)]
QUERY = "Why is it colder in winter than in summer?"
TOOLS = {"search", "rerank", "add_documents", "collection_info"}
READ_ONLY_TOOLS = TOOLS - {"add_documents"}  # a read-only server does not list add_documents
MAX_TOP_N = 20
MAX_TOKENS = 500
KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory, tiny_path) -> Path:
    """A persistent Chroma directory with one collection, "docs", made with E2RankEmbeddingFunction."""
    path = tmp_path_factory.mktemp("mcp-chroma")
    function = E2RankEmbeddingFunction(model=str(tiny_path))
    collection = chromadb.PersistentClient(path=str(path)).create_collection("docs", embedding_function=function)
    collection.add(ids=IDS, documents=TEXTS, metadatas=METADATAS)
    return path


AGENT = {"num_prompt_docs": AGENT_NUM_PROMPT_DOCS, "max_prompt_tokens": AGENT_MAX_PROMPT_TOKENS}  # the server's


def expected_search(model, query: str, texts: list[str], ids: list[str], top_n: int) -> list[tuple[str, float]]:
    """The in-process answer: every record by cosine to the query (k >= the corpus), then ``model.rerank``."""
    similarity = model.embed_documents(texts) @ model.embed_queries([query])[0]
    order = np.argsort(-similarity, kind="stable")
    ranked = model.rerank(query, [texts[i] for i in order], top_n=top_n, **AGENT)
    return [(ids[order[r.index]], r.score) for r in ranked]


def assert_same_ranking(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [key for key, _ in got] == [key for key, _ in expected]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-5)


def text_of(result) -> str:
    return "\n".join(block.text for block in result.content)


async def wait_ready(session) -> dict:
    """``collection_info`` once the model has loaded; until then every answer must say it is loading."""
    for _ in range(1200):  # a bound, so that a server that never gets ready fails instead of hanging
        result = await session.call_tool("collection_info", {})
        if not result.is_error:
            return result.structured_content
        assert "still loading" in text_of(result), text_of(result)
        await asyncio.sleep(0.25)
    raise AssertionError("e2rank mcp never became ready")


@asynccontextmanager
async def http_session(url: str):
    import httpx2

    async with (
        httpx2.AsyncClient(headers=AUTH) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@pytest.fixture(scope="module")
def http_logs(tmp_path_factory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("mcp-http")
    return directory / "stdout.log", directory / "stderr.log"


@pytest.fixture(scope="module")
def http_server(corpus_dir, http_logs):
    """A read-only ``e2rank mcp --transport streamable-http`` on every interface, with a key; yields its URL."""
    port = free_port()
    stdout_path, stderr_path = http_logs
    with stdout_path.open("w") as out, stderr_path.open("w") as err:
        process = subprocess.Popen(
            [E2RANK, "mcp", "--chroma-dir", str(corpus_dir), "--transport", "streamable-http", "--port", str(port)]
            + ["--host", "0.0.0.0", "--max-top-n", str(MAX_TOP_N), "--max-tokens", str(MAX_TOKENS)],
            stdout=out,
            stderr=err,
            env={**os.environ, "E2RANK_API_KEY": KEY, "PYTHONUNBUFFERED": "1"},
        )
    try:
        # The model loads at process start: ready with no client call (and its log line on stderr).
        wait_until(
            lambda: "e2rank mcp ready" in stderr_path.read_text() or process.poll() is not None,
            "e2rank mcp did not load its model",
        )
        assert process.poll() is None, stderr_path.read_text()
        wait_until(lambda: _port_open(port), "e2rank mcp did not open its port")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(process)


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# ---------------------------------------------------------------------------- stdio, the way hosts launch it


async def test_stdio_server_end_to_end(corpus_dir, tmp_path, tiny_model, tiny_path):
    directory = tmp_path / "db"
    shutil.copytree(corpus_dir, directory)
    transport_errors: list[Exception] = []
    stack = ExitStack()  # the server's stderr goes to a file, closed at the end

    async def on_message(message) -> None:  # anything on stdout that is not the protocol arrives here
        if isinstance(message, Exception):
            transport_errors.append(message)

    params = StdioServerParameters(
        command=E2RANK, args=["mcp", "--chroma-dir", str(directory), "--writable"], env=dict(os.environ)
    )
    async with (
        stdio_client(params, errlog=stack.enter_context((tmp_path / "stderr.log").open("w"))) as (read, write),
        ClientSession(read, write, message_handler=on_message) as session,
    ):
        initialized = await session.initialize()  # the handshake does not wait for the model
        assert (initialized.server_info.name, initialized.server_info.version) == ("e2rank", __version__)
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert set(tools) == TOOLS
        search = tools["search"]
        assert search.input_schema["required"] == ["query"]
        assert set(search.input_schema["properties"]) == {"query", "top_n", "k", "where"}
        assert {"results", "context", "context_tokens", "k", "collection"} <= set(search.output_schema["properties"])
        assert search.annotations.read_only_hint is True
        assert tools["add_documents"].annotations.read_only_hint is False
        assert set(tools["rerank"].input_schema["required"]) == {"query", "documents"}
        assert set(tools["add_documents"].input_schema["properties"]) == {"documents", "ids", "metadatas"}
        assert tools["collection_info"].input_schema.get("required", []) == []

        info = await wait_ready(session)
        assert (info["name"], info["count"], info["exists"], info["writable"]) == ("docs", len(IDS), True, True)
        assert info["model"] == str(tiny_path)  # no --model: the collection's configuration named it
        assert info["dimension"] == tiny_model.dimension

        result = await session.call_tool("search", {"query": QUERY, "top_n": 5})
        assert not result.is_error, text_of(result)
        hits = result.structured_content["results"]
        assert_same_ranking([(h["id"], h["score"]) for h in hits], expected_search(tiny_model, QUERY, TEXTS, IDS, 5))
        first = hits[0]
        assert first["text"] == TEXTS[IDS.index(first["id"])]
        assert first["metadata"] == METADATAS[IDS.index(first["id"])]
        assert result.structured_content["context"].startswith(f"[1] ({first['id']}) {first['text']}")
        assert text_of(result) == result.structured_content["context"]  # all the model reads: no ids, no scores

        docs = ["Snow falls in winter when clouds are cold.", "Summer days are long and warm."]
        result = await session.call_tool("rerank", {"query": QUERY, "documents": docs + TEXTS[:3], "top_n": 4})
        assert not result.is_error, text_of(result)
        expected = tiny_model.rerank(QUERY, docs + TEXTS[:3], top_n=4, **AGENT)
        got = result.structured_content["results"]
        assert [r["index"] for r in got] == [r.index for r in expected]
        np.testing.assert_allclose([r["score"] for r in got], [r.score for r in expected], atol=1e-5)
        assert [r["text"] for r in got] == [(docs + TEXTS[:3])[r.index] for r in expected]

        added = await session.call_tool(
            "add_documents", {"documents": docs, "ids": ["snow", "summer"], "metadatas": [{"source": "notes.md"}, {}]}
        )
        assert not added.is_error, text_of(added)
        assert added.structured_content == {"ids": ["snow", "summer"], "count": len(IDS) + 2}

        query = "What falls from cold clouds?"
        before = (await wait_ready(session))["stats"]["texts_embedded"]
        result = await session.call_tool("search", {"query": query, "top_n": 8, "k": 50})
        after = (await wait_ready(session))["stats"]["texts_embedded"]
        # The query (for Chroma's first stage) and the listwise prompt: the 18 candidates' stored vectors are reused.
        assert after - before == 2
        hits = result.structured_content["results"]
        assert_same_ranking(
            [(h["id"], h["score"]) for h in hits],
            expected_search(tiny_model, query, [*TEXTS, *docs], [*IDS, "snow", "summer"], 8),
        )
        snow = next((h for h in hits if h["id"] == "snow"), None)
        if snow is not None and snow["citation"] is not None:  # its metadata's source cites it
            assert f"[{snow['citation']}] (notes.md) {docs[0]}" in result.structured_content["context"]
    stack.close()
    assert transport_errors == []  # nothing but protocol messages came out of stdout


# ---------------------------------------------------------------------------- streamable HTTP, one shared server


async def test_http_search_and_rerank_equal_the_in_process_model(http_server, tiny_model):
    async with http_session(http_server) as session:
        assert {tool.name for tool in (await session.list_tools()).tools} == READ_ONLY_TOOLS
        result = await session.call_tool("search", {"query": QUERY, "top_n": MAX_TOP_N})
        assert not result.is_error, text_of(result)
        content = result.structured_content
        assert (content["k"], content["collection"]) == (50, "docs")
        hits = content["results"]
        assert [h["id"] for h in hits] != []
        assert_same_ranking(
            [(h["id"], h["score"]) for h in hits], expected_search(tiny_model, QUERY, TEXTS, IDS, MAX_TOP_N)
        )
        cited = [h for h in hits if h["citation"] is not None]
        assert [h["citation"] for h in cited] == list(range(1, len(cited) + 1))
        assert content["context_tokens"] <= MAX_TOKENS

        result = await session.call_tool("rerank", {"query": QUERY, "documents": TEXTS})
        expected = tiny_model.rerank(QUERY, TEXTS, top_n=5, **AGENT)  # the server's --default-top-n
        assert [r["index"] for r in result.structured_content["results"]] == [r.index for r in expected]

        result = await session.call_tool("search", {"query": QUERY, "where": {"n": {"$lt": 4}}, "top_n": 3})
        assert not result.is_error, text_of(result)
        assert {h["metadata"]["n"] for h in result.structured_content["results"]} <= {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("tool", "arguments", "says"),
    [
        ("search", {"query": "   "}, "query must be a non-empty string"),
        ("search", {"query": QUERY, "top_n": MAX_TOP_N + 1}, f"top_n must be at most {MAX_TOP_N} (got 21)"),
        ("search", {"query": QUERY, "top_n": 0}, "top_n must be at least 1 (got 0)"),
        ("search", {"query": QUERY, "top_n": "two"}, "top_n must be a whole number (got 'two')"),
        ("search", {"query": QUERY, "k": "many"}, "k must be a whole number (got 'many')"),
        ("search", {"query": QUERY, "k": 100000}, "k must be at most 1000 (got 100000)"),
        ("search", {"query": QUERY, "topn": 3}, "search takes no argument 'topn'; its arguments are: query, top_n"),
        ("search", {"query": QUERY, "where": {"$nonsense": 1}}, "Chroma refused the where filter"),
        ("search", {"query": QUERY, "where": {"n": [1, 2]}}, "Chroma refused the where filter"),
        ("search", {}, "query is required"),
        ("rerank", {"query": QUERY, "documents": []}, "documents is empty"),
        ("rerank", {"query": QUERY, "documents": TEXTS, "top_n": 99}, f"top_n must be at most {MAX_TOP_N}"),
        ("rerank", {"query": QUERY, "documents": ["a", 3]}, "documents[1] must be a string (got 3)"),
        ("add_documents", {"documents": ["new"]}, "offered only by a server started writable"),
        ("no_such_tool", {}, "there is no tool 'no_such_tool'; the tools are: collection_info, rerank, search"),
    ],
)
async def test_bad_input_is_a_tool_error_and_the_server_goes_on(http_server, tool, arguments, says):
    async with http_session(http_server) as session:
        result = await session.call_tool(tool, arguments)
        assert result.is_error
        assert says in text_of(result)
        assert "pydantic" not in text_of(result) and "http" not in text_of(result)  # in our words
        info = await session.call_tool("collection_info", {})
        assert not info.is_error and info.structured_content["count"] == len(IDS)  # nothing was added


async def test_what_the_model_reads_fits_the_token_budget_whatever_top_n(http_server, tiny_model):
    async with http_session(http_server) as session:
        for top_n in (2, 5, 10, 20):
            for tool, arguments in (
                ("search", {"query": QUERY, "top_n": top_n}),
                ("rerank", {"query": QUERY, "documents": TEXTS[:top_n], "top_n": top_n}),
            ):
                result = await session.call_tool(tool, arguments)
                assert not result.is_error, text_of(result)
                assert tiny_model.count_tokens([text_of(result)])[0] <= MAX_TOKENS, (tool, top_n)
                hits = result.structured_content["results"]
                assert len(hits) == top_n and all("score" in hit for hit in hits)  # the rest: structured


def test_http_needs_the_key_keeps_host_checks_and_logs_on_stderr(http_server, http_logs):
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream"}
    no_key = httpx.post(http_server, json=body, headers=headers)
    assert no_key.status_code == 401 and "Bearer" in no_key.headers["www-authenticate"]
    wrong_host = httpx.post(http_server, json=body, headers={**headers, **AUTH, "Host": "10.1.2.3"})
    assert wrong_host.status_code == 421  # the SDK's DNS-rebinding check, kept on beyond loopback
    wrong_origin = httpx.post(http_server, json=body, headers={**headers, **AUTH, "Origin": "http://evil.example"})
    assert wrong_origin.status_code == 403
    stdout, stderr = (path.read_text() for path in http_logs)
    assert stdout == "" and '"POST /mcp HTTP/1.1" 401' in stderr  # the access log too goes to stderr


def test_http_beyond_loopback_without_a_key_does_not_start(capsys, monkeypatch):
    from e2rank_integrations.cli import main

    monkeypatch.delenv("E2RANK_API_KEY", raising=False)
    assert main(["mcp", "--chroma-dir", ".", "--transport", "streamable-http", "--host", "0.0.0.0"]) == 1
    assert "--host 0.0.0.0 is reachable from other machines and no --api-key is set" in capsys.readouterr().err
    with pytest.raises(ValueError, match="Give `api_key`"):
        run(MCPSettings(chroma_dir="."), "streamable-http", host="0.0.0.0")


@pytest.mark.filterwarnings("ignore:`langchain.mcp` is in beta")
async def test_langchain_mcp_adapter_reads_the_context_and_gets_the_rest_as_artifact(http_server, tiny_model):
    pytest.importorskip("fastmcp")
    from fastmcp.client.transports import StreamableHttpTransport
    from langchain.mcp import MCPAdapter

    async with MCPAdapter(StreamableHttpTransport(http_server, headers=AUTH)) as adapter:  # one session, held open
        tools = {tool.name: tool for tool in await adapter.list_tools()}
        assert set(tools) == READ_ONLY_TOOLS
        call = {"name": "search", "args": {"query": QUERY, "top_n": MAX_TOP_N}, "id": "call-1", "type": "tool_call"}
        message = await tools["search"].ainvoke(call)
    text = "".join(block["text"] for block in message.content)  # what the agent's model reads
    assert text.startswith("[1] (") and tiny_model.count_tokens([text])[0] <= MAX_TOKENS
    assert len(message.artifact["structured_content"]["results"]) == MAX_TOP_N


async def test_llama_index_mcp_client_loads_and_calls_the_tools(http_server):
    mcp_tools = pytest.importorskip("llama_index.tools.mcp")
    spec = mcp_tools.McpToolSpec(mcp_tools.BasicMCPClient(http_server, headers=AUTH))
    tools = {tool.metadata.name: tool for tool in await spec.to_tool_list_async()}
    assert set(tools) == READ_ONLY_TOOLS
    output = await tools["search"].acall(query=QUERY, top_n=2)
    assert not output.raw_output.is_error
    assert output.raw_output.structured_content["context"].startswith("[1] (")


# ---------------------------------------------------------------------------- in memory: loading and refusals


async def test_tools_say_loading_until_the_model_is_ready(corpus_dir, tiny_path):
    tools = E2RankTools(MCPSettings(chroma_dir=str(corpus_dir)), load_wait_s=0)
    async with Client(create_server(tools, load_on_start=False)) as client:
        result = await client.call_tool("search", {"query": QUERY})
        assert result.is_error and "still loading" in text_of(result)
        await asyncio.to_thread(tools.load)
        result = await client.call_tool("collection_info", {})
        assert not result.is_error and result.structured_content["model"] == str(tiny_path)


async def test_a_call_made_while_loading_waits_for_the_model(corpus_dir):
    tools = E2RankTools(MCPSettings(chroma_dir=str(corpus_dir)), load_wait_s=600)
    async with Client(create_server(tools)) as client:  # loading starts with the session
        result = await client.call_tool("collection_info", {})
        assert not result.is_error, text_of(result)
        assert result.structured_content["count"] == len(IDS)


async def test_unknown_collection_is_a_tool_error_naming_the_ones_there(corpus_dir, tiny_path):
    tools = E2RankTools(MCPSettings(chroma_dir=str(corpus_dir), collection="nope", model=str(tiny_path)))
    tools.load()
    async with Client(create_server(tools, load_on_start=False)) as client:
        result = await client.call_tool("search", {"query": QUERY})
        assert result.is_error
        assert "'nope' does not exist yet; restart the server with `collection` one of: docs" in text_of(result)
        info = await client.call_tool("collection_info", {})
        assert info.structured_content["exists"] is False


async def test_a_collection_of_another_model_is_refused(corpus_dir, other_tiny_path):
    tools = E2RankTools(MCPSettings(chroma_dir=str(corpus_dir), model=str(other_tiny_path)))
    tools.load()
    async with Client(create_server(tools, load_on_start=False)) as client:
        for name, arguments in (("search", {"query": QUERY}), ("collection_info", {})):
            result = await client.call_tool(name, arguments)
            assert result.is_error
            assert f"`model` {other_tiny_path} did not embed collection 'docs'" in text_of(result)
            assert "without `model`" in text_of(result)


async def test_several_collections_need_a_name(tmp_path, tiny_path):
    client = chromadb.PersistentClient(path=str(tmp_path))
    for name in ("alpha", "beta"):
        client.create_collection(name, embedding_function=E2RankEmbeddingFunction(model=str(tiny_path)))
    tools = E2RankTools(MCPSettings(chroma_dir=str(tmp_path)))
    tools.load()
    async with Client(create_server(tools, load_on_start=False)) as session:
        result = await session.call_tool("collection_info", {})
        assert result.is_error and "holds 2 collections (alpha, beta): name the one to serve with `collection`" in (
            text_of(result)
        )


async def test_a_bug_is_an_internal_error_and_bad_input_a_tool_error_naming_it(
    corpus_dir, tiny_path, monkeypatch, caplog
):
    tools = E2RankTools(MCPSettings(chroma_dir=str(corpus_dir), model=str(tiny_path)))
    tools.load()
    backend = tools._ready.function.backend

    def broken(*args, **kwargs):
        raise ValueError("an internal invariant broke")  # a bug, not the caller's input

    def refuses(*args, **kwargs):
        raise E2RankValueError("`documents` are more than the model server takes in one rerank")

    arguments = {"query": QUERY, "documents": TEXTS[:3]}
    async with Client(create_server(tools, load_on_start=False)) as client:
        monkeypatch.setattr(backend, "rerank", broken)
        with caplog.at_level(logging.ERROR):
            result = await client.call_tool("rerank", arguments)
        assert result.is_error and text_of(result) == "Error executing tool rerank"  # nothing of the bug's text
        logged = [r for r in caplog.records if "raised an unexpected exception" in r.getMessage()]
        assert logged and logged[0].exc_info is not None  # logged with its traceback
        monkeypatch.setattr(backend, "rerank", refuses)
        result = await client.call_tool("rerank", arguments)
        assert result.is_error and "`documents` are more than the model server takes in one rerank" in text_of(result)


# ---------------------------------------------------------------------------- the command line


async def test_the_prompt_levers_and_the_model_options_reach_the_model(corpus_dir, tiny_path):
    from e2rank_integrations import E2RankModel

    levers = {"num_prompt_docs": 2, "max_prompt_tokens": 80}
    settings = MCPSettings(chroma_dir=str(corpus_dir), model=str(tiny_path), quantize="int8", dtype="float32", **levers)
    tools = E2RankTools(settings)
    tools.load()
    int8 = E2RankModel.from_pretrained(tiny_path, quantize="int8")
    async with Client(create_server(tools, load_on_start=False)) as client:
        result = await client.call_tool("rerank", {"query": QUERY, "documents": TEXTS, "top_n": 3})
    expected = int8.rerank(QUERY, TEXTS, top_n=3, **levers)
    got = result.structured_content["results"]
    assert [r["index"] for r in got] == [r.index for r in expected]
    np.testing.assert_allclose([r["score"] for r in got], [r.score for r in expected], atol=1e-5)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"quantize": "int4"}, "`quantize` must be int8"),
        ({"dtype": "float64"}, "`dtype` must be bfloat16, float16 or float32"),
        ({"server_url": "http://127.0.0.1:9", "quantize": "int8"}, "`dtype` and `quantize` load a local model"),
        ({"max_prompt_tokens": 0}, "`max_prompt_tokens` must be a positive integer"),
        ({"num_prompt_docs": 0}, "`num_prompt_docs` must be a positive integer"),
    ],
)
def test_bad_levers_are_refused(corpus_dir, options, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        MCPSettings(chroma_dir=str(corpus_dir), **options)
    assert MCPSettings(chroma_dir=str(corpus_dir), max_prompt_tokens=None).max_prompt_tokens is None  # no cap


def test_missing_chroma_dir_exits_with_a_clear_message(tmp_path):
    missing = tmp_path / "nowhere"
    done = subprocess.run(
        [E2RANK, "mcp", "--chroma-dir", str(missing)],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1
    assert done.stdout == ""  # stdout stays the protocol's, even for an error
    assert f"--chroma-dir {missing}: no such directory" in done.stderr
    assert not missing.exists()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--chroma-dir", ".", "--api-key-env", "KEY"], "--api-key-env names the API key of a server"),
        (["--chroma-dir", ".", "--default-top-n", "9", "--max-top-n", "4"], "--default-top-n (9) is over"),
        (["--chroma-dir", ".", "--max-tokens", "0"], "--max-tokens must be a positive integer"),
        (["--chroma-dir", ".", "--max-prompt-tokens", "-1"], "--max-prompt-tokens must be a positive integer"),
        (["--chroma-dir", ".", "--quantize", "int4"], "--quantize must be int8"),
        (["--chroma-dir", ".", "--model", "./no/such/model"], "--model ./no/such/model: no such directory"),
    ],
)
def test_bad_options_are_refused_before_serving(argv, says, capsys):
    from e2rank_integrations.cli import main

    assert main(["mcp", *argv]) == 1
    captured = capsys.readouterr()
    assert says in captured.err and captured.out == ""


def test_a_missing_extra_is_named_before_serving(tmp_path):
    result = run_python(
        f"""
        import sys
        sys.modules["chromadb"] = None  # as if the chroma extra were not installed
        from e2rank_integrations.cli import main
        sys.exit(main(["mcp", "--chroma-dir", {str(tmp_path)!r}]))
        """
    )
    assert result.returncode == 1 and result.stdout == ""
    assert "pip install 'e2rank-integrations[mcp,chroma,model]'" in result.stderr


def test_parser_defaults_are_the_documented_ones():
    args = build_parser().parse_args(["mcp", "--chroma-dir", "db"])
    assert (args.transport, args.host, args.port, args.writable) == ("stdio", "127.0.0.1", 8765, False)
    assert (args.default_k, args.default_top_n, args.max_top_n, args.max_tokens) == (50, 5, 50, 4000)
    assert (args.max_k, args.api_key, args.allowed_hosts) == (1000, None, [])
    assert build_parser().parse_args(["mcp", "--chroma-dir", "db", "--writable"]).writable is True
    with pytest.raises(SystemExit):
        build_parser().parse_args(["mcp", "--chroma-dir", "db", "--model", "m", "--server-url", "http://x"])
