"""Servers over tiny checkpoints on real loopback ports, shared by the server, client and adapter tests.

Each fixture skips where the ``server`` extra is missing (the ``oldest`` env runs test_chroma.py without it), so
that only the tests that need a server are skipped, never a whole module.
"""

from __future__ import annotations

import pytest

API_KEY = "test-key"
STRICT_LIMITS = {
    "api_key": API_KEY,
    "max_client_batch_size": 8,
    "payload_limit_mb": 0.05,
    "max_concurrent_requests": 2,
    "max_batch_tokens": 512,
}


def _serve(model, **settings):
    """A context manager running ``create_app(model, ServerSettings(**settings))`` on a free loopback port."""
    for module in ("fastapi", "uvicorn", "httpx"):
        pytest.importorskip(module)
    from e2rank_integrations.server import ServerSettings, create_app

    from .serving import running_server

    return running_server(create_app(model, ServerSettings(**settings)))


@pytest.fixture(scope="session")
def server(tiny_path):
    """Default settings, a model of its own (so its counters are this server's)."""
    from e2rank_integrations import E2RankModel

    with _serve(E2RankModel.from_pretrained(tiny_path)) as running:
        yield running


@pytest.fixture(scope="session")
def keyed_server(tiny_path):
    """Default settings behind ``API_KEY``, a model of its own."""
    from e2rank_integrations import E2RankModel

    with _serve(E2RankModel.from_pretrained(tiny_path), api_key=API_KEY) as running:
        yield running


@pytest.fixture(scope="session")
def raw_server(tiny_path):
    """Embeds untyped texts exactly as sent, as vLLM or TEI do: the stand-in for those engines."""
    from e2rank_integrations import E2RankModel

    with _serve(E2RankModel.from_pretrained(tiny_path), raw_embeddings=True) as running:
        yield running


@pytest.fixture(scope="session")
def strict_server(tiny_path):
    """An API key, small limits (8 items, 50 KiB, 2 in flight) and a 64-token model limit."""
    from e2rank_integrations import E2RankModel

    with _serve(E2RankModel.from_pretrained(tiny_path, max_length=64), **STRICT_LIMITS) as running:
        yield running


@pytest.fixture
def remote_client(server):
    """An ``E2RankClient`` of ``server``: the remote Backend the adapters take in place of a local model."""
    from e2rank_integrations import E2RankClient

    with E2RankClient(server.url) as client:
        yield client
