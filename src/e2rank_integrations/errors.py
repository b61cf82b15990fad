"""The exceptions this package raises on purpose, importable without any extra (``except E2RankError`` needs no httpx).

- :class:`E2RankError`: the base of all of them.
- :class:`E2RankAPIError`: a server answered with an error status (after the client's retries).
- :class:`E2RankConnectionError`: a server could not be reached; :class:`E2RankTimeoutError` when it did not answer
  in time.
- :class:`E2RankCompatibilityError`: a remote engine would give inexact results (it changes the texts it embeds),
  so the operation was refused rather than answered wrongly.
- :class:`E2RankIndexError`: a bulk index job cannot go on: a malformed input record (the message names the file
  and the line or row) or an output written with another model.
- :class:`E2RankInputError`: bad input (an argument, a request field), named in the message, found before any work
  is done: :class:`E2RankValueError` (also a ``ValueError``) or :class:`E2RankTypeError` (also a ``TypeError``), so
  ``except ValueError`` works as usual. The server answers these, and only these, with 400: any other exception is
  a bug, logged and answered with 500.
- :class:`E2RankStateError`: an object was used out of order or after it stopped (a server's batcher not started
  or already stopped, a Parquet output written before it was bound to a model): a bug in the caller, also a
  ``RuntimeError``.
- :class:`TrainingDataError`: a training or evaluation file for ``e2rank train`` is malformed; the message names
  the file and line.
- :class:`E2RankModelNotFoundError`: the model named could not be loaded from where it was looked for (no such
  directory, a directory without the model's files); :class:`E2RankHubUnreachableError` when it is a hub id, the
  Hugging Face Hub cannot be reached and no local copy exists. Both are ``OSError`` too, like transformers' own.
"""

from __future__ import annotations

__all__ = [
    "E2RankAPIError",
    "E2RankCompatibilityError",
    "E2RankConnectionError",
    "E2RankError",
    "E2RankHubUnreachableError",
    "E2RankIndexError",
    "E2RankInputError",
    "E2RankModelNotFoundError",
    "E2RankStateError",
    "E2RankTimeoutError",
    "E2RankTypeError",
    "E2RankValueError",
    "TrainingDataError",
]


class E2RankError(Exception):
    """Base of every error the package raises on purpose."""


class E2RankAPIError(E2RankError):
    """The server answered with an error status.

    Attributes:
        status_code: The HTTP status.
        message: The server's message (it names the field at fault for 400/422).
        type: The error type (``invalid_request_error``, ``rate_limit_error``...), when the server sent one.
        code: The server's machine-readable code, when it sent one.
        request_id: The ``X-Request-Id`` of the failed request.

    Example:
        >>> error = E2RankAPIError(400, "input[3]: not valid Unicode text", "invalid_request_error")
        >>> str(error), error.status_code
        ('HTTP 400: input[3]: not valid Unicode text', 400)
    """

    def __init__(
        self, status_code: int, message: str, type: str | None = None, code: str | None = None, request_id: str = ""
    ) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.type = type
        self.code = code
        self.request_id = request_id


class E2RankConnectionError(E2RankError):
    """The server could not be reached (refused, reset, DNS...), after the retries."""


class E2RankTimeoutError(E2RankConnectionError):
    """The server did not answer within the timeout."""


class E2RankCompatibilityError(E2RankError):
    """A remote engine changes what it embeds (it strips whitespace, say), so its results would be inexact.

    Raised instead of returning a silently different ranking; the message says what the engine does and what would
    work instead.
    """


class E2RankIndexError(E2RankError, ValueError):
    """A bulk index job cannot go on; nothing of the bad record was written.

    Raised for a malformed input record (the message names the file and the line or row, and the field) and for an
    output (a Parquet directory) whose vectors were made by another model or with other encoding settings.

    Example:
        >>> str(E2RankIndexError("corpus.jsonl line 7: no 'text' field"))
        "corpus.jsonl line 7: no 'text' field"
    """


class E2RankInputError(E2RankError):
    """Bad input, an argument or a request field: the message names it and says what is wrong.

    Raised as one of its two subclasses, :class:`E2RankValueError` or :class:`E2RankTypeError`.
    """


class E2RankValueError(E2RankInputError, ValueError):
    """An argument or request field has a bad value (empty, out of range, not valid Unicode, ragged...).

    Example:
        >>> from e2rank_integrations.validators import check_texts
        >>> try:
        ...     check_texts(["fine", "bad " + chr(0xD800)], "input")
        ... except ValueError as error:
        ...     print(error)
        input[1] is not valid Unicode text: it holds a lone surrogate (U+D800) at character 4
    """


class E2RankTypeError(E2RankInputError, TypeError):
    """An argument or request field has the wrong type (a string where a list is expected, say)."""


class E2RankStateError(E2RankError, RuntimeError):
    """An object was used out of order or after it stopped; the message says what had to come first."""


class TrainingDataError(E2RankError, ValueError):
    """A training or evaluation file is malformed.

    Attributes:
        path: The file.
        line: The 1-based line number at fault (0 when the fault is the whole file, e.g. an empty one).

    Example:
        >>> str(TrainingDataError("train.jsonl", 3, "no 'ranking'"))
        "train.jsonl:3: no 'ranking'"
    """

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.path = path
        self.line = line


class E2RankModelNotFoundError(E2RankError, OSError):
    """The model named could not be found: no such directory, or a directory without the model's files.

    An ``OSError`` too, as transformers' own loading errors are, so ``except OSError`` keeps working. The message
    names what was looked for and what is missing.
    """


class E2RankHubUnreachableError(E2RankModelNotFoundError):
    """A hub id that is not in the local cache, while the Hugging Face Hub cannot be reached (or is switched off).

    Raised within seconds instead of after the hub client's retries; the message says how to go on without the hub
    (a local directory, ``"tiny-random"``, or :func:`~e2rank_integrations.checkpoints.make_random_checkpoint`).
    """
