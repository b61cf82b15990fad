"""Bulk indexing: stream a corpus through E2Rank into Chroma or Parquet, resumably.

Three ways to embed, one way to read and write:

- one process: a local :class:`~e2rank_integrations.E2RankModel` (:func:`index_corpus`);
- a fleet of ``e2rank serve`` servers: :class:`~e2rank_integrations.E2RankClient` backends, spread round-robin with
  a bounded number of batches in flight (:func:`index_corpus` with several backends);
- a Ray cluster: Ray Data reads the input and embeds it on an actor pool of ``E2RankModel`` (one per GPU, or N on
  CPUs); the driver writes what comes back (:func:`index_corpus_ray`, extra ``ray``).

Every path embeds with ``embed_documents`` (the text, then ``<|endoftext|>``), so the vectors are those the rest of
the package computes. The input (JSON lines or Parquet, a file or a directory of files) is streamed: memory holds a
few batches and the set of ids, never the corpus. A rerun skips the ids already in the output, and an interrupted
run (even by SIGKILL) leaves no partial rows: a Chroma ``add`` is one transaction, and a Parquet output is a
directory of part files each written under a temporary name and renamed into place once complete.

This module imports no framework at import time: Chroma, pyarrow and Ray are imported when used, through
:func:`~e2rank_integrations._optional.require`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._optional import check_extras, require
from .errors import E2RankIndexError, E2RankStateError, E2RankValueError
from .model import DEFAULT_MODEL
from .prompts import titled
from .settings import API_KEY_ENV
from .types import Backend, Embeddings, check_sync_backend
from .validators import check_positive_int

__all__ = [
    "ChromaStore",
    "IndexSettings",
    "IndexSummary",
    "InputFields",
    "ParquetStore",
    "index_corpus",
    "index_corpus_ray",
    "read_records",
    "run_index",
]

logger = logging.getLogger("e2rank_integrations.indexing")

DEFAULT_BATCH_SIZE = 1024
_JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson")
_PARQUET_SUFFIXES = (".parquet",)
_REPORTED_DUPLICATES = 20  # duplicates named one by one; the rest are only counted
_METADATA_KEY = b"e2rank"  # Parquet schema metadata: which model made the vectors


# ---------------------------------------------------------------------------- input


@dataclass(frozen=True)
class InputFields:
    """Which fields of an input record hold what.

    Attributes:
        id: The record's unique id (a string or an integer; integers are stored as strings).
        text: The text to embed (an empty string is embedded like any other).
        title: An optional title, embedded as ``"title text"`` (BEIR's convention); absent or null: no title.
        metadata: Fields copied into each record's metadata where present.
    """

    id: str = "id"
    text: str = "text"
    title: str | None = None
    metadata: tuple[str, ...] = ()

    def columns(self) -> list[str]:
        """Every field read, in order, without repeats."""
        names = [self.id, self.text, *([self.title] if self.title else []), *self.metadata]
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Record:
    """One input record, ready to embed: ``where`` names it in messages (``corpus.jsonl line 7``)."""

    id: str
    text: str
    metadata: dict[str, Any] | None
    where: str


def record_from_row(row: Mapping[str, Any], fields: InputFields, where: str) -> Record:
    """Check one input row and turn it into a :class:`Record`; a bad row raises naming ``where`` and the field."""
    for name in (fields.id, fields.text):
        if name not in row:
            present = ", ".join(repr(k) for k in list(row)[:10])
            raise E2RankIndexError(f"{where}: no {name!r} field (it has {present or 'no fields'})")
    raw_id, text = row[fields.id], row[fields.text]
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise E2RankIndexError(f"{where}: {fields.id!r} must be a string or an integer, got {_kind(raw_id)}")
    if not isinstance(text, str):
        raise E2RankIndexError(f"{where}: {fields.text!r} must be a string, got {_kind(text)}")
    if fields.title:
        title = row.get(fields.title)
        if title is not None and not isinstance(title, str):
            raise E2RankIndexError(f"{where}: {fields.title!r} must be a string, got {_kind(title)}")
        text = titled(title, text)
    metadata = {name: row[name] for name in fields.metadata if name in row and row[name] is not None}
    return Record(str(raw_id), text, metadata or None, where)


def read_records(path: str | os.PathLike[str], fields: InputFields | None = None) -> Iterator[Record]:
    """Stream the records of a JSON lines or Parquet file, or of every such file in a directory (sorted by name).

    JSON lines (``.jsonl``, ``.ndjson``, ``.jsonl.gz``) are read one line at a time; Parquet files one row group
    batch at a time (needs the ``parquet`` extra). Blank lines are skipped. Lines and rows are numbered from 1.

    Raises:
        E2RankIndexError: A line is not a JSON object, or a record lacks the id or the text, or has a value of the
            wrong type; the message names the file, the line or row, and the field.
    """
    fields = fields or InputFields()
    for file in input_files(path):
        if file.name.endswith(_PARQUET_SUFFIXES):
            yield from _parquet_records(file, fields)
        else:
            yield from _jsonl_records(file, fields)


def input_files(path: str | os.PathLike[str]) -> list[Path]:
    """The input files ``path`` names: itself, or the JSON lines and Parquet files of a directory."""
    root = Path(path).expanduser()
    known = _JSONL_SUFFIXES + _PARQUET_SUFFIXES
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.name.endswith(known) and not p.name.startswith((".", "_")))
        if not files:
            raise E2RankIndexError(f"{root}: no input files (*.jsonl, *.jsonl.gz, *.ndjson, *.parquet) in it")
        return files
    if not root.exists():
        raise E2RankIndexError(f"{root}: no such file or directory")
    if not root.name.endswith(known):
        raise E2RankIndexError(f"{root}: unknown input format; expected .jsonl, .jsonl.gz, .ndjson or .parquet")
    return [root]


def count_records(path: str | os.PathLike[str]) -> int | None:
    """How many records the input holds (for the progress bar): Parquet metadata, or non-blank lines; ``None`` if gz."""
    total = 0
    for file in input_files(path):
        if file.name.endswith(_PARQUET_SUFFIXES):
            total += _parquet_file(file).metadata.num_rows
        elif file.name.endswith(".gz"):
            return None
        else:
            with open(file, "rb") as handle:  # one fast pass in binary: a small cost next to embedding
                total += sum(1 for line in handle if line.strip())
    return total


def _jsonl_records(file: Path, fields: InputFields) -> Iterator[Record]:
    opener: Callable[..., Any] = gzip.open if file.name.endswith(".gz") else open
    with opener(file, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{file.name} line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise E2RankIndexError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise E2RankIndexError(f"{where}: expected a JSON object, got {_kind(row)}")
            yield record_from_row(row, fields, where)


def _parquet_records(file: Path, fields: InputFields) -> Iterator[Record]:
    reader = _parquet_file(file)
    names = set(reader.schema_arrow.names)
    for name in fields.columns():
        if name not in names:  # every row lacks it: say so once, naming the column
            raise E2RankIndexError(f"{file.name}: no column {name!r} (columns: {', '.join(sorted(names))})")
    number = 0
    for batch in reader.iter_batches(batch_size=4096, columns=fields.columns()):
        for row in batch.to_pylist():
            number += 1
            yield record_from_row({k: v for k, v in row.items() if v is not None}, fields, f"{file.name} row {number}")


def _parquet_file(file: Path) -> Any:
    try:
        return require("pyarrow.parquet", extra="parquet").ParquetFile(file)
    except ValueError as exc:  # pyarrow's ArrowInvalid: the file is not Parquet
        raise E2RankIndexError(f"{file.name}: not a Parquet file ({exc})") from None


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


# ---------------------------------------------------------------------------- output


class ParquetStore:
    """A Parquet output: a directory of part files (``part-<hash>.parquet``), each written atomically.

    Columns: ``id`` (string), ``text`` (string, as embedded), ``metadata`` (a JSON object as a string, or null),
    ``vector`` (a fixed-size list of float32). pyarrow, pandas, Polars, DuckDB, Spark and Ray read the directory as
    one table. A part is written as ``.part-<hash>.parquet.tmp`` and renamed once complete, so a killed run leaves
    whole parts only (temporary files are removed on the next open; readers skip dot-files anyway). The part's
    name hashes the ids it holds. The schema's metadata (key ``e2rank``) records the model's fingerprint: a rerun
    with another model, or other encoding settings, is refused.

    Args:
        path: The output directory (created if missing; ``vectors.parquet`` is a fine name for it).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._pq = require("pyarrow.parquet", extra="parquet")
        self._pa = require("pyarrow", extra="parquet")
        self.path = Path(path).expanduser()
        if self.path.exists() and not self.path.is_dir():
            raise E2RankIndexError(
                f"{self.path} is a file; the Parquet output is a directory of part files: name a new directory"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        for leftover in self.path.glob(".part-*.tmp"):  # a part that a killed run did not finish
            leftover.unlink()
        self._identity: dict[str, Any] | None = None
        self._parts = sorted(self.path.glob("part-*.parquet"))
        if self._parts:
            stored = self._pq.read_schema(self._parts[0]).metadata or {}
            if _METADATA_KEY in stored:
                self._identity = json.loads(stored[_METADATA_KEY])

    def __repr__(self) -> str:
        return f"ParquetStore({str(self.path)!r})"

    def ids(self) -> set[str]:
        """The ids already written (the ``id`` column of every part)."""
        found: set[str] = set()
        for part in self._parts:
            found.update(self._pq.read_table(part, columns=["id"]).column("id").to_pylist())
        return found

    def bind(self, identity: Mapping[str, Any]) -> None:
        """Check that ``identity`` (the model's fingerprint...) is the one the stored parts were written with."""
        identity = dict(identity)
        if self._identity is not None and self._identity.get("fingerprint") != identity.get("fingerprint"):
            raise E2RankIndexError(
                f"{self.path} holds vectors of model {self._identity.get('model')!r} (fingerprint "
                f"{self._identity.get('fingerprint')}); this run embeds with {identity.get('model')!r} (fingerprint "
                f"{identity.get('fingerprint')}): another model or other settings (dtype, max_length) would mix "
                "incomparable vectors. Write to another directory."
            )
        self._identity = identity

    def write(self, records: Sequence[Record], vectors: Embeddings) -> None:
        """Write one part file holding ``records`` and their vectors, atomically."""
        if self._identity is None:
            raise E2RankStateError("ParquetStore.bind() must name the model before the first write")
        pa = self._pa
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        table = pa.table(
            {
                "id": pa.array([r.id for r in records], pa.string()),
                "text": pa.array([r.text for r in records], pa.string()),
                "metadata": pa.array(
                    [None if r.metadata is None else json.dumps(r.metadata, ensure_ascii=False) for r in records],
                    pa.string(),
                ),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1]),
            }
        ).replace_schema_metadata({_METADATA_KEY: json.dumps(self._identity, sort_keys=True)})
        digest = hashlib.sha256("\0".join(r.id for r in records).encode("utf-8", "surrogatepass")).hexdigest()
        final = self.path / f"part-{digest[:24]}.parquet"
        temporary = self.path / f".{final.name}.tmp"
        with open(temporary, "wb") as handle:
            self._pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)  # atomic: readers and reruns see the whole part or none of it
        _fsync_directory(self.path)
        self._parts.append(final)

    def describe(self) -> str:
        return f"Parquet part files in {self.path}"


