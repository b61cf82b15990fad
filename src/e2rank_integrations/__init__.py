"""One E2Rank embedding model for retrieval and listwise reranking.

Only public names live here. Nothing heavy is imported until it is used: ``import e2rank_integrations`` needs
neither torch nor any framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._optional import lazy_getattr
from .cache import EmbeddingCache, LRUCache, SQLiteCache, TieredCache
from .context import PackedContext, pack_context
from .errors import (
    E2RankAPIError,
    E2RankCompatibilityError,
    E2RankConnectionError,
    E2RankError,
    E2RankHubUnreachableError,
    E2RankIndexError,
    E2RankInputError,
    E2RankModelNotFoundError,
    E2RankStateError,
    E2RankTimeoutError,
    E2RankTypeError,
    E2RankValueError,
    TrainingDataError,
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
    "E2RankIndexError",
    "E2RankInputError",
    "E2RankModel",
    "E2RankModelNotFoundError",
    "E2RankStateError",
    "E2RankTimeoutError",
    "E2RankTypeError",
    "E2RankValueError",
    "EmbeddingCache",
    "LRUCache",
    "PackedContext",
    "PromptFormat",
    "RankResult",
    "SQLiteCache",
    "TieredCache",
    "TrainingDataError",
    "__version__",
    "pack_context",
]

_LAZY = {
    "E2RankModel": "model",
    "E2RankClient": "client",
    "AsyncE2RankClient": "client",
}  # name -> module, imported on first use


__getattr__ = lazy_getattr(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(__all__)
