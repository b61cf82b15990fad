"""A griffe extension for the API reference: Sphinx roles in docstrings (``:class:`~a.B```) shown as inline code.

The docstrings are Google style but cross-reference with Sphinx roles, which mkdocstrings would print literally.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`<]+?)(?:\s*<[^`>]+>)?`")


def _code(match: re.Match[str]) -> str:
    shorten, target = match.group(1), match.group(2).strip()
    return f"`{target.rsplit('.', 1)[-1] if shorten else target}`"


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring's Sphinx roles as inline code (``:class:`~a.B``` -> `` `B` ``)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_code, obj.docstring.value)
