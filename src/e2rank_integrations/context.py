"""Pack ranked candidates into a token-budgeted, cited context for an LLM: numpy only, no framework.

An agent's search tool returns text that goes straight into a model's context window, so it must fit a budget,
say where each passage came from, and not waste tokens on near-copies. :func:`pack_context` does that with the
vectors the candidates already have (the ones retrieval stored): dropping near-duplicates and diversifying cost
no forward pass.

Example:
    >>> packed = pack_context(
    ...     "capital of France?",
    ...     ["Paris is the capital of France.", "Paris is the capital of France.", "Lyon is a large city."],
    ...     max_tokens=100,
    ...     sources=["a.md", "b.md", "c.md"],
    ... )
    >>> print(packed.text)
    [1] (a.md) Paris is the capital of France.
    <BLANKLINE>
    [2] (c.md) Lyon is a large city.
    >>> [(item.citation, item.index) for item in packed.items], packed.dropped
    ([(1, 0), (2, 2)], {1: 'duplicate of [1]'})
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import E2RankTypeError, E2RankValueError
from .scoring import as_embeddings, normalize
from .types import AsyncBackend, Backend, Embeddings, call_async, check_backend, check_sync_backend, is_async_backend
from .validators import check_positive_int, check_query, check_texts

__all__ = [
    "CUT_MARK",
    "SEPARATOR",
    "ContextItem",
    "PackedContext",
    "apack_context",
    "cite",
    "estimate_tokens",
    "pack_context",
]

CUT_MARK = " [...]"
"""Ends a passage that was cut to fit the budget."""
SEPARATOR = "\n\n"
"""Between two cited passages."""

TokenCounter = Callable[[str], int]

# A line of a passage that starts like a citation marker ("[2]"): rewritten so that it cannot pass for one.
_MARKER_AT_LINE_START = re.compile(r"^([ \t]*)\[(\d+)\]", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n\s*")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free upper bound on tokens: the text's UTF-8 bytes.

    A byte-level BPE tokenizer (Qwen3's, GPT's) starts from one token per byte and only merges, so no text has
    more tokens than bytes, whatever it holds (numbers, URLs, base64, emoji, CJK). A budget counted this way
    always holds for such a tokenizer, at the price of using it poorly: English prose runs about 4 bytes per
    token. Pass ``count_tokens`` (or a backend with a tokenizer) to :func:`pack_context` for a tight fit.

    Example:
        >>> estimate_tokens("Paris is the capital of France.")
        31
        >>> estimate_tokens("北京")  # 3 bytes per character
        6
    """
    return len(text.encode("utf-8", "surrogatepass"))


def cite(passages: Sequence[str], *, sources: Sequence[str | None] | None = None) -> str:
    """Every passage, numbered for citation as :func:`pack_context` numbers them, with no budget and no dedup.

    For a tool that returns whatever the retriever kept (its ``top_n``) and leaves the budget to the caller.

    Example:
        >>> print(cite(["Paris is in France.", "Lyon is too."], sources=["a.md", None]))
        [1] (a.md) Paris is in France.
        <BLANKLINE>
        [2] Lyon is too.

    Raises:
        ValueError: ``sources`` not one per passage.
    """
    texts = check_texts(passages, "passages")
    blocks = map(_block, range(1, len(texts) + 1), _aligned(sources, len(texts), "sources"), texts)
    return SEPARATOR.join(blocks)


NO_RESULTS = "No passages found for this query. Try other words or a broader query."
"""What the adapters' search tools return when the retriever found nothing."""


def tool_description(limit: int, *, query_argument: str, more: str = "", max_tokens: int | None = None) -> str:
    """What the adapters' search tools tell the model by default: what they return, how to cite it, their arguments.

    ``query_argument`` names the query's argument and ``more`` describes the others; ``max_tokens`` adds the budget.
    """
    text = (
        f"Search the knowledge base. Returns up to {limit} passages, most relevant first, each numbered [n] with its "
        f"source in parentheses: cite the passages you use by these numbers. `{query_argument}`: one self-contained "
        f"question or keyword phrase in natural language (spell out what 'it' or 'that' refers to).{more} If the "
        "passages do not answer the question, search again with other words."
    )
    if max_tokens is None:
        return text
    return f"{text} The passages fit in about {max_tokens} tokens; a passage cut to fit ends with [...]."


