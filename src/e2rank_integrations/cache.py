"""Embedding caches: an in-memory LRU and a persistent SQLite file, keyed by model fingerprint + text hash.

A key is ``sha256(fingerprint, encoded text)``: the fingerprint covers the weights and every encoding setting,
so vectors from another model or another setting are never returned, and one SQLite file can serve many models.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Union

import numpy as np

from .errors import E2RankTypeError, E2RankValueError
from .types import Embeddings

logger = logging.getLogger("e2rank_integrations.cache")

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

    def close(self) -> None:  # noqa: B027 - a no-op unless the cache holds a file or a connection
        """Release files and connections (the cache opens them again on next use)."""


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
            raise E2RankValueError(f"max_entries must be a positive integer, got {max_entries!r}")
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
    ``timeout`` seconds. Reads and writes use separate connections, so a write waiting for that lock never stalls
    a read.

    Every entry can be recomputed, so the cache never fails a call: the file is checked when it is opened
    (``PRAGMA quick_check``), and a corrupt or truncated one is moved aside (renamed ``<name>.corrupt-<time>``,
    with a warning naming it) and a fresh one started; a read that fails later is a miss and a write that fails
    is skipped, each logged.
    """

    _CHUNK = 500  # keys per SELECT: under SQLite's bound-parameter limit on every version

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._timeout = timeout
        # One lock per connection: readers never queue behind a writer that waits for another process.
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._connections: dict[str, sqlite3.Connection] = {}
        self._pid = os.getpid()
        with self._write_lock, self._read_lock:
            self._open_checked()

    def _open_checked(self) -> None:
        """Open the file, or move it aside and start a fresh one if it is corrupt (both locks held)."""
        try:
            problems = [row[0] for row in self._connection("write").execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("; ".join(problems[:3]))
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise  # locked, unreadable, no such directory: nothing a new file would fix
            self._close_connections()
            moved = _move_aside(self.path)
            logger.warning(
                "the embedding cache %s is corrupt (%s): moved it to %s and started a fresh one",
                self.path,
                exc,
                moved,
            )
            self._connection("write")

    def _connection(self, role: str) -> sqlite3.Connection:
        """The ``"read"`` or ``"write"`` connection (call with that role's lock held)."""
        if self._pid != os.getpid():  # a connection must not cross a fork: reopen in a child process
            self._connections, self._pid = {}, os.getpid()
        conn = self._connections.get(role)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._timeout, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
            self._connections[role] = conn
        return conn

    def get_many(self, keys: Sequence[str]) -> dict[str, Embeddings]:
        found: dict[str, Embeddings] = {}
        unique = list(dict.fromkeys(keys))
        try:
            with self._read_lock:
                conn = self._connection("read")
                for start in range(0, len(unique), self._CHUNK):
                    chunk = unique[start : start + self._CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows = conn.execute(f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk)
                    for key, blob in rows:
                        if isinstance(blob, bytes) and len(blob) % 4 == 0:  # anything else is a miss
                            found[key] = np.frombuffer(blob, dtype=np.float32)
        except sqlite3.DatabaseError as exc:
            logger.warning("could not read the embedding cache %s (%s): treating it as a miss", self.path, exc)
        return found

    def put_many(self, items: Mapping[str, Embeddings]) -> None:
        rows = [(key, np.asarray(v, dtype=np.float32).tobytes()) for key, v in items.items()]
        if not rows:
            return
        with self._write_lock:
            conn = self._connection("write")
            try:
                conn.execute("BEGIN IMMEDIATE")  # one write transaction; waits up to `timeout` for other writers
                conn.executemany("INSERT OR REPLACE INTO embeddings (key, vector) VALUES (?, ?)", rows)
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                logger.warning("could not write %d entries to the embedding cache %s (%s)", len(rows), self.path, exc)

    def __len__(self) -> int:
        # A connection of its own: counting a large file takes a while, and no reader or writer waits for it.
        try:
            with contextlib.closing(sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True)) as conn:
                return int(conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            logger.warning("could not count the entries of the embedding cache %s (%s)", self.path, exc)
            return 0

    def clear(self) -> None:
        with self._write_lock:
            self._connection("write").execute("DELETE FROM embeddings")

    @property
    def closed(self) -> bool:
        """True when no connection is open (one opens again on next use)."""
        return not self._connections

    def close(self) -> None:
        """Close the connections (they reopen on next use)."""
        with self._write_lock, self._read_lock:
            self._close_connections()

    def _close_connections(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections = {}

    def __repr__(self) -> str:
        return f"SQLiteCache({str(self.path)!r})"


def _move_aside(path: Path) -> Path:
    """Rename a corrupt database file (and its WAL and shared-memory files) out of the way; the new name."""
    target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.replace(f"{target}{suffix}")
    return target


class TieredCache(EmbeddingCache):
    """Look in each cache in turn; a hit in a later one is copied into the earlier ones."""

    def __init__(self, *tiers: EmbeddingCache) -> None:
        if not tiers:
            raise E2RankValueError("TieredCache needs at least one cache")
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

    def close(self) -> None:
        for tier in self.tiers:
            tier.close()

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
    raise E2RankTypeError(f"cache must be None, a bool, an int, a path or an EmbeddingCache, got {type(spec).__name__}")
