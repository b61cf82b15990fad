"""The process-wide registry: models and clients built once per process and shared, and closable.

Adapters that are rebuilt from a stored description (Chroma rebuilds an embedding function from a collection's
configuration, once per collection, sometimes once per call) must not load the weights again each time. They ask
the registry, which builds each object once per key and hands the same one back after. :meth:`Registry.close`
closes what it built (a model's SQLite cache, a client's connections) and forgets it; the next request builds anew.

Loading a model takes minutes: each key has its own lock, so a load blocks only those waiting for the same key.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .cache import EmbeddingCache
from .prompts import PromptFormat

if TYPE_CHECKING:
    from .model import E2RankModel

__all__ = ["REGISTRY", "Registry", "shared_model"]

_T = TypeVar("_T")


class _Entry:
    """One key's object, and the lock its build holds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: Any = None


class Registry:
    """Objects shared by key: built once (:meth:`get`) or found where someone else made them (:meth:`remember`).

    Example:
        >>> registry = Registry()
        >>> first = registry.get("answer", lambda: [42])
        >>> registry.get("answer", lambda: [0]) is first
        True
        >>> registry.close()
        >>> registry.get("answer", lambda: [0])
        [0]
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the two dicts only, never a build
        self._built: dict[str, _Entry] = {}
        # Weak values: an object the caller made and dropped is not kept alive here.
        self._remembered: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()

    def get(self, key: str, build: Callable[[], _T]) -> _T:
        """The object for ``key``, built by ``build()`` on first use; the registry owns it and closes it."""
        with self._lock:
            entry = self._built.setdefault(key, _Entry())
        with entry.lock:  # two threads asking for the same key build it once; other keys go on meanwhile
            if entry.value is None:
                entry.value = build()
            value: _T = entry.value
        return value

    def remember(self, key: str, value: object) -> None:
        """Let :meth:`find` return ``value`` for ``key`` while the caller keeps it alive (it is not owned here)."""
        with self._lock, contextlib.suppress(TypeError):  # an object without weak references is not remembered
            self._remembered[key] = value

    def find(self, key: str) -> Any:
        """The object built or remembered for ``key``, or ``None``."""
        with self._lock:
            entry = self._built.get(key)
            return entry.value if entry is not None and entry.value is not None else self._remembered.get(key)

    def close(self) -> None:
        """Close every object built here (``close()`` where it has one) and forget all keys."""
        with self._lock:
            built, self._built = self._built, {}
            self._remembered = weakref.WeakValueDictionary()
        for entry in built.values():
            with entry.lock:  # a build still running finishes first
                close = getattr(entry.value, "close", None)
                if callable(close):
                    close()
                entry.value = None

    def keys(self) -> list[str]:
        """The keys of the objects built here (not those only remembered)."""
        with self._lock:
            return [key for key, entry in self._built.items() if entry.value is not None]


REGISTRY = Registry()
"""The registry of this process."""


def shared_model(name_or_path: str | os.PathLike[str], **kwargs: Any) -> E2RankModel:
    """The process-wide :class:`~e2rank_integrations.E2RankModel` for these load settings, loaded on first use.

    Adapters that are built from a model name (Chroma rebuilding an embedding function from a collection's stored
    configuration) call this, so the weights are loaded once per process however many objects ask for them.
    Settings are compared after defaults are filled in (``device=None`` is no ``device``); different settings
    (another ``max_length``, device or cache) load another model. ``REGISTRY.close()`` closes them all.

    Args:
        name_or_path: A hub id or a local directory, as for :meth:`E2RankModel.from_pretrained`.
        **kwargs: Passed to :meth:`E2RankModel.from_pretrained`; part of the key that identifies the model.

    Example:
        >>> from e2rank_integrations.registry import shared_model
        >>> model = shared_model("Alibaba-NLP/E2Rank-0.6B")  # doctest: +SKIP
        >>> shared_model("Alibaba-NLP/E2Rank-0.6B", device=None) is model  # doctest: +SKIP
        True
    """
    from .model import E2RankModel  # here, not at the top: model imports this module (it re-exports shared_model)

    bound = inspect.signature(E2RankModel.from_pretrained).bind(os.fspath(name_or_path), **kwargs)
    bound.apply_defaults()
    settings = {name: value for name, value in bound.arguments.items() if name != "hf_kwargs"}
    settings.update(bound.arguments.get("hf_kwargs", {}))
    key = "model:" + json.dumps(settings, sort_keys=True, default=_setting_key)
    return REGISTRY.get(key, lambda: E2RankModel.from_pretrained(os.fspath(name_or_path), **kwargs))


def _setting_key(value: object) -> object:
    """A load setting that JSON cannot hold, as a key: a cache by identity (it is shared state), else its repr."""
    if isinstance(value, EmbeddingCache):
        return f"{type(value).__name__}@{id(value):x}"  # the loaded model keeps the cache alive, so the id stays its
    if isinstance(value, PromptFormat):
        return value.to_dict()
    return repr(value)  # torch.dtype, torch.device, paths: equal settings have equal reprs
