"""Dynamic batching: texts from concurrent requests are embedded together, off the event loop.

Requests queue their (already formatted) texts with each text's token count. One worker builds micro-batches of
at most ``max_batch_tokens`` tokens and embeds each in one call on a dedicated inference thread (the model sorts a
call's texts by length and pads each forward pass to its longest member), then gives every job exactly its own
rows back. While a micro-batch runs, new jobs queue up for the next one, so batches grow with the load.

Fair sharing, so that no request holds the others up and none starves: a job's texts are cut into micro-batches,
and each micro-batch gives every waiting job, oldest first, up to an equal share of its budget, then fills what is
left in the same order. A small request that arrives while a large one runs joins the next micro-batch; a large
one advances by at least its share of every micro-batch, so its wait grows with its size and the load.

The scheduler once filled each micro-batch with the jobs that had had the fewest tokens so far. That starved
large requests under a steady stream of small ones (each new one had had none, so it always came first): at 64
clients a large request waited 45 s for a lull (issue 25).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..errors import E2RankStateError, E2RankValueError
from ..types import Embeddings

__all__ = ["Batcher", "EmbedResult"]

EmbedFn = Callable[[list[str]], Embeddings]
# Called after each batch ran: (texts, tokens, seconds each job starting in it had waited, seconds the batch ran).
BatchObserver = Callable[[int, int, list[float], float], None]


@dataclass(frozen=True)
class EmbedResult:
    """One job's rows and how long it waited and ran."""

    vectors: Embeddings
    queue_seconds: float
    inference_seconds: float


@dataclass(eq=False)
class _Job:
    texts: list[str]
    tokens: list[int]
    future: asyncio.Future[EmbedResult]
    # Longest first: a job cut into micro-batches gives each one texts of similar length (little padding).
    order: list[int] = field(init=False)
    done: int = 0  # texts of `order` embedded (or handed to a running micro-batch)
    rows: Embeddings | None = None
    enqueued: float = field(default_factory=time.perf_counter)
    started: float | None = None
    inference_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.order = sorted(range(len(self.texts)), key=lambda i: -self.tokens[i])


@dataclass
class _Part:
    """The texts ``job.order[start:stop]`` of one job in a micro-batch."""

    job: _Job
    start: int
    stop: int

    @property
    def texts(self) -> list[str]:
        return [self.job.texts[i] for i in self.job.order[self.start : self.stop]]

    @property
    def tokens(self) -> int:
        return sum(self.job.tokens[i] for i in self.job.order[self.start : self.stop])


