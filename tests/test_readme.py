"""The README's Python examples run as written (against a tiny generated checkpoint instead of the hub model).

Blocks run in order, sharing one namespace per top-level (``##``) section. A section that talks to
``http://localhost:8000`` gets a real server over the tiny checkpoint on a free port instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
HUB_MODEL = "Alibaba-NLP/E2Rank-0.6B"
SERVER_URL = "http://localhost:8000"


def sections() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current = "intro"
    for part in re.split(r"(^## [^\n]*$|^```python\n.*?^```$)", README.read_text(), flags=re.M | re.S):
        if part.startswith("## "):
            current = part[3:].strip()
        elif part.startswith("```python"):
            found.setdefault(current, []).append(part[len("```python\n") : -3])
    return found


SECTIONS = sections()


@pytest.fixture(scope="session")
def readme_server(tiny_path):
    """``e2rank serve`` over the tiny checkpoint, for the examples that call a server."""
    pytest.importorskip("fastapi")
    from e2rank_integrations import E2RankModel
    from e2rank_integrations.server import create_app
    from integrations.serving import running_server

    with running_server(create_app(E2RankModel.from_pretrained(tiny_path))) as running:
        yield running.url


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_readme_section_runs(section, tiny_path, tmp_path, monkeypatch, request):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setenv("HOME", str(tmp_path))  # "~/..." paths too
    namespace: dict[str, object] = {"__name__": "__readme__"}
    needs_server = any(SERVER_URL in block for block in SECTIONS[section])
    url = request.getfixturevalue("readme_server") if needs_server else SERVER_URL
    for block in SECTIONS[section]:
        code = block.replace(HUB_MODEL, str(tiny_path)).replace(SERVER_URL, url)
        exec(compile(code, f"README.md ({section})", "exec"), namespace)
