"""Reading ``embed`` and ``rerank`` input: one record per line of stdin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

from ._common import CLIError


def read_records(stream: TextIO) -> Iterator[Any]:
    """Lines of ``stream``: a JSON value where the line parses as one, else the line's text."""
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            yield line


def text_of(record: Any, where: str) -> str:
    """The text a record holds: a plain line, or a JSON object's string ``text``."""
    if isinstance(record, str):
        return record
    if isinstance(record, dict) and isinstance(record.get("text"), str):
        return str(record["text"])
    raise CLIError(f"{where}: expected plain text or a JSON object with a string 'text', got {json.dumps(record)[:80]}")
