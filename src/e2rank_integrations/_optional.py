"""Optional dependencies: import them or say exactly which extra to install."""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from .errors import E2RankValueError

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


# The modules that tell whether an extra is installed (its heavy or defining ones, looked up without importing).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "model": ("torch", "transformers"),
    "chroma": ("chromadb",),
    "server": ("fastapi", "uvicorn", "prometheus_client"),
    "client": ("httpx",),
    "eval": ("pytrec_eval",),
    "parquet": ("pyarrow",),
    "ray": ("ray", "pyarrow"),
    "mcp": ("mcp",),
    "train": ("torch", "transformers", "accelerate", "peft"),
}


def install_hint(*extras: str) -> str:
    """The pip command that installs extras of this package: ``pip install 'e2rank-integrations[model,server]'``."""
    for extra in extras:
        if extra not in EXTRAS:
            raise E2RankValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    return f"pip install 'e2rank-integrations[{','.join(extras)}]'"


def check_extras(extras: Sequence[str], needed_by: str) -> None:
    """Raise an ImportError naming every extra in ``extras`` if a module of any is missing (nothing is imported).

    One hint for all of them, so that installing what it says is enough: a hint naming only the first missing
    extra sends the user back for the next one.
    """
    missing = list(dict.fromkeys(m for e in extras for m in EXTRA_MODULES[e] if importlib.util.find_spec(m) is None))
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ImportError(
            f"{', '.join(map(repr, missing))} {verb} needed by {needed_by} but not installed. "
            f"Install with: {install_hint(*extras)}"
        )


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
