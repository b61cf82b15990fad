"""Cosine scores, ordering, ``top_n`` and thresholds, in numpy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .errors import E2RankTypeError, E2RankValueError
from .types import Embeddings, RankResult
from .validators import check_optional_positive_int, check_positive_int, check_top_n  # also re-exported here

__all__ = [
    "PromptStep",
    "alistwise_rank",
    "as_embeddings",
    "check_optional_positive_int",
    "check_positive_int",
    "check_top_n",
    "cosine_scores",
    "fill_embeddings",
    "listwise_rank",
    "listwise_steps",
    "missing_rows",
    "normalize",
    "rank",
    "select",
]


def normalize(vectors: npt.ArrayLike) -> Embeddings:
    """L2-normalise rows (or one vector) as float32; a zero vector stays zero."""
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    out: Embeddings = np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)
    return out


def as_embeddings(
    vectors: npt.ArrayLike, rows: int, name: str = "doc_embeddings", dim: int | None = None
) -> Embeddings:
    """Check that ``vectors`` is a finite ``(rows, dim)`` matrix and return it L2-normalised as float32.

    Raises:
        E2RankTypeError: A value is not a number.
        E2RankValueError: Rows of different lengths, the wrong number of rows or columns, NaN or infinity.

    >>> as_embeddings([[1.0, 0.0], [0.0, 1.0, 0.0]], rows=2)
    Traceback (most recent call last):
    ...
    e2rank_integrations.errors.E2RankValueError: doc_embeddings[1] has 3 values but doc_embeddings[0] has 2
    """
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError):
        raise _not_a_matrix(vectors, name) from None
    if array.ndim != 2 or array.shape[0] != rows:
        raise E2RankValueError(f"{name} must have shape ({rows}, dim), one row per document; got {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise E2RankValueError(f"{name} rows must have the model's dimension {dim}; got {array.shape[1]}")
    if not np.isfinite(array).all():
        raise E2RankValueError(f"{name} contains NaN or infinite values")
    return normalize(array)


def _not_a_matrix(vectors: object, name: str) -> E2RankValueError | E2RankTypeError:
    """Why numpy could not read ``vectors`` as a matrix, in our words (numpy's name its internals)."""
    rows = list(vectors) if isinstance(vectors, (list, tuple)) else None
    if rows is None:
        return E2RankTypeError(f"{name} must be a 2-D array of numbers, got {type(vectors).__name__}")
    lengths = [len(row) if isinstance(row, (list, tuple, np.ndarray)) else None for row in rows]
    for i, row in enumerate(rows):
        if lengths[i] is None:
            return E2RankTypeError(f"{name}[{i}] must be a list of numbers, got {type(row).__name__}")
        if lengths[i] != lengths[0]:
            return E2RankValueError(f"{name}[{i}] has {lengths[i]} values but {name}[0] has {lengths[0]}")
        for j, value in enumerate(row):
            try:
                float(value)
            except (TypeError, ValueError):
                return E2RankTypeError(f"{name}[{i}][{j}] must be a number, got {type(value).__name__}")
    return E2RankTypeError(f"{name} must be a 2-D array of numbers")


def cosine_scores(query: npt.ArrayLike, documents: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Cosine similarity of one vector against each row of a matrix."""
    q = normalize(query).reshape(-1)
    d = normalize(documents)
    if d.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    # Not `d @ q`: BLAS may sum rows in different orders, so equal documents would score 1e-8 apart and tie by
    # chance; a row-wise sum treats every row alike.
    scores: npt.NDArray[np.float32] = (d * q).sum(axis=1, dtype=np.float32)
    return scores


def rank(scores: npt.ArrayLike, top_n: int | None = None) -> list[RankResult]:
    """Order candidates by score, best first; ties keep the first-stage order.

    ``top_n`` larger than the list returns all of it.
    """
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-values, kind="stable")
    if top_n is not None:
        order = order[:top_n]
    return [RankResult(index=int(i), score=float(values[i])) for i in order]


def select(
    results: Sequence[RankResult], *, top_n: int | None = None, score_threshold: float | None = None
) -> list[RankResult]:
    """Keep the results at or above ``score_threshold``, then the first ``top_n`` of them."""
    kept = [r for r in results if score_threshold is None or r.score >= score_threshold]
    top_n = check_top_n(top_n)
    return kept if top_n is None else kept[:top_n]


PromptStep = Callable[[Sequence[int]], Generator[Any, Any, npt.ArrayLike]]
"""Embeds the listwise prompt of the candidates in the order given, as a generator that returns its vector."""


# One generator, so that a caller who embeds over HTTP (the client's sans-IO operations, by `yield from`), in the
# caller's thread (listwise_rank) or through the server's cross-request batcher (alistwise_rank) runs one loop.
def listwise_steps(
    prompt_vector: PromptStep, doc_vectors: Embeddings, *, passes: int = 1, top_n: int | None = None
) -> Generator[Any, Any, list[RankResult]]:
    """The E2Rank scoring loop, written once; what ``prompt_vector`` yields is its caller's to answer.

    ``prompt_vector(order)`` embeds the listwise prompt built from the candidates in ``order`` (first-stage order
    on the first pass, the previous pass's order after it); every candidate is scored by cosine similarity to
    that vector. Returns the last pass's ranking, cut to ``top_n``.

    >>> def prompt_vector(order):
    ...     return (yield list(order))  # ask the caller for the prompt's vector
    >>> steps = listwise_steps(prompt_vector, np.eye(2, dtype=np.float32))
    >>> next(steps)
    [0, 1]
    >>> try:
    ...     steps.send(np.array([0.0, 1.0], dtype=np.float32))
    ... except StopIteration as done:
    ...     print([r.index for r in done.value])
    [1, 0]
    """
    order: Sequence[int] = range(len(doc_vectors))
    results: list[RankResult] = []
    for _ in range(passes):
        prompt = yield from prompt_vector(order)
        results = rank(cosine_scores(prompt, doc_vectors))
        order = [r.index for r in results]
    return results if top_n is None else results[:top_n]


T = TypeVar("T")


def _asking(prompt_vector: Callable[[Sequence[int]], T]) -> Callable[[Sequence[int]], Generator[T, Any, Any]]:
    """A :data:`PromptStep` that yields ``prompt_vector(order)`` (a vector, or an awaitable) for its driver."""

    def step(order: Sequence[int]) -> Generator[T, Any, Any]:
        return (yield prompt_vector(order))

    return step


def listwise_rank(
    prompt_vector: Callable[[Sequence[int]], npt.ArrayLike],
    doc_vectors: Embeddings,
    *,
    passes: int = 1,
    top_n: int | None = None,
) -> list[RankResult]:
    """:func:`listwise_steps` with ``prompt_vector(order)`` embedding each prompt in the caller's thread."""
    steps = listwise_steps(_asking(prompt_vector), doc_vectors, passes=passes, top_n=top_n)
    try:
        vector = next(steps)
        while True:
            vector = steps.send(vector)  # the vector itself: nothing to wait for
    except StopIteration as done:
        results: list[RankResult] = done.value
    return results


async def alistwise_rank(
    prompt_vector: Callable[[Sequence[int]], Awaitable[npt.ArrayLike]],
    doc_vectors: Embeddings,
    *,
    passes: int = 1,
    top_n: int | None = None,
) -> list[RankResult]:
    """:func:`listwise_steps` with ``await prompt_vector(order)`` embedding each prompt (the server's batcher)."""
    steps = listwise_steps(_asking(prompt_vector), doc_vectors, passes=passes, top_n=top_n)
    try:
        pending = next(steps)
        while True:
            pending = steps.send(await pending)
    except StopIteration as done:
        results: list[RankResult] = done.value
    return results


def missing_rows(stored: Sequence[object]) -> list[int]:
    """Positions of the candidates that have no stored vector (``None``), in order."""
    return [i for i, vector in enumerate(stored) if vector is None]


def fill_embeddings(
    stored: Sequence[npt.ArrayLike | None], computed: npt.ArrayLike | None = None, name: str = "doc_embeddings"
) -> Embeddings:
    """One L2-normalised matrix from the vectors candidates carry and computed rows for those that carry none.

    For vector stores that return some candidates with their vectors and some without: the stored vectors are
    used as they are, and only the gaps (:func:`missing_rows`) need embedding.

    Args:
        stored: One entry per candidate: its vector, or ``None``.
        computed: One row per ``None`` in ``stored``, in order (``None`` when nothing is missing).
        name: What the vectors are called in error messages.

    Returns:
        A ``(len(stored), dim)`` float32 matrix.

    Example:
        >>> fill_embeddings([[3.0, 4.0], None], [[0.0, 2.0]]).tolist()
        [[0.6000000238418579, 0.800000011920929], [0.0, 1.0]]
    """
    missing = missing_rows(stored)
    present = [i for i, vector in enumerate(stored) if vector is not None]
    if computed is None:
        computed = np.zeros((0, 0), dtype=np.float32)  # nothing computed: right only when nothing is missing
    if not present:
        return as_embeddings(computed, len(stored), name=name)
    rows: npt.ArrayLike = [stored[i] for i in present]  # type: ignore[assignment]  # a list of vectors is array-like
    known = as_embeddings(rows, len(present), name=name)
    out = np.empty((len(stored), known.shape[1]), dtype=np.float32)
    out[present] = known
    if missing:
        filled = as_embeddings(computed, len(missing), name=f"computed {name}")
        if filled.shape[1] != known.shape[1]:
            raise E2RankValueError(
                f"{name}: the stored vectors have dimension {known.shape[1]} but the computed ones "
                f"{filled.shape[1]}; were the candidates embedded with another model?"
            )
        out[missing] = filled
    elif np.size(computed):
        raise E2RankValueError(f"computed {name} were given, but every candidate has a stored vector")
    return out
