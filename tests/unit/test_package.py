import subprocess
import sys
import textwrap

import e2rank_integrations


def test_public_names():
    assert sorted(e2rank_integrations.__all__) == [
        "AsyncBackend",
        "AsyncE2RankClient",
        "Backend",
        "E2RankClient",
        "E2RankModel",
        "EmbeddingCache",
        "LRUCache",
        "PromptFormat",
        "RankResult",
        "SQLiteCache",
        "__version__",
    ]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_import_needs_no_torch_and_no_framework():
    result = run_python(
        """
        import sys
        import e2rank_integrations
        from e2rank_integrations import prompts, scoring, cache, types
        heavy = {"torch", "transformers", "langchain_core", "llama_index", "chromadb", "fastapi", "httpx"}
        print(sorted(heavy & set(sys.modules)))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


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
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        e2rank_integrations.Nope  # noqa: B018


def test_chroma_without_chromadb_names_the_extra():
    result = run_python(
        """
        import sys
        sys.modules["chromadb"] = None  # as if chromadb were not installed
        try:
            import e2rank_integrations.chroma
        except ImportError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'e2rank-integrations[chroma]'" in result.stdout
