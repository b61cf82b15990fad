"""Errors as OpenAI-style bodies, ``{"error": {"message", "type", "code"}}``, for every failure the server reports."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from .._asgi import error_response
from ..errors import E2RankInputError

__all__ = ["APIError", "error_response", "install_error_handlers"]

logger = logging.getLogger("e2rank_integrations.server")


class APIError(Exception):
    """A failure with an HTTP status, reported to the client as an error body."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


def _location(loc: tuple[Any, ...]) -> str:
    """``("body", "input", 3)`` -> ``input[3]``; the union member names pydantic adds are left out."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS or not part.isidentifier() or part[:1].isupper():
            continue  # "str", "list[int]", "function-after[...]", a model's class name: not a field
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


_UNION_TAGS = frozenset({"str", "int", "float", "bool", "cohere", "tei"})


def validation_message(exc: RequestValidationError) -> tuple[int, str]:
    """Status and one message naming each field at fault (malformed JSON is a 400, a wrong field a 422)."""
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "the request body is not valid JSON"
    seen: dict[str, str] = {}
    # A union's members fail at one location: "too short" says more than "not a string", so it goes first.
    errors.sort(key=lambda e: str(e.get("type", "")).endswith("_type"))
    for e in errors:
        seen.setdefault(_location(tuple(e.get("loc", ()))), str(e.get("msg", "invalid")))
    return 422, "; ".join(f"{where}: {msg}" for where, msg in list(seen.items())[:5])


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception to an error body; anything unexpected is logged and reported as a 500."""

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)
        return error_response(exc.status, exc.message, exc.code, exc.headers)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        status, message = validation_message(exc)
        return error_response(status, message, "invalid_json" if status == 400 else "invalid_field")

    async def on_bad_input(request: Request, exc: Exception) -> Response:
        # Our own checks (empty query, ragged doc_embeddings, text that is not Unicode...) name the field at fault.
        # Any other ValueError or TypeError is a bug: a logged 500 (on_crash), never a "bad request".
        return error_response(400, str(exc), "invalid_value")

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return error_response(exc.status_code, detail, None, exc.headers)

    async def on_crash(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}", "internal_error")

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(E2RankInputError, on_bad_input)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
