r"""E2RankClient and AsyncE2RankClient: the Backend methods of ``E2RankModel``, over HTTP (httpx, no torch).

Both clients share one base that builds every request and reads every response (through the wire schemas of
:mod:`e2rank_integrations.protocol`); each method is written once as a generator of steps (HTTP calls, blocking
local work, the one-time check of the server), which the sync client runs with ``httpx.Client`` and the async
one with ``httpx.AsyncClient``, its blocking work in a thread.

The rule on every path: exact, or a clear refusal; never a silently different ranking. On first use, once per
client, the client finds out what it talks to:

- an ``e2rank serve`` (recognised from ``GET /info``) is spoken to in its own API, whatever ``api=`` says: results
  equal the in-process model (with ``api="openai"`` and prompts of its own, the client sends its formatted texts
  as ``input_type="raw"``, embedded exactly as sent);
- ``api="openai"`` and another engine (vLLM, TEI, Infinity...): only its ``/v1/embeddings`` is used; the client
  formats queries and documents, builds the listwise prompt, scores by cosine and caches embeddings itself. With
  ``tokenizer=`` it sends token ids, which no engine can strip; an engine that refuses ids (Infinity answers 422)
  gets text. Text is probed once: an engine that changes it (sentence-transformers engines strip whitespace, and
  the E2Rank prompt ends with ``"</think>\n\n"``) makes ``rerank`` and ``embed_prompt`` raise
  :class:`E2RankCompatibilityError`, unless the client was built with ``allow_inexact=True`` (then it warns once);
  documents it would change (leading whitespace) give one warning.

Exceptions (all under :class:`E2RankError`, defined in :mod:`e2rank_integrations.errors` and importable from the
package root without httpx):

- :class:`E2RankAPIError`: the server answered with an error status (``status_code``, ``message``, ``type``,
  ``code``), after the retries of 429 and 503 were spent;
- :class:`E2RankConnectionError`: the server could not be reached (after retries);
- :class:`E2RankTimeoutError` (a :class:`E2RankConnectionError`): no answer within ``timeout`` (not retried);
- :class:`E2RankCompatibilityError`: the engine would give inexact results, or is not what ``api=`` says.

Bad arguments raise ``TypeError``/``ValueError`` before any request, as ``E2RankModel`` does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import random
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from ._optional import require
from .cache import CacheSpec, cache_key, make_cache
from .errors import (
    E2RankAPIError,
    E2RankCompatibilityError,
    E2RankConnectionError,
    E2RankError,
    E2RankTimeoutError,
    E2RankValueError,
)
from .prompts import QWEN3_CHAT_WRAP, PromptFormat, fit_prompt
from .scoring import as_embeddings, listwise_steps, normalize
from .settings import API_KEY_ENV
from .types import BackendInfo, Embeddings, RankResult
from .validators import check_optional_positive_int, check_positive_int, check_query, check_texts, check_top_n

httpx = require("httpx", extra="client")
from pydantic import ValidationError  # noqa: E402  (the client extra brings pydantic with httpx)

from .protocol import (  # noqa: E402
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorResponse,
    InfoResponse,
    InputType,
    RerankRequest,
    RerankResponse,
    encode_vector,
)

__all__ = [
    "AsyncE2RankClient",
    "E2RankAPIError",
    "E2RankClient",
    "E2RankCompatibilityError",
    "E2RankConnectionError",
    "E2RankError",
    "E2RankTimeoutError",
]

logger = logging.getLogger("e2rank_integrations.client")

T = TypeVar("T")
_RETRY_STATUSES = frozenset({429, 503})
_MAX_BACKOFF = 5.0  # seconds: without a Retry-After, a client still tries every few seconds until its budget ends
# A server that cannot be reached is retried this long at most (a restart), so that a wrong URL fails fast.
_CONNECT_BUDGET = 10.0
_OPENAI_BATCH = 256  # texts per request in openai mode (those servers publish no limit we could read)
_SAME = 0.9999  # cosine above which two probe vectors are one text to the engine (batching noise stays above)
_PROBE = "E2Rank exact-input probe"
# What an engine may do to a text: the probe text it would make equal to _PROBE, and the change applied to a text.
_CHANGES: dict[str, tuple[str, Callable[[str], str]]] = {
    "strips trailing whitespace": (_PROBE + "\n\n", str.rstrip),
    "strips leading whitespace": ("\n\n \t " + _PROBE, str.lstrip),
    "lower-cases text": (_PROBE.lower(), str.lower),
}
_PROBE_TEXTS = [_PROBE, *(text for text, _ in _CHANGES.values())]
_EXACT_ENGINES = (
    "What would work: `e2rank serve` (exact), or an engine that embeds texts as sent or takes token ids "
    "(vLLM, TEI) with tokenizer='path/to/tokenizer.json'"
)


@dataclass(frozen=True)
class _Call:
    """One HTTP request an operation needs; the driver sends it and sends back the decoded JSON."""

    method: str
    path: str
    json: Any = None


@dataclass(frozen=True)
class _Work:
    """Blocking local work (cache, tokenizer): the async driver runs it in a thread, off the event loop."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


