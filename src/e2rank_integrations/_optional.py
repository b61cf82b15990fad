"""Optional dependencies: import them or say exactly which extra to install."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

EXTRAS = ("model", "langchain", "llama-index", "chroma", "server", "client", "eval", "all")


def install_hint(extra: str) -> str:
    """The pip command that installs an extra of this package."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    return f"pip install 'e2rank-integrations[{extra}]'"


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise an ImportError that names the extra providing it.

    Example:
        >>> require("json", extra="model").__name__
        'json'
    """
    hint = install_hint(extra)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module!r} is needed here but could not be imported ({exc}). Install it with: {hint}"
        ) from exc


def check_installed(module: str, extra: str) -> None:
    """Raise :func:`require`'s ImportError if ``module`` is missing, without importing it (torch takes seconds)."""
    if importlib.util.find_spec(module) is None:
        require(module, extra)
