"""Optional dependencies: import them or say exactly which extra to install."""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

EXTRAS = (
    "model",
    "langchain",
    "llama-index",
    "chroma",
    "server",
    "client",
    "eval",
    "parquet",
    "ray",
    "mcp",
    "train",
    "all",
)


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
        with warnings.catch_warnings():  # tqdm.auto (transformers, the hub) asks a Jupyter kernel for ipywidgets
            warnings.filterwarnings("ignore", message="IProgress not found")
            return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module!r} is needed here but could not be imported ({exc}). Install it with: {hint}"
        ) from exc


def lazy_getattr(package: str, lazy: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports name -> submodule of ``package`` on first use (heavy imports wait).

    Example:
        >>> getattr_ = lazy_getattr("json", {"JSONDecoder": "decoder"})
        >>> getattr_("JSONDecoder").__name__
        'JSONDecoder'
    """

    def __getattr__(name: str) -> Any:
        if name in lazy:
            return getattr(importlib.import_module(f".{lazy[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def check_installed(module: str, extra: str) -> None:
    """Raise :func:`require`'s ImportError if ``module`` is missing, without importing it (torch takes seconds)."""
    if importlib.util.find_spec(module) is None:
        require(module, extra)
