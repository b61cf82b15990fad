"""What the commands share: the one-line error, model loading, and the parts of every command's help."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import textwrap
from typing import Any

from ..errors import E2RankModelNotFoundError
from ..loading import TINY_RANDOM
from ..settings import API_KEY_ENV

DEFAULT_MODEL_HELP = "$E2RANK_MODEL, else Alibaba-NLP/E2Rank-0.6B"


class CLIError(Exception):
    """A problem to report in one line, with a non-zero exit status."""


def default_model() -> str:
    """``$E2RANK_MODEL`` or the published 0.6B model."""
    from ..model import DEFAULT_MODEL

    return os.environ.get("E2RANK_MODEL") or DEFAULT_MODEL


def load_model(name: str, **kwargs: Any) -> Any:
    """Load ``name`` (a hub id, a local directory, or ``tiny-random``), or raise :class:`CLIError` saying why.

    The rules for names, paths and an unreachable hub are :mod:`e2rank_integrations.loading`'s, as in Python.
    """
    from ..model import E2RankModel

    try:
        return E2RankModel.from_pretrained(name, **kwargs)
    except ImportError:
        raise
    except E2RankModelNotFoundError as exc:  # its message already names the model and what to do
        raise CLIError(str(exc)) from exc
    except Exception as exc:  # transformers raises OSError, ValueError... for a bad model
        raise CLIError(f"could not load model {name!r}: {exc}") from exc


def defaults(settings: type[Any]) -> dict[str, Any]:
    """A settings dataclass's field defaults by name: the commands' option defaults, never repeated as literals."""
    return {f.name: f.default for f in dataclasses.fields(settings) if f.default is not dataclasses.MISSING}


def epilog(extra: str, examples: str, formats: str = "") -> str:
    """A subcommand's help epilog: the extra it needs, its input and output formats, examples."""
    text = f"needs: pip install 'e2rank-integrations[{extra}]'\n"
    if formats:
        text += "\n" + textwrap.dedent(formats).strip() + "\n"
    return text + "\nexamples:\n" + textwrap.indent(textwrap.dedent(examples).strip(), "  ")


def command(sub: Any, name: str, summary: str, epilog: str, description: str | None = None) -> argparse.ArgumentParser:
    """Add subcommand ``name``: ``summary`` in the list, ``description`` (default: the summary) atop its help."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=description or summary[0].upper() + summary[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def model_options(p: argparse.ArgumentParser, default: str | None, default_help: str = DEFAULT_MODEL_HELP) -> None:
    """``--model``, ``--device`` and ``--cache``, as the model commands share them."""
    p.add_argument(
        "--model",
        default=default,
        help=f"hub id, local directory, or '{TINY_RANDOM}' (a generated random-weight checkpoint) "
        f"(default: {default_help})",
    )
    p.add_argument("--device", default=None, help="cuda, cpu, cuda:1... (default: cuda when available, else cpu)")
    p.add_argument(
        "--cache",
        default=None,
        help="SQLite file that keeps embeddings across runs (default: none; an in-memory cache for this run)",
    )


class _DeprecatedFlag(argparse.Action):
    """An old flag kept for one release: hidden from ``--help``, sets the new option's value, says so on stderr."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)
        self.new = new

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: Any = None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated, use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def deprecated_flag(p: argparse.ArgumentParser, old: str, new: str) -> None:
    """Keep flag ``old`` working as a hidden alias of the option ``new`` (its dest and type) for one release."""
    option = next(a for a in p._actions if new in a.option_strings)
    p.add_argument(old, dest=option.dest, type=option.type or str, action=_DeprecatedFlag, new=new)


def port(text: str) -> int:
    """The argparse type of a TCP port, so ``--port -1`` is a usage error rather than the socket library's."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535 (0: any free one), got {value}")
    return value


def api_key(given: str | None) -> str | None:
    """``--api-key``, else ``$E2RANK_API_KEY``, else no key; one given empty is refused, never taken for none.

    For every command that serves over HTTP (``serve``, ``mcp``).
    """
    for source, key in (("--api-key", given), (API_KEY_ENV, os.environ.get(API_KEY_ENV))):
        if key is not None:
            if not key.strip():
                raise CLIError(
                    f"{source} is empty (did the variable it was set from expand to nothing?): give the key, or "
                    f"leave {source} out to serve without authentication"
                )
            return key
    return None
