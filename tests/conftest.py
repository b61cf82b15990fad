"""Shared fixtures: generated tiny Qwen3 checkpoints (no network), loaded through the real from_pretrained."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing in the suite may reach a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# The `model` marker (needs torch and transformers): every test under these folders and every one that uses a
# generated checkpoint through these fixtures (directly or through another fixture, such as the servers').
_MODEL_FOLDERS = ("model", "interop")
_MODEL_FIXTURES = {"tiny_path", "other_tiny_path", "tiny_model", "fresh_model", "tiny_cache_dir"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    folders = [Path(__file__).parent / name for name in _MODEL_FOLDERS]
    for item in items:
        in_folder = any(folder in item.path.parents for folder in folders)
        if in_folder or _MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random E2Rank-shaped checkpoint (seed 0)."""
    pytest.importorskip("torch")
    from e2rank_integrations.checkpoints import make_random_checkpoint

    return make_random_checkpoint(tmp_path_factory.mktemp("tiny-seed0"), seed=0)


@pytest.fixture(scope="session")
def other_tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny checkpoint with different weights (seed 1)."""
    pytest.importorskip("torch")
    from e2rank_integrations.checkpoints import make_random_checkpoint

    return make_random_checkpoint(tmp_path_factory.mktemp("tiny-seed1"), seed=1)


@pytest.fixture(scope="session")
def tiny_model(tiny_path: Path):
    """One shared model for tests that only read results (do not count its stats: other tests share it)."""
    from e2rank_integrations import E2RankModel

    return E2RankModel.from_pretrained(tiny_path)


@pytest.fixture
def fresh_model(tiny_path: Path):
    """A model of its own with an empty cache and zero counters."""
    from e2rank_integrations import E2RankModel

    return E2RankModel.from_pretrained(tiny_path)


@pytest.fixture
def tiny_cache_dir(tmp_path: Path, tiny_path: Path) -> Path:
    """An ``E2RANK_CACHE_DIR`` that already holds the ``tiny-random`` checkpoint (so nothing is generated)."""
    from e2rank_integrations.checkpoints import _FORMAT_VERSION, TINY_RANDOM

    root = tmp_path / "e2rank-cache"
    root.mkdir()
    (root / f"{TINY_RANDOM}-v{_FORMAT_VERSION}").symlink_to(tiny_path)
    return root
