"""The SQLite cache under faults: corrupt files, bad rows, locks held by another process. It never fails a call."""

from __future__ import annotations

import logging
import sqlite3
import threading

import numpy as np
import pytest

from e2rank_integrations.cache import SQLiteCache


def filled(path, rows=2000):
    cache = SQLiteCache(path)
    cache.put_many({f"key-{i:05d}": np.full(16, i, dtype=np.float32) for i in range(rows)})
    cache.close()
    with sqlite3.connect(path) as conn:  # everything into the main file, so the damage below hits real pages
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.read_bytes()


def garbage_in_the_middle(data: bytes) -> bytes:
    middle = (len(data) // 2) // 4096 * 4096  # a whole page in the middle of the table
    return data[:middle] + b"\xa5" * 4096 + data[middle + 4096 :]


@pytest.mark.parametrize(
    "damage",
    [garbage_in_the_middle, lambda data: data[: len(data) // 2], lambda data: b"not a database " * 100],
    ids=["garbage-in-the-middle", "truncated", "not-a-database"],
)
def test_a_corrupt_file_is_moved_aside_and_a_fresh_one_started(tmp_path, caplog, damage):
    path = tmp_path / "cache.sqlite"
    damaged = damage(filled(path))
    path.write_bytes(damaged)
    with caplog.at_level(logging.WARNING, logger="e2rank_integrations.cache"):
        cache = SQLiteCache(path)
    corrupt = [p for p in tmp_path.iterdir() if p.name.startswith("cache.sqlite.corrupt-")]
    (moved,) = [p for p in corrupt if not p.name.endswith(("-wal", "-shm"))]
    assert moved.read_bytes() == damaged  # kept as it was, for whoever wants to look at it
    assert f"moved it to {moved}" in caplog.text and "is corrupt" in caplog.text
    assert len(cache) == 0 and cache.get_many(["key-00001"]) == {}
    cache.put_many({"k": np.ones(4, np.float32)})
    np.testing.assert_array_equal(SQLiteCache(path).get_many(["k"])["k"], np.ones(4))


def test_a_sound_file_is_kept(tmp_path):
    path = tmp_path / "cache.sqlite"
    filled(path, rows=10)
    assert len(SQLiteCache(path)) == 10
    assert [p.name for p in tmp_path.iterdir() if "corrupt" in p.name] == []


def test_rows_that_are_not_float32_vectors_are_misses(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = SQLiteCache(path)
    cache.put_many({"good": np.ones(4, np.float32)})
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO embeddings VALUES ('odd', ?)", (b"\x00" * 7,))  # not a whole float32
        conn.execute("INSERT INTO embeddings VALUES ('text', 'a string, not bytes')")
    assert set(cache.get_many(["good", "odd", "text"])) == {"good"}


def test_a_reader_does_not_wait_for_a_writer_that_waits_for_another_process(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = SQLiteCache(path, timeout=60)
    cache.put_many({"a": np.ones(4, np.float32)})
    other = sqlite3.connect(path, isolation_level=None)  # another process, as SQLite sees it
    other.execute("BEGIN IMMEDIATE")  # holds the write lock
    writer = threading.Thread(target=cache.put_many, args=({"b": np.zeros(4, np.float32)},))
    writer.start()
    try:
        # The writer is now waiting (up to 60 s) for the lock; a read must not queue behind it.
        assert set(cache.get_many(["a", "b"])) == {"a"}
        assert len(cache) == 1
        assert writer.is_alive()  # still waiting: the read above did not wait for it
    finally:
        other.execute("COMMIT")
        writer.join(60)
        other.close()
    assert set(cache.get_many(["a", "b"])) == {"a", "b"}


def test_a_write_that_cannot_get_the_lock_is_skipped_not_raised(tmp_path, caplog):
    path = tmp_path / "cache.sqlite"
    cache = SQLiteCache(path, timeout=0.01)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with caplog.at_level(logging.WARNING, logger="e2rank_integrations.cache"):
            cache.put_many({"b": np.zeros(4, np.float32)})
        assert "could not write 1 entries" in caplog.text and "locked" in caplog.text
    finally:
        other.execute("COMMIT")
        other.close()
    cache.put_many({"b": np.zeros(4, np.float32)})  # the connection is usable again
    assert set(cache.get_many(["b"])) == {"b"}


def test_close_closes_both_connections_and_use_reopens(tmp_path):
    cache = SQLiteCache(tmp_path / "cache.sqlite")
    cache.put_many({"a": np.ones(2, np.float32)})
    cache.get_many(["a"])
    assert not cache.closed
    cache.close()
    assert cache.closed
    assert set(cache.get_many(["a"])) == {"a"}