class Batcher:
    """Queue embedding jobs and run them in token-bounded micro-batches on one inference thread.

    Start it with :meth:`start` inside a running event loop, stop it with :meth:`stop`.

    Example:
        >>> batcher = Batcher(model.embed_formatted, max_batch_tokens=16384)  # doctest: +SKIP
        >>> batcher.start()  # doctest: +SKIP
        >>> (await batcher.embed(["a passage<|endoftext|>"], tokens=[4])).vectors.shape  # doctest: +SKIP
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
        self._pending: list[_Job] = []  # jobs with texts left to hand out, in arrival order
        self._running: list[_Job] = []  # jobs with rows still to come from a running micro-batch
        self._refusal: Callable[[], Exception] | None = None
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def depth(self) -> int:
        """Jobs waiting for (more of) their texts to be embedded."""
        return len(self._pending)

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="e2rank-inference")
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="e2rank-batcher")

    def abort(self, error: Callable[[], Exception]) -> None:
        """Fail every job not finished with ``error()``, and every later :meth:`embed` call (the server stops)."""
        self._refusal = error
        for job in [*self._pending, *self._running]:
            if not job.future.done():
                job.future.set_exception(error())
        self._pending.clear()

    async def stop(self) -> None:
        """Stop the worker; jobs not finished (queued or running) fail with ``RuntimeError``."""
        self.abort(lambda: E2RankStateError("the server stopped before this request ran"))
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        if self._executor is not None:
            # Do not wait here for a forward pass that is still running: the process ends once it returns.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def check_open(self) -> None:
        """Raise the error of :meth:`abort` once the server stops (a request about to queue gets it now)."""
        if self._refusal is not None:
            raise self._refusal()

    async def embed(self, texts: Sequence[str], tokens: Sequence[int]) -> EmbedResult:
        """Queue ``texts`` (exact model inputs of ``tokens[i]`` tokens each) and wait for their rows."""
        if self._wakeup is None:
            raise E2RankStateError("Batcher.start() was not called")
        self.check_open()
        if len(tokens) != len(texts):
            raise E2RankValueError(f"{len(texts)} texts but {len(tokens)} token counts")
        job = _Job(list(texts), [max(1, int(t)) for t in tokens], asyncio.get_running_loop().create_future())
        if not job.texts:
            return EmbedResult(np.zeros((0, 0), dtype=np.float32), 0.0, 0.0)
        self._pending.append(job)
        self._wakeup.set()
        return await job.future

    def _take(self) -> list[_Part]:
        """The next micro-batch: a fair share of the budget for each job, then what is left, oldest job first.

        First each job, in arrival order, gets texts up to an equal share of the budget (at least one text if it
        fits), then the room left goes to the jobs in the same order. The oldest job is always served, so none
        waits for a lull. A text longer than the whole budget runs alone. Without batching, one job runs whole.
        """
        self._pending = [job for job in self._pending if not job.future.done()]  # abandoned requests are dropped
        if not self._pending:
            return []
        if not self.batching:
            job = self._pending.pop(0)
            job.done = len(job.texts)
            return [_Part(job, 0, len(job.texts))]
        room = self.max_batch_tokens
        starts = {id(job): job.done for job in self._pending}
        for share in (max(1, room // len(self._pending)), room):
            for job in self._pending:
                taken = 0
                while job.done < len(job.texts):
                    size = job.tokens[job.order[job.done]]
                    if taken and taken + size > share:
                        break  # its share is used up: the others' turn
                    if size > room and room < self.max_batch_tokens:
                        break  # it waits for the next micro-batch (only an empty batch takes an oversized text)
                    room -= size
                    taken += size
                    job.done += 1
        parts = [_Part(job, starts[id(job)], job.done) for job in self._pending if job.done > starts[id(job)]]
        self._pending = [job for job in self._pending if job.done < len(job.texts)]
        return parts

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            parts = self._take()
            if parts:
                await self._run_batch(parts)

    async def _run_batch(self, parts: list[_Part]) -> None:
        loop = asyncio.get_running_loop()
        texts = [text for part in parts for text in part.texts]
        start = time.perf_counter()
        self._running = [part.job for part in parts]
        try:
            vectors = await loop.run_in_executor(self._executor, self._embed, texts)
        except Exception as exc:
            self._running = []
            if len(parts) > 1:  # one bad request must not fail the others: run each part alone
                for part in parts:
                    await self._run_batch([part])
                return
            self._fail(parts[0].job, exc)
            return
        finally:
            self._running = []
        end = time.perf_counter()
        waits = []
        for part in parts:
            if part.job.started is None:
                part.job.started = start
                waits.append(start - part.job.enqueued)
            part.job.inference_seconds += end - start
        if self._on_batch is not None:
            self._on_batch(len(texts), sum(part.tokens for part in parts), waits, end - start)
        row = 0
        for part in parts:
            self._deliver(part, vectors[row : row + part.stop - part.start])
            row += part.stop - part.start

    def _deliver(self, part: _Part, vectors: Embeddings) -> None:
        """Put one part's rows in place; the job's result once all its rows are in."""
        job = part.job
        if job.future.done():
            return
        if job.rows is None:
            job.rows = np.empty((len(job.texts), vectors.shape[1]), dtype=np.float32)  # its own: no shared views
        job.rows[job.order[part.start : part.stop]] = vectors
        if part.stop == len(job.texts):
            assert job.started is not None
            job.future.set_result(EmbedResult(job.rows, job.started - job.enqueued, job.inference_seconds))

    def _fail(self, job: _Job, exc: Exception) -> None:
        if not job.future.done():
            job.future.set_exception(exc)
        self._pending = [other for other in self._pending if other is not job]  # no more of its micro-batches
