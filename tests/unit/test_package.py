import importlib
from pathlib import Path

import pytest

import e2rank_integrations
from helpers import run_python


def test_public_names():
    assert sorted(e2rank_integrations.__all__) == [
        "AsyncBackend",
        "Backend",
        "BackendInfo",
        "E2RankAPIError",
        "E2RankCompatibilityError",
        "E2RankConnectionError",
        "E2RankError",
        "E2RankHubUnreachableError",
        "E2RankIndexError",
        "E2RankInputError",
        "E2RankModel",
        "E2RankModelNotFoundError",
        "E2RankStateError",
        "E2RankTimeoutError",
        "E2RankTypeError",
        "E2RankValueError",
        "EmbeddingCache",
        "LRUCache",
        "PackedContext",
        "PromptFormat",
        "RankResult",
        "SQLiteCache",
        "TieredCache",
        "TrainingDataError",
        "__version__",
        "apack_context",
        "pack_context",
    ]
    # The clients need the client extra: public by name (and in dir()), not in `import *`.
    assert {"E2RankClient", "AsyncE2RankClient"} <= set(dir(e2rank_integrations)) - set(e2rank_integrations.__all__)


def test_the_client_errors_need_no_client_extra():
    # `except E2RankError` must work in an app that never installed httpx.
    from e2rank_integrations import errors

    assert e2rank_integrations.E2RankTimeoutError is errors.E2RankTimeoutError
    assert issubclass(errors.E2RankCompatibilityError, errors.E2RankError)
    assert issubclass(errors.E2RankIndexError, errors.E2RankError) and issubclass(errors.E2RankIndexError, ValueError)


def test_import_needs_no_torch_and_no_framework():
    result = run_python(
        """
        import sys
        import e2rank_integrations
        from e2rank_integrations import prompts, scoring, cache, types, errors, context
        heavy = {"torch", "transformers", "langchain_core", "llama_index", "chromadb", "fastapi", "httpx"}
        print(sorted(heavy & set(sys.modules)))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [
        ("e2rank_integrations.langchain", "langchain_core", "langchain"),
        ("e2rank_integrations.llama_index", "llama_index", "llama-index"),
        ("e2rank_integrations.chroma", "chromadb", "chroma"),
        ("e2rank_integrations.client", "httpx", "client"),
        ("e2rank_integrations.server", "fastapi", "server"),
        ("e2rank_integrations.mcp", "mcp", "mcp"),
        ("e2rank_integrations.training.trainer", "accelerate", "train"),
    ],
)
def test_a_module_without_its_dependency_names_the_extra(module, missing, extra):
    result = run_python(
        f"""
        import sys
        sys.modules[{missing!r}] = None  # as if it were not installed (in the core env it is not)
        try:
            import {module}
        except ImportError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert f"pip install 'e2rank-integrations[{extra}]'" in result.stdout


def test_model_without_torch_names_the_extra():
    result = run_python(
        """
        import sys
        sys.modules["torch"] = None  # as if torch were not installed
        from e2rank_integrations import E2RankModel
        try:
            E2RankModel.from_pretrained("anything")
        except ImportError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'e2rank-integrations[model]'" in result.stdout


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        e2rank_integrations.Nope  # noqa: B018


def _public_modules() -> list[str]:
    """Every module of the package whose dotted name has no private part (found on disk, nothing imported)."""
    root = Path(e2rank_integrations.__file__).parent
    names = ["e2rank_integrations"]
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if parts and not any(part.startswith("_") for part in parts):
            names.append(".".join(("e2rank_integrations", *parts)))
    return names


_HINT = "pip install 'e2rank-integrations["


def _import_or_hint(statement: str, namespace: dict[str, object]) -> bool:
    """Run an import statement: True if it worked, False if it said which extra to install (anything else fails)."""
    try:
        exec(statement, namespace)
    except ImportError as exc:
        if _HINT not in str(exc):
            raise
        return False
    return True


@pytest.mark.parametrize("module", _public_modules())
def test_exported_members(module):
    """httpx's check: every name in a module's __all__ is defined there and `import *` works, in any env.

    Where an extra is missing, a module that needs it (or `import *` of a package whose lazy names need it, as
    training's) must say which extra to install; the package root must import everything in every env.
    """
    namespace: dict[str, object] = {}
    if not _import_or_hint(f"import {module} as imported", namespace):
        pytest.skip(f"{module} needs an extra that is not installed")
    exported = getattr(namespace["imported"], "__all__", [])  # a CLI command's module has none
    assert len(set(exported)) == len(exported), f"{module}.__all__ repeats a name"
    if _import_or_hint(f"from {module} import *", namespace):
        assert set(exported) <= set(namespace)
    else:
        assert module != "e2rank_integrations", "`from e2rank_integrations import *` needs no extra"


@pytest.mark.parametrize(
    ("module", "old", "new", "needs"),
    [
        ("e2rank_integrations.protocol", "RerankResult", "RerankResultItem", "pydantic"),
        ("e2rank_integrations.mcp", "RerankResult", "RerankToolResult", "mcp"),
    ],
)
def test_renamed_types_keep_their_old_name_for_one_release(module, old, new, needs):
    pytest.importorskip(needs)
    imported = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"{module}.{old} is renamed {new}"):
        assert getattr(imported, old) is getattr(imported, new)
    assert old not in imported.__all__


def test_loading_a_model_does_not_import_the_checkpoint_generator():
    # checkpoints (the random-weight generator) is imported only when "tiny-random" is asked for.
    result = run_python(
        """
        import sys
        import e2rank_integrations.cli, e2rank_integrations.loading, e2rank_integrations.model
        print("e2rank_integrations.checkpoints" in sys.modules)
        from e2rank_integrations import checkpoints, loading
        print(checkpoints.TINY_RANDOM is loading.TINY_RANDOM == "tiny-random")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]
