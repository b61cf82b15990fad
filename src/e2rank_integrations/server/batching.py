"""Dynamic batching: texts from concurrent requests are embedded together, off the event loop.

Requests queue their (already formatted) texts with a token count. One worker takes queued jobs in arrival order
until the next would pass ``max_batch_tokens``, embeds all their texts in one call on a dedicated inference thread
(the model sorts them by length and pads each forward pass to its longest member), and gives every job exactly its
own rows back. While a batch runs, new jobs queue up for the next one, so batches grow with the load.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..types import Embeddings

__all__ = ["Batcher", "EmbedResult"]

EmbedFn = Callable[[list[str]], Embeddings]
# Called after each batch ran: (texts, tokens, seconds each job waited in the queue, seconds the batch ran).
BatchObserver = Callable[[int, int, list[float], float], None]


@dataclass(frozen=True)
class EmbedResult:
    """One job's rows and how long it waited and ran."""

    vectors: Embeddings
    queue_seconds: float
    inference_seconds: float


@dataclass
class _Job:
    texts: list[str]
    tokens: int
    future: asyncio.Future[EmbedResult]
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher:
    """Queue embedding jobs and run them in token-bounded micro-batches on one inference thread.

    Start it with :meth:`start` inside a running event loop, stop it with :meth:`stop`.

    Example:
        >>> batcher = Batcher(model.embed_formatted, max_batch_tokens=16384)  # doctest: +SKIP
        >>> batcher.start()  # doctest: +SKIP
        >>> (await batcher.embed(["a passage<|endoftext|>"], tokens=4)).vectors.shape  # doctest: +SKIP
        (1, 1024)
    """

    def __init__(
        self,
        embed: EmbedFn,
        *,
        max_batch_tokens: int,
        batching: bool = True,
        on_batch: BatchObserver | None = None,
    ) -> None:
        self._embed = embed
        self.max_batch_tokens = max_batch_tokens
        self.batching = batching
        self._on_batch = on_batch
        self._pending: deque[_Job] = deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def depth(self) -> int:
        """Jobs waiting for a batch."""
        return len(self._pending)

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="e2rank-inference")
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="e2rank-batcher")

    async def stop(self) -> None:
        """Stop the worker; jobs still queued fail with ``RuntimeError``."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server stopped before this request ran"))
        if self._executor is not None:
            # Do not wait here for a forward pass that is still running: the process ends once it returns.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def embed(self, texts: Sequence[str], tokens: int) -> EmbedResult:
        """Queue ``texts`` (exact model inputs holding ``tokens`` tokens in all) and wait for their rows."""
        if self._wakeup is None:
            raise RuntimeError("Batcher.start() was not called")
        job = _Job(list(texts), tokens, asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self._wakeup.set()
        return await job.future

    def _take(self) -> list[_Job]:
        """Jobs for the next batch: at least one, then more in arrival order while the token budget allows."""
        batch = [self._pending.popleft()]
        tokens = batch[0].tokens
        while self.batching and self._pending and tokens + self._pending[0].tokens <= self.max_batch_tokens:
            tokens += self._pending[0].tokens
            batch.append(self._pending.popleft())
        return batch

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = [job for job in self._take() if not job.future.done()]  # skip requests already abandoned
            if batch:
                await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        texts = [text for job in batch for text in job.texts]
        start = time.perf_counter()
        try:
            vectors = await loop.run_in_executor(self._executor, self._embed, texts)
        except Exception as exc:
            if len(batch) > 1:  # one bad request must not fail the others: run each alone
                for job in batch:
                    await self._run_batch([job])
                return
            if not batch[0].future.done():
                batch[0].future.set_exception(exc)
            return
        end = time.perf_counter()
        if self._on_batch is not None:
            waits = [start - job.enqueued for job in batch]
            self._on_batch(len(texts), sum(job.tokens for job in batch), waits, end - start)
        row = 0
        for job in batch:
            rows = np.array(vectors[row : row + len(job.texts)])  # a copy: no job holds a view of another's rows
            row += len(job.texts)
            if not job.future.done():
                job.future.set_result(EmbedResult(rows, start - job.enqueued, end - start))
