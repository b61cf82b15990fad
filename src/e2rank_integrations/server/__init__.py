"""The HTTP server: ``create_app(backend, settings)`` and ``e2rank serve``.

Needs the ``server`` extra (FastAPI, uvicorn, prometheus-client).
"""

from __future__ import annotations

from .._optional import require

for _module in ("fastapi", "uvicorn", "prometheus_client"):
    require(_module, extra="server")

from .app import create_app  # noqa: E402
from .settings import ServerSettings  # noqa: E402

__all__ = ["ServerSettings", "create_app"]
