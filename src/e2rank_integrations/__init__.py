"""One E2Rank embedding model for retrieval and listwise reranking.

Only public names live here. Nothing heavy is imported until it is used: ``import e2rank_integrations`` needs
neither torch nor any framework. ``__all__`` holds what imports with no extra installed, so that
``from e2rank_integrations import *`` always works; the HTTP clients (``E2RankClient``, ``AsyncE2RankClient``,
the ``client`` extra) are imported by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._optional import lazy_getattr
from .cache import EmbeddingCache, LRUCache, SQLiteCache, TieredCache
from .context import PackedContext, apack_context, pack_context
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
from .types import AsyncBackend, Backend, BackendInfo, RankResult

if TYPE_CHECKING:  # `X as X`: re-exported for type checkers, as __all__ leaves the clients out
    from .client import AsyncE2RankClient as AsyncE2RankClient
    from .client import E2RankClient as E2RankClient
    from .model import E2RankModel

__version__ = "0.1.0"

__all__ = [
    "AsyncBackend",
    "Backend",
    "BackendInfo",
    "E2RankAPIError",
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
    "apack_context",
    "pack_context",
]

_LAZY = {
    "E2RankModel": "model",
    "E2RankClient": "client",
    "AsyncE2RankClient": "client",
}  # name -> module, imported on first use


__getattr__ = lazy_getattr(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted({*__all__, *_LAZY})
