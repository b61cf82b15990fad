"""What a training run is told: its settings, prompt formats and task instructions. Pure Python, no torch.

The defaults are the authors' (``scripts/train_e2rank_0.6b.sh`` and ``src/arguments.py`` of Alibaba-NLP/E2Rank),
except the prompt format: see :data:`PROMPT_FORMATS`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import E2RankValueError
from ..prompts import EOS, TRAINING_LISTWISE_TEMPLATE, PromptFormat

__all__ = [
    "AUTHORS_DEFAULT_INSTRUCTIONS",
    "DATA_FORMATS",
    "PROMPT_FORMATS",
    "TASK_INSTRUCTIONS",
    "TrainConfig",
    "instructions_for",
    "load_instructions",
]

Instructions = Mapping[str | None, tuple[str, str]]
"""source -> (query instruction, rerank instruction); the key ``None`` is for every source not listed."""

# The authors' (query instruction, rerank instruction) per data "source", as their training data used them
# (src/data.py), typos included: the released checkpoints were trained on these exact strings. Rerank instructions
# carry the colon that the authors' template adds after them (the package's templates expect it in the
# instruction). One fix: their "nq" entry lacks a comma, which glues both strings into the query instruction and
# leaves the rerank instruction a single character; here it is the pair they meant.
_RERANK = "rerank the documents that answer the"
TASK_INSTRUCTIONS: dict[str, tuple[str, str]] = {
    "msmarco": (
        "Given a web search query, retrieval the documents that answer the query",
        f"Given a web search query and some relevant documents, {_RERANK} query:",
    ),
    "nq": (
        "Given a question, retrieval Wikipedia documents that answer the question",
        f"Given a question and some relevant documents, {_RERANK} question:",
    ),
    "hotpotqa": (
        "Given a multi-hop question, retrieval the documents that can help answer the question",
        f"Given a multi-hop question and some relevant documents, {_RERANK} question:",
    ),
    "trivia": (
        "Retrieval Wikipedia documents that answer the question",
        f"Given a question and some relevant Wikipedia documents, {_RERANK} question:",
    ),
    "t2ranking": (
        "Given a Chinese search query, retrieval the documents that answer the query",
        f"Given a Chinese search query and some relevant documents, {_RERANK} query:",
    ),
    "dureader": (
        "Given a Chinese search query,r etrieval the documents that answer the query",
        f"Given a Chinese search query and some relevant documents, {_RERANK} query:",
    ),
    "mmarco_chinese": (
        "Given a Chinese web search query, retrieval the documents that answer the query",
        f"Given a Chinese web search query and some relevant documents, {_RERANK} query:",
    ),
    "cMedQAv2": (
        "Given a Chinese medical question, retrieval the documents that answer the question",
        f"Given a Chinese medical question and some relevant documents, {_RERANK} question:",
    ),
    "colliee": (
        "Given a legal case, retrieval the relevant legal articles that can help analyze the case",
        "Given a legal case and some relevant legal articles, rerank the legal articles that can help analyze the "
        "case:",
    ),
    "law_gpt": (
        "Given a Chinese legal case, retrieval the relevant legal articles that can help analyze the case",
        "Given a Chinese legal case and some relevant legal articles, rerank the legal articles that can help "
        "analyze the case:",
    ),
    "miracl": (
        "Given a question, retrieval Wikipedia documents that answer the question",
        f"Given a question and some relevant Wikipedia documents, {_RERANK} question:",
    ),
}
"""Query and rerank instructions for the ``source`` names of the authors' training data."""

AUTHORS_DEFAULT_INSTRUCTIONS = (
    "Given a query, retrieval the documents that are relevant to the query",
    "Given a query and some relevant documents, rerank the documents that are the most relevant to the query:",
)
"""The authors' instructions for a source not in their table."""

DATA_FORMATS = {
    "slates": "{query, document: [...], ranking | relevance | scores, source?}: this module's format",
    "triples": "{query|anchor, positive|pos, negative|neg} (one text each): relevance 1 and 0",
    "pairs-with-negatives": "{query, pos: [...], neg: [...]} (FlagEmbedding): relevance 1 per pos, 0 per neg",
    "scored": "{query, pos, neg, pos_scores, neg_scores} (FlagEmbedding with teacher scores): scores",
}
"""The line layouts ``load_slates`` (``data_format``) reads, and what each becomes for training."""


