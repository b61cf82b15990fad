"""``e2rank --help`` is a manual: every option says its default, every command its extra, formats and examples."""

from __future__ import annotations

import argparse

import pytest

import e2rank_integrations
from e2rank_integrations._optional import EXTRAS
from e2rank_integrations.cli import build_parser, main

# The commands whose help follows the convention: every option says "(default: ...)" or "(required)", and the
# epilog comes from cli._epilog (the extra, formats, examples).
CONVENTIONAL = ("demo", "embed", "rerank", "eval", "serve", "index", "mcp", "train")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: command for name, command in action.choices.items() if name in CONVENTIONAL}


def test_the_conventional_commands_exist():
    assert set(subcommands()) == set(CONVENTIONAL)


@pytest.mark.parametrize("name", CONVENTIONAL)
def test_every_option_has_help_with_its_default(name):
    command = subcommands()[name]
    for action in command._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:  # a deprecated old flag
            continue
        assert action.help, f"e2rank {name} {action.option_strings}: no help text"
        expected = "(required)" if action.required else "(default: "
        assert expected in action.help, f"e2rank {name} {action.option_strings}: help does not say {expected}"
    help_text = command.format_help()
    assert "%(default)" not in help_text  # every placeholder was filled in


@pytest.mark.parametrize("name", CONVENTIONAL)
def test_every_command_names_its_extra_and_shows_examples(name):
    epilog = subcommands()[name].epilog
    assert epilog.startswith("needs: pip install 'e2rank-integrations[")
    extras = epilog.split("[", 1)[1].split("]", 1)[0].split(",")
    assert set(extras) <= set(EXTRAS)
    assert "\nexamples:\n  " in epilog and f"e2rank {name}" in epilog.split("examples:")[1]


def test_embed_and_rerank_show_their_line_formats():
    commands = subcommands()
    embed = commands["embed"].format_help()
    assert '{"text": "Paris is the capital of France."}' in embed and '{"embedding": [0.0123' in embed
    rerank = commands["rerank"].format_help()
    assert '{"index": 1, "score": 0.8312, "text": "Paris is the capital."}' in rerank
    assert '{"query": "capital of France?", "documents": [' in rerank and '{"results": [{"index": 1' in rerank


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"e2rank {e2rank_integrations.__version__}"
