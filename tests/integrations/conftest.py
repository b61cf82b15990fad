"""Servers over tiny checkpoints on real loopback ports, shared by the server and client tests."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("torch")

from e2rank_integrations import E2RankModel
from e2rank_integrations.server import ServerSettings, create_app

from .serving import running_server

API_KEY = "test-key"
STRICT = ServerSettings(
    api_key=API_KEY, max_client_batch_size=8, payload_limit_mb=0.05, max_concurrent_requests=2, max_batch_tokens=512
)


@pytest.fixture(scope="session")
def server(tiny_path):
    """Default settings, a model of its own (so its counters are this server's)."""
    with running_server(create_app(E2RankModel.from_pretrained(tiny_path))) as running:
        yield running


@pytest.fixture(scope="session")
def raw_server(tiny_path):
    """Embeds untyped texts exactly as sent, as vLLM or TEI do: the stand-in for those engines."""
    app = create_app(E2RankModel.from_pretrained(tiny_path), ServerSettings(raw_embeddings=True))
    with running_server(app) as running:
        yield running


@pytest.fixture(scope="session")
def strict_server(tiny_path):
    """An API key, small limits (8 items, 50 KiB, 2 in flight) and a 64-token model limit."""
    app = create_app(E2RankModel.from_pretrained(tiny_path, max_length=64), STRICT)
    with running_server(app) as running:
        yield running
