"""The one place where an error becomes a message on stderr and an exit status."""

from __future__ import annotations

import argparse
import re
import sys

from ..errors import E2RankError
from ._common import CLIError

# What a command reports in one line: its own CLIError, the package's errors, and files that cannot be read or
# decoded. Anything else (a plain ValueError, say) is a bug: its traceback is shown, to be reported.
EXPECTED = (CLIError, E2RankError, OSError, UnicodeError)


def flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's dest (a settings parameter's name) and its flag: ``{"chroma_dir": "--chroma-dir"}``."""
    shown = [a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS]  # not deprecated ones
    return {a.dest: a.option_strings[-1] for a in shown if a.dest != "help"}


def as_flags(message: str, names: dict[str, str]) -> str:
    """``message`` with each parameter a library named in backticks (`chroma_dir`) shown as its flag.

    A validator's ``top_n must be >= 1`` (a bare name, leading, then "must") is shown as ``--top-n must be >= 1``.
    """
    message = re.sub(r"^(\w+)(?= must )", lambda m: names.get(m[1], m[0]), message)
    return re.sub(r"`(\w+)`", lambda m: names.get(m[1], m[0]), message)


def report(command: str, exc: BaseException, parser: argparse.ArgumentParser) -> int:
    """Print ``exc`` for ``e2rank COMMAND`` in one line and return the exit status; re-raise a bug."""
    if isinstance(exc, ImportError):  # its message is the pip command that installs the missing extra
        print(f"e2rank {command}: {exc}", file=sys.stderr)
        return 1
    if isinstance(exc, EXPECTED):
        print(f"e2rank {command}: error: {as_flags(str(exc), flags(parser))}", file=sys.stderr)
        return 1
    print(f"e2rank {command}: internal error (a bug): please report it, with the traceback below", file=sys.stderr)
    raise exc
