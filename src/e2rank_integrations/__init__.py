"""One E2Rank embedding model for retrieval and listwise reranking.

Only public names live here. Nothing heavy is imported until it is used: ``import e2rank_integrations`` needs
neither torch nor any framework.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .cache import EmbeddingCache, LRUCache, SQLiteCache, TieredCache
from .errors import (
    E2RankAPIError,
    E2RankCompatibilityError,
    E2RankConnectionError,
    E2RankError,
    E2RankHubUnreachableError,
    E2RankModelNotFoundError,
    E2RankTimeoutError,
)
from .prompts import PromptFormat
from .types import AsyncBackend, Backend, RankResult

if TYPE_CHECKING:
    from .client import AsyncE2RankClient, E2RankClient
    from .model import E2RankModel

__version__ = "0.1.0"

__all__ = [
    "AsyncBackend",
    "AsyncE2RankClient",
    "Backend",
    "E2RankAPIError",
    "E2RankClient",
    "E2RankCompatibilityError",
    "E2RankConnectionError",
    "E2RankError",
    "E2RankHubUnreachableError",
    "E2RankModel",
    "E2RankModelNotFoundError",
    "E2RankTimeoutError",
    "EmbeddingCache",
    "LRUCache",
    "PromptFormat",
    "RankResult",
    "SQLiteCache",
    "TieredCache",
    "__version__",
]

_LAZY = {
    "E2RankModel": "model",
    "E2RankClient": "client",
    "AsyncE2RankClient": "client",
}  # name -> module, imported on first use


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
