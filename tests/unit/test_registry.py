"""The process-wide registry: one object per key, a lock per key, closable."""

from __future__ import annotations

import gc
import threading

import pytest

from e2rank_integrations.registry import Registry


class Resource:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_slow_build_blocks_only_its_own_key():
    registry = Registry()
    building, release = threading.Event(), threading.Event()
    built: dict[str, Resource] = {}

    def slow() -> Resource:  # a model loading for minutes
        building.set()
        assert release.wait(60)
        return Resource("slow")

    loader = threading.Thread(target=lambda: built.update(slow=registry.get("slow", slow)))
    waiter = threading.Thread(target=lambda: built.update(again=registry.get("slow", lambda: Resource("twice"))))
    loader.start()
    assert building.wait(60)
    waiter.start()
    # Another key is built and returned while "slow" is still loading.
    assert registry.get("fast", lambda: Resource("fast")).name == "fast"
    assert loader.is_alive() and waiter.is_alive()
    release.set()
    loader.join(60)
    waiter.join(60)
    assert built["again"] is built["slow"]  # the second asker waited for the first build, not a second one
    assert sorted(registry.keys()) == ["fast", "slow"]


def test_a_failed_build_is_tried_again():
    registry = Registry()

    def fails() -> Resource:
        raise OSError("not there yet")

    with pytest.raises(OSError, match="not there yet"):
        registry.get("k", fails)
    assert registry.find("k") is None
    assert registry.get("k", lambda: Resource("k")).name == "k"


def test_close_closes_what_it_built_and_forgets_what_it_remembered():
    registry = Registry()
    built = registry.get("built", lambda: Resource("built"))
    mine = Resource("mine")
    registry.remember("mine", mine)
    assert registry.find("built") is built and registry.find("mine") is mine
    registry.close()
    assert built.closed and not mine.closed  # only what it owns is closed
    assert registry.find("built") is None and registry.find("mine") is None
    assert registry.get("built", lambda: Resource("new")).name == "new"


def test_remembered_objects_are_not_kept_alive():
    registry = Registry()
    registry.remember("temporary", Resource("temporary"))
    gc.collect()
    assert registry.find("temporary") is None
    registry.remember("unweakable", 42)  # no weak reference possible: simply not remembered
    assert registry.find("unweakable") is None
