"""The exceptions this package raises on purpose, importable without any extra (``except E2RankError`` needs no httpx).

- :class:`E2RankError`: the base of all of them.
- :class:`E2RankAPIError`: a server answered with an error status (after the client's retries).
- :class:`E2RankConnectionError`: a server could not be reached; :class:`E2RankTimeoutError` when it did not answer
  in time.
- :class:`E2RankCompatibilityError`: a remote engine would give inexact results (it changes the texts it embeds),
  so the operation was refused rather than answered wrongly.
- :class:`TrainingDataError`: a training or evaluation file for ``e2rank train`` is malformed; the message names
  the file and line.

Bad arguments raise ``TypeError``/``ValueError`` as usual, before any work is done.
"""

from __future__ import annotations

__all__ = [
    "E2RankAPIError",
    "E2RankCompatibilityError",
    "E2RankConnectionError",
    "E2RankError",
    "E2RankTimeoutError",
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
