"""Reading ``embed`` and ``rerank`` input: one record per line of stdin, all of it checked before a model loads."""

from __future__ import annotations

import json
from typing import Any, TextIO

from ._common import CLIError


def read_records(stream: TextIO) -> list[tuple[int, Any]]:
    """(line number, record) for each non-blank line of ``stream``: its JSON value, or its text if it is not JSON.

    A line that opens with ``{`` is meant as a JSON object, so one that does not parse is an error naming the line
    (taking it for text would embed it, or fail later with a message that never says the JSON is invalid).
    """
    records = []
    for number, line in enumerate(stream, start=1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            if line.lstrip().startswith("{"):
                raise CLIError(f"line {number} is not valid JSON: {exc.msg} at column {exc.colno}") from None
            records.append((number, line))
    return records


def text_of(record: Any, number: int) -> str:
    """The text a record holds: a plain line, or a JSON object's string ``text``."""
    if isinstance(record, str):
        return record
    if isinstance(record, dict) and isinstance(record.get("text"), str):
        return str(record["text"])
    raise CLIError(
        f"line {number}: expected plain text or a JSON object with a string 'text', got {json.dumps(record)[:80]}"
    )
