"""Server settings: limits, authentication and batching, with the defaults of ``e2rank serve``.

The class lives in :mod:`e2rank_integrations.settings`, importable without the ``server`` extra (the command line
reads its defaults); this module keeps the server's import path.
"""

from __future__ import annotations

from ..settings import ServerSettings

__all__ = ["ServerSettings"]