def _block(citation: int, source: str | None, passage: str) -> str:
    """One cited passage: ``[citation] (source) passage``, where nothing in the passage can pass for a citation.

    Blank lines inside the passage become single line breaks (a blank line separates passages), and a line that
    starts with ``[n]`` starts with ``(n)`` instead; a source is kept on one line.
    """
    passage = _MARKER_AT_LINE_START.sub(r"\1(\2)", _BLANK_LINES.sub("\n", passage))
    if source is None:
        return f"[{citation}] {passage}"
    return f"[{citation}] ({' '.join(source.split())}) {passage}"


@dataclass(frozen=True, slots=True)
class ContextItem:
    """One passage of a :class:`PackedContext`.

    Attributes:
        citation: Its number in the text, ``[citation]``, from 1.
        index: Its position in the ``documents`` passed to :func:`pack_context`.
        id: The id given for it (``ids=``), else ``None``.
        text: The passage, cut and marked with :data:`CUT_MARK` when ``truncated`` (in ``PackedContext.text``,
            blank lines inside it are single line breaks and a line starting ``[n]`` starts ``(n)``).
        tokens: Tokens of its block in the context, citation marker included.
        score: Its score (``scores=``), else ``None``.
        source: Its source (``sources=``), else ``None``.
        truncated: Whether it was cut to fit the budget.
    """

    citation: int
    index: int
    id: str | None
    text: str
    tokens: int
    score: float | None = None
    source: str | None = None
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class PackedContext:
    """Passages that fit a token budget, as one prompt-ready string with numbered citations.

    Attributes:
        text: ``[1] (source) passage``, a blank line, ``[2] ...``; within the budget (``""`` when nothing fits).
        items: The passages in ``text``, in citation order.
        tokens: Tokens of ``text``, as counted by the counter used.
        max_tokens: The budget.
        dropped: Position in the input -> why it is not in ``text``: ``"duplicate of [n]"``,
            ``"max_per_source"`` or ``"budget"``.
        content: What a tool hands a model: ``text``, or when nothing fits (or no passage was given), the
            longest note saying so that fits the budget (``""`` when none does).
    """

    text: str
    items: list[ContextItem]
    tokens: int
    max_tokens: int
    dropped: dict[int, str]
    content: str = ""

    def __str__(self) -> str:
        return self.text


