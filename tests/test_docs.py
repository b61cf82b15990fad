"""Every Python example of the README and of the documentation site (docs/**/*.md) runs as written.

Per page, blocks run in order, sharing one namespace per top-level (``##``) section, with two substitutions: the
hub model id becomes a tiny generated checkpoint, and a section that talks to ``http://localhost:8000`` gets a real
server over that checkpoint on a free port instead. ``tiny-random`` names the same checkpoint (no generation).
Pages added later are picked up by the glob. The ``e2rank`` commands of ``bash`` blocks are checked against the
command's own parser, so an option renamed in the code cannot live on in the docs.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
HUB_MODEL = "Alibaba-NLP/E2Rank-0.6B"
SERVER_URL = "http://localhost:8000"
_BLOCKS = re.compile(r"(^## [^\n]*$|^```(?:python|bash)\n.*?^```$)", flags=re.M | re.S)


def blocks(page: Path, language: str) -> dict[str, list[str]]:
    """The ``language`` code blocks of ``page``, by ``##`` section."""
    found: dict[str, list[str]] = {}
    current = "intro"
    for part in _BLOCKS.split(page.read_text()):
        if part.startswith("## "):
            current = part[3:].strip()
        elif part.startswith(f"```{language}\n"):
            found.setdefault(current, []).append(part[len(f"```{language}\n") : -3])
    return found


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


SECTIONS = {(name(page), section): code for page in PAGES for section, code in blocks(page, "python").items()}


@pytest.fixture(scope="session")
def docs_server(tiny_path):
    """``e2rank serve`` over the tiny checkpoint, for the examples that call a server."""
    pytest.importorskip("fastapi")
    from e2rank_integrations import E2RankModel
    from e2rank_integrations.server import create_app
    from integrations.serving import running_server

    with running_server(create_app(E2RankModel.from_pretrained(tiny_path))) as running:
        yield running.url


def test_every_page_is_found():
    assert {"README.md", "docs/getting-started.md", "docs/langchain.md"} <= {name(page) for page in PAGES}
    assert len(SECTIONS) > 10


@pytest.mark.parametrize(("page", "section"), sorted(SECTIONS), ids=[f"{p}: {s}" for p, s in sorted(SECTIONS)])
def test_python_examples_run(page, section, tiny_path, tiny_cache_dir, tmp_path, monkeypatch, request):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setenv("HOME", str(tmp_path))  # "~/..." paths too
    monkeypatch.setenv("E2RANK_CACHE_DIR", str(tiny_cache_dir))  # "tiny-random" is the tiny checkpoint
    if "chromadb" in sys.modules:  # each example is a new program: Chroma caches clients by path, "./db" included
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
    namespace: dict[str, object] = {"__name__": "__docs__"}
    code = SECTIONS[page, section]
    needs_server = any(SERVER_URL in block for block in code)
    url = request.getfixturevalue("docs_server") if needs_server else SERVER_URL
    for block in code:
        source = block.replace(HUB_MODEL, str(tiny_path)).replace(SERVER_URL, url)
        exec(compile(source, f"{page} ({section})", "exec"), namespace)


def e2rank_commands(page: Path) -> list[list[str]]:
    """The arguments of every ``e2rank ...`` command in the page's bash blocks (up to a pipe or redirection)."""
    commands = []
    for code in blocks(page, "bash").values():
        for script in code:
            for line in script.replace("\\\n", " ").splitlines():
                lexer = shlex.shlex(line.split("#", 1)[0] if " #" in line else line, posix=True, punctuation_chars=True)
                lexer.whitespace_split = True
                tokens = list(lexer)
                for i, token in enumerate(tokens):
                    if token == "e2rank" and (i == 0 or tokens[i - 1] in ("|", "&&", ";") or "=" in tokens[i - 1]):
                        rest = tokens[i + 1 :]
                        end = next((j for j, t in enumerate(rest) if t in ("|", ">", "&&", ";", "&")), len(rest))
                        commands.append(rest[:end])
    return commands


COMMANDS = [(name(page), command) for page in PAGES for command in e2rank_commands(page)]


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[f"{p}: e2rank {' '.join(c)}" for p, c in COMMANDS])
def test_e2rank_commands_parse(page, command):
    from e2rank_integrations.cli import build_parser

    if "[" in " ".join(command):  # a synopsis: "[--k 20]" marks optional parts
        command = [t.strip("[]") for t in command if t not in ("[", "]")]
    try:
        build_parser().parse_args(command)
    except SystemExit as exited:
        pytest.fail(f"{page}: `e2rank {' '.join(command)}` does not parse (exit {exited.code})")


# ---------------------------------------------------------------------------- what the docs must name


def subcommands() -> list[str]:
    """The ``e2rank`` subcommands, read from the command's own parser."""
    import argparse

    from e2rank_integrations.cli import build_parser

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(sub.choices)


def test_every_extra_is_in_the_extras_table():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    table = (ROOT / "docs" / "getting-started.md").read_text()
    missing = [extra for extra in extras if f"\n| `{extra}` |" not in table]
    assert not missing, f"docs/getting-started.md: the extras table lacks {missing}"


def test_every_command_is_documented():
    commands = subcommands()
    assert {"demo", "serve", "index"} <= set(commands)
    cli_page = (ROOT / "docs" / "cli.md").read_text()
    home = next(line for line in (ROOT / "docs" / "index.md").read_text().splitlines() if "(cli.md)" in line)
    for command in commands:
        assert f"`e2rank {command}`" in cli_page, f"docs/cli.md has no section naming `e2rank {command}`"
        assert re.search(f"`(e2rank )?{command}`", home), f"docs/index.md's command line entry lacks {command}"