class ChromaStore:
    """A Chroma collection made with :class:`~e2rank_integrations.chroma.E2RankEmbeddingFunction`.

    The collection stores the function's configuration, so it reopens with the model that embedded it; an
    existing collection made with another model (or without an E2Rank function) is refused. Vectors are added
    with their documents and metadata in batches of at most Chroma's ``max_batch_size``.

    Args:
        client: A Chroma client (``PersistentClient``, ``HttpClient``...).
        name: The collection (created if missing).
        function: The embedding function whose configuration the collection keeps.
    """

    def __init__(self, client: Any, name: str, function: Any) -> None:
        chroma = require("e2rank_integrations.chroma", extra="chroma")
        self.collection = client.get_or_create_collection(name, embedding_function=function)
        try:
            chroma.check_collection(self.collection, function)
        except ValueError as exc:
            raise E2RankIndexError(str(exc)) from None
        self._max_batch = int(client.get_max_batch_size())
        self._validate_metadata = require("chromadb.api.types", extra="chroma").validate_metadata

    def __repr__(self) -> str:
        return f"ChromaStore({self.collection.name!r})"

    def ids(self) -> set[str]:
        """The ids already in the collection (read in pages)."""
        found: set[str] = set()
        page = 10_000
        while True:
            got = self.collection.get(include=[], limit=page, offset=len(found))["ids"]
            found.update(got)
            if len(got) < page:
                return found

    def bind(self, identity: Mapping[str, Any]) -> None:
        """Nothing to check here: the collection's function configuration was checked when it was opened."""

    def write(self, records: Sequence[Record], vectors: Embeddings) -> None:
        """Add ``records`` with their vectors (Chroma then embeds nothing)."""
        for record in records:
            if record.metadata is not None:
                try:
                    self._validate_metadata(record.metadata)
                except ValueError as exc:
                    raise E2RankIndexError(f"{record.where}: Chroma refuses its metadata: {exc}") from None
        for start in range(0, len(records), self._max_batch):
            chunk = records[start : start + self._max_batch]
            self.collection.add(
                ids=[r.id for r in chunk],
                documents=[r.text for r in chunk],
                metadatas=[r.metadata for r in chunk],
                embeddings=np.asarray(vectors[start : start + len(chunk)], dtype=np.float32),
            )

    def describe(self) -> str:
        return f"Chroma collection {self.collection.name!r}"


