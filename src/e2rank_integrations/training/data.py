"""Training data: slates from JSON lines or Parquet, checked line by line, grouped into batches, encoded for the model.

One line is one slate::

    {"query": "...", "document": ["passage", ...], "ranking": [2, 0, 1, ...], "source": "msmarco"}

``ranking`` is the teacher's order, best first, as indices into ``document``: 0-based, or 1-based as in the
authors' files (a permutation of 0..n-1 or of 1..n; the two cannot be confused). ``source`` is optional and picks
the instructions (see :data:`~e2rank_integrations.training.config.TASK_INSTRUCTIONS`). Instead of ``ranking`` a line
may grade its passages: ``"relevance"`` (non-negative integers) or ``"scores"`` (a teacher's numbers), higher is
better, ties allowed; RankNet then learns only the pairs of different grades, and InfoNCE's positive is a top-graded
passage. With ``ranking``, ``relevance`` only grades the evaluation; without either, the teacher's top 10 are the
relevant ones.

Slates of different lengths never share a batch: batches are formed within groups of equal source and slate
length (the authors' batches never mix sources either), so no padding passage is ever embedded.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._optional import require
from ..errors import E2RankIndexError, E2RankValueError, TrainingDataError
from ..indexing import input_files
from .config import DATA_FORMATS, Instructions, instructions_for

if TYPE_CHECKING:
    import torch

    from ..model import E2RankModel

__all__ = [
    "DATA_FORMATS",
    "Slate",
    "SlateCollator",
    "batch_tokens",
    "load_slates",
    "make_batches",
    "truncation_warnings",
]

TRUNCATION_WARN_SHARE = 0.5  # warn when a passage loses more than this share of its tokens to max_doc_tokens
RELEVANT_TOP = 10  # without "relevance", the teacher's top 10 are graded 10, 9, ..., 1 (nDCG@10 against the teacher)


@dataclass(frozen=True)
class Slate:
    """One training example: a query, its passages in first-stage order, and the teacher's order of them.

    Attributes:
        query: The query text.
        documents: The passages, in the order the first stage returned them.
        ranking: Indices into ``documents``, best first (0-based).
        source: The task name, or ``None``.
        line: The 1-based line (or row) of the file it came from (for messages).
        relevance: Graded relevance per passage, for evaluation.
        labels: The teacher's grades or scores per passage when it gave those rather than an order (higher is
            better, ties allowed); ``ranking`` is then the passages sorted by them (ties in data order).
        path: The file it came from (a shard, when the data is a directory), for messages.
    """

    query: str
    documents: tuple[str, ...]
    ranking: tuple[int, ...]
    source: str | None = None
    line: int = field(default=0, compare=False)  # line and path say where a slate was read, not what it is
    relevance: tuple[int, ...] | None = None
    labels: tuple[float, ...] | None = None
    path: str = field(default="", compare=False)

    @property
    def where(self) -> str:
        """``file:line``, as messages name a slate."""
        return f"{self.path}:{self.line}" if self.path else f"line {self.line}"

    def train_grades(self) -> tuple[float, ...]:
        """What RankNet compares, per passage: ``labels``, else ``n - teacher position`` (a total order)."""
        if self.labels is not None:
            return self.labels
        grades = [0.0] * len(self.documents)
        for position, index in enumerate(self.ranking):
            grades[index] = float(len(self.documents) - position)
        return tuple(grades)

    def grades(self) -> tuple[int, ...]:
        """Relevance per passage: ``relevance`` if given, else ``max(0, 10 - teacher position)``."""
        if self.relevance is not None:
            return self.relevance
        grades = [0] * len(self.documents)
        for position, index in enumerate(self.ranking):
            grades[index] = max(0, RELEVANT_TOP - position)
        return tuple(grades)


def load_slates(data: str | os.PathLike[str] | Iterable[Mapping[str, Any]], data_format: str = "slates") -> list[Slate]:
    r"""Read and check slates; raise :class:`TrainingDataError` naming the first bad line or row.

    ``data`` is a JSON-lines file (blank lines skipped; gzipped if it ends in ``.gz``), a Parquet file (``.parquet``,
    read in batches of rows; needs pyarrow), a directory of such files (``*.jsonl``, ``*.jsonl.gz``, ``*.ndjson``,
    ``*.parquet``, read in name order, as a dataset's shards), or any iterable of records such as a
    ``datasets.Dataset`` (rows numbered from 1). Other keys of a
    record are ignored. ``data_format`` converts other common layouts record by record (see :data:`DATA_FORMATS`).

    Example:
        >>> import json, tempfile
        >>> line = {"query": "q", "document": ["a", "b", "c"], "ranking": [2, 3, 1]}  # 1-based: c, a, b
        >>> with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        ...     _ = f.write(json.dumps(line) + "\n")
        >>> load_slates(f.name)[0].ranking
        (1, 2, 0)
        >>> load_slates([line])[0].ranking  # records in memory: a list, a datasets.Dataset...
        (1, 2, 0)
    """
    if data_format not in DATA_FORMATS:
        raise E2RankValueError(f"`data_format` must be one of {', '.join(DATA_FORMATS)}, got {data_format!r}")
    name = data_name(data)
    slates = []
    try:
        for file, number, record in _records(data):
            slates.append(_parse(record, file, number, data_format))
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingDataError(name, 0, f"cannot be read ({exc})") from exc
    except E2RankIndexError as exc:  # input_files found no data file in the directory
        raise TrainingDataError(name, 0, "a directory without any .jsonl, .jsonl.gz, .ndjson or .parquet file") from exc
    if not slates:
        raise TrainingDataError(name, 0, "empty file: no line holds a slate")
    return slates


def data_name(data: Any) -> str:
    """How messages and the model card name training data: its path, or the type of an in-memory dataset."""
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data)
    return f"<{type(data).__name__}>"


def _records(data: Any) -> Iterator[tuple[str, int, Any]]:
    """(name, 1-based line or row, record) of JSON lines (still JSON text), Parquet, a directory or an iterable."""
    if not isinstance(data, (str, os.PathLike)):
        name = data_name(data)
        for number, record in enumerate(data, start=1):
            yield name, number, record
        return
    # A directory is read as `e2rank index` reads one: its .jsonl(.gz)/.ndjson/.parquet files, sorted (HF shards).
    files = input_files(data) if os.path.isdir(data) else [data]
    for file in files:
        name = os.fspath(file)
        if name.endswith(".parquet"):
            try:
                reader = require("pyarrow.parquet", extra="parquet").ParquetFile(name)
            except ValueError as exc:  # pyarrow's ArrowInvalid: not Parquet (a traceback otherwise)
                raise TrainingDataError(name, 0, f"not a Parquet file ({exc})") from None
            number = 0
            for batch in reader.iter_batches(batch_size=1024):
                for record in batch.to_pylist():
                    number += 1
                    yield name, number, record
            continue
        with (gzip.open if name.endswith(".gz") else open)(name, "rt", encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                if text.strip():
                    yield name, number, text


def _texts(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _convert(record: dict[str, Any], data_format: str) -> dict[str, Any]:
    """A record of another layout as a slate record (its texts are checked afterwards, as any slate's)."""
    if data_format == "slates":
        return record

    def pick(*names: str) -> Any:
        for name in names:
            if record.get(name) is not None:  # None: a column other rows have (Parquet, datasets)
                return record[name]
        raise E2RankValueError(f"no {' or '.join(repr(n) for n in names)} ({data_format} format)")

    query = pick("query", "anchor")
    if data_format == "triples":
        pos, neg = [pick("positive", "pos")], [pick("negative", "neg")]
    else:
        pos, neg = _texts(pick("pos", "positive")), _texts(pick("neg", "negative"))
    converted: dict[str, Any] = {"query": query, "document": pos + neg, "source": record.get("source")}
    if data_format == "scored":
        pos_scores, neg_scores = _texts(pick("pos_scores")), _texts(pick("neg_scores"))
        if len(pos_scores) != len(pos) or len(neg_scores) != len(neg):
            raise E2RankValueError("'pos_scores' and 'neg_scores' must have one score per 'pos' and 'neg' passage")
        converted["scores"] = pos_scores + neg_scores
    else:
        converted["relevance"] = [1] * len(pos) + [0] * len(neg)
    return converted


def _parse(text: Any, path: str, number: int, data_format: str = "slates") -> Slate:
    def fail(message: str) -> TrainingDataError:
        return TrainingDataError(path, number, message)

    try:
        record: Any = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as exc:
        raise fail(f"not valid JSON ({exc.msg})") from None
    if isinstance(record, Mapping):
        record = dict(record)
    if not isinstance(record, dict):
        raise fail(f"expected a JSON object, got {type(record).__name__}")
    try:
        record = _convert(record, data_format)
    except ValueError as exc:
        raise fail(str(exc)) from None
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise fail("'query' must be a non-empty string")
    documents = record.get("document")
    if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
        raise fail("'document' must be a list of strings (the passages, in first-stage order)")
    if len(documents) < 2:
        raise fail(f"'document' has {len(documents)} passage(s); a slate needs at least 2 to rank")
    source = record.get("source")
    if source is not None and not isinstance(source, str):
        raise fail(f"'source' must be a string, got {type(source).__name__}")
    relevance = record.get("relevance")
    if relevance is not None and not (
        isinstance(relevance, list)
        and len(relevance) == len(documents)
        and all(isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in relevance)
    ):
        raise fail(f"'relevance' must be a list of {len(documents)} non-negative integers, one per passage")
    scores = record.get("scores")
    if scores is not None and not (
        isinstance(scores, list)
        and len(scores) == len(documents)
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in scores)
    ):
        raise fail(f"'scores' must be a list of {len(documents)} finite numbers, one per passage")
    labels = None
    if record.get("ranking") is not None:  # an order wins: relevance is then for evaluation only (None: absent,
        # as a column is in the rows of a Parquet file or a Dataset that lack it)
        ranking = _zero_based(record["ranking"], len(documents))
        if ranking is None:
            shown = json.dumps(record["ranking"])
            raise fail(
                f"'ranking' must be a permutation of 0..{len(documents) - 1} (or 1..{len(documents)}) over the "
                f"{len(documents)} passages of 'document', got {shown[:120]}"
            )
    elif relevance is not None or scores is not None:
        labels = tuple(float(x) for x in (relevance if relevance is not None else scores or []))
        if len(set(labels)) == 1:
            raise fail("every passage has the same grade: no passage is better than another to learn from")
        ranking = tuple(sorted(range(len(documents)), key=lambda i: -labels[i]))
    else:
        raise fail(
            "no 'ranking', 'relevance' or 'scores' (the teacher's order: indices into 'document', best first; or "
            "a grade or score per passage)"
        )
    return Slate(
        query=query,
        documents=tuple(documents),
        ranking=ranking,
        source=source,
        line=number,
        relevance=tuple(relevance) if relevance is not None else None,
        labels=labels,
        path=path,
    )


def _zero_based(ranking: Any, size: int) -> tuple[int, ...] | None:
    """The ranking as 0-based indices, or ``None`` when it is a permutation of neither 0..size-1 nor 1..size."""
    if not isinstance(ranking, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ranking):
        return None
    if sorted(ranking) == list(range(size)):
        return tuple(ranking)
    if sorted(ranking) == list(range(1, size + 1)):
        return tuple(i - 1 for i in ranking)
    return None


def make_batches(
    slates: Sequence[Slate], batch_size: int, seed: int, *, same_shape: bool = False, path: str = "training data"
) -> list[list[Slate]]:
    """Batches of up to ``batch_size`` slates of one source and one slate length, shuffled within each group.

    Args:
        slates: The training slates.
        batch_size: Slates per batch.
        seed: Seed of the shuffle (the batches are formed once; the trainer shuffles their order every epoch).
        same_shape: Every batch must have the same shape (gathering negatives across devices needs it): all
            slates must have one length, and each group's incomplete last batch is dropped, as the authors do.
        path: The file the slates came from, for error messages.

    Raises:
        TrainingDataError: With ``same_shape``, a slate whose length differs from the first one's.
    """
    if same_shape:
        size = len(slates[0].documents)
        for slate in slates:
            if len(slate.documents) != size:
                raise TrainingDataError(
                    slate.path or path,
                    slate.line,
                    f"{len(slate.documents)} passages where {slates[0].where} has {size}: gathering negatives "
                    "across devices needs slates of one length",
                )
    groups: dict[tuple[str | None, int], list[Slate]] = {}
    for slate in slates:
        groups.setdefault((slate.source, len(slate.documents)), []).append(slate)
    rng = random.Random(seed)
    batches = []
    for group in groups.values():
        members = list(group)
        rng.shuffle(members)
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            if len(chunk) == batch_size or not same_shape:
                batches.append(chunk)
    return batches


def truncation_warnings(
    encoder: E2RankModel,
    slates: Sequence[Slate],
    *,
    max_query_tokens: int,
    max_doc_tokens: int,
    instructions: Instructions | None = None,
) -> list[str]:
    """What the token limits cut away from the training data, as warning lines (none when nothing matters is cut).

    A query is cut from its end (``<|endoftext|>`` kept), so a limit that the instruction alone fills removes the
    query text entirely; a passage losing more than :data:`TRUNCATION_WARN_SHARE` of its tokens is counted too.
    """
    prompts = encoder.prompts
    lines = []
    cut, emptied, first = 0, 0, None
    for slate in slates:
        instruction = instructions_for(slate.source, prompts, instructions)[0]
        text, bare = prompts.query(slate.query, instruction), prompts.query("", instruction)
        full, prefix = encoder.count_tokens([text, bare])
        if full > max_query_tokens:
            cut += 1
            first = first or slate.where
            if prefix >= max_query_tokens:
                emptied += 1
    if emptied:
        lines.append(
            f"max_query_tokens={max_query_tokens} removes the query text entirely from {emptied} of {len(slates)} "
            "queries: the instruction and <|endoftext|> alone fill it, so the model sees only the instruction"
        )
    elif cut:
        lines.append(f"max_query_tokens={max_query_tokens} cuts {cut} of {len(slates)} queries (first: {first})")
    documents = [(slate.where, d) for slate in slates for d in slate.documents]
    counts = encoder.count_tokens([prompts.document(d) for _, d in documents])
    over = [line for (line, _), n in zip(documents, counts) if n - max_doc_tokens > TRUNCATION_WARN_SHARE * n]
    if over:
        lines.append(
            f"max_doc_tokens={max_doc_tokens} cuts more than {TRUNCATION_WARN_SHARE:.0%} of the tokens of "
            f"{len(over)} of {len(documents)} passages (first: {over[0]})"
        )
    return lines


class SlateCollator:
    """Turns a batch of slates into model inputs exactly as :class:`~e2rank_integrations.E2RankModel` encodes.

    Queries are formatted by the model's :class:`~e2rank_integrations.PromptFormat` with their source's
    instruction, passages as ``text<|endoftext|>``, and each slate's listwise prompt is built by
    :meth:`E2RankModel.listwise_prompt` from its passages in data order (the first ``num_prompt_docs``), so it is
    the very prompt a rerank of that slate would embed. Tokenising, cutting (``<|endoftext|>`` kept last) and left
    padding are the model's own.

    Args:
        encoder: An :class:`E2RankModel` around the model being trained (its tokenizer and prompt format are used).
        max_query_tokens: Longest query in tokens.
        max_doc_tokens: Longest passage in tokens.
        max_prompt_tokens: Token budget of a listwise prompt.
        num_prompt_docs: Passages put in a listwise prompt.
        instructions: source -> (query, rerank) instruction (see ``TrainConfig.task_instructions``); default the
            authors' table and the format's defaults.
    """

    def __init__(
        self,
        encoder: E2RankModel,
        *,
        max_query_tokens: int = 512,
        max_doc_tokens: int = 1024,
        max_prompt_tokens: int = 32768,
        num_prompt_docs: int = 20,
        instructions: Instructions | None = None,
    ) -> None:
        self.encoder = encoder
        self.instructions = instructions
        self.max_query_tokens = max_query_tokens
        self.max_doc_tokens = max_doc_tokens
        self.max_prompt_tokens = max_prompt_tokens
        self.num_prompt_docs = num_prompt_docs

    def __call__(self, items: Sequence[Sequence[Slate] | Slate]) -> dict[str, Any]:
        """Encode slates (or lists of slates, as the trainer's batches come) into a batch of tensors."""
        torch = require("torch", extra="train")
        slates = [s for item in items for s in ([item] if isinstance(item, Slate) else item)]
        size = len(slates[0].documents)
        for slate in slates:
            if len(slate.documents) != size:
                raise E2RankValueError(
                    f"slates of unequal length in one batch ({slates[0].where}: {size} passages, "
                    f"{slate.where}: {len(slate.documents)}); form batches with make_batches"
                )
        encoder, prompts = self.encoder, self.encoder.prompts
        queries, prompt_texts = [], []
        for slate in slates:
            query_instruction, rerank_instruction = instructions_for(slate.source, prompts, self.instructions)
            queries.append(prompts.query(slate.query, query_instruction))
            prompt_texts.append(
                encoder.listwise_prompt(
                    slate.query,
                    slate.documents,
                    instruction=rerank_instruction,
                    num_prompt_docs=self.num_prompt_docs,
                    max_prompt_tokens=self.max_prompt_tokens,
                )
            )
        documents = [prompts.document(d) for slate in slates for d in slate.documents]
        return {
            "query": encoder.model_inputs(queries, max_length=self.max_query_tokens),
            "document": encoder.model_inputs(documents, max_length=self.max_doc_tokens),
            "prompt": encoder.model_inputs(prompt_texts, max_length=self.max_prompt_tokens),
            "ranking": torch.tensor([slate.ranking for slate in slates], dtype=torch.long),
            "grades": torch.tensor([slate.train_grades() for slate in slates], dtype=torch.float32),
        }


def batch_tokens(batch: dict[str, dict[str, torch.Tensor]]) -> int:
    """Real (unpadded) tokens in a collated batch: queries, passages and prompts."""
    total = 0
    for key in ("query", "document", "prompt"):
        inputs = batch[key]
        mask = inputs.get("attention_mask")
        total += int(mask.sum()) if mask is not None else inputs["input_ids"].numel()
    return total
