"""The argument checks shared by every part: each returns the value it checked or raises an error naming it.

Texts (:func:`check_query`, :func:`check_texts`, :func:`check_unicode`), counts (:func:`check_top_n`,
:func:`check_positive_int`, :func:`check_optional_positive_int`) and scores (:func:`check_score_threshold`). Errors are
:class:`~e2rank_integrations.errors.E2RankTypeError` (the wrong type) or
:class:`~e2rank_integrations.errors.E2RankValueError` (a bad value). Pure Python: importable in any install.
"""

from __future__ import annotations

import math
from numbers import Integral, Real  # int, float and numpy's numbers alike

from .errors import E2RankTypeError, E2RankValueError

__all__ = [
    "check_optional_positive_int",
    "check_positive_int",
    "check_query",
    "check_score_threshold",
    "check_texts",
    "check_top_n",
    "check_unicode",
]


def check_query(query: object, name: str = "query") -> str:
    """Return ``query`` if it is a non-blank string of valid Unicode, else raise an error naming it.

    Raises:
        E2RankTypeError: ``query`` is not a string.
        E2RankValueError: It is blank, or not valid Unicode text.
    """
    if not isinstance(query, str):
        raise E2RankTypeError(f"{name} must be a string, got {type(query).__name__}")
    if not query.strip():
        raise E2RankValueError(f"{name} must be a non-empty string")
    check_unicode(query, name)
    return query


def check_texts(texts: object, name: str = "texts") -> list[str]:
    """Return ``texts`` as a list of strings, or raise an error naming the first bad item.

    A bare string is refused: it is almost always a missing pair of brackets, and iterating it would embed
    one character at a time.

    Raises:
        E2RankTypeError: ``texts`` is not a list of strings (the message names the first item that is not one).
        E2RankValueError: An item is not valid Unicode text (``input[3] is not valid Unicode text: ...``).
    """
    if isinstance(texts, (str, bytes)):
        raise E2RankTypeError(f"{name} must be a list of strings, not a single {type(texts).__name__}")
    try:
        items: list[str] = list(texts)  # type: ignore[call-overload]
    except TypeError:
        raise E2RankTypeError(f"{name} must be a list of strings, got {type(texts).__name__}") from None
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise E2RankTypeError(f"{name}[{i}] must be a string, got {type(item).__name__}")
        check_unicode(item, f"{name}[{i}]")
    return items


def check_unicode(text: str, name: str) -> None:
    r"""Raise :class:`~e2rank_integrations.errors.E2RankValueError` if ``text`` cannot be encoded as UTF-8.

    A Python string can hold lone surrogates (from a JSON ``"\ud800"`` escape, or bytes decoded with
    ``surrogateescape``); no tokenizer can read them.

    >>> check_unicode("café", "input[0]")
    >>> try:
    ...     check_unicode("caf" + chr(0xDC80), "input[3]")
    ... except ValueError as error:
    ...     print(error)
    input[3] is not valid Unicode text: it holds a lone surrogate (U+DC80) at character 3
    """
    if text.isascii():  # the common case, checked in C without encoding anything
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise E2RankValueError(
            f"{name} is not valid Unicode text: it holds a lone surrogate (U+{code:04X}) at character {exc.start}"
        ) from None


def check_top_n(top_n: object) -> int | None:
    """``None`` (all) or a positive ``int``; anything else is a clear error."""
    if top_n is None:
        return None
    if isinstance(top_n, bool) or not isinstance(top_n, Integral):
        raise E2RankTypeError(f"top_n must be a positive integer or None, got {type(top_n).__name__}")
    if top_n < 1:
        raise E2RankValueError(f"top_n must be >= 1 (or None for all), got {top_n}")
    return int(top_n)


def check_positive_int(value: object, name: str) -> int:
    """``value`` if it is an ``int`` >= 1, else a ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise E2RankTypeError(f"{name} must be a positive integer, got {type(value).__name__}")
    if value < 1:
        raise E2RankValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_optional_positive_int(value: object, name: str) -> int | None:
    """``None``, or ``value`` checked by :func:`check_positive_int` (``max_prompt_tokens``: ``None`` is no cap)."""
    return None if value is None else check_positive_int(value, name)


def check_score_threshold(score_threshold: object) -> float | None:
    """``None`` (keep all) or a finite number, as a ``float``; anything else is a clear error."""
    if score_threshold is None:
        return None
    if isinstance(score_threshold, bool) or not isinstance(score_threshold, Real):
        raise E2RankTypeError(f"score_threshold must be a number or None, got {type(score_threshold).__name__}")
    if not math.isfinite(score_threshold):
        raise E2RankValueError(f"score_threshold must be finite, got {score_threshold!r}")
    return float(score_threshold)
