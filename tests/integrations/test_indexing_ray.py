"""`e2rank index --ray`: a real local Ray (2 CPUs), Ray Data reading the input, an actor pool of E2RankModel.

Runs in the tox env `ray` (the `ray` extra is not in `all`); skipped where Ray is not installed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")
pytest.importorskip("torch")

from e2rank_integrations import E2RankIndexError  # noqa: E402
from e2rank_integrations.cli import main  # noqa: E402
from e2rank_integrations.indexing import InputFields, ParquetStore, index_corpus_ray  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def rows(n: int) -> list[dict]:
    return [{"id": f"r{i}", "text": "word " * (i % 17), "title": f"T{i}", "lang": "en"} for i in range(n)]


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def stored(path) -> dict:
    return {row["id"]: row for row in pq.read_table(path).to_pylist()}


def test_an_actor_pool_gives_embed_documents_vectors_and_resumes(tiny_path, other_tiny_path, tiny_model, tmp_path):
    records = rows(30)
    source = write_jsonl(tmp_path / "c.jsonl", [*records[:20], {**records[2], "text": "duplicate"}])
    output = tmp_path / "out"
    fields = InputFields(title="title", metadata=("lang",))
    summary = index_corpus_ray(
        source, ParquetStore(output), str(tiny_path), fields=fields, batch_size=8, actors=2, cpus_per_actor=0.5
    )
    assert (summary.read, summary.indexed, summary.duplicates) == (21, 20, 1)
    assert summary.tokens > 0

    # More records, some present: only the new ones are embedded, and every id is stored once.
    write_jsonl(tmp_path / "c.jsonl", records)
    summary = index_corpus_ray(source, ParquetStore(output), str(tiny_path), fields=fields, batch_size=8)
    assert (summary.read, summary.indexed, summary.skipped) == (30, 10, 20)
    table = pq.read_table(output)
    assert sorted(table.column("id").to_pylist()) == sorted(r["id"] for r in records)
    assert table.schema.field("vector").type == pa.list_(pa.float32(), tiny_model.dimension)
    got = stored(output)
    assert got["r2"]["text"] == f"T2 {records[2]['text']}".strip()  # the first occurrence was kept
    assert json.loads(got["r3"]["metadata"]) == {"lang": "en"}
    reference = tiny_model.embed_documents([f"T{i} {r['text']}".strip() for i, r in enumerate(records)])
    for i, record in enumerate(records):
        np.testing.assert_allclose(got[record["id"]]["vector"], reference[i], atol=1e-6)

    write_jsonl(tmp_path / "c.jsonl", [*records, {"id": "new", "text": "new"}])
    with pytest.raises(E2RankIndexError, match="another model or other settings"):
        index_corpus_ray(source, ParquetStore(output), str(other_tiny_path), batch_size=8)
    assert pq.read_table(output).num_rows == 30


def test_parquet_input_through_the_cli_and_a_bad_record(tiny_path, tiny_model, tmp_path, capsys):
    records = rows(12)
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "c.parquet")
    argv = ["index", "--model", str(tiny_path), "--ray", "--actors", "1", "--batch-size", "5", "--no-progress"]
    assert main([*argv, "--input", str(tmp_path / "c.parquet"), "--output", str(tmp_path / "out")]) == 0
    assert "indexed 12 texts" in capsys.readouterr().out
    got = stored(tmp_path / "out")
    reference = tiny_model.embed_documents([r["text"] for r in records])
    for i, record in enumerate(records):
        np.testing.assert_allclose(got[record["id"]]["vector"], reference[i], atol=1e-6)

    bad = write_jsonl(tmp_path / "bad.jsonl", [*rows(3), {"id": "nope", "body": "no text"}])
    assert main([*argv, "--input", bad, "--output", str(tmp_path / "out2")]) == 1
    assert "bad.jsonl (record with id 'nope'): no 'text' field" in capsys.readouterr().err
