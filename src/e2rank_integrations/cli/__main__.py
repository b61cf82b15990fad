"""``python -m e2rank_integrations.cli ARGS`` is ``e2rank ARGS`` (also where the script is not installed)."""

from __future__ import annotations

from . import main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