class _Verify:
    """Asks the driver for the :class:`_Target`, found once per client."""


_VERIFY = _Verify()


@dataclass(frozen=True)
class _Target:
    """What the client found at its URL, and so how it sends texts so that results are exact.

    ``inputs``: ``"e2rank"`` an ``e2rank serve`` (``info`` holds its ``/info``); ``"ids"`` an engine that takes
    token ids; ``"text"`` one that takes text. ``changes``: what the probe saw the engine do to text.
    """

    inputs: Literal["e2rank", "ids", "text"]
    info: InfoResponse | None = None
    changes: tuple[str, ...] = ()
    ids_refused: str = ""


Operation = Generator[_Call | _Work | _Verify, Any, T]


class _BaseClient:
    """Everything but the sending: request building, response parsing, retry policy, openai-mode prompts."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retry_budget: float = 300.0,
        max_retries: int | None = None,
        transport: Any = None,
        api: Literal["e2rank", "openai"] = "e2rank",
        model: str | None = None,
        tokenizer: Any = None,
        prompts: PromptFormat | None = None,
        cache: CacheSpec = None,
        backoff: float = 0.5,
        allow_inexact: bool = False,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise E2RankValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        if api not in ("e2rank", "openai"):
            raise E2RankValueError(f"api must be 'e2rank' or 'openai', got {api!r}")
        if max_retries is not None and (isinstance(max_retries, bool) or not isinstance(max_retries, int)):
            raise E2RankValueError(f"max_retries must be an integer >= 0 or None, got {max_retries!r}")
        if max_retries is not None and max_retries < 0:
            raise E2RankValueError(f"max_retries must be an integer >= 0 or None, got {max_retries!r}")
        if not timeout > 0:
            raise E2RankValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if not retry_budget >= 0 or not backoff >= 0:
            raise E2RankValueError(
                f"retry_budget and backoff must be >= 0 seconds, got {retry_budget!r} and {backoff!r}"
            )
        if api == "e2rank" and (tokenizer is not None or prompts is not None):
            raise E2RankValueError("tokenizer and prompts are for api='openai'; an e2rank server formats texts itself")
        self.base_url = base_url.rstrip("/")
        # As in the OpenAI SDK, a base URL ending in /v1 already holds the version; /info lives at the root.
        self._root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        self.api = api
        self.timeout = timeout
        self.retry_budget = float(retry_budget)
        self.max_retries = max_retries
        self.backoff = backoff
        self.model = model
        self.allow_inexact = allow_inexact
        if api_key is None:
            api_key = os.environ.get(API_KEY_ENV) or None
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # openai mode: the client does what the e2rank server would.
        self.prompts = prompts or PromptFormat()
        self._tokenizer = _load_tokenizer(tokenizer) if tokenizer is not None else None
        self._cache = make_cache(cache) if api == "openai" else None
        self._counters = {"texts_embedded": 0, "cache_hits": 0}
        self._counters_lock = threading.Lock()  # a sync client serves several threads (LangChain runs tools in some)
        self._lock = threading.Lock()  # guards the warnings given (and the async client's finding)
        self._target_lock = threading.Lock()  # held by the sync client's thread that finds the target
        self._target: _Target | None = None
        self._warned: set[str] = set()
        self._http = self._open(transport)

    def _open(self, transport: Any) -> Any:
        """What sends the requests: an ``httpx.Client`` (sync), or one ``httpx.AsyncClient`` per event loop (async)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, api={self.api!r})"

    # ------------------------------------------------------------------ responses and retries

    def _retry_delay(self, attempt: int, started: float, response: Any = None, error: Exception | None = None) -> float:
        """Seconds to wait before retrying, or raise the error to report (not retryable, or the budget spent).

        Retries of 429 and 503 go on until the next wait would end more than ``retry_budget`` seconds after the
        first attempt, those of connection errors for ``_CONNECT_BUDGET`` seconds at most (and never more than
        ``max_retries`` retries, when set).
        """
        if isinstance(error, httpx.TimeoutException):
            raise E2RankTimeoutError(f"no answer from {self.base_url} within {self.timeout} s") from error
        if response is not None and response.status_code not in _RETRY_STATUSES:
            raise self._api_error(response)
        retry_after = response.headers.get("retry-after", "") if response is not None else ""
        if retry_after.replace(".", "", 1).isdigit():  # seconds (an HTTP date keeps the exponential backoff)
            # The server's wait, not a growing one: a request refused many times keeps its chances against new
            # ones (with backoff growing per request, the oldest starved under overload and ran out of budget).
            delay = max(float(retry_after), self.backoff)
        else:
            delay = min(self.backoff * 2**attempt, _MAX_BACKOFF)
        delay *= 1 + random.random() / 4  # jitter: clients refused together do not return together
        budget = self.retry_budget if error is None else min(self.retry_budget, _CONNECT_BUDGET)
        spent = time.monotonic() - started + delay > budget
        if spent or (self.max_retries is not None and attempt >= self.max_retries):
            if error is not None:
                raise E2RankConnectionError(f"cannot reach {self.base_url}: {error}") from error
            raise self._api_error(response)
        return float(delay)

    def _api_error(self, response: Any) -> E2RankAPIError:
        request_id = response.headers.get("x-request-id", "")
        try:
            detail = ErrorResponse.model_validate_json(response.content).error
        except ValidationError:  # another engine's error body: keep its text
            text = response.text[:500] or response.reason_phrase
            error = E2RankAPIError(response.status_code, text, None, None, request_id)
        else:
            error = E2RankAPIError(response.status_code, detail.message, detail.type, detail.code, request_id)
        if response.status_code == 401:
            error.args = (f"{error.args[0]} (pass api_key= to the client, or set ${API_KEY_ENV})",)
        return error

    def _decode(self, response: Any) -> Any:
        try:
            return response.json()
        except ValueError:
            raise E2RankCompatibilityError(
                f"{response.request.method} {response.request.url} answered {response.status_code} with a body "
                "that is not JSON: is this the server you meant?"
            ) from None

    # ------------------------------------------------------------------ the server, once per client

    def _target_op(self) -> Operation[_Target]:
        """Find out what serves ``base_url`` (run once per client by the driver, under its lock)."""
        try:
            data = yield _Call("GET", self._root + "/info")
            return _Target("e2rank", info=InfoResponse.model_validate(data))
        except (ValidationError, E2RankCompatibilityError):
            pass  # an engine with an /info of its own (TEI has one), or an HTML page
        except E2RankAPIError as exc:
            if exc.status_code in (401, 403) or not 400 <= exc.status_code < 500:
                raise
        if self.api == "e2rank":
            raise E2RankCompatibilityError(
                f"{self._root} is not an `e2rank serve` server (GET /info does not answer as one); for vLLM, TEI, "
                "Infinity or another OpenAI-compatible embeddings engine, pass api='openai'"
            )
        refused = ""
        if self._tokenizer is not None:
            try:
                ids = yield _Work(self._encode, (_PROBE_TEXTS,))
                vectors = yield from self._post_embeddings_op(ids)
                return _Target("ids", changes=self._changes(vectors))
            except E2RankAPIError as exc:
                if exc.status_code not in (400, 422):
                    raise
                refused = f"HTTP {exc.status_code}"
                logger.info("%s refuses token ids (%s): sending text", self.base_url, refused)
        vectors = yield from self._post_embeddings_op(list(_PROBE_TEXTS))
        return _Target("text", changes=self._changes(vectors), ids_refused=refused)

    @staticmethod
    def _changes(vectors: Embeddings) -> tuple[str, ...]:
        """What the engine did to the probe texts: the changes whose probe text came back as the plain one."""
        same = vectors[1:] @ vectors[0] > _SAME
        return tuple(change for change, hit in zip(_CHANGES, same) if hit)

    def _check_exact(self, target: _Target, formatted: list[str], kind: str) -> None:
        """Refuse (a prompt) or warn once (documents, queries) where the engine would change these texts."""
        changes = [c for c in target.changes if any(_CHANGES[c][1](t) != t for t in formatted)]
        if not changes:
            return
        what = f"the embeddings server at {self.base_url} {' and '.join(changes)}"
        if target.ids_refused:
            what += f" (and refused token ids: {target.ids_refused})"
        if kind == "prompt":
            message = (
                f"{what}: E2Rank's listwise prompt ends with '</think>\\n\\n', so its embedding differs from the "
                f"model's and the ranking is not the model's. {_EXACT_ENGINES}"
            )
            if not self.allow_inexact:
                raise E2RankCompatibilityError(f"{message}; or pass allow_inexact=True to accept approximate rankings.")
            message += ". Reranking anyway, as allow_inexact=True asks: the rankings are approximate."
        else:
            count = sum(1 for t in formatted if any(_CHANGES[c][1](t) != t for c in changes))
            message = (
                f"{what}: {count} of {len(formatted)} {kind} texts are changed by it, so their embeddings differ "
                f"from the model's. Strip such texts yourself, or use an exact engine. {_EXACT_ENGINES}."
            )
        self._warn_once(kind if kind == "prompt" else "texts", message)

    def _warn_once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        logger.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=_caller_level())

    # ------------------------------------------------------------------ operations

    def _native(self, target: _Target) -> bool:
        """Whether to use the e2rank API: an e2rank server, and (in openai mode) the same prompts as it has."""
        return target.info is not None and (self.api == "e2rank" or target.info.prompts == self.prompts.to_dict())

    def _info_op(self) -> Operation[dict[str, Any]]:
        target: _Target = yield _VERIFY
        if target.info is None:
            raise E2RankCompatibilityError(f"{self.base_url} is not an `e2rank serve` server: it has no /info")
        return target.info.model_dump()

    def _describe_op(self) -> Operation[BackendInfo]:
        target: _Target = yield _VERIFY
        info = target.info
        if info is None:  # another engine says nothing of its model: what this client knows
            return BackendInfo(
                model=self.model or self.base_url, prompts=self.prompts, base_url=self.base_url, api="openai"
            )
        native = self._native(target)
        return BackendInfo(
            model=info.model_id,
            fingerprint=info.fingerprint,
            dimension=info.dimension,
            prompts=PromptFormat(**info.prompts) if native else self.prompts,
            max_length=info.max_input_length,
            base_url=self.base_url,
            api=self.api,
        )

    def _count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        """Token counts with the client's tokenizer; ``None`` without one (no e2rank server endpoint counts)."""
        items = check_texts(texts)
        return None if self._tokenizer is None else [len(ids) for ids in self._encode(items)]

    def _embed_op(
        self, texts: Sequence[str], input_type: InputType, instruction: str | None = None
    ) -> Operation[Embeddings]:
        items = check_texts(texts)
        target: _Target = yield _VERIFY
        if not self._native(target):
            if input_type == "query":
                formatted = [self.prompts.query(t, instruction) for t in items]
            elif input_type == "prompt":
                formatted = [QWEN3_CHAT_WRAP.format(content=t) for t in items]
            else:
                formatted = [self.prompts.document(t) for t in items]
            return (yield from self._openai_embed_op(target, formatted, input_type))
        assert target.info is not None
        if not items:
            return np.zeros((0, target.info.dimension), dtype=np.float32)
        size = target.info.max_client_batch_size
        rows = []
        for start in range(0, len(items), size):  # more texts than the server takes at once: several requests
            body = EmbeddingRequest(
                input=items[start : start + size],
                input_type=input_type,
                encoding_format="base64",
                instruction=instruction,
            )
            data = yield _Call("POST", self._root + "/v1/embeddings", _body(body))
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
        max_prompt_tokens: int | None,
    ) -> Operation[list[RankResult]]:
        query = check_query(query)
        docs = check_texts(documents, "documents")
        top_n = check_top_n(top_n)
        num_prompt_docs = check_positive_int(num_prompt_docs, "num_prompt_docs")
        passes = check_positive_int(passes, "passes")
        max_prompt_tokens = check_optional_positive_int(max_prompt_tokens, "max_prompt_tokens")
        if not docs:
            return []
        vectors = None if doc_embeddings is None else as_embeddings(doc_embeddings, len(docs))
        target: _Target = yield _VERIFY
        if not self._native(target):
            results = yield from self._openai_rerank_op(
                target,
                query,
                docs,
                vectors,
                instruction=instruction,
                num_prompt_docs=num_prompt_docs,
                passes=passes,
                max_prompt_tokens=max_prompt_tokens,
            )
            return results if top_n is None else results[:top_n]
        assert target.info is not None
        if len(docs) > target.info.max_client_batch_size:
            raise E2RankValueError(
                f"{len(docs)} documents are more than the server takes in one rerank "
                f"(max_client_batch_size={target.info.max_client_batch_size})"
            )
        body = RerankRequest(
            query=query,
            documents=list(docs),
            num_prompt_docs=num_prompt_docs,
            passes=passes,
            max_prompt_tokens=max_prompt_tokens,
            top_n=top_n,
            instruction=instruction,
            # Stored vectors travel as base64: the server embeds only the prompt.
            doc_embeddings=None if vectors is None else [encode_vector(v) for v in vectors],
        )
        data = yield _Call("POST", self._root + "/v1/rerank", _body(body))
        parsed = RerankResponse.model_validate(data)
        return [RankResult(index=r.index, score=r.relevance_score) for r in parsed.results]

    def _stats_op(self) -> Operation[dict[str, Any]]:
        target: _Target = yield _VERIFY
        if not self._native(target):
            with self._counters_lock:
                out: dict[str, Any] = dict(self._counters)
            out["cache_entries"] = (yield _Work(len, (self._cache,))) if self._cache is not None else 0
            return out
        stats: dict[str, Any] = yield _Call("GET", self._root + "/stats")
        return stats

    # ------------------------------------------------------------------ operations (openai mode)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        assert self._tokenizer is not None
        return [e.ids for e in self._tokenizer.encode_batch(texts, add_special_tokens=False)]

    def _prompt(self, query: str, docs: list[str], instruction: str | None, max_prompt_tokens: int | None) -> str:
        """The chat-wrapped listwise prompt, cut to ``max_prompt_tokens`` with the tokenizer (given one)."""

        def build(cut: list[str]) -> str:
            return QWEN3_CHAT_WRAP.format(content=self.prompts.listwise(query, cut, instruction))

        if max_prompt_tokens is None:
            return build(docs)
        assert self._tokenizer is not None
        limits = f"max_prompt_tokens={max_prompt_tokens}"
        # Special tokens kept, as the model's decode keeps them: a document holding "<|im_end|>" is cut alike.
        decode = functools.partial(self._tokenizer.decode, skip_special_tokens=False)
        return fit_prompt(build, docs, max_prompt_tokens, self._encode, decode, limits=limits)

    def _post_embeddings_op(self, inputs: Any, input_type: Literal["raw"] | None = None) -> Operation[Embeddings]:
        """One OpenAI embeddings request: only the fields every engine documents (``input_type`` on ours)."""
        body = EmbeddingRequest(input=inputs, encoding_format="float", model=self.model, input_type=input_type)
        data = yield _Call("POST", self._root + "/v1/embeddings", _body(body))
        vectors = normalize(EmbeddingResponse.model_validate(data).vectors())  # not every server normalises
        if len(vectors) != len(inputs):
            raise E2RankCompatibilityError(
                f"the embeddings server at {self.base_url} returned {len(vectors)} vectors for {len(inputs)} inputs"
            )
        return vectors

    def _openai_embed_op(self, target: _Target, formatted: list[str], kind: str) -> Operation[Embeddings]:
        scope = f"openai|{self.base_url}|{self.model}|{target.inputs}"
        keys = [cache_key(scope, t) for t in formatted]
        hits = (yield _Work(self._cache.get_many, (keys,))) if self._cache is not None else {}
        todo = list(dict.fromkeys(t for t, k in zip(formatted, keys) if k not in hits))
        self._check_exact(target, todo, kind)
        size = min(_OPENAI_BATCH, target.info.max_client_batch_size) if target.info else _OPENAI_BATCH
        computed: dict[str, Embeddings] = {}
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            if target.inputs == "ids":
                vectors = yield from self._post_embeddings_op((yield _Work(self._encode, (chunk,))))
            else:  # our own server embeds raw texts exactly as sent
                vectors = yield from self._post_embeddings_op(chunk, "raw" if target.info else None)
            computed.update({cache_key(scope, t): v for t, v in zip(chunk, vectors)})
        if computed and self._cache is not None:
            yield _Work(self._cache.put_many, (computed,))
        with self._counters_lock:
            self._counters["texts_embedded"] += len(todo)
            self._counters["cache_hits"] += sum(1 for k in keys if k in hits)
        rows = [hits[k] if k in hits else computed[k] for k in keys]
        return np.asarray(rows, dtype=np.float32).reshape(len(formatted), -1)

    def _openai_rerank_op(
        self,
        target: _Target,
        query: str,
        docs: list[str],
        vectors: Embeddings | None,
        *,
        instruction: str | None,
        num_prompt_docs: int,
        passes: int,
        max_prompt_tokens: int | None,
    ) -> Operation[list[RankResult]]:
        if max_prompt_tokens is not None and self._tokenizer is None:
            # Without the model's tokenizer a cut could only be guessed: refuse rather than overrun the budget.
            raise E2RankValueError(
                "max_prompt_tokens on an OpenAI-compatible server needs the model's tokenizer: pass "
                "tokenizer='path/to/tokenizer.json' to the client, or leave max_prompt_tokens unset"
            )
        # Refused before anything is embedded where the engine is known to change every prompt.
        self._check_exact(target, [QWEN3_CHAT_WRAP.format(content=self.prompts.rerank_instruction)], "prompt")
        if vectors is None:
            vectors = yield from self._openai_embed_op(target, [self.prompts.document(d) for d in docs], "document")

        def prompt_vector(order: Sequence[int]) -> Operation[Embeddings]:
            prompt_docs = [self.prompts.cut_words(docs[i]) for i in order[:num_prompt_docs]]
            wrapped = [(yield _Work(self._prompt, (query, prompt_docs, instruction, max_prompt_tokens)))]
            vector: Embeddings = (yield from self._openai_embed_op(target, wrapped, "prompt"))[0]
            return vector

        return (yield from listwise_steps(prompt_vector, vectors, passes=passes))


