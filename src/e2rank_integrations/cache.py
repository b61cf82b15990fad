"""Embedding caches: an in-memory LRU and a persistent SQLite file, keyed by model fingerprint + text hash.

A key is ``sha256(fingerprint, encoded text)``: the fingerprint covers the weights and every encoding setting,
so vectors from another model or another setting are never returned, and one SQLite file can serve many models.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Union

import numpy as np

from .types import Embeddings

__all__ = [
    "DEFAULT_CACHE_ENTRIES",
    "CacheSpec",
    "EmbeddingCache",
    "LRUCache",
    "SQLiteCache",
    "TieredCache",
    "cache_key",
    "make_cache",
]

DEFAULT_CACHE_ENTRIES = 20_000
"""Entries the default in-memory cache holds (80 MB of 1024-d vectors); use a SQLite cache for whole corpora."""

CacheSpec = Union["EmbeddingCache", str, os.PathLike[str], int, bool, None]


def cache_key(fingerprint: str, text: str) -> str:
    """The cache key of one exact encoded text under one model fingerprint."""
    digest = hashlib.sha256(fingerprint.encode())
    digest.update(b"\x00")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


class EmbeddingCache(ABC):
    """A thread-safe mapping from cache keys to float32 vectors."""

    @abstractmethod
    def get_many(self, keys: Sequence[str]) -> dict[str, Embeddings]:
        """The cached vectors for those keys that are present (missing keys are left out)."""

    @abstractmethod
    def put_many(self, items: Mapping[str, Embeddings]) -> None:
        """Store vectors under their keys."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def clear(self) -> None:
        """Remove every entry."""


class LRUCache(EmbeddingCache):
    """In-memory cache bounded by a number of entries; the least recently used go first.

    Example:
        >>> cache = LRUCache(max_entries=2)
        >>> cache.put_many({"a": np.ones(2, np.float32), "b": np.zeros(2, np.float32)})
        >>> sorted(cache.get_many(["a", "c"]))
        ['a']
    """

    def __init__(self, max_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be a positive integer, got {max_entries!r}")
        self.max_entries = max_entries
        self._data: OrderedDict[str, Embeddings] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[str]) -> dict[str, Embeddings]:
        found: dict[str, Embeddings] = {}
        with self._lock:
            for key in keys:
                vector = self._data.get(key)
                if vector is not None:
                    self._data.move_to_end(key)
                    found[key] = vector
        return found

    def put_many(self, items: Mapping[str, Embeddings]) -> None:
        with self._lock:
            for key, vector in items.items():
                stored = np.array(vector, dtype=np.float32)  # a private, read-only copy
                stored.setflags(write=False)
                self._data[key] = stored
                self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __repr__(self) -> str:
        return f"LRUCache(max_entries={self.max_entries}, entries={len(self)})"


class SQLiteCache(EmbeddingCache):
    """Persistent cache in one SQLite file (WAL mode): index in one process, rerank in another.

    Several processes may read and write the same file at once; a writer waits for another's lock for up to
    ``timeout`` seconds.
    """

    _CHUNK = 500  # keys per SELECT: under SQLite's bound-parameter limit on every version

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._pid = -1
        self._conn: sqlite3.Connection | None = None
        self._connect()

    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross a fork: reopen in a child process.
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=self._timeout, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def get_many(self, keys: Sequence[str]) -> dict[str, Embeddings]:
        found: dict[str, Embeddings] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            conn = self._connect()
            for start in range(0, len(unique), self._CHUNK):
                chunk = unique[start : start + self._CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk)
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, items: Mapping[str, Embeddings]) -> None:
        rows = [(key, np.asarray(v, dtype=np.float32).tobytes()) for key, v in items.items()]
        if not rows:
            return
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")  # one write transaction; waits up to `timeout` for other writers
            try:
                conn.executemany("INSERT OR REPLACE INTO embeddings (key, vector) VALUES (?, ?)", rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return int(self._connect().execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    def clear(self) -> None:
        with self._lock:
            self._connect().execute("DELETE FROM embeddings")

    def close(self) -> None:
        """Close the connection (it reopens on next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"SQLiteCache({str(self.path)!r})"


class TieredCache(EmbeddingCache):
    """Look in each cache in turn; a hit in a later one is copied into the earlier ones."""

    def __init__(self, *tiers: EmbeddingCache) -> None:
        if not tiers:
            raise ValueError("TieredCache needs at least one cache")
        self.tiers = tiers

    def get_many(self, keys: Sequence[str]) -> dict[str, Embeddings]:
        found: dict[str, Embeddings] = {}
        missing = list(keys)
        for depth, tier in enumerate(self.tiers):
            if not missing:
                break
            hits = tier.get_many(missing)
            if hits:
                for upper in self.tiers[:depth]:
                    upper.put_many(hits)
                found.update(hits)
                missing = [k for k in missing if k not in hits]
        return found

    def put_many(self, items: Mapping[str, Embeddings]) -> None:
        for tier in self.tiers:
            tier.put_many(items)

    def __len__(self) -> int:
        return len(self.tiers[-1])

    def clear(self) -> None:
        for tier in self.tiers:
            tier.clear()

    def __repr__(self) -> str:
        return f"TieredCache{self.tiers!r}"


def make_cache(spec: CacheSpec) -> EmbeddingCache | None:
    """Turn the ``cache=`` argument into a cache.

    ``None`` or ``True``: the default in-memory LRU. ``False`` or ``0``: no cache. An ``int``: an LRU of that many
    entries. A path: a SQLite file behind the default LRU. An :class:`EmbeddingCache`: used as it is.
    """
    if isinstance(spec, EmbeddingCache):
        return spec
    if spec is None or spec is True:
        return LRUCache()
    if spec is False or spec == 0:
        return None
    if isinstance(spec, int):
        return LRUCache(spec)
    if isinstance(spec, (str, os.PathLike)):
        return TieredCache(LRUCache(), SQLiteCache(spec))
    raise TypeError(f"cache must be None, a bool, an int, a path or an EmbeddingCache, got {type(spec).__name__}")
