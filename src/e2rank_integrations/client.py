"""E2RankClient and AsyncE2RankClient: the Backend methods of ``E2RankModel``, over HTTP (httpx, no torch).

Both clients share one base that builds every request and reads every response; each method is written once as
a generator of HTTP calls, which the sync client runs with ``httpx.Client`` and the async one with
``httpx.AsyncClient``. Two modes:

- ``api="e2rank"`` (default): an ``e2rank serve`` server. Texts are formatted and reranked on the server.
- ``api="openai"``: any OpenAI-compatible embeddings server hosting E2Rank weights (vLLM, TEI, Infinity). Only its
  ``/v1/embeddings`` is used: the client formats queries and documents, builds the listwise prompt (Qwen3's chat
  wrap as a literal), scores by cosine, and caches embeddings itself. With ``tokenizer=`` it sends token ids, so
  a server that strips whitespace cannot change the prompt; without, it checks once and warns if it does.

Exceptions (all under :class:`E2RankError`, defined in :mod:`e2rank_integrations.errors` and importable from the
package root without httpx):

- :class:`E2RankAPIError`: the server answered with an error status (``status_code``, ``message``, ``type``,
  ``code``), after the retries for 429 and 503 were spent;
- :class:`E2RankConnectionError`: the server could not be reached (after retries);
- :class:`E2RankTimeoutError` (a :class:`E2RankConnectionError`): no answer within ``timeout`` (not retried).

Bad arguments raise ``TypeError``/``ValueError`` before any request, as ``E2RankModel`` does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import warnings
import weakref
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from ._optional import require
from .cache import CacheSpec, cache_key, make_cache
from .errors import E2RankAPIError, E2RankConnectionError, E2RankError, E2RankTimeoutError
from .prompts import QWEN3_CHAT_WRAP, PromptFormat, check_query, check_texts
from .scoring import as_embeddings, check_positive_int, check_top_n, listwise_steps, normalize
from .types import Embeddings, RankResult

httpx = require("httpx", extra="client")
from .protocol import EmbeddingResponse, RerankResponse, encode_vector  # noqa: E402  (needs pydantic: same extra)

__all__ = [
    "AsyncE2RankClient",
    "E2RankAPIError",
    "E2RankClient",
    "E2RankConnectionError",
    "E2RankError",
    "E2RankTimeoutError",
]

logger = logging.getLogger("e2rank_integrations.client")

T = TypeVar("T")
_RETRY_STATUSES = frozenset({429, 503})
_OPENAI_BATCH = 256  # texts per request in openai mode (those servers publish no limit we could read)
_PROBE = "E2Rank whitespace probe"


@dataclass(frozen=True)
class _Call:
    """One HTTP request an operation needs; the driver sends it and sends back the decoded JSON."""

    method: str
    path: str
    json: Any = None


Operation = Generator[_Call, Any, T]


class _BaseClient:
    """Everything but the sending: request building, response parsing, retry policy, openai-mode prompts."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        transport: Any = None,
        api: Literal["e2rank", "openai"] = "e2rank",
        model: str | None = None,
        tokenizer: Any = None,
        prompts: PromptFormat | None = None,
        cache: CacheSpec = None,
        backoff: float = 0.5,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        if api not in ("e2rank", "openai"):
            raise ValueError(f"api must be 'e2rank' or 'openai', got {api!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if api == "e2rank" and (tokenizer is not None or prompts is not None):
            raise ValueError("tokenizer and prompts are for api='openai'; an e2rank server formats texts itself")
        self.base_url = base_url.rstrip("/")
        self.api = api
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._info: dict[str, Any] | None = None
        # openai mode: the client does what the e2rank server would.
        self.prompts = prompts or PromptFormat()
        self._tokenizer = _load_tokenizer(tokenizer) if tokenizer is not None else None
        self._cache = make_cache(cache) if api == "openai" else None
        self._cache_scope = f"openai|{self.base_url}|{model}|{'ids' if self._tokenizer else 'text'}"
        self._probed = tokenizer is not None  # token ids cannot be stripped: nothing to probe
        self._counters = {"texts_embedded": 0, "cache_hits": 0}
        self._http = self._open(transport)

    def _open(self, transport: Any) -> Any:
        """What sends the requests: an ``httpx.Client`` (sync), or one ``httpx.AsyncClient`` per event loop (async)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, api={self.api!r})"

    # ------------------------------------------------------------------ responses and retries

    def _retry_delay(self, attempt: int, response: Any = None, error: Exception | None = None) -> float:
        """Seconds to wait before retrying, or raise the error to report (retries spent, or not retryable)."""
        if error is not None:
            if isinstance(error, httpx.TimeoutException):
                raise E2RankTimeoutError(f"no answer from {self.base_url} within {self.timeout} s") from error
            if attempt >= self.max_retries:
                raise E2RankConnectionError(f"cannot reach {self.base_url}: {error}") from error
        elif response.status_code not in _RETRY_STATUSES or attempt >= self.max_retries:
            raise self._api_error(response)
        delay = self.backoff * 2**attempt
        retry_after = response.headers.get("retry-after", "") if response is not None else ""
        if retry_after.replace(".", "", 1).isdigit():  # seconds (an HTTP date keeps the exponential backoff)
            delay = max(delay, float(retry_after))  # honour the server's wait, never less
        return float(delay * (1 + random.random() / 4))  # jitter: clients refused together do not return together

    @staticmethod
    def _api_error(response: Any) -> E2RankAPIError:
        request_id = response.headers.get("x-request-id", "")
        try:
            detail = response.json()["error"]
            return E2RankAPIError(
                response.status_code, str(detail["message"]), detail.get("type"), detail.get("code"), request_id
            )
        except (ValueError, KeyError, TypeError):
            text = response.text[:500] or response.reason_phrase
            return E2RankAPIError(response.status_code, text, None, None, request_id)

    # ------------------------------------------------------------------ operations (e2rank mode)

    def _info_op(self) -> Operation[dict[str, Any]]:
        if self._info is None:
            self._info = yield _Call("GET", "/info")
        return self._info

    def _embed_op(self, texts: Sequence[str], input_type: str, instruction: str | None = None) -> Operation[Embeddings]:
        items = check_texts(texts)
        if self.api == "openai":
            if input_type == "query":
                formatted = [self.prompts.query(t, instruction) for t in items]
            elif input_type == "prompt":
                formatted = [QWEN3_CHAT_WRAP.format(content=t) for t in items]
            else:
                formatted = [self.prompts.document(t) for t in items]
            return (yield from self._openai_embed_op(formatted, probe=input_type == "prompt"))
        info = yield from self._info_op()
        if not items:
            return np.zeros((0, int(info["dimension"])), dtype=np.float32)
        size = int(info["max_client_batch_size"])
        rows = []
        for start in range(0, len(items), size):  # more texts than the server takes at once: several requests
            body: dict[str, Any] = {"input": items[start : start + size], "input_type": input_type}
            body["encoding_format"] = "base64"
            if instruction is not None:
                body["instruction"] = instruction
            data = yield _Call("POST", "/v1/embeddings", body)
            rows.append(EmbeddingResponse.model_validate(data).vectors())
        return np.concatenate(rows)

    def _rerank_op(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None,
        doc_embeddings: npt.ArrayLike | None,
        instruction: str | None,
        num_prompt_docs: int,
        passes: int,
    ) -> Operation[list[RankResult]]:
        query = check_query(query)
        docs = check_texts(documents, "documents")
        top_n = check_top_n(top_n)
        num_prompt_docs = check_positive_int(num_prompt_docs, "num_prompt_docs")
        passes = check_positive_int(passes, "passes")
        if not docs:
            return []
        vectors = None if doc_embeddings is None else as_embeddings(doc_embeddings, len(docs))
        if self.api == "openai":
            results = yield from self._openai_rerank_op(
                query, docs, vectors, instruction=instruction, num_prompt_docs=num_prompt_docs, passes=passes
            )
            return results if top_n is None else results[:top_n]
        info = yield from self._info_op()
        if len(docs) > int(info["max_client_batch_size"]):
            raise ValueError(
                f"{len(docs)} documents are more than the server takes in one rerank "
                f"(max_client_batch_size={info['max_client_batch_size']})"
            )
        body: dict[str, Any] = {"query": query, "documents": docs, "num_prompt_docs": num_prompt_docs}
        body.update(passes=passes, top_n=top_n, instruction=instruction)
        if vectors is not None:  # stored vectors travel as base64: the server embeds only the prompt
            body["doc_embeddings"] = [encode_vector(v) for v in vectors]
        data = yield _Call("POST", "/v1/rerank", {k: v for k, v in body.items() if v is not None})
        parsed = RerankResponse.model_validate(data)
        return [RankResult(index=r.index, score=r.relevance_score) for r in parsed.results]

    def _stats_op(self) -> Operation[dict[str, Any]]:
        if self.api == "openai":
            out: dict[str, Any] = dict(self._counters)
            out["cache_entries"] = len(self._cache) if self._cache is not None else 0
            return out
        stats: dict[str, Any] = yield _Call("GET", "/stats")
        return stats

    # ------------------------------------------------------------------ operations (openai mode)

    @property
    def _embeddings_path(self) -> str:
        # As in the OpenAI SDK, a base URL ending in /v1 already holds the version.
        return "/embeddings" if self.base_url.endswith("/v1") else "/v1/embeddings"

    def _openai_embed_op(self, formatted: list[str], *, probe: bool = False) -> Operation[Embeddings]:
        keys = [cache_key(self._cache_scope, t) for t in formatted]
        hits = self._cache.get_many(keys) if self._cache is not None else {}
        todo = list(dict.fromkeys(t for t, k in zip(formatted, keys) if k not in hits))
        computed: dict[str, Embeddings] = {}
        if todo and probe and not self._probed:
            yield from self._probe_op()
        for start in range(0, len(todo), _OPENAI_BATCH):
            chunk = todo[start : start + _OPENAI_BATCH]
            inputs: Any = chunk
            if self._tokenizer is not None:
                inputs = [e.ids for e in self._tokenizer.encode_batch(chunk, add_special_tokens=False)]
            body = {"input": inputs, "encoding_format": "float", **({"model": self.model} if self.model else {})}
            data = yield _Call("POST", self._embeddings_path, body)
            vectors = normalize(EmbeddingResponse.model_validate(data).vectors())  # not every server normalises
            computed.update({cache_key(self._cache_scope, t): v for t, v in zip(chunk, vectors)})
        if computed and self._cache is not None:
            self._cache.put_many(computed)
        self._counters["texts_embedded"] += len(todo)
        self._counters["cache_hits"] += sum(1 for k in keys if k in hits)
        rows = [hits[k] if k in hits else computed[k] for k in keys]
        return np.asarray(rows, dtype=np.float32).reshape(len(formatted), -1)

    def _probe_op(self) -> Operation[None]:
        """Embed a text with and without a trailing newline once: equal vectors mean the server strips whitespace."""
        self._probed = True
        body = {"input": [_PROBE, _PROBE + "\n\n"], "encoding_format": "float"}
        if self.model:
            body["model"] = self.model
        data = yield _Call("POST", self._embeddings_path, body)
        first, second = normalize(EmbeddingResponse.model_validate(data).vectors())
        if float(first @ second) > 0.999999:
            message = (
                f"the embeddings server at {self.base_url} strips whitespace from its inputs: the E2Rank listwise "
                "prompt ends with '</think>\\n\\n', so its embedding changes and reranking is WRONG through this "
                "server. Pass tokenizer='path/to/E2Rank/tokenizer.json' to send token ids instead."
            )
            logger.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=4)

    def _openai_rerank_op(
        self,
        query: str,
        docs: list[str],
        vectors: Embeddings | None,
        *,
        instruction: str | None,
        num_prompt_docs: int,
        passes: int,
    ) -> Operation[list[RankResult]]:
        if vectors is None:
            vectors = yield from self._openai_embed_op([self.prompts.document(d) for d in docs])
        steps = listwise_steps(vectors, passes=passes)
        try:
            order = next(steps)
            while True:
                prompt_docs = [self.prompts.cut_words(docs[i]) for i in order[:num_prompt_docs]]
                content = self.prompts.listwise(query, prompt_docs, instruction)
                prompt = yield from self._openai_embed_op([QWEN3_CHAT_WRAP.format(content=content)], probe=True)
                order = steps.send(prompt[0])
        except StopIteration as done:
            results: list[RankResult] = done.value
        return results


def _load_tokenizer(tokenizer: Any) -> Any:
    """A ``tokenizers.Tokenizer``: as given, or read from a ``tokenizer.json`` file or the directory holding it."""
    if hasattr(tokenizer, "encode_batch"):
        return tokenizer
    tokenizers = require("tokenizers", extra="client")
    path = Path(os.fspath(tokenizer)).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise ValueError(f"tokenizer must be a tokenizers.Tokenizer, a tokenizer.json or its directory; {path} is none")
    return tokenizers.Tokenizer.from_file(str(path))


class E2RankClient(_BaseClient):
    """A Backend over HTTP: pass it wherever an ``E2RankModel`` goes (the LangChain, LlamaIndex, Chroma adapters).

    Args:
        base_url: The server, e.g. ``"http://localhost:8000"``.
        api_key: Sent as ``Authorization: Bearer <api_key>``.
        timeout: Seconds to wait for each answer; a timeout raises :class:`E2RankTimeoutError` (not retried).
        max_retries: Retries of 429, 503 and connection errors, with exponential backoff honouring ``Retry-After``.
        transport: An ``httpx`` transport (``httpx.MockTransport``, ``httpx.ASGITransport``...), for tests.
        api: ``"e2rank"`` for ``e2rank serve``, ``"openai"`` for any OpenAI-compatible embeddings server.
        model: The model name sent in openai mode (vLLM and others check it).
        tokenizer: openai mode: a ``tokenizer.json`` (or its directory, or a ``tokenizers.Tokenizer``) of the
            served model; the client then sends token ids, which no server can strip.
        prompts: openai mode: the query, document and listwise prompt strings (default: the authors' evaluation).
        cache: openai mode: the embedding cache (``None`` an in-memory LRU, ``False`` none, a path SQLite...).
        backoff: First retry delay in seconds, doubled at each retry.

    Example:
        >>> from e2rank_integrations import E2RankClient
        >>> with E2RankClient("http://localhost:8000") as client:  # doctest: +SKIP
        ...     vectors = client.embed_documents(["Paris is the capital of France."])
        ...     best = client.rerank("capital of France?", ["Lyon is big.", "Paris is the capital."])[0]
        >>> best.index  # doctest: +SKIP
        1
    """

    def _open(self, transport: Any) -> Any:
        return httpx.Client(base_url=self.base_url, headers=self._headers, timeout=self.timeout, transport=transport)

    def _send(self, call: _Call) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, json=call.json)
            except httpx.TransportError as exc:
                time.sleep(self._retry_delay(attempt, error=exc))
            else:
                if response.is_success:
                    return response.json()
                time.sleep(self._retry_delay(attempt, response=response))
            attempt += 1

    def _run(self, operation: Operation[T]) -> T:
        try:
            call = next(operation)
            while True:
                call = operation.send(self._send(call))
        except StopIteration as done:
            result: T = done.value
            return result

    def embed_queries(self, texts: Sequence[str], *, instruction: str | None = None) -> Embeddings:
        return self._run(self._embed_op(texts, "query", instruction))

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        return self._run(self._embed_op(texts, "document"))

    def embed_prompt(self, text: str) -> Embeddings:
        vector: Embeddings = self._run(self._embed_op([check_query(text, "text")], "prompt"))[0]
        return vector

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        doc_embeddings: npt.ArrayLike | None = None,
        instruction: str | None = None,
        num_prompt_docs: int = 20,
        passes: int = 1,
    ) -> list[RankResult]:
        return self._run(
            self._rerank_op(
                query,
                documents,
                top_n=top_n,
                doc_embeddings=doc_embeddings,
                instruction=instruction,
                num_prompt_docs=num_prompt_docs,
                passes=passes,
            )
        )

    def stats(self) -> dict[str, Any]:
        return self._run(self._stats_op())

    def info(self) -> dict[str, Any]:
        """The server's ``/info``: model, fingerprint, dimension and limits (e2rank mode)."""
        return self._run(self._info_op())

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> E2RankClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncE2RankClient(_BaseClient):
    """:class:`E2RankClient` with coroutine methods (an ``AsyncBackend``), over ``httpx.AsyncClient``.

    Takes the same arguments as :class:`E2RankClient`; ``transport`` must be an async one. One client can serve
    several event loops, one after another or at once (a framework's ``asyncio.run`` inside yours, LlamaIndex's
    ``use_async=True``): each loop gets connections of its own, because asyncio connections cannot change loops.

    Example:
        >>> from e2rank_integrations import AsyncE2RankClient
        >>> async with AsyncE2RankClient("http://localhost:8000") as client:  # doctest: +SKIP
        ...     results = await client.rerank("capital of France?", ["Lyon is big.", "Paris is the capital."])
    """

    def _open(self, transport: Any) -> Any:
        self._transport = transport
        # Event loop -> the httpx.AsyncClient whose connections live on it (dropped with the loop).
        by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        return by_loop

    def _loop_http(self) -> Any:
        """The ``httpx.AsyncClient`` of the running event loop, opened on the loop's first request."""
        loop = asyncio.get_running_loop()
        http = self._http.get(loop)
        if http is None:
            http = self._http[loop] = httpx.AsyncClient(
                base_url=self.base_url, headers=self._headers, timeout=self.timeout, transport=self._transport
            )
        return http

    async def _send(self, call: _Call) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._loop_http().request(call.method, call.path, json=call.json)
            except httpx.TransportError as exc:
                await asyncio.sleep(self._retry_delay(attempt, error=exc))
            else:
                if response.is_success:
                    return response.json()
                await asyncio.sleep(self._retry_delay(attempt, response=response))
            attempt += 1

    async def _run(self, operation: Operation[T]) -> T:
        try:
            call = next(operation)
            while True:
                call = operation.send(await self._send(call))
        except StopIteration as done:
            result: T = done.value
            return result

    async def embed_queries(self, texts: Sequence[str], *, instruction: str | None = None) -> Embeddings:
        return await self._run(self._embed_op(texts, "query", instruction))

    async def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        return await self._run(self._embed_op(texts, "document"))

    async def embed_prompt(self, text: str) -> Embeddings:
        vector: Embeddings = (await self._run(self._embed_op([check_query(text, "text")], "prompt")))[0]
        return vector

    async def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        doc_embeddings: npt.ArrayLike | None = None,
        instruction: str | None = None,
        num_prompt_docs: int = 20,
        passes: int = 1,
    ) -> list[RankResult]:
        return await self._run(
            self._rerank_op(
                query,
                documents,
                top_n=top_n,
                doc_embeddings=doc_embeddings,
                instruction=instruction,
                num_prompt_docs=num_prompt_docs,
                passes=passes,
            )
        )

    async def stats(self) -> dict[str, Any]:
        return await self._run(self._stats_op())

    async def info(self) -> dict[str, Any]:
        """The server's ``/info``: model, fingerprint, dimension and limits (e2rank mode)."""
        return await self._run(self._info_op())

    async def aclose(self) -> None:
        """Close the connections of the running event loop (those of other loops close when their loop is gone)."""
        http = self._http.pop(asyncio.get_running_loop(), None)
        if http is not None:
            await http.aclose()

    async def __aenter__(self) -> AsyncE2RankClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
