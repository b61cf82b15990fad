import subprocess
import sys
import threading

import numpy as np
import pytest

from e2rank_integrations.cache import LRUCache, SQLiteCache, TieredCache, cache_key, make_cache


def vec(*values):
    return np.asarray(values, dtype=np.float32)


def test_cache_key_depends_on_fingerprint_and_exact_text():
    assert cache_key("m1", "text") == cache_key("m1", "text")
    assert cache_key("m1", "text") != cache_key("m2", "text")
    assert cache_key("m1", "text") != cache_key("m1", "text ")


def test_lru_evicts_least_recently_used():
    cache = LRUCache(max_entries=2)
    cache.put_many({"a": vec(1), "b": vec(2)})
    cache.get_many(["a"])  # a is now the most recent
    cache.put_many({"c": vec(3)})
    assert set(cache.get_many(["a", "b", "c"])) == {"a", "c"}
    assert len(cache) == 2


def test_lru_stores_private_read_only_copies():
    cache = LRUCache()
    original = vec(1, 2)
    cache.put_many({"k": original})
    original[0] = 99
    stored = cache.get_many(["k"])["k"]
    np.testing.assert_array_equal(stored, [1, 2])
    with pytest.raises(ValueError, match="read-only"):
        stored[0] = 5


def test_lru_rejects_bad_size():
    with pytest.raises(ValueError, match="max_entries"):
        LRUCache(0)


def test_sqlite_round_trip_and_reopen(tmp_path):
    path = tmp_path / "sub" / "cache.sqlite"
    cache = SQLiteCache(path)
    cache.put_many({"a": vec(1, 2), "b": vec(3, 4)})
    cache.close()
    reopened = SQLiteCache(path)
    found = reopened.get_many(["a", "b", "missing"])
    assert set(found) == {"a", "b"}
    np.testing.assert_array_equal(found["b"], [3, 4])
    assert len(reopened) == 2
    reopened.clear()
    assert len(reopened) == 0


def test_sqlite_many_keys_in_one_lookup(tmp_path):
    cache = SQLiteCache(tmp_path / "c.sqlite")
    items = {f"k{i}": vec(i) for i in range(1500)}
    cache.put_many(items)
    assert len(cache.get_many(list(items))) == 1500


def test_sqlite_survives_threads(tmp_path):
    cache = SQLiteCache(tmp_path / "c.sqlite")

    def work(t):
        for i in range(50):
            cache.put_many({f"{t}-{i}": vec(t, i)})
            assert f"{t}-{i}" in cache.get_many([f"{t}-{i}"])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 200


WRITER = """
import sys, numpy as np
from e2rank_integrations.cache import SQLiteCache
cache = SQLiteCache(sys.argv[1])
for i in range(200):
    cache.put_many({f"{sys.argv[2]}-{i}": np.full(4, i, dtype=np.float32)})
"""


def test_sqlite_concurrent_writer_processes(tmp_path):
    path = tmp_path / "shared.sqlite"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name]) for name in ("p1", "p2", "p3")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    cache = SQLiteCache(path)
    assert len(cache) == 600
    np.testing.assert_array_equal(cache.get_many(["p2-7"])["p2-7"], np.full(4, 7))


def test_tiered_cache_promotes_hits(tmp_path):
    memory, disk = LRUCache(), SQLiteCache(tmp_path / "c.sqlite")
    disk.put_many({"a": vec(1)})
    tiered = TieredCache(memory, disk)
    assert set(tiered.get_many(["a", "b"])) == {"a"}
    assert set(memory.get_many(["a"])) == {"a"}
    tiered.put_many({"b": vec(2)})
    assert set(disk.get_many(["b"])) == {"b"}


def test_make_cache_specs(tmp_path):
    assert isinstance(make_cache(None), LRUCache)
    assert make_cache(False) is None
    assert make_cache(0) is None
    assert make_cache(5).max_entries == 5
    tiered = make_cache(tmp_path / "x.sqlite")
    assert isinstance(tiered, TieredCache) and isinstance(tiered.tiers[1], SQLiteCache)
    mine = LRUCache(3)
    assert make_cache(mine) is mine
    with pytest.raises(TypeError, match="cache must be"):
        make_cache(1.5)
