"""The built documentation site renders what its sources say: docstring examples as highlighted code.

Builds the site with ``mkdocs build --strict`` (the ``docs`` dependency group), or reads the one ``tox -e docs``
just built (``E2RANK_DOCS_SITE``). Skipped where MkDocs is not installed (every other tox env).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    if built := os.environ.get("E2RANK_DOCS_SITE"):
        return Path(built)
    pytest.importorskip("mkdocs", reason="the docs dependency group builds the site")
    pytest.importorskip("mkdocstrings")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr
    return out


def reference_pages(site: Path) -> list[Path]:
    pages = sorted((site / "reference").glob("*/index.html"))
    assert len(pages) >= 10, f"the API reference is missing from {site}"
    return pages


def test_reference_examples_are_highlighted_code_not_quotes(site):
    examples = 0
    for page in reference_pages(site):
        html = page.read_text(encoding="utf-8")
        name = page.parent.name
        assert "<blockquote" not in html, f"reference/{name}: a docstring example rendered as a quote (>>> as Markdown)"
        assert "doctest:" not in html, f"reference/{name}: a doctest directive shows"
        examples += html.count('<span class="gp">&gt;&gt;&gt; </span>')  # a highlighted pycon prompt
    assert examples > 30  # every page's examples, not one that happened to render


def test_every_reference_page_has_its_objects(site):
    for page in reference_pages(site):
        assert 'class="doc doc-heading"' in page.read_text(encoding="utf-8"), f"reference/{page.parent.name} is empty"
