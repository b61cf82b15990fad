"""The server's Batcher on its own: merging, per-job fault isolation, interleaving of large and small jobs."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import numpy as np
import pytest

pytest.importorskip("fastapi")  # the server extra (the batcher lives in the server package)

from e2rank_integrations.server.batching import Batcher


class Embedder:
    """A deterministic embedding function that records each call; it can hold a call until released."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.entered = threading.Semaphore(0)  # one release per call started
        self.gate: threading.Event | None = None

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        self.entered.release()
        if self.gate is not None:
            assert self.gate.wait(60), "the test never opened the gate"
        if any("boom" in t for t in texts):
            raise RuntimeError("a text the model cannot embed")
        return vectors(texts)


def vectors(texts):
    """One row per text that identifies it: [len, first char code, last char code]."""
    return np.asarray([[len(t), ord(t[0]), ord(t[-1])] for t in texts], dtype=np.float32)


async def entered(embedder: Embedder) -> None:
    """Wait (off the loop) until the embedder has started one more call."""
    assert await asyncio.to_thread(embedder.entered.acquire, True, 60), "no call started"


async def started(batcher: Batcher, embedder: Embedder, *jobs):
    """Start ``batcher.embed`` jobs while the embedder is held, so they queue together."""
    return [asyncio.ensure_future(batcher.embed(texts, [len(t) for t in texts])) for texts in jobs]


@contextlib.asynccontextmanager
async def running(embedder: Embedder, *, held: bool = True, **options):
    """A started Batcher over ``embedder`` (its calls held until ``embedder.gate`` is set, when ``held``)."""
    embedder.gate = threading.Event() if held else None
    batcher = Batcher(embedder, **options)
    batcher.start()
    try:
        yield batcher
    finally:
        await batcher.stop()


async def test_jobs_queued_together_share_one_call_and_get_exactly_their_rows():
    embedder = Embedder()
    async with running(embedder, max_batch_tokens=1000) as batcher:
        first = asyncio.ensure_future(batcher.embed(["a"], [1]))
        await entered(embedder)  # the first call runs (held): the next jobs queue behind it
        jobs = await started(batcher, embedder, ["bb", "ccc"], ["dddd"], ["e" * 5, "f" * 6, "g" * 7])
        await asyncio.sleep(0)
        embedder.gate.set()
        results = await asyncio.gather(first, *jobs)
        assert embedder.calls == [["a"], ["ccc", "bb", "dddd", "ggggggg", "ffffff", "eeeee"]]  # one merged call
        for texts, result in zip([["a"], ["bb", "ccc"], ["dddd"], ["e" * 5, "f" * 6, "g" * 7]], results):
            np.testing.assert_array_equal(result.vectors, vectors(texts))  # in request order, nobody else's
            assert result.queue_seconds >= 0 and result.inference_seconds > 0


async def test_a_failing_job_fails_alone():
    embedder = Embedder()
    async with running(embedder, max_batch_tokens=1000) as batcher:
        first = asyncio.ensure_future(batcher.embed(["a"], [1]))
        await entered(embedder)
        good, bad, other = await started(batcher, embedder, ["fine"], ["boom"], ["also fine"])
        await asyncio.sleep(0)
        embedder.gate.set()
        await first
        np.testing.assert_array_equal((await good).vectors, vectors(["fine"]))
        np.testing.assert_array_equal((await other).vectors, vectors(["also fine"]))
        with pytest.raises(RuntimeError, match="cannot embed"):
            await bad
        # the merged call failed, then each job ran alone
        assert embedder.calls[1:] == [["fine", "boom", "also fine"], ["fine"], ["boom"], ["also fine"]]


