"""The ``e2rank`` command: one module per subcommand, one dispatch table, one error formatter.

Subcommands: ``demo``, ``embed``, ``rerank``, ``eval``, ``serve``, ``index``, ``mcp``, ``train``. Each module has
``add_parser(sub)`` (its options, description, examples) and ``run(args) -> int`` (its handler); options that
configure a library part are derived from its settings object (``ServerSettings``, ``MCPSettings``,
``IndexSettings``, ``TrainConfig``), with the field name as ``dest``. Handlers raise; :mod:`.errors` turns what they
raise into one line and an exit status. Only this package speaks of flags.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from . import demo, embed, index, mcp, rerank, serve, train
from . import eval as eval_
from ._common import CLIError, default_model, load_model
from .errors import report

__all__ = ["CLIError", "build_parser", "default_model", "load_model", "main"]

COMMANDS = (demo, embed, rerank, eval_, serve, index, mcp, train)
"""The subcommands, in the order ``e2rank --help`` lists them."""

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {m.__name__.rsplit(".", 1)[1]: m.run for m in COMMANDS}


def build_parser() -> argparse.ArgumentParser:
    """The ``e2rank`` argument parser: every command module adds its subcommand."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="e2rank",
        description="E2Rank: one embedding model to retrieve and rerank.",
        epilog="Run `e2rank COMMAND --help` for a command's options, formats and examples.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``e2rank`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not sys.stderr.isatty():  # download and loading bars are noise in logs and pipes
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        return HANDLERS[args.command](args)
    except Exception as exc:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return report(args.command, exc, subparsers.choices[args.command])
