"""LangChain's own standard test suites for E2RankEmbeddings, unmodified: on a local tiny checkpoint, and over
``E2RankClient`` against a real server hosting one."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from e2rank_integrations.langchain import E2RankEmbeddings


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