def _fsync_directory(path: Path) -> None:
    """Make a rename durable (a crash of the machine right after must not lose it); a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- the job


@dataclass(frozen=True)
class IndexSummary:
    """What one indexing run did.

    Attributes:
        read: Records read from the input.
        indexed: Records embedded and written by this run.
        skipped: Records whose id the output already held (an earlier run wrote them).
        duplicates: Records whose id appeared earlier in the input (the first one was kept).
        tokens: Tokens run through the model by this run (where the backend counts them).
        seconds: Wall-clock time of the run.
        output: Where the vectors went.
    """

    read: int
    indexed: int
    skipped: int
    duplicates: int
    tokens: int
    seconds: float
    output: str

    def __str__(self) -> str:
        rate = self.indexed / self.seconds if self.seconds else 0.0
        token_rate = self.tokens / self.seconds if self.seconds else 0.0
        return (
            f"indexed {self.indexed} texts ({self.tokens} tokens) in {self.seconds:.1f} s: {rate:.1f} texts/s, "
            f"{token_rate:.0f} tokens/s; read {self.read}, skipped {self.skipped} already present, "
            f"{self.duplicates} duplicate ids (kept the first); into {self.output}"
        )


@dataclass
class _Job:
    """Counters, the ids seen, the duplicate reports and the progress bar of one run."""

    store: Any
    present: set[str]
    total: int | None
    show_progress: bool
    tokens_now: Callable[[], int] = lambda: 0
    seen: set[str] = field(default_factory=set)
    read: int = 0
    indexed: int = 0
    skipped: int = 0
    duplicates: int = 0
    tokens: int = 0
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self._tokens_start = self.tokens_now()
        self._tokens_polled = 0.0
        self._bar: Any = None
        if self.show_progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc="indexing", unit="text", file=sys.stderr, dynamic_ncols=True)

    def admit(self, record: Record) -> bool:
        """Whether ``record`` is to be embedded: not a duplicate of an earlier one, not already in the output."""
        self.read += 1
        if record.id in self.seen:
            self.duplicates += 1
            if self.duplicates <= _REPORTED_DUPLICATES:
                logger.warning("%s: duplicate id %r (an earlier record has it; kept that one)", record.where, record.id)
            if self.duplicates == _REPORTED_DUPLICATES:
                logger.warning("more duplicate ids are counted in the summary, not named")
            self._advance(1)
            return False
        self.seen.add(record.id)
        if record.id in self.present:
            self.skipped += 1
            self._advance(1)
            return False
        return True

    def batches(self, records: Iterable[Record], batch_size: int) -> Iterator[list[Record]]:
        """The admitted records in batches of ``batch_size`` (skipped ones do not make batches smaller)."""
        batch: list[Record] = []
        for record in records:
            if self.admit(record):
                batch.append(record)
                if len(batch) == batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def written(self, count: int, tokens: int | None = None) -> None:
        self.indexed += count
        if tokens is not None:
            self.tokens += tokens
        self._advance(count)

    def _advance(self, count: int) -> None:
        if self._bar is None:
            return
        self._bar.update(count)
        now = time.perf_counter()
        if now - self._tokens_polled >= 1.0:  # a server's counters are an HTTP call away: once a second at most
            self._tokens_polled = now
            tokens = self._count_tokens()
            self._bar.set_postfix_str(f"{tokens / max(now - self.started, 1e-9):.0f} tokens/s", refresh=False)

    def _count_tokens(self) -> int:
        return self.tokens + self.tokens_now() - self._tokens_start

    def finish(self) -> IndexSummary:
        self.tokens = self._count_tokens()
        if self._bar is not None:
            self._bar.close()
        return IndexSummary(
            read=self.read,
            indexed=self.indexed,
            skipped=self.skipped,
            duplicates=self.duplicates,
            tokens=self.tokens,
            seconds=round(time.perf_counter() - self.started, 3),
            output=self.store.describe(),
        )


def backend_identity(backends: Sequence[Backend]) -> dict[str, Any]:
    """The model the backends embed with (name, fingerprint, dimension); several servers must serve the same one."""
    infos = [backend.describe() for backend in backends]  # an E2RankClient asks its server (once)
    identities = [{"model": i.model, "fingerprint": i.fingerprint, "dimension": i.dimension} for i in infos]
    fingerprints = {i["fingerprint"] for i in identities}
    if len(fingerprints) > 1:
        urls = [i.base_url or repr(b) for i, b in zip(infos, backends)]
        served = ", ".join(f"{u}: {i['model']} ({i['fingerprint']})" for u, i in zip(urls, identities))
        raise E2RankIndexError(f"the servers do not serve the same model (or settings): {served}")
    return identities[0]


def _token_counter(backends: Sequence[Backend]) -> Callable[[], int]:
    """Tokens the backends have embedded so far (their ``stats()``), for tokens/s."""

    def count() -> int:
        total = 0
        for backend in backends:
            try:
                total += int(backend.stats().get("tokens_embedded", 0))
            except Exception:  # counters are for the progress bar: never fail a job over them
                logger.debug("no token counter from %r", backend, exc_info=True)
        return total

    return count


def index_corpus(
    input_path: str | os.PathLike[str],
    store: ParquetStore | ChromaStore,
    backend: Backend | Sequence[Backend],
    *,
    fields: InputFields | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int | None = None,
    show_progress: bool | None = None,
) -> IndexSummary:
    """Embed every record of ``input_path`` not yet in ``store`` with ``embed_documents``, and write it there.

    Reading, embedding and writing overlap: while one batch is embedded, the next is read and the previous one
    written. With several backends (``E2RankClient`` of several servers), batches go to them in turn with at most
    ``concurrency`` batches in flight.

    Args:
        input_path: A JSON lines or Parquet file, or a directory of them (see :func:`read_records`).
        store: Where the vectors go: a :class:`ParquetStore` or a :class:`ChromaStore`.
        backend: An ``E2RankModel``, an ``E2RankClient``, or a list of clients (one per server).
        fields: Which input fields hold the id, text, title and metadata.
        batch_size: Texts embedded and written together (the model cuts them into length-sorted forward passes).
        concurrency: Batches in flight (default: one per backend).
        show_progress: A progress bar with texts/s and tokens/s on stderr (default: when stderr is a terminal).

    Returns:
        What the run did (:class:`IndexSummary`).

    Example:
        >>> from e2rank_integrations import E2RankModel
        >>> from e2rank_integrations.indexing import ParquetStore, index_corpus
        >>> model = E2RankModel.from_pretrained("Alibaba-NLP/E2Rank-0.6B", cache=False)  # doctest: +SKIP
        >>> index_corpus("corpus.jsonl", ParquetStore("vectors.parquet"), model).indexed  # doctest: +SKIP
        5000
    """
    given = backend if isinstance(backend, (list, tuple)) else [backend]
    backends = [check_sync_backend(b, "E2RankClient") for b in given]
    if not backends:
        raise E2RankValueError("index_corpus needs at least one backend")
    batch_size = check_positive_int(batch_size, "batch_size")
    concurrency = check_positive_int(concurrency if concurrency is not None else len(backends), "concurrency")
    fields = fields or InputFields()
    input_files(input_path)  # a missing input fails before the model is asked anything
    store.bind(backend_identity(backends))
    job = _Job(
        store,
        store.ids(),
        count_records(input_path) if _show(show_progress) else None,
        _show(show_progress),
        _token_counter(backends),
    )
    pending: deque[tuple[list[Record], Future[Embeddings]]] = deque()
    turn = 0
    with ThreadPoolExecutor(concurrency, thread_name_prefix="e2rank-index") as pool:
        try:
            for batch in job.batches(read_records(input_path, fields), batch_size):
                chosen = backends[turn % len(backends)]
                turn += 1
                pending.append((batch, pool.submit(chosen.embed_documents, [r.text for r in batch])))
                while len(pending) > concurrency:  # bounded: `concurrency` batches embedding, one more being read
                    _write(job, *pending.popleft())
            while pending:
                _write(job, *pending.popleft())
        except BaseException:
            for _, future in pending:
                future.cancel()
            raise
    return job.finish()


def _write(job: _Job, records: list[Record], future: Future[Embeddings]) -> None:
    vectors = future.result()
    job.store.write(records, vectors)
    job.written(len(records))
    # A job's log (no progress bar: stderr is not a terminal) says how far it got; logging at INFO shows it.
    logger.info("wrote %d texts (%d in all this run)", len(records), job.indexed)


def _show(show_progress: bool | None) -> bool:
    return sys.stderr.isatty() if show_progress is None else bool(show_progress)


# ---------------------------------------------------------------------------- Ray Data


class RayEmbedder:
    """The Ray Data actor: one ``E2RankModel`` per actor; checks rows, drops present ids, embeds the rest.

    Each batch in is a ``pyarrow.Table`` of input rows (with a ``path`` column); each batch out holds ``id``,
    ``text``, ``metadata`` (JSON), ``vector``, ``tokens`` (the batch's tokens, spread over its rows, for the
    driver's tokens/s) and ``fingerprint`` (which model embedded the row).
    """

    def __init__(
        self,
        model: str,
        model_kwargs: Mapping[str, Any],
        fields: InputFields,
        present: Any = frozenset(),
    ) -> None:
        from .model import E2RankModel

        self.model = E2RankModel.from_pretrained(model, **dict(model_kwargs))
        self.fields = fields
        if not isinstance(present, (set, frozenset)):  # an object reference: the ids the output holds, stored once
            present = require("ray", extra="ray").get(present)
        self.present = present

    def __call__(self, table: Any) -> dict[str, Any]:
        rows = table.to_pylist()
        records = []
        for row in rows:
            path = Path(str(row.pop("path", "input"))).name
            label = row.get(self.fields.id)
            where = f"{path} (record with id {label!r})" if label is not None else f"{path} (a record without an id)"
            record = record_from_row({k: v for k, v in row.items() if v is not None}, self.fields, where)
            if record.id not in self.present:
                records.append(record)
        before = self.model.stats()["tokens_embedded"]
        vectors = self.model.embed_documents([r.text for r in records])
        tokens = self.model.stats()["tokens_embedded"] - before
        spread = np.full(len(records), tokens // max(len(records), 1), dtype=np.int64)
        spread[: tokens - int(spread.sum())] += 1
        return {
            "id": np.array([r.id for r in records], dtype=object),
            "text": np.array([r.text for r in records], dtype=object),
            # "" for none: a column of nulls would come back from Ray as floats
            "metadata": np.array(["" if r.metadata is None else json.dumps(r.metadata) for r in records], object),
            "vector": vectors.reshape(len(records), self.model.dimension),
            "tokens": spread,
            "fingerprint": np.array([self.model.fingerprint] * len(records), dtype=object),
        }


def index_corpus_ray(
    input_path: str | os.PathLike[str],
    store: ParquetStore | ChromaStore,
    model: str,
    *,
    model_kwargs: Mapping[str, Any] | None = None,
    fields: InputFields | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    actors: int = 1,
    gpus_per_actor: float = 0,
    cpus_per_actor: float = 1,
    address: str | None = None,
    show_progress: bool | None = None,
) -> IndexSummary:
    """Embed the input on a Ray cluster: Ray Data reads it, an actor pool of ``E2RankModel`` embeds it.

    ``map_batches`` runs :class:`RayEmbedder` on ``actors`` actors (each with ``gpus_per_actor`` GPUs and
    ``cpus_per_actor`` CPUs); the ids the output already holds are dropped before embedding. The embedded
    batches stream back to this process (the driver), which writes them to ``store`` exactly as
    :func:`index_corpus` does: the same resumption, duplicate handling and atomic writes. A vector is 4 KiB
    (1024 float32), so one driver keeps up with many GPUs.

    Args:
        input_path: A JSON lines or Parquet file, or a directory of them, at the same path on the driver and on
            every node (a shared filesystem, for a cluster).
        store: Where the vectors go.
        model: Hub id or local directory each actor loads (from every node).
        model_kwargs: Passed to ``E2RankModel.from_pretrained`` in each actor (``device``, ``dtype``...).
        fields: Which input fields hold the id, text, title and metadata.
        batch_size: Rows per ``map_batches`` batch.
        actors: Size of the actor pool (one per GPU, or N on CPUs).
        gpus_per_actor: GPUs reserved by each actor (``0`` on CPUs).
        cpus_per_actor: CPUs reserved by each actor.
        address: A Ray cluster to connect to (``"auto"``, ``"ray://host:10001"``...); default: the Ray already
            initialised in this process, else a new local one.
        show_progress: A progress bar on stderr (default: when stderr is a terminal).

    Returns:
        What the run did (:class:`IndexSummary`).
    """
    ray = require("ray", extra="ray")
    require("ray.data", extra="ray")
    fields = fields or InputFields()
    batch_size = check_positive_int(batch_size, "batch_size")
    actors = check_positive_int(actors, "actors")
    files = [str(f.resolve()) for f in input_files(input_path)]
    kinds = {f.endswith(_PARQUET_SUFFIXES) for f in files}
    if len(kinds) > 1:
        raise E2RankIndexError(f"{input_path}: mixes Parquet and JSON lines files; Ray Data reads one format at once")
    kwargs = dict(model_kwargs or {})
    kwargs.setdefault("device", "cuda" if gpus_per_actor else "cpu")
    kwargs.setdefault("show_progress", False)
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    show = _show(show_progress)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # one bar: ours, with texts/s and tokens/s
    present = store.ids()
    if files[0].endswith(_PARQUET_SUFFIXES):
        count_records(input_path)  # a missing column fails here, naming it, before any actor starts
        dataset = ray.data.read_parquet(files, columns=fields.columns(), include_paths=True)
    else:
        dataset = ray.data.read_json(files, lines=True, include_paths=True)
    embedded = dataset.map_batches(
        RayEmbedder,
        fn_constructor_kwargs={"model": model, "model_kwargs": kwargs, "fields": fields, "present": ray.put(present)},
        compute=ray.data.ActorPoolStrategy(size=actors),
        batch_size=batch_size,
        batch_format="pyarrow",
        num_gpus=gpus_per_actor or None,
        num_cpus=cpus_per_actor,
    )
    total = count_records(input_path)
    job = _Job(store, present, None, show)  # no total: the actors drop present ids unseen by the bar
    bound = False
    try:
        for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
            if not len(batch["id"]):  # every row of the block was already present
                continue
            if not bound:
                fingerprint = str(batch["fingerprint"][0])
                store.bind({"model": model, "fingerprint": fingerprint, "dimension": batch["vector"].shape[1]})
                bound = True
            records = [
                Record(str(i), str(t), json.loads(m) if m else None, f"record with id {i!r}")
                for i, t, m in zip(batch["id"], batch["text"], batch["metadata"])
            ]
            keep = [n for n, r in enumerate(records) if job.admit(r)]
            if keep:
                store.write([records[n] for n in keep], np.asarray(batch["vector"][keep], dtype=np.float32))
            job.written(len(keep), int(batch["tokens"].sum()))
    except Exception as exc:
        cause = _ray_user_error(exc)
        if cause is not None:
            raise cause from None
        raise
    if total is not None:  # every record was indexed, a duplicate, or dropped by an actor as already present
        job.read, job.skipped = total, total - job.indexed - job.duplicates
    return job.finish()


def _ray_user_error(exc: BaseException) -> E2RankIndexError | None:
    """The E2RankIndexError an actor raised (it names the file and the record), out of Ray's wrappers.

    Ray Data re-raises a user error as ``RayTaskError(UserCodeException)`` whose text holds the actor's traceback;
    the original exception object does not cross back, so its message is read from that text.
    """
    marker = f"{E2RankIndexError.__name__}: "
    lines = [line for line in str(exc).splitlines() if marker in line]
    return E2RankIndexError(lines[-1].split(marker, 1)[1].strip()) if lines else None


# ---------------------------------------------------------------------------- e2rank index


@dataclass(frozen=True)
class IndexSettings:
    """One indexing job, as ``e2rank index`` runs it (its options map one to one: ``--id-field`` is ``id_field``).

    Attributes:
        input: A .jsonl, .jsonl.gz, .ndjson or .parquet file, or a directory of them.
        output: A Parquet output directory; or, instead, ``collection``.
        collection: A Chroma collection to create or extend, in ``chroma_dir`` or on ``chroma_host``.
        chroma_dir: The directory of an embedded Chroma database.
        chroma_host: Instead of ``chroma_dir``: the host of a Chroma server.
        chroma_port: The Chroma server's port.
        id_field: The input field holding each record's unique id.
        text_field: The input field holding the text to embed.
        title_field: An optional field embedded before the text as ``"title text"``.
        metadata_fields: Fields stored as metadata.
        model: The model embedding here or on Ray: a hub id, a local directory or ``tiny-random``.
        device: Where a local model runs (default: cuda when available).
        dtype: bfloat16, float16 or float32 (default: bfloat16 on a GPU).
        batch_size: Texts embedded and written together.
        max_batch_tokens: Tokens per forward pass, padding included (default: the model's).
        cache: A SQLite embedding cache file to fill (default: no cache).
        show_progress: Show a progress bar (default: on a terminal).
        server_urls: ``e2rank serve`` URLs to embed on instead, round-robin (API key from ``$E2RANK_API_KEY``).
        concurrency: Batches in flight with ``server_urls`` (default: two per server).
        timeout: Seconds per server request.
        ray: Embed on Ray Data with an actor pool instead.
        ray_address: The Ray cluster's address, e.g. ``auto`` (default: start a local Ray).
        actors: Model actors on Ray: one per GPU, or N on CPUs.
        gpus_per_actor: GPUs each actor reserves.
        cpus_per_actor: CPUs each actor reserves.
    """

    input: str
    output: str | None = None
    collection: str | None = None
    chroma_dir: str | None = None
    chroma_host: str | None = None
    chroma_port: int = 8000
    id_field: str = "id"
    text_field: str = "text"
    title_field: str | None = None
    metadata_fields: tuple[str, ...] = ()
    model: str = DEFAULT_MODEL
    device: str | None = None
    dtype: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    max_batch_tokens: int | None = None
    cache: str | None = None
    show_progress: bool | None = None
    server_urls: tuple[str, ...] = ()
    concurrency: int | None = None
    timeout: float = 300.0
    ray: bool = False
    ray_address: str | None = None
    actors: int = 1
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0

    def __post_init__(self) -> None:
        if self.ray and self.server_urls:
            raise E2RankIndexError("`ray` and `server_urls` are two ways to embed: choose one")
        if (self.output is None) == (self.collection is None):
            raise E2RankIndexError("give exactly one output: `output` (Parquet) or `collection` (Chroma)")
        if self.output is not None and (self.chroma_dir or self.chroma_host):
            raise E2RankIndexError("`chroma_dir` and `chroma_host` go with `collection`, not `output`")
        if self.collection is not None and not (self.chroma_dir or self.chroma_host):
            raise E2RankIndexError("`collection` needs `chroma_dir` (embedded Chroma) or `chroma_host` (a server)")
        for name in ("chroma_port", "batch_size", "actors", "concurrency", "max_batch_tokens"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), f"`{name}`")

    def check_installed(self) -> None:
        """Raise ``ImportError`` naming every extra this job needs, if one is missing (nothing is imported)."""
        extras = ["client"] if self.server_urls else ["ray"] if self.ray else ["model"]
        if self.collection is not None:
            extras.append("chroma")
        parquet_input = any(f.name.endswith(_PARQUET_SUFFIXES) for f in input_files(self.input))
        if not self.ray and (self.output is not None or parquet_input):  # ray brings pyarrow
            extras.append("parquet")
        check_extras(extras, "this indexing job")

    @property
    def fields(self) -> InputFields:
        """Which input fields hold what."""
        return InputFields(self.id_field, self.text_field, self.title_field, self.metadata_fields)


def run_index(settings: IndexSettings, load_model: Callable[..., Any] | None = None) -> IndexSummary:
    """Run one indexing job: open the output, choose the path (local, servers, Ray), run it; returns its summary.

    ``load_model(name, **kwargs)`` loads the local model (default: ``E2RankModel.from_pretrained``). A
    ``KeyboardInterrupt`` goes through, after the servers' clients are closed: what was written is complete.
    """
    s = settings
    s.check_installed()  # a missing input or extra fails before anything loads
    model_kwargs: dict[str, Any] = {"device": s.device, "dtype": s.dtype, "show_progress": False}
    # No cache file: no cache at all (each text is embedded once; an in-memory LRU would only cost hashing).
    model_kwargs["cache"] = s.cache if s.cache else False
    if s.max_batch_tokens is not None:
        model_kwargs["max_batch_tokens"] = s.max_batch_tokens
    show = False if s.show_progress is False else None
    stop: list[Callable[[], None]] = []
    try:
        if s.server_urls:
            clients = _clients(s.server_urls, s.timeout)
            stop.extend(client.close for client in clients)
            store = _open_store(s, lambda: clients[0])
            return index_corpus(
                s.input, store, clients, fields=s.fields, batch_size=s.batch_size,
                concurrency=s.concurrency or 2 * len(clients), show_progress=show,
            )  # fmt: skip
        if s.ray:
            from .checkpoints import TINY_RANDOM, tiny_random_checkpoint

            name = str(tiny_random_checkpoint()) if s.model == TINY_RANDOM else s.model
            local = {k: v for k, v in model_kwargs.items() if k != "device"}

            def driver_model() -> Any:  # Chroma's stored configuration needs a model object: load it once, on CPU
                from .model import shared_model

                return shared_model(name, **{**local, "device": "cpu", "cache": False})

            store = _open_store(s, driver_model)
            kwargs = {**local, **({"device": s.device} if s.device else {})}
            return index_corpus_ray(
                s.input, store, name, model_kwargs=kwargs, fields=s.fields, batch_size=s.batch_size,
                actors=s.actors, gpus_per_actor=s.gpus_per_actor, cpus_per_actor=s.cpus_per_actor,
                address=s.ray_address, show_progress=show,
            )  # fmt: skip
        if load_model is None:
            from .model import E2RankModel

            load_model = E2RankModel.from_pretrained
        model = load_model(s.model, **model_kwargs)
        store = _open_store(s, lambda: model)
        return index_corpus(s.input, store, model, fields=s.fields, batch_size=s.batch_size, show_progress=show)
    finally:
        for close in stop:
            close()


def _clients(urls: Sequence[str], timeout: float) -> list[Any]:
    client_module = require("e2rank_integrations.client", extra="client")
    api_key = os.environ.get(API_KEY_ENV) or None
    return [client_module.E2RankClient(url, api_key=api_key, timeout=timeout) for url in urls]


def _open_store(settings: IndexSettings, backend: Callable[[], Backend]) -> ParquetStore | ChromaStore:
    """The output the settings name; ``backend`` gives the model object Chroma's stored configuration describes."""
    if settings.collection is None:  # IndexSettings holds exactly one of output and collection
        return ParquetStore(str(settings.output))
    chroma = require("e2rank_integrations.chroma", extra="chroma")
    client = chroma.open_client(settings.chroma_dir, host=settings.chroma_host, port=settings.chroma_port)
    api_key_env = API_KEY_ENV if settings.server_urls and os.environ.get(API_KEY_ENV) else None
    function = chroma.E2RankEmbeddingFunction(backend(), api_key_env=api_key_env)
    return ChromaStore(client, settings.collection, function)
