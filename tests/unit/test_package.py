import pytest

import e2rank_integrations
from helpers import run_python


def test_public_names():
    assert sorted(e2rank_integrations.__all__) == [
        "AsyncBackend",
        "AsyncE2RankClient",
        "Backend",
        "E2RankAPIError",
        "E2RankClient",
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
        "pack_context",
    ]


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
