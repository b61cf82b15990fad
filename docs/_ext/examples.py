"""A griffe extension for the API reference: a docstring's ``Example:`` section rendered as highlighted code.

griffe's Google parser knows ``Examples:`` (doctest lines become highlighted code, ``# doctest:`` flags trimmed)
but reads the singular ``Example:``, which the docstrings use, as an admonition of Markdown text, where ``>>>``
makes nested blockquotes. This renames the section header before griffe parses the docstring.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:[ \t]*$", flags=re.M)


class ExampleSections(griffe.Extension):
    """Read every docstring's ``Example:`` section as ``Examples:``."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
