"""The exceptions this package raises on purpose, importable without any extra (``except E2RankError`` needs no httpx).

- :class:`E2RankError`: the base of all of them.
- :class:`E2RankAPIError`: a server answered with an error status (after the client's retries).
- :class:`E2RankConnectionError`: a server could not be reached; :class:`E2RankTimeoutError` when it did not answer
  in time.
- :class:`E2RankCompatibilityError`: a remote engine would give inexact results (it changes the texts it embeds),
  so the operation was refused rather than answered wrongly.
- :class:`E2RankModelNotFoundError`: the model named could not be loaded from where it was looked for (no such
  directory, a directory without the model's files); :class:`E2RankHubUnreachableError` when it is a hub id, the
  Hugging Face Hub cannot be reached and no local copy exists. Both are ``OSError`` too, like transformers' own.

Bad arguments raise ``TypeError``/``ValueError`` as usual, before any work is done.
"""

from __future__ import annotations

__all__ = [
    "E2RankAPIError",
    "E2RankCompatibilityError",
    "E2RankConnectionError",
    "E2RankError",
    "E2RankHubUnreachableError",
    "E2RankModelNotFoundError",
    "E2RankTimeoutError",
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
