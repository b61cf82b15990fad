"""The README's Python examples run as written (against a tiny generated checkpoint instead of the hub model).

Blocks run in order, sharing one namespace per top-level (``##``) section.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
HUB_MODEL = "Alibaba-NLP/E2Rank-0.6B"


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


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_readme_section_runs(section, tiny_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setenv("HOME", str(tmp_path))  # "~/..." paths too
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for block in SECTIONS[section]:
        code = block.replace(HUB_MODEL, str(tiny_path))
        exec(compile(code, f"README.md ({section})", "exec"), namespace)
