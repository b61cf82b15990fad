"""`e2rank index` end to end: real Parquet files, real Chroma (embedded and `chroma run`), real `e2rank serve`
servers on loopback ports, and a real subprocess killed with SIGKILL part-way, then rerun.

Every output is compared with `embed_documents` on the same texts.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("torch")

from e2rank_integrations import E2RankIndexError  # noqa: E402
from e2rank_integrations.cli import main  # noqa: E402
from e2rank_integrations.indexing import InputFields, ParquetStore, index_corpus, read_records  # noqa: E402

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "wizards",
    "quietly",
    "hex",
    "jovial",
    "boxers",
]


def corpus_rows(n: int) -> list[dict]:
    """`n` records of very different lengths, one with an empty text, with titles and metadata."""
    rows = []
    for i in range(n):
        text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range((i * 7) % 60))
        rows.append({"id": f"doc-{i}", "text": text, "title": f"Title {i}", "lang": "en" if i % 2 else "fr", "n": i})
    return rows


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def read_parquet(path) -> dict:
    table = pq.read_table(path)
    return {row["id"]: row for row in table.to_pylist()}


def expected(model, rows) -> dict:
    texts = [f"{r['title']} {r['text']}".strip() for r in rows]
    return dict(zip([r["id"] for r in rows], model.embed_documents(texts)))


def assert_vectors(stored: dict, reference: dict) -> None:
    assert sorted(stored) == sorted(reference)
    for key, vector in reference.items():
        np.testing.assert_allclose(np.asarray(stored[key], dtype=np.float32), vector, atol=1e-6)


INDEX_ARGS = ["--title-field", "title", "--metadata-fields", "lang,n", "--no-progress"]


# ---------------------------------------------------------------------------- Parquet


def test_parquet_output_equals_embed_documents_and_resumes(tiny_path, tiny_model, tmp_path, capsys, caplog):
    rows = corpus_rows(40)
    rows[5]["text"] = ""  # embedded like any other text
    rows[6]["title"] = None  # no title: the text alone
    source = write_jsonl(tmp_path / "corpus.jsonl", [*rows, {**rows[3], "text": "a duplicate"}])
    output = tmp_path / "vectors.parquet"
    args = ["index", "--model", str(tiny_path), "--input", source, "--output", str(output), "--batch-size", "16"]
    with caplog.at_level(logging.WARNING, logger="e2rank_integrations.indexing"):
        assert main([*args, *INDEX_ARGS]) == 0
    assert "corpus.jsonl line 41: duplicate id 'doc-3'" in caplog.text
    summary = capsys.readouterr().out
    assert "indexed 40 texts" in summary and "read 41" in summary and "1 duplicate ids" in summary

    table = pq.read_table(output)
    assert table.schema.field("vector").type == pa.list_(pa.float32(), tiny_model.dimension)
    assert [table.schema.field(c).type for c in ("id", "text", "metadata")] == [pa.string()] * 3
    stored = read_parquet(output)
    texts = {r["id"]: (f"{r['title']} {r['text']}" if r["title"] else r["text"]).strip() for r in rows}
    assert stored["doc-3"]["text"] == texts["doc-3"]  # the first occurrence was kept
    assert stored["doc-5"]["text"] == "Title 5" and stored["doc-6"]["text"] == texts["doc-6"]
    assert json.loads(stored["doc-4"]["metadata"]) == {"lang": "fr", "n": 4}
    identity = json.loads(table.schema.metadata[b"e2rank"])
    assert identity["fingerprint"] == tiny_model.fingerprint
    reference = dict(zip(texts, tiny_model.embed_documents(list(texts.values()))))
    assert_vectors({k: v["vector"] for k, v in stored.items()}, reference)

    parts = sorted(output.glob("part-*.parquet"))
    assert len(parts) == 3  # 16 + 16 + 8
    more = [*rows, {"id": "new", "text": "one more", "title": ""}]
    assert main(["index", "--model", str(tiny_path), "--input", write_jsonl(tmp_path / "corpus.jsonl", more),
                 "--output", str(output), *INDEX_ARGS]) == 0  # fmt: skip
    assert "indexed 1 texts" in capsys.readouterr().out
    assert len(sorted(output.glob("part-*.parquet"))) == 4
    assert pq.read_table(output).num_rows == 41


def test_parquet_input_and_its_errors(tiny_path, tiny_model, tmp_path, capsys):
    rows = corpus_rows(12)
    source = tmp_path / "corpus.parquet"
    pq.write_table(pa.Table.from_pylist(rows), source, row_group_size=5)
    output = tmp_path / "out"
    assert main(["index", "--model", str(tiny_path), "--input", str(source), "--output", str(output), *INDEX_ARGS]) == 0
    assert_vectors({k: v["vector"] for k, v in read_parquet(output).items()}, expected(tiny_model, rows))

    broken = [dict(r) for r in rows]
    broken[7]["text"] = None
    pq.write_table(pa.Table.from_pylist(broken), tmp_path / "broken.parquet")
    argv = ["index", "--model", str(tiny_path), "--output", str(tmp_path / "o2"), "--no-progress"]
    assert main([*argv, "--input", str(tmp_path / "broken.parquet")]) == 1
    assert "broken.parquet row 8: no 'text' field" in capsys.readouterr().err
    assert main([*argv, "--input", str(source), "--text-field", "body"]) == 1
    assert "corpus.parquet: no column 'body'" in capsys.readouterr().err


def test_bad_jsonl_fails_naming_the_line_and_writes_what_came_before(tiny_path, tmp_path, capsys):
    rows = [*corpus_rows(5), {"id": "x"}]
    output = tmp_path / "out"
    argv = ["index", "--model", str(tiny_path), "--input", write_jsonl(tmp_path / "c.jsonl", rows)]
    assert main([*argv, "--output", str(output), "--batch-size", "2", "--no-progress"]) == 1
    assert "c.jsonl line 6: no 'text' field (it has 'id')" in capsys.readouterr().err
    written = ParquetStore(output).ids()  # whole batches only, all from before the bad line
    assert len(written) % 2 == 0 and written <= {f"doc-{i}" for i in range(4)}


def test_a_parquet_output_of_another_model_is_refused(tiny_path, other_tiny_path, tmp_path, capsys):
    source = write_jsonl(tmp_path / "c.jsonl", corpus_rows(3))
    output = str(tmp_path / "out")
    assert main(["index", "--model", str(tiny_path), "--input", source, "--output", output, "--no-progress"]) == 0
    write_jsonl(tmp_path / "c.jsonl", [{"id": "z", "text": "new"}])
    assert main(["index", "--model", str(other_tiny_path), "--input", source, "--output", output]) == 1
    assert "another model or other settings" in capsys.readouterr().err
    assert pq.read_table(output).num_rows == 3


def test_leftover_temporary_parts_are_removed_and_a_file_output_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".part-abc.parquet.tmp").write_bytes(b"PAR1 truncated")
    store = ParquetStore(tmp_path / "out")
    assert not list((tmp_path / "out").iterdir()) and store.ids() == set()
    (tmp_path / "file.parquet").write_bytes(b"")
    with pytest.raises(E2RankIndexError, match="is a file"):
        ParquetStore(tmp_path / "file.parquet")


def test_in_process_with_progress_counts_tokens(fresh_model, tmp_path, capsys):
    rows = corpus_rows(10)
    summary = index_corpus(
        write_jsonl(tmp_path / "c.jsonl", rows),
        ParquetStore(tmp_path / "out"),
        fresh_model,
        fields=InputFields(title="title"),
        batch_size=4,
        show_progress=True,
    )
    assert (summary.read, summary.indexed, summary.skipped, summary.duplicates) == (10, 10, 0, 0)
    assert summary.tokens == fresh_model.stats()["tokens_embedded"] > 0
    assert "indexing" in capsys.readouterr().err  # the bar, on stderr


# ---------------------------------------------------------------------------- Chroma

chromadb = pytest.importorskip("chromadb")


def chroma_vectors(collection) -> dict:
    got = collection.get(include=["embeddings", "documents", "metadatas"])
    return {i: (e, d, m) for i, e, d, m in zip(got["ids"], got["embeddings"], got["documents"], got["metadatas"])}


def test_chroma_collection_equals_embed_documents_and_reopens_with_the_model(tiny_path, tiny_model, tmp_path, capsys):
    rows = corpus_rows(20)
    source = write_jsonl(tmp_path / "c.jsonl", rows)
    db = str(tmp_path / "db")
    argv = ["index", "--model", str(tiny_path), "--input", source, "--chroma-dir", db, "--collection", "docs"]
    assert main([*argv, "--batch-size", "8", *INDEX_ARGS]) == 0
    assert main([*argv, *INDEX_ARGS]) == 0  # a rerun adds nothing
    assert "indexed 0 texts" in capsys.readouterr().out.splitlines()[-1]

    stored = chroma_vectors(chromadb.PersistentClient(path=db).get_collection("docs"))
    assert_vectors({k: v[0] for k, v in stored.items()}, expected(tiny_model, rows))
    assert stored["doc-3"][1] == f"Title 3 {rows[3]['text']}" and stored["doc-3"][2] == {"lang": "en", "n": 3}

    reopened = chromadb.PersistentClient(path=db).get_collection("docs")  # no function: Chroma rebuilds ours
    function = reopened.configuration["embedding_function"]
    assert type(function).__name__ == "E2RankEmbeddingFunction"
    assert function.get_config()["model_name_or_path"] == str(tiny_path)
    assert reopened.query(query_texts=["quick brown fox"], n_results=3)["ids"][0][0] in stored


def test_a_chroma_collection_of_another_model_is_refused(tiny_path, other_tiny_path, tmp_path, capsys):
    source = write_jsonl(tmp_path / "c.jsonl", corpus_rows(3))
    db = str(tmp_path / "db")
    argv = ["index", "--input", source, "--chroma-dir", db, "--collection", "docs", "--no-progress"]
    assert main([*argv, "--model", str(tiny_path)]) == 0
    assert main([*argv, "--model", str(other_tiny_path)]) == 1
    err = capsys.readouterr().err
    assert "cannot change the E2Rank embedding function" in err and "model_name_or_path" in err
    chromadb.PersistentClient(path=db).create_collection("plain", embedding_function=None)
    assert (
        main(["index", "--input", source, "--chroma-dir", db, "--collection", "plain", "--model", str(tiny_path)]) == 1
    )
    assert "was not created with E2RankEmbeddingFunction" in capsys.readouterr().err


def test_metadata_chroma_refuses_names_the_line(tiny_path, tmp_path, capsys):
    source = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "text": "x", "meta": {"nested": 1}}])
    argv = ["index", "--model", str(tiny_path), "--input", source, "--chroma-dir", str(tmp_path / "db")]
    assert main([*argv, "--collection", "docs", "--metadata-fields", "meta", "--no-progress"]) == 1
    assert "c.jsonl line 1: Chroma refuses its metadata" in capsys.readouterr().err


# ---------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def two_servers(tiny_path):
    pytest.importorskip("fastapi")
    from e2rank_integrations import E2RankModel
    from e2rank_integrations.server import ServerSettings, create_app

    from .serving import running_server

    with (
        running_server(create_app(E2RankModel.from_pretrained(tiny_path), ServerSettings())) as first,
        running_server(create_app(E2RankModel.from_pretrained(tiny_path), ServerSettings())) as second,
    ):
        yield first, second


def test_server_urls_share_the_work_round_robin(two_servers, tiny_model, tiny_path, tmp_path, capsys):
    rows = corpus_rows(24)
    urls = ",".join(s.url for s in two_servers)
    before = [s.state.model.stats()["texts_embedded"] for s in two_servers]
    source = write_jsonl(tmp_path / "c.jsonl", rows)
    argv = ["index", "--input", source, "--server-url", urls, "--batch-size", "4", "--concurrency", "3"]
    assert main([*argv, "--output", str(tmp_path / "out"), *INDEX_ARGS]) == 0
    assert "indexed 24 texts" in capsys.readouterr().out
    done = [s.state.model.stats()["texts_embedded"] - b for s, b in zip(two_servers, before)]
    assert done == [12, 12]  # six batches of four, in turn
    assert_vectors({k: v["vector"] for k, v in read_parquet(tmp_path / "out").items()}, expected(tiny_model, rows))

    # Chroma through the servers: the collection stores the first server's URL and reopens through it.
    assert main([*argv, "--chroma-dir", str(tmp_path / "db"), "--collection", "docs", *INDEX_ARGS]) == 0
    collection = chromadb.PersistentClient(path=str(tmp_path / "db")).get_collection("docs")
    assert collection.configuration_json["embedding_function"]["config"]["server_url"] == two_servers[0].url
    assert_vectors({k: v[0] for k, v in chroma_vectors(collection).items()}, expected(tiny_model, rows))


def test_servers_of_different_models_are_refused(two_servers, other_tiny_path, tmp_path, capsys):
    from e2rank_integrations import E2RankModel
    from e2rank_integrations.server import ServerSettings, create_app

    from .serving import running_server

    with running_server(create_app(E2RankModel.from_pretrained(other_tiny_path), ServerSettings())) as other:
        urls = f"{two_servers[0].url},{other.url}"
        source = write_jsonl(tmp_path / "c.jsonl", corpus_rows(3))
        assert main(["index", "--input", source, "--server-url", urls, "--output", str(tmp_path / "o")]) == 1
    assert "the servers do not serve the same model" in capsys.readouterr().err


# ---------------------------------------------------------------------------- killed part-way


# The job reads its input from a named pipe that the test holds open: it writes what the test fed it, then waits
# for more, so it cannot finish before the signal (on a busy machine a job that may finish first once did). The job
# says when a batch is written (its INFO log line); the test waits for that line, never for a clock.
INDEX_CODE = """
import logging, sys
logging.basicConfig(level=logging.WARNING)
logging.getLogger("e2rank_integrations.indexing").setLevel(logging.INFO)
from e2rank_integrations.cli import main
sys.exit(main(sys.argv[1:]))
"""


def interrupt_after(argv: list[str], fifo, rows: list[dict], written: int, how: int) -> str:
    """Run ``e2rank index ARGV`` on ``fifo`` fed with ``rows`` only; once it says it wrote ``written`` texts, send
    ``how``; return its stderr. The pipe is then replaced by a file holding every row, for the rerun."""
    os.mkfifo(fifo)
    feed = os.open(fifo, os.O_RDWR)  # read-write: opening does not wait for the job, and the pipe never ends
    try:
        os.write(feed, "".join(json.dumps(r) + "\n" for r in rows[: written + 4]).encode())  # batches of 4
        process = subprocess.Popen(
            [sys.executable, "-c", INDEX_CODE, "index", *argv, "--input", str(fifo), "--batch-size", "4"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )
        seen = []
        for line in process.stderr:  # ends only if the job does
            seen.append(line)
            if f"({written} in all this run)" in line:
                break
        else:
            pytest.fail(f"the job ended before it wrote {written} texts (exit {process.wait()}): {''.join(seen)}")
        process.send_signal(how)
        _, err = process.communicate()
    finally:
        os.close(feed)
        os.unlink(fifo)
    assert process.returncode == (-signal.SIGKILL if how == signal.SIGKILL else 130), "".join(seen) + err
    write_jsonl(fifo, rows)
    return err


def test_parquet_job_killed_part_way_then_rerun_has_every_id_once(tiny_path, tiny_model, tmp_path, capsys):
    rows = corpus_rows(40)
    output, source = tmp_path / "out", tmp_path / "c.jsonl"
    argv = ["--model", str(tiny_path), "--output", str(output)]
    interrupt_after(argv, source, rows, written=8, how=signal.SIGKILL)
    assert len(list(output.glob("part-*.parquet"))) == 2  # killed part-way, with whole parts only
    assert pq.read_table(output).num_rows == 8

    assert main(["index", *argv, "--input", str(source), "--no-progress"]) == 0  # the rerun: in this process
    assert "skipped 8 already present" in capsys.readouterr().out
    ids = pq.read_table(output, columns=["id"]).column("id").to_pylist()
    assert sorted(ids) == sorted(r["id"] for r in rows)  # each id exactly once
    assert not list(output.glob(".*"))
    stored = {k: v["vector"] for k, v in read_parquet(output).items()}
    texts = [r["text"] for r in rows]
    assert_vectors(stored, dict(zip([r["id"] for r in rows], tiny_model.embed_documents(texts))))


def test_chroma_server_job_interrupted_part_way_then_rerun_has_every_id(tiny_path, tiny_model, tmp_path, capsys):
    from .serving import chroma_server

    rows = corpus_rows(40)
    source = tmp_path / "c.jsonl"
    with chroma_server(tmp_path / "chroma") as (host, port):
        client = chromadb.HttpClient(host=host, port=port)
        argv = ["--model", str(tiny_path), "--chroma-host", host, "--chroma-port", str(port), "--collection", "docs"]
        err = interrupt_after(argv, source, rows, written=8, how=signal.SIGINT)  # Ctrl-C
        assert "interrupted; what was written is complete: rerun the same command" in err
        assert client.get_collection("docs").count() == 8
        assert main(["index", *argv, "--input", str(source), "--no-progress"]) == 0
        assert "skipped 8 already present" in capsys.readouterr().out
        stored = chroma_vectors(client.get_collection("docs"))
    assert_vectors({k: v[0] for k, v in stored.items()}, expected_plain(tiny_model, rows))


def expected_plain(model, rows) -> dict:
    return dict(zip([r["id"] for r in rows], model.embed_documents([r["text"] for r in rows])))


def test_read_records_streams_parquet_rows_with_numbers(tmp_path):
    pq.write_table(pa.Table.from_pylist([{"id": 1, "text": "a"}, {"id": 2, "text": "b"}]), tmp_path / "c.parquet")
    records = list(read_records(tmp_path / "c.parquet"))
    assert [(r.id, r.where) for r in records] == [("1", "c.parquet row 1"), ("2", "c.parquet row 2")]