def pack_context(
    query: str,
    documents: Sequence[str],
    *,
    max_tokens: int,
    backend: Backend | AsyncBackend | None = None,
    doc_embeddings: npt.ArrayLike | None = None,
    count_tokens: TokenCounter | None = None,
    dedup_threshold: float | None = 0.95,
    max_per_source: int | None = None,
    diversity: float = 0.0,
    sources: Sequence[str | None] | None = None,
    ids: Sequence[str | None] | None = None,
    scores: Sequence[float] | None = None,
) -> PackedContext:
    """Keep the best candidates that fit ``max_tokens``, dropping near-duplicates, numbered for citation.

    Candidates are taken best first, as given (already ranked, e.g. by a rerank). Each is skipped when its
    vector's cosine to a passage already kept is at least ``dedup_threshold``, or when its source already has
    ``max_per_source`` passages. The first passage that does not fit what is left of the budget is cut (at a
    word boundary, or inside a word for text without spaces: CJK, URLs, base64) and marked with
    :data:`CUT_MARK`; later passages still go in whole where they fit. The budget counts the whole ``text``:
    citation markers, sources and separators included.

    Vectors come from ``doc_embeddings``, else from ``backend.embed_documents``, which answers from its cache when
    the candidates were indexed with that backend: no forward pass. With neither, only exact duplicates (equal
    after collapsing whitespace) are dropped.

    Args:
        query: The query the candidates were ranked for (non-empty); with ``diversity`` and no ``scores``, the
            backend embeds it to score relevance.
        documents: Candidate texts, best first.
        max_tokens: The budget for ``text`` (>= 1).
        backend: A sync Backend (``E2RankModel``, ``E2RankClient``; use :func:`apack_context` for async ones): it
            gives the vectors and, where it has a tokenizer (``count_tokens``), the token counts.
        doc_embeddings: The candidates' stored vectors, one row each.
        count_tokens: ``text -> tokens``; default: the backend's tokenizer, else :func:`estimate_tokens`.
        dedup_threshold: Cosine at or above which a candidate duplicates a kept passage; ``None`` keeps all.
            The cosine is the model's, so what a value means depends on the model: how close distinct passages
            sit varies from one model to another (a random-weight test checkpoint puts unrelated passages near
            0.9, where 0.95 drops distinct ones). Look at the cosines of known-distinct passages of your corpus
            before lowering it, or pass ``None``.
        max_per_source: Most passages from one source (needs ``sources``).
        diversity: 0 keeps the given order. Above 0, passages are picked by maximal marginal relevance,
            ``(1 - diversity) * relevance - diversity * (max cosine to the passages kept)``: more ground covered per
            token, at the price of passing over better-ranked passages that repeat a kept one. Relevance is
            ``scores``, else the cosine to the query (with a backend), else the given order.
        sources: Where each candidate comes from (a file, a URL): shown after its citation number.
        ids: An id per candidate, carried into :attr:`ContextItem.id`.
        scores: A score per candidate (its rerank score, say), carried into :attr:`ContextItem.score`.

    Returns:
        A :class:`PackedContext`.

    Raises:
        ValueError: ``max_tokens`` < 1, ``diversity`` outside 0..1, ``sources``/``ids``/``scores`` or
            ``doc_embeddings`` not one per document, ``max_per_source`` without ``sources``.
        TypeError: A source that is not a string or ``None`` (``E2RankTypeError``, naming it).
    """
    plan = _Plan(
        query,
        documents,
        max_tokens,
        count_tokens or _backend_counter(backend),
        dedup_threshold,
        max_per_source,
        diversity,
        sources,
        ids,
        scores,
    )
    if backend is not None:
        backend = check_sync_backend(backend, "apack_context")
    vectors = None if doc_embeddings is None else as_embeddings(doc_embeddings, len(plan.docs))
    if vectors is None and backend is not None and plan.wants_vectors:
        vectors = normalize(backend.embed_documents(plan.docs))
    query_vector = None
    if backend is not None and plan.wants_query_vector(vectors):
        query_vector = backend.embed_queries([plan.query])[0]
    return plan.pack(vectors, query_vector)


async def apack_context(
    query: str,
    documents: Sequence[str],
    *,
    max_tokens: int,
    backend: Backend | AsyncBackend | None = None,
    doc_embeddings: npt.ArrayLike | None = None,
    count_tokens: TokenCounter | None = None,
    dedup_threshold: float | None = 0.95,
    max_per_source: int | None = None,
    diversity: float = 0.0,
    sources: Sequence[str | None] | None = None,
    ids: Sequence[str | None] | None = None,
    scores: Sequence[float] | None = None,
) -> PackedContext:
    """:func:`pack_context` for async code, with the same arguments.

    An async backend (``AsyncE2RankClient``) is awaited and a sync one runs in a worker thread, so the event loop
    stays free.
    """
    plan = _Plan(
        query,
        documents,
        max_tokens,
        count_tokens or _backend_counter(backend),
        dedup_threshold,
        max_per_source,
        diversity,
        sources,
        ids,
        scores,
    )
    if backend is not None:
        check_backend(backend)
    vectors = None if doc_embeddings is None else as_embeddings(doc_embeddings, len(plan.docs))
    if vectors is None and backend is not None and plan.wants_vectors:
        vectors = normalize(await call_async(backend, "embed_documents", plan.docs))
    query_vector = None
    if backend is not None and plan.wants_query_vector(vectors):
        query_vector = (await call_async(backend, "embed_queries", [plan.query]))[0]
    return plan.pack(vectors, query_vector)


def _backend_counter(backend: Backend | AsyncBackend | None) -> TokenCounter | None:
    """The backend's own token count where it is sync; :func:`estimate_tokens` where ``count_tokens`` says None."""
    if backend is None or is_async_backend(backend):  # the plan counts synchronously: an async one estimates
        return None
    count = check_sync_backend(backend, "apack_context").count_tokens

    def counter(text: str) -> int:
        counts = count([text])  # None: a client without a tokenizer
        return estimate_tokens(text) if counts is None else int(counts[0])

    return counter