async def test_a_small_job_joins_the_next_micro_batch_of_a_large_one():
    embedder = Embedder()
    async with running(embedder, max_batch_tokens=30) as batcher:
        large_texts = [f"large text {i:02d}" for i in range(20)]  # 14 characters each: two per micro-batch of 30
        large = asyncio.ensure_future(batcher.embed(large_texts, [len(t) for t in large_texts]))
        await entered(embedder)  # the large job's first micro-batch runs (held)
        assert len(embedder.calls[0]) == 2
        small = asyncio.ensure_future(batcher.embed(["small"], [5]))
        await asyncio.sleep(0)
        embedder.gate.set()
        np.testing.assert_array_equal((await small).vectors, vectors(["small"]))
        assert "small" in embedder.calls[1], embedder.calls[:3]  # the very next call, not after the large job
        assert not large.done()
        np.testing.assert_array_equal((await large).vectors, vectors(large_texts))  # every row in place
        assert sorted(t for call in embedder.calls for t in call) == sorted([*large_texts, "small"])
        assert max(sum(map(len, call)) for call in embedder.calls) <= 30  # never over the token budget


async def test_a_large_job_is_not_starved_by_a_stream_of_small_ones():
    calls: list[list[str]] = []
    small: list[asyncio.Future] = []
    loop = asyncio.get_running_loop()

    def feed() -> None:  # a whole budget's worth of new small jobs while each call runs: the queue never empties
        small.extend(asyncio.ensure_future(batcher.embed([f"s{len(small):03d}xxxxxx"], [10])) for _ in range(3))

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        if len(calls) <= 40:
            loop.call_soon_threadsafe(feed)  # runs before the batcher sees this call's end
        return vectors(texts)

    batcher = Batcher(embed, max_batch_tokens=30)
    batcher.start()
    try:
        large_texts = [f"large text {i:02d}" for i in range(20)]  # 14 tokens each
        large = await batcher.embed(large_texts, [14] * 20)
        np.testing.assert_array_equal(large.vectors, vectors(large_texts))
        finished = max(i for i, call in enumerate(calls) if any(t.startswith("large") for t in call))
        assert finished < 40, calls  # done while the stream still flowed, not after it dried up
        await asyncio.gather(*small)
    finally:
        await batcher.stop()


async def test_a_text_over_the_budget_runs_alone_and_without_batching_jobs_run_whole():
    embedder = Embedder()
    async with running(embedder, held=False, max_batch_tokens=10) as batcher:
        result = await batcher.embed(["x" * 50, "y"], [50, 1])
        np.testing.assert_array_equal(result.vectors, vectors(["x" * 50, "y"]))
        assert embedder.calls == [["x" * 50], ["y"]]
    embedder = Embedder()
    async with running(embedder, held=False, max_batch_tokens=10, batching=False) as whole:
        texts = [f"text {i}" for i in range(8)]
        np.testing.assert_array_equal((await whole.embed(texts, [6] * 8)).vectors, vectors(texts))
        assert embedder.calls == [texts]  # the baseline: one request, one call, whatever its size


async def test_abort_fails_running_and_queued_jobs_and_refuses_new_ones():
    embedder = Embedder()
    async with running(embedder, max_batch_tokens=1000) as batcher:
        in_call = asyncio.ensure_future(batcher.embed(["a"], [1]))
        await entered(embedder)
        (queued,) = await started(batcher, embedder, ["b"])
        batcher.abort(lambda: ConnectionAbortedError("stopping"))
        for job in (in_call, queued):
            with pytest.raises(ConnectionAbortedError):
                await job
        with pytest.raises(ConnectionAbortedError):
            await batcher.embed(["c"], [1])
        embedder.gate.set()  # the forward pass that was running ends: its rows go nowhere


async def test_stop_fails_the_job_whose_call_is_running():
    embedder = Embedder()
    async with running(embedder, max_batch_tokens=1000) as batcher:
        job = asyncio.ensure_future(batcher.embed(["a"], [1]))
        await entered(embedder)
        await batcher.stop()
        with pytest.raises(RuntimeError, match="stopped before this request ran"):
            await job
        embedder.gate.set()