PROMPT_FORMATS: dict[str, PromptFormat] = {
    # What E2RankModel infers with by default (the authors' evaluation code): train as you will rerank.
    "package": PromptFormat(),
    # The authors' training data: "Query: " for "Search Query: ", <|endoftext|> inside the chat message, and
    # their default instructions for a line without a known source. Rerank with the same PromptFormat after.
    "authors-training": PromptFormat(
        query_instruction=AUTHORS_DEFAULT_INSTRUCTIONS[0],
        rerank_instruction=AUTHORS_DEFAULT_INSTRUCTIONS[1],
        listwise_template=TRAINING_LISTWISE_TEMPLATE,
        prompt_suffix=EOS,
    ),
}
"""The prompt formats ``e2rank train --prompt-format`` accepts."""


def instructions_for(source: str | None, prompts: PromptFormat, table: Instructions | None = None) -> tuple[str, str]:
    """(query instruction, rerank instruction) for a data source.

    From ``table`` if given (see :meth:`TrainConfig.task_instructions`), else the authors' table, else the format's
    defaults.
    """
    if table is not None:
        if source in table:
            return table[source]
        if None in table:
            return table[None]
    if source in TASK_INSTRUCTIONS:
        return TASK_INSTRUCTIONS[source]
    return prompts.query_instruction, prompts.rerank_instruction