def _aligned(values: Sequence[Any] | None, n: int, name: str) -> list[Any]:
    """``values`` as a list of ``n`` (``None`` -> ``n`` Nones), or a ``ValueError`` naming ``name``."""
    if values is None:
        return [None] * n
    if isinstance(values, (str, bytes)):
        raise E2RankTypeError(f"{name} must be a list with one entry per document, not a single string")
    items = list(values)
    if len(items) != n:
        raise E2RankValueError(f"{name} must have one entry per document: {len(items)} for {n} documents")
    return items


class _Plan:
    """Checked arguments of one packing, and the packing itself (shared by the sync and async entry points)."""

    def __init__(
        self,
        query: str,
        documents: Sequence[str],
        max_tokens: int,
        count_tokens: TokenCounter | None,
        dedup_threshold: float | None,
        max_per_source: int | None,
        diversity: float,
        sources: Sequence[str | None] | None,
        ids: Sequence[str | None] | None,
        scores: Sequence[float] | None,
    ) -> None:
        self.query = check_query(query)
        self.docs = check_texts(documents, "documents")
        self.max_tokens = check_positive_int(max_tokens, "max_tokens")
        if isinstance(diversity, bool) or not isinstance(diversity, (int, float)) or not 0 <= diversity <= 1:
            raise E2RankValueError(f"diversity must be a number from 0 to 1, got {diversity!r}")
        if dedup_threshold is not None and not -1 <= dedup_threshold <= 1:
            raise E2RankValueError(f"dedup_threshold must be a cosine from -1 to 1 (or None), got {dedup_threshold!r}")
        if max_per_source is not None:
            check_positive_int(max_per_source, "max_per_source")
            if sources is None:
                raise E2RankValueError("max_per_source needs sources=, one per document")
        n = len(self.docs)
        self.count = count_tokens or estimate_tokens
        self.dedup_threshold = dedup_threshold
        self.max_per_source = max_per_source
        self.diversity = float(diversity)
        self.sources = _aligned(sources, n, "sources")
        for i, source in enumerate(self.sources):
            if source is not None and not isinstance(source, str):
                raise E2RankTypeError(f"sources[{i}] must be a string or None, got {type(source).__name__}")
        self.ids = _aligned(ids, n, "ids")
        self.scores = _aligned(scores, n, "scores")
        if scores is not None and not all(isinstance(s, (int, float, np.number)) for s in self.scores):
            raise E2RankTypeError("scores must be numbers")

    @property
    def wants_vectors(self) -> bool:
        return bool(self.docs) and (self.dedup_threshold is not None or self.diversity > 0)

    def wants_query_vector(self, vectors: Embeddings | None) -> bool:
        return self.diversity > 0 and self.scores[:1] == [None] and vectors is not None

    def pack(self, vectors: Embeddings | None, query_vector: npt.ArrayLike | None) -> PackedContext:
        n = len(self.docs)
        relevance: npt.NDArray[np.float64] | None = None
        if self.diversity > 0:
            if vectors is None:
                raise E2RankValueError("diversity needs the candidates' vectors: pass doc_embeddings= or backend=")
            if self.scores[:1] != [None]:
                relevance = np.asarray(self.scores, dtype=np.float64)
            elif query_vector is not None:
                relevance = (vectors @ normalize(query_vector).reshape(-1)).astype(np.float64)
            else:  # neither scores nor a backend: the given order is all that is known of relevance
                relevance = 1.0 - np.arange(n, dtype=np.float64) / max(n, 1)
        items: list[ContextItem] = []
        dropped: dict[int, str] = {}
        kept_keys: dict[str, int] = {}  # collapsed text -> citation, when there are no vectors
        per_source: dict[Any, int] = {}
        text, used = "", 0
        similarity = np.full(n, -np.inf)  # max cosine of each candidate to the passages kept
        remaining = list(range(n))
        while remaining:
            if relevance is None:
                i = remaining.pop(0)
            else:
                mmr = (1 - self.diversity) * relevance[remaining] - self.diversity * np.maximum(
                    similarity[remaining], 0.0
                )
                i = remaining.pop(int(np.argmax(mmr)))
            duplicate = self._duplicate_of(i, vectors, similarity, kept_keys, items)
            if duplicate is not None:
                dropped[i] = f"duplicate of [{duplicate}]"
                continue
            source = self.sources[i]
            if self.max_per_source is not None and per_source.get(source, 0) >= self.max_per_source:
                dropped[i] = "max_per_source"
                continue
            citation = len(items) + 1
            passage, truncated = self.docs[i], False
            candidate = self._join(text, citation, source, passage)
            tokens = self.count(candidate)
            if tokens > self.max_tokens:
                # One passage is cut to fill the budget; after it, later ones go in only whole (no fragments).
                cut = None if any(item.truncated for item in items) else self._cut(text, citation, source, passage)
                if cut is None:
                    dropped[i] = "budget"  # a later, shorter passage may still fit
                    continue
                passage, candidate, tokens, truncated = (*cut, True)
            score = self.scores[i]
            items.append(
                ContextItem(
                    citation=citation,
                    index=i,
                    id=self.ids[i],
                    text=passage,
                    tokens=tokens - used,
                    score=None if score is None else float(score),
                    source=source,
                    truncated=truncated,
                )
            )
            text, used = candidate, tokens
            per_source[source] = per_source.get(source, 0) + 1
            if vectors is not None:
                np.maximum(similarity, vectors @ vectors[i], out=similarity)
            else:
                kept_keys.setdefault(" ".join(self.docs[i].split()), citation)
        content = text or self._note()
        return PackedContext(
            text=text, items=items, tokens=used, max_tokens=self.max_tokens, dropped=dropped, content=content
        )

    def _note(self) -> str:
        """The longest note saying that nothing fits (or was found) that fits the budget; ``""`` when none does."""
        if not self.docs:
            notes: tuple[str, ...] = ("No passages found.",)
        else:
            notes = (f"The passages found do not fit in the {self.max_tokens}-token budget.", "Nothing fits.")
        return next((note for note in notes if self.count(note) <= self.max_tokens), "")

    def _duplicate_of(
        self,
        i: int,
        vectors: Embeddings | None,
        similarity: npt.NDArray[np.float64],
        kept_keys: dict[str, int],
        items: list[ContextItem],
    ) -> int | None:
        """The citation of the kept passage that candidate ``i`` duplicates, or ``None``."""
        if self.dedup_threshold is None or not items:
            return None
        if vectors is None:
            return kept_keys.get(" ".join(self.docs[i].split()))
        if similarity[i] < self.dedup_threshold:
            return None
        kept = np.array([item.index for item in items])
        return items[int(np.argmax(vectors[kept] @ vectors[i]))].citation

    @staticmethod
    def _join(text: str, citation: int, source: str | None, passage: str) -> str:
        block = _block(citation, source, passage)
        return f"{text}{SEPARATOR}{block}" if text else block

    def _cut(self, text: str, citation: int, source: str | None, passage: str) -> tuple[str, str, int] | None:
        """The longest prefix of ``passage`` that fits, marked as cut: (passage, new text, its tokens).

        Cut after a word where one fits, else inside the first word (text without spaces: CJK, URLs, base64).
        """
        ends = [m.end() for m in re.finditer(r"\S+", passage)]
        return self._longest(text, citation, source, passage, ends) or self._longest(
            text, citation, source, passage, list(range(1, ends[0] if ends else 0))
        )

    def _longest(
        self, text: str, citation: int, source: str | None, passage: str, ends: list[int]
    ) -> tuple[str, str, int] | None:
        """The longest ``passage[:end] + CUT_MARK`` over ``ends`` (ascending) that fits; binary search."""
        best = None
        low, high = 1, len(ends)
        while low <= high:
            middle = (low + high) // 2
            cut = passage[: ends[middle - 1]] + CUT_MARK
            candidate = self._join(text, citation, source, cut)
            tokens = self.count(candidate)
            if tokens <= self.max_tokens:
                best, low = (cut, candidate, tokens), middle + 1
            else:
                high = middle - 1
        return best
