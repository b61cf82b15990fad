"""Old spellings of renamed parameters, kept for one release: they work and warn; old and new together are refused.

:func:`renamed` wraps a function or method; :func:`rename_keywords` does the same for a mapping of arguments (a
pydantic ``model_validator(mode="before")`` calls it with the model's input); :func:`deprecated_alias` keeps a
function's old name and :func:`renamed_getattr` a module's renamed names. The policy is in docs/development.md
("Names").
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from .errors import E2RankTypeError

__all__ = ["deprecated_alias", "rename_keywords", "renamed", "renamed_getattr", "warn_renamed"]

P = ParamSpec("P")
R = TypeVar("R")


def warn_renamed(message: str, *, stacklevel: int = 2) -> None:
    """Warn (``DeprecationWarning``) that an old name is used: ``message`` plus the ending every such warning has.

    The test suite turns warnings with that ending into errors (pyproject.toml), so that it uses only new names.
    """
    warnings.warn(f"{message}; the old name goes in the next release", DeprecationWarning, stacklevel=stacklevel + 1)


def rename_keywords(
    kwargs: Mapping[str, Any], renames: Mapping[str, str], where: str, *, stacklevel: int = 3
) -> dict[str, Any]:
    """``kwargs`` with each old name (a key of ``renames``) moved to its new name, with a ``DeprecationWarning``.

    Raises:
        E2RankTypeError: Both the old and the new name were given.
    """
    out = dict(kwargs)
    for old, new in renames.items():
        if old not in out:
            continue
        if new in out:
            raise E2RankTypeError(f"{where}: give `{new}` only; `{old}` is its deprecated old name")
        warn_renamed(f"{where}: `{old}` is deprecated, use `{new}`", stacklevel=stacklevel)
        out[new] = out.pop(old)
    return out


def renamed(**renames: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function whose keyword ``old`` is now ``new`` (``@renamed(top_k="k")``): ``old`` still works."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        params = [p.name for p in inspect.signature(func).parameters.values() if p.kind in kinds]
        where = func.__qualname__.replace(".__init__", "")

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not any(old in kwargs for old in renames):
                return func(*args, **kwargs)
            positional = dict.fromkeys(params[: len(args)])  # a new name given by position counts as given
            moved = rename_keywords({**positional, **kwargs}, renames, where)
            call: Callable[..., R] = func
            return call(*args, **{name: value for name, value in moved.items() if name not in positional})

        return wrapper

    return decorate


def deprecated_alias(func: Callable[P, R], old: str) -> Callable[P, R]:
    """``func`` under its old name ``old``: the same call, with a ``DeprecationWarning`` naming the new one."""

    @functools.wraps(func)
    def alias(*args: P.args, **kwargs: P.kwargs) -> R:
        warn_renamed(f"`{old}` is deprecated, use `{func.__name__}`")
        return func(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old
    return alias


def renamed_getattr(module: str, renamed: Mapping[str, str], namespace: Mapping[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that still answers renamed names (old -> new) for one release, with a warning."""

    def __getattr__(name: str) -> Any:
        if name in renamed:
            warn_renamed(f"{module}.{name} is renamed {renamed[name]}")
            return namespace[renamed[name]]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
