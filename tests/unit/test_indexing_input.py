"""`e2rank index` input: JSON lines streamed record by record, bad records named by file, line and field.

No torch, no pyarrow: the core env runs these (Parquet input is tested in tests/integrations/test_indexing.py).
"""

from __future__ import annotations

import gzip
import json

import pytest

from e2rank_integrations import E2RankIndexError
from e2rank_integrations.indexing import InputFields, count_records, read_records


def write_lines(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_records_keep_ids_texts_titles_and_metadata(tmp_path):
    path = write_lines(
        tmp_path / "corpus.jsonl",
        [
            {"id": "a", "text": "Alpha.", "title": "First", "lang": "en", "n": 1},
            "",  # blank lines are skipped, but still counted in line numbers
            {"id": 7, "text": "", "title": None, "lang": None},  # an int id, an empty text, null title and metadata
        ],
    )
    fields = InputFields(title="title", metadata=("lang", "n"))
    records = list(read_records(path, fields))
    assert [(r.id, r.text, r.metadata, r.where) for r in records] == [
        ("a", "First Alpha.", {"lang": "en", "n": 1}, "corpus.jsonl line 1"),
        ("7", "", None, "corpus.jsonl line 3"),
    ]
    assert count_records(path) == 2


def test_custom_field_names_and_gzip(tmp_path):
    path = tmp_path / "beir.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"_id": "d1", "body": "Text."}) + "\n")
    records = list(read_records(path, InputFields(id="_id", text="body")))
    assert [(r.id, r.text) for r in records] == [("d1", "Text.")]
    assert count_records(path) is None  # not counted ahead: the bar then has no total


def test_a_directory_reads_its_input_files_in_name_order(tmp_path):
    write_lines(tmp_path / "b.jsonl", [{"id": "b", "text": "B"}])
    write_lines(tmp_path / "a.jsonl", [{"id": "a", "text": "A"}])
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden.jsonl").write_text("not json")
    assert [r.id for r in read_records(tmp_path)] == ["a", "b"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"text": "no id"}, "corpus.jsonl line 2: no 'id' field (it has 'text')"),
        ({"id": "x"}, "corpus.jsonl line 2: no 'text' field (it has 'id')"),
        ({"id": "x", "text": None}, "corpus.jsonl line 2: 'text' must be a string, got null"),
        ({"id": "x", "text": ["a"]}, "corpus.jsonl line 2: 'text' must be a string, got list"),
        ({"id": 1.5, "text": "t"}, "corpus.jsonl line 2: 'id' must be a string or an integer, got float"),
        ({"id": True, "text": "t"}, "corpus.jsonl line 2: 'id' must be a string or an integer, got bool"),
        ({"id": "x", "text": "t", "title": 3}, "corpus.jsonl line 2: 'title' must be a string, got int"),
        ('{"id": "x", "text": ', "corpus.jsonl line 2: not valid JSON"),
        ('["id", "text"]', "corpus.jsonl line 2: expected a JSON object, got list"),
    ],
)
def test_a_bad_record_names_its_line_and_field(tmp_path, line, message):
    path = write_lines(tmp_path / "corpus.jsonl", [{"id": "ok", "text": "fine"}, line])
    records = read_records(path, InputFields(title="title"))
    assert next(records).id == "ok"  # streamed: the good line comes out before the bad one is read
    with pytest.raises(E2RankIndexError) as caught:
        next(records)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing.jsonl", "no such file or directory"), ("corpus.csv", "unknown input format")],
)
def test_unreadable_inputs_are_named(tmp_path, name, message):
    (tmp_path / "corpus.csv").write_text("id,text\n")
    with pytest.raises(E2RankIndexError, match=message):
        list(read_records(tmp_path / name))


def test_an_empty_directory_is_an_error(tmp_path):
    with pytest.raises(E2RankIndexError, match="no input files"):
        list(read_records(tmp_path))
