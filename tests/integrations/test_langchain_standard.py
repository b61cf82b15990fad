"""LangChain's own standard test suites, unmodified: for E2RankEmbeddings on a local tiny checkpoint and over
``E2RankClient`` against a real server hosting one; for E2RankRetriever and the tool of create_e2rank_tool."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
    RetrieversIntegrationTests,
    ToolsIntegrationTests,
)
from langchain_tests.unit_tests import EmbeddingsUnitTests, ToolsUnitTests

from e2rank_integrations.langchain import E2RankEmbeddings, E2RankRetriever, create_e2rank_tool


class _TinyBackend:
    """Gives the suites' `embedding_model_params` the session's tiny model (a property cannot take fixtures)."""

    @pytest.fixture(autouse=True)
    def _backend(self, tiny_model):
        self.backend = tiny_model

    @property
    def embeddings_class(self) -> type[E2RankEmbeddings]:
        return E2RankEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"backend": self.backend}


class _RemoteBackend(_TinyBackend):
    """The same, with an ``E2RankClient`` of a real server as the backend."""

    @pytest.fixture(autouse=True)
    def _backend(self, remote_client):
        self.backend = remote_client


class TestE2RankEmbeddingsUnit(_TinyBackend, EmbeddingsUnitTests):
    pass


class TestE2RankEmbeddingsIntegration(_TinyBackend, EmbeddingsIntegrationTests):
    pass


class TestE2RankEmbeddingsOverClientIntegration(_RemoteBackend, EmbeddingsIntegrationTests):
    pass


# ---------------------------------------------------------------- the agent pieces: E2RankRetriever and its tool


@pytest.fixture(scope="module")
def indexed_store(tiny_path):
    """A vector store of the built-in passages, indexed through a model of its own (used by the reranker too)."""
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    from e2rank_integrations import E2RankModel
    from e2rank_integrations.corpus import builtin_corpus

    store = InMemoryVectorStore(E2RankEmbeddings(backend=E2RankModel.from_pretrained(tiny_path)))
    store.add_documents([Document(page_content=p["text"], metadata={"source": p["title"]}) for p in builtin_corpus()])
    return store


class _Indexed:
    @pytest.fixture(autouse=True)
    def _store(self, indexed_store):
        self.store = indexed_store

    def make_retriever(self, **options) -> E2RankRetriever:
        return E2RankRetriever(vectorstore=self.store, backend=self.store.embeddings.backend, **options)


class TestE2RankRetrieverIntegration(_Indexed, RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[E2RankRetriever]:
        return E2RankRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"vectorstore": self.store, "backend": self.store.embeddings.backend, "k": 20}

    @property
    def retriever_query_example(self) -> str:
        return "Why does Earth have seasons?"

    @property
    def num_results_arg_name(self) -> str:
        return "top_n"  # k is the first stage's candidates; top_n is how many come back


class _E2RankTool(_Indexed):
    @property
    def tool_constructor(self):
        return create_e2rank_tool(self.make_retriever(k=20), max_tokens=300)

    @property
    def tool_invoke_params_example(self) -> dict:
        return {"query": "Why does Earth have seasons?", "top_n": 3}


class TestE2RankToolUnit(_E2RankTool, ToolsUnitTests):
    pass


class TestE2RankToolIntegration(_E2RankTool, ToolsIntegrationTests):
    pass