def load_instructions(path: str) -> dict[str | None, tuple[str, str]]:
    """Read per-source instructions: a JSON object ``{source: text}`` or ``{source: {"query": q, "rerank": r}}``.

    A plain text is used for both the query and the listwise prompt. The key ``"*"`` stands for every source not
    listed (and lines without a source).

    Raises:
        E2RankValueError: The file cannot be read or is not of that shape (the message names ``instructions``).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            data: Any = json.load(handle)
    except (OSError, ValueError) as exc:
        raise E2RankValueError(f"`instructions`: cannot read {path} as JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise E2RankValueError(f"`instructions`: {path} must hold a JSON object of source -> instruction")
    table: dict[str | None, tuple[str, str]] = {}
    for source, value in data.items():
        if isinstance(value, dict) and set(value) == {"query", "rerank"}:
            value = (value["query"], value["rerank"])
        elif isinstance(value, str):
            value = (value, value)
        if not (isinstance(value, tuple) and all(isinstance(v, str) and v.strip() for v in value)):
            raise E2RankValueError(
                f'`instructions`: {path}: {source!r} must be a non-empty text or {{"query": ..., "rerank": ...}}'
            )
        table[None if source == "*" else source] = value
    return table


@dataclass
class TrainConfig:
    """Every setting of a training run; ``e2rank train`` options map one to one (``--max-steps`` is ``max_steps``).

    Attributes:
        model: Base model: a hub id or a local directory of an embedding model (E2Rank, Qwen3-Embedding...).
        data: Training data: a JSON-lines or Parquet file of ``{"query", "document": [...], "ranking": [...],
            "source"?}`` records, or (from Python) any iterable of such records, e.g. a ``datasets.Dataset``.
        data_format: How the lines of ``data`` are laid out: a key of :data:`DATA_FORMATS`.
        output: Directory for checkpoints and the final model.
        epochs: Passes over the data (a fraction stops part way).
        max_steps: Stop after this many optimizer steps (overrides ``epochs``).
        lr: Peak learning rate (linear schedule after warm-up).
        warmup_ratio: Share of the steps spent warming up.
        batch_size: Slates per device per step.
        grad_accum: Steps accumulated per optimizer update.
        temperature: InfoNCE temperature.
        embedding_weight: Weight of the InfoNCE loss.
        ranknet_weight: Weight of the RankNet loss.
        ranknet_scale: Multiplies ``cos(prompt, passage)`` before RankNet.
        negatives_cross_device: Use every device's passages as InfoNCE negatives; a step then equals one process
            on the combined batch.
        authors_cross_device_scale: With ``negatives_cross_device``, keep the authors' scaling instead: the
            InfoNCE gradient divided by the number of processes (as ``embedding_weight / world size``).
        num_prompt_docs: Passages of a slate put in its listwise prompt (as at inference).
        max_query_tokens: Longest query in tokens.
        max_doc_tokens: Longest passage in tokens.
        max_prompt_tokens: Token budget of a listwise prompt (its passages are cut evenly to fit).
        prompt_format: A key of :data:`PROMPT_FORMATS`.
        instruction: One task description for every slate, used for the query and to open the listwise prompt
            (instead of the authors' per-source ones); rerank with ``instruction=`` the same text.
        instructions: A JSON file of per-source instructions (see :func:`load_instructions`); its entries win over
            ``instruction`` for their sources.
        lora_r: LoRA rank; ``None`` trains every weight.
        lora_alpha: LoRA alpha; default ``2 * lora_r`` (the authors' 16 for 8).
        bf16: Mixed precision in bfloat16.
        gradient_checkpointing: Recompute activations in the backward pass to save memory.
        eval_data: Held-out slates (a file or records, as ``data``) scored with nDCG@10 before and after training.
        eval_data_format: How the lines of ``eval_data`` are laid out; ``None``: as ``data`` (``data_format``).
        eval_steps: Also rerank ``eval_data`` every this many steps, saving a checkpoint each time (instead of every
            ``save_steps``); the one with the best nDCG@10 is what ends in ``output``.
        early_stopping_patience: With ``eval_steps``, stop after this many evaluations without a better nDCG@10.
        report_to: Where the Trainer reports metrics: ``none``, or integrations such as ``tensorboard``,
            ``wandb`` (comma-separated); each needs its package installed.
        resume: Continue from the last checkpoint in ``output``.
        save_steps: Save a checkpoint every this many steps.
        logging_steps: Log the losses every this many steps.
        seed: Seed of the batches, the weights' initialisation (LoRA) and the data order.
        hf_args: Extra ``transformers.TrainingArguments`` as ``name=value`` strings (``deepspeed=ds.json``...).
    """

    model: str
    data: str | Iterable[Mapping[str, Any]]
    output: str
    data_format: str = "slates"
    epochs: float = 1.0
    max_steps: int | None = None
    lr: float = 5e-6
    warmup_ratio: float = 0.03
    batch_size: int = 8
    grad_accum: int = 2
    temperature: float = 0.03
    embedding_weight: float = 1.0
    ranknet_weight: float = 2.0
    ranknet_scale: float = 10.0
    negatives_cross_device: bool = False
    authors_cross_device_scale: bool = False
    num_prompt_docs: int = 20
    max_query_tokens: int = 512
    max_doc_tokens: int = 1024
    max_prompt_tokens: int = 32768
    prompt_format: str = "package"
    instruction: str | None = None
    instructions: str | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    bf16: bool = False
    gradient_checkpointing: bool = False
    eval_data: str | Iterable[Mapping[str, Any]] | None = None
    eval_data_format: str | None = None
    eval_steps: int | None = None
    early_stopping_patience: int | None = None
    report_to: str = "none"
    resume: bool = False
    save_steps: int = 500
    logging_steps: int = 10
    seed: int = 42
    hf_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        counts = ["batch_size", "grad_accum", "num_prompt_docs", "save_steps", "logging_steps", "max_query_tokens"]
        counts += ["max_doc_tokens", "max_prompt_tokens"]
        optional = ["max_steps", "lora_r", "eval_steps", "early_stopping_patience"]  # None: unset
        for name in counts + [n for n in optional if getattr(self, n) is not None]:
            if getattr(self, name) < 1:
                raise E2RankValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "temperature", "epochs"):
            if not getattr(self, name) > 0:
                raise E2RankValueError(f"`{name}` must be > 0, got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio < 1:
            raise E2RankValueError(f"`warmup_ratio` must be in [0, 1), got {self.warmup_ratio}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise E2RankValueError(
                f"`prompt_format` must be one of {', '.join(PROMPT_FORMATS)}, got {self.prompt_format!r}"
            )
        if self.eval_steps is not None and self.eval_data is None:
            raise E2RankValueError("`eval_steps` needs `eval_data`: the slates to evaluate on")
        if self.early_stopping_patience is not None and self.eval_steps is None:
            raise E2RankValueError("`early_stopping_patience` needs `eval_steps` (and `eval_data`)")
        for name in ("data_format", "eval_data_format"):
            value = getattr(self, name)
            if value not in DATA_FORMATS and (value is not None or name == "data_format"):
                raise E2RankValueError(f"`{name}` must be one of {', '.join(DATA_FORMATS)}, got {value!r}")
        if self.instruction is not None and not self.instruction.strip():
            raise E2RankValueError("`instruction` must be a non-empty text")
        for item in self.hf_args:
            if "=" not in item:
                raise E2RankValueError(f"`hf_args` items are name=value, got {item!r}")

    def task_instructions(self) -> dict[str | None, tuple[str, str]]:
        """The (query, rerank) instruction per source of this run; the key ``None`` for every other source.

        ``instructions`` (the file) first, then ``instruction``, then the authors' table and the format's defaults.
        """
        prompts = self.prompts
        if self.instruction is None:
            table: dict[str | None, tuple[str, str]] = {}
            table.update(TASK_INSTRUCTIONS)
            table[None] = (prompts.query_instruction, prompts.rerank_instruction)
        else:
            table = {None: (self.instruction, self.instruction)}
        if self.instructions is not None:
            table.update(load_instructions(self.instructions))
        return table

    @property
    def prompts(self) -> PromptFormat:
        """The :class:`PromptFormat` named by ``prompt_format``."""
        return PROMPT_FORMATS[self.prompt_format]