def _body(request: Any) -> dict[str, Any]:
    """A request model as JSON: only the fields set (other engines refuse or warn about fields they do not know)."""
    body: dict[str, Any] = request.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    return body


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside this package: a warning then points at the caller's line."""
    frame = sys._getframe(1)
    level = 1
    package = __name__.rpartition(".")[0]
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(package + "."):
        frame = frame.f_back
        level += 1
    return level


def _load_tokenizer(tokenizer: Any) -> Any:
    """A ``tokenizers.Tokenizer``: as given, or read from a ``tokenizer.json`` file or the directory holding it."""
    if hasattr(tokenizer, "encode_batch"):
        return tokenizer
    tokenizers = require("tokenizers", extra="client")
    path = Path(os.fspath(tokenizer)).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise E2RankValueError(
            f"tokenizer must be a tokenizers.Tokenizer, a tokenizer.json or its directory; {path} is none"
        )
    return tokenizers.Tokenizer.from_file(str(path))


class E2RankClient(_BaseClient):
    """A Backend over HTTP: pass it wherever an ``E2RankModel`` goes (the LangChain, LlamaIndex, Chroma adapters).

    Args:
        base_url: The server, e.g. ``"http://localhost:8000"`` (``.../v1`` for an OpenAI-compatible engine).
        api_key: Sent as ``Authorization: Bearer <api_key>`` (default: ``$E2RANK_API_KEY`` when set).
        timeout: Seconds to wait for each answer; a timeout raises :class:`E2RankTimeoutError` (not retried).
        retry_budget: Seconds one call may spend retrying 429 and 503: each wait is the server's ``Retry-After``
            (else a backoff doubling up to 5 s), with jitter. The default (5 minutes) lets many clients against a
            server at its ``--max-concurrent-requests``, or one still loading its model, all get their answers;
            connection errors are retried for 10 s at most (a restart), so a wrong URL fails fast.
        max_retries: Also stop after this many retries (``0``: never retry; default: the budget alone decides).
        transport: An ``httpx`` transport (``httpx.MockTransport``, ``httpx.ASGITransport``...), for tests.
        api: ``"e2rank"`` for ``e2rank serve``, ``"openai"`` for any OpenAI-compatible embeddings server (an
            ``e2rank serve`` found there is still spoken to in its own API, exactly).
        model: The model name sent in openai mode (vLLM and others check it).
        tokenizer: openai mode: a ``tokenizer.json`` (or its directory, or a ``tokenizers.Tokenizer``) of the
            served model; the client then sends token ids where the engine takes them, which no engine can strip.
        prompts: openai mode: the query, document and listwise prompt strings (default: the authors' evaluation).
        cache: openai mode: the embedding cache (``None`` an in-memory LRU, ``False`` none, a path SQLite...).
        backoff: First retry delay in seconds, doubled at each retry.
        allow_inexact: openai mode: rerank through an engine that changes texts (one that strips whitespace)
            with a warning, instead of raising :class:`E2RankCompatibilityError`.

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
        attempt, started = 0, time.monotonic()
        while True:
            try:
                response = self._http.request(call.method, call.path, json=call.json)
            except httpx.TransportError as exc:
                time.sleep(self._retry_delay(attempt, started, error=exc))
            else:
                if response.is_success:
                    return self._decode(response)
                time.sleep(self._retry_delay(attempt, started, response=response))
            attempt += 1

    def _resolve_target(self) -> _Target:
        with self._target_lock:  # other threads wait for the first one's answer
            if self._target is None:
                self._target = self._run(self._target_op())
            return self._target

    def _step(self, step: _Call | _Work | _Verify) -> Any:
        if isinstance(step, _Call):
            return self._send(step)
        if isinstance(step, _Work):
            return step.fn(*step.args)
        return self._target or self._resolve_target()

    def _run(self, operation: Operation[T]) -> T:
        try:
            step = next(operation)
            while True:
                try:
                    answer = self._step(step)
                except Exception as exc:  # the operation may handle it (a refused probe); if not, it comes back out
                    step = operation.throw(exc)
                else:
                    step = operation.send(answer)
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
        max_prompt_tokens: int | None = None,
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
                max_prompt_tokens=max_prompt_tokens,
            )
        )

    def stats(self) -> dict[str, Any]:
        return self._run(self._stats_op())

    def info(self) -> dict[str, Any]:
        """The ``/info`` of an ``e2rank serve``: model, fingerprint, dimension and limits."""
        return self._run(self._info_op())

    def describe(self) -> BackendInfo:
        """What the server serves (its ``/info``, asked once per client); another engine: what this client knows."""
        return self._run(self._describe_op())

    def count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        """Token counts with ``tokenizer=`` (openai mode); ``None`` without one: callers then estimate."""
        return self._count_tokens(texts)

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
    Cache and tokenizer work runs in a thread, never on the event loop.

    Example:
        >>> from e2rank_integrations import AsyncE2RankClient
        >>> async with AsyncE2RankClient("http://localhost:8000") as client:  # doctest: +SKIP
        ...     results = await client.rerank("capital of France?", ["Lyon is big.", "Paris is the capital."])
    """

    def _open(self, transport: Any) -> Any:
        self._transport = transport
        self._finding: concurrent.futures.Future[None] | None = None  # set while one task finds the target
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
        attempt, started = 0, time.monotonic()
        while True:
            try:
                response = await self._loop_http().request(call.method, call.path, json=call.json)
            except httpx.TransportError as exc:
                await asyncio.sleep(self._retry_delay(attempt, started, error=exc))
            else:
                if response.is_success:
                    return self._decode(response)
                await asyncio.sleep(self._retry_delay(attempt, started, response=response))
            attempt += 1

    async def _resolve_target(self) -> _Target:
        """The target, found by one task at a time whatever its loop or thread; the others wait for its answer."""
        while True:
            with self._lock:
                if self._target is not None:
                    return self._target
                finding, owner = self._finding, self._finding is None
                if finding is None:
                    finding = self._finding = concurrent.futures.Future()
            if not owner:  # shielded: a waiter cancelled must not cancel the finding
                await asyncio.shield(asyncio.wrap_future(finding))
                continue  # found, or failed: then this task tries in turn
            try:
                target = await self._run(self._target_op())
                with self._lock:
                    self._target = target
                return target
            finally:
                with self._lock:
                    self._finding = None
                finding.set_result(None)

    async def _step(self, step: _Call | _Work | _Verify) -> Any:
        if isinstance(step, _Call):
            return await self._send(step)
        if isinstance(step, _Work):
            return await asyncio.to_thread(step.fn, *step.args)
        return self._target or await self._resolve_target()

    async def _run(self, operation: Operation[T]) -> T:
        try:
            step = next(operation)
            while True:
                try:
                    answer = await self._step(step)
                except Exception as exc:  # the operation may handle it (a refused probe); if not, it comes back out
                    step = operation.throw(exc)
                else:
                    step = operation.send(answer)
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
        max_prompt_tokens: int | None = None,
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
                max_prompt_tokens=max_prompt_tokens,
            )
        )

    async def stats(self) -> dict[str, Any]:
        return await self._run(self._stats_op())

    async def info(self) -> dict[str, Any]:
        """The ``/info`` of an ``e2rank serve``: model, fingerprint, dimension and limits."""
        return await self._run(self._info_op())

    async def describe(self) -> BackendInfo:
        """What the server serves (its ``/info``, asked once per client); another engine: what this client knows."""
        return await self._run(self._describe_op())

    async def count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        """Token counts with ``tokenizer=`` (openai mode, in a worker thread); ``None`` without one."""
        return await asyncio.to_thread(self._count_tokens, texts)

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
