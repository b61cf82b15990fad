"""ASGI pieces shared by ``e2rank serve`` and ``e2rank mcp``: error bodies, bearer-key authentication, loopback.

Starlette and pydantic only (both come with the ``server`` and the ``mcp`` extras), so ``e2rank mcp`` uses the
same authentication as ``e2rank serve`` without FastAPI.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Collection, Mapping

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .protocol import ErrorDetail, ErrorResponse

__all__ = ["AuthMiddleware", "error_response", "is_loopback"]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


def error_response(
    status: int, message: str, code: str | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    """The JSON response for an error (``protocol.ErrorResponse``, the schema clients parse it with)."""
    body = ErrorResponse(error=ErrorDetail(message=message, type=_TYPES.get(status, "server_error"), code=code))
    return Response(body.model_dump_json(), status, dict(headers or {}), media_type="application/json")


class AuthMiddleware:
    """Require ``Authorization: Bearer <key>`` on every path but the open ones; 401 otherwise."""

    def __init__(self, app: ASGIApp, api_key: str, open_paths: Collection[str] = ("/health",)) -> None:
        self.app = app
        self._key = api_key.encode()
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
        # compare_digest takes as long for a wrong key as for a right one: the key cannot be guessed by timing.
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._key):
            await self.app(scope, receive, send)
            return
        message = "missing API key" if not given else "invalid API key"
        response = error_response(
            401, f"{message}: send 'Authorization: Bearer <key>'", "invalid_api_key", {"WWW-Authenticate": "Bearer"}
        )
        await response(scope, receive, send)


def is_loopback(host: str) -> bool:
    """True for an address (or ``localhost``) only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
