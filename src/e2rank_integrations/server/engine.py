"""What the endpoints do, apart from HTTP: format inputs, check limits, embed through the batcher, rerank."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import numpy.typing as npt
from starlette.concurrency import run_in_threadpool

from ..scoring import alistwise_rank, as_embeddings
from ..types import Embeddings, RankResult
from ..validators import check_query, check_texts, check_unicode
from .batching import Batcher
from .errors import APIError
from .settings import ServerSettings

if TYPE_CHECKING:
    from ..model import E2RankModel

__all__ = ["TOKEN_IDS_REFUSED", "Engine", "Outcome", "ServableModel"]

_COUNT_CHUNK_CHARS = 262_144  # about 64k tokens: a 413 costs at most this much tokenizing past the cap

TOKEN_IDS_REFUSED = (
    "input holds token ids, which this server does not embed unless asked to: clients such as LangChain's "
    "OpenAIEmbeddings send tiktoken ids (not this model's) by default, and those would give meaningless vectors. "
    "Send texts instead (for OpenAIEmbeddings: check_embedding_ctx_length=False), or, for ids of this model's "
    "tokenizer, add input_type: 'tokens' to the request (or start the server with --allow-token-ids)."
)


# The server's model is an E2RankModel: its methods are the one contract (a Protocol here re-declared them).
ServableModel: TypeAlias = "E2RankModel"


@dataclass
class Outcome:
    """Tokens embedded for a request and the time its jobs spent queued and running (for headers and usage)."""

    tokens: int = 0
    queue_seconds: float = 0.0
    inference_seconds: float = 0.0


class Engine:
    """The model behind the endpoints: every embedding goes through the :class:`Batcher`."""

    def __init__(self, model: ServableModel, batcher: Batcher, settings: ServerSettings) -> None:
        self.model = model
        self.batcher = batcher
        self.settings = settings

    # ------------------------------------------------------------------ inputs

    def check_count(self, count: int, name: str) -> None:
        """An empty list is a 400; more items than ``max_client_batch_size`` a 413."""
        if count == 0:
            raise APIError(400, f"{name} must not be empty", "empty_input")
        limit = self.settings.max_client_batch_size
        if count > limit:
            raise APIError(413, f"{name} has {count} items, more than max_client_batch_size={limit}", "too_many_inputs")

    def check_tokens(self, tokens: int) -> None:
        """A request of more than ``max_request_tokens`` tokens (after truncation) is a 413."""
        limit = self.settings.max_request_tokens
        if tokens > limit:
            raise APIError(
                413,
                f"the request holds {tokens} tokens, more than max_request_tokens={limit}; split it into smaller ones",
                "too_many_tokens",
            )

    def format(self, texts: Sequence[str], input_type: str | None, instruction: str | None, name: str) -> list[str]:
        """The exact model inputs for ``texts`` of one input type (see ``protocol.InputType``)."""
        kind = input_type or ("raw" if self.settings.raw_embeddings else "document")
        if kind == "tokens":
            raise APIError(400, f"{name} holds texts: input_type 'tokens' takes token ids (lists of integers)")
        if instruction is not None and kind != "query":
            raise APIError(400, f"instruction applies to input_type 'query', not {kind!r}", "invalid_value")
        texts = check_texts(texts, name)
        if instruction is not None:
            check_unicode(instruction, "instruction")
        prompts = self.model.prompts
        if kind == "document":
            return [prompts.document(t) for t in texts]
        if kind == "query":
            return [prompts.query(t, instruction) for t in texts]
        for i, text in enumerate(texts):  # a prompt or a raw text is the whole model input: it cannot be empty
            empty = not text.strip() if kind == "prompt" else not text
            if empty:
                raise APIError(400, f"{name}[{i}] must be a non-empty string for input_type {kind!r}", "empty_input")
        return [self.model.chat_wrap(t) for t in texts] if kind == "prompt" else list(texts)

    def decode_ids(self, ids: Sequence[Sequence[int]], input_type: str | None, name: str) -> list[str]:
        """Token ids as the text the model's tokenizer gives them back (exact for ids that tokenizer produced).

        Checking and decoding a long id list takes a while: call it in a worker thread, not on the event loop.
        """
        if input_type is None and not self.settings.allow_token_ids:
            raise APIError(400, TOKEN_IDS_REFUSED, "token_ids_refused")
        if input_type not in (None, "tokens"):
            raise APIError(
                400, f"{name} holds token ids: input_type must be 'tokens' (or left out), not {input_type!r}"
            )
        self.check_count(len(ids), name)
        self.check_tokens(sum(min(len(row), self.model.max_length) for row in ids))  # before decoding anything
        vocab = self.model.vocab_size
        texts = []
        for i, row in enumerate(ids):
            if not row:
                raise APIError(400, f"{name}[{i}] must not be an empty list of token ids", "empty_input")
            try:
                array = np.asarray(row, dtype=np.int64)
                bad = [int(t) for t in array[(array < 0) | (array >= vocab)][:1]]
            except OverflowError:  # beyond 64 bits
                bad = [next(t for t in row if not 0 <= t < vocab)]
            if bad:
                raise APIError(400, f"{name}[{i}] holds token id {bad[0]}, outside the vocabulary [0, {vocab})")
            texts.append(self.model.decode(row))
        return texts

    # ------------------------------------------------------------------ embedding

    async def embed(self, formatted: Sequence[str], *, truncate: bool, name: str, into: Outcome) -> Embeddings:
        """Embed exact model inputs through the batcher; account tokens and times in ``into``.

        Each distinct text is embedded once: equal inputs of one request get equal rows (and, in a rerank,
        equal scores, so ties keep the input order). ``usage`` and ``max_request_tokens`` count every input.
        """
        unique = list(dict.fromkeys(formatted))
        cut = await run_in_threadpool(self._count, formatted, unique, truncate, name, into.tokens)
        tokens = sum(cut[text] for text in formatted)
        result = await self.batcher.embed(unique, [cut[text] for text in unique])
        into.tokens += tokens
        into.queue_seconds += result.queue_seconds
        into.inference_seconds += result.inference_seconds
        if len(unique) == len(formatted):
            return result.vectors
        row = {text: i for i, text in enumerate(unique)}
        return result.vectors[[row[text] for text in formatted]]

    def _count(
        self, formatted: Sequence[str], unique: list[str], truncate: bool, name: str, spent: int
    ) -> dict[str, int]:
        """Each distinct text's token count after truncation, tokenized a chunk at a time (in a worker thread).

        A request over ``max_request_tokens`` gets its 413 as soon as the count passes the cap, not after the
        whole body was tokenized; a server that stopped meanwhile stops counting (its 503).
        """
        limit = self.model.max_length
        uses = collections.Counter(formatted)
        cut: dict[str, int] = {}
        total = spent
        start = 0
        while start < len(unique):
            stop, chars = start, 0
            while stop < len(unique) and (stop == start or chars < _COUNT_CHUNK_CHARS):
                chars += len(unique[stop])
                stop += 1
            chunk = unique[start:stop]
            counts = self.model.count_tokens(chunk)
            # A server that stopped meanwhile: the 503 its drain log promised, not a 400 or 413 from here.
            self.batcher.check_open()
            for text, count in zip(chunk, counts, strict=True):
                if count > limit and not truncate:
                    raise APIError(
                        400,
                        f"{name}[{formatted.index(text)}] has {count} tokens, more than the model's limit of "
                        f"{limit}; shorten it or leave truncate on",
                        "input_too_long",
                    )
                cut[text] = min(count, limit)
                total += cut[text] * uses[text]
            self.check_tokens(total)
            start = stop
        return cut

    # ------------------------------------------------------------------ reranking

    async def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None,
        instruction: str | None,
        num_prompt_docs: int,
        passes: int,
        doc_embeddings: npt.ArrayLike | None,
        max_prompt_tokens: int | None = None,
        truncate: bool,
        name: str,
        into: Outcome,
    ) -> list[RankResult]:
        """The listwise rerank of ``E2RankModel.rerank``, with every embedding queued through the batcher."""
        query = check_query(query)
        self.check_count(len(documents), name)
        documents = check_texts(documents, name)
        if doc_embeddings is not None:
            vectors = as_embeddings(doc_embeddings, len(documents), dim=self.model.dimension)
        else:
            formatted = [self.model.prompts.document(d) for d in documents]
            vectors = await self.embed(formatted, truncate=truncate, name=name, into=into)

        async def prompt_vector(order: Sequence[int]) -> Embeddings:
            prompt = await run_in_threadpool(
                self.model.listwise_prompt,
                query,
                [documents[i] for i in order[:num_prompt_docs]],
                instruction=instruction,
                num_prompt_docs=num_prompt_docs,
                max_prompt_tokens=max_prompt_tokens,
            )
            vector: Embeddings = (await self.embed([prompt], truncate=True, name="prompt", into=into))[0]
            return vector

        return await alistwise_rank(prompt_vector, vectors, passes=passes, top_n=top_n)
