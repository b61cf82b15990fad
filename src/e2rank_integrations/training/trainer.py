"""Fine-tune an embedding model into an E2Rank reranker on ``transformers.Trainer``.

The Trainer brings ``torchrun``/``accelerate``, DeepSpeed and FSDP; this module adds only the objective
(:mod:`.losses`), the encoding (the one :class:`~e2rank_integrations.E2RankModel` infers with) and the all-gather of
negatives.

Where this follows the authors' code (Alibaba-NLP/E2Rank ``src/run.py``, ``src/modeling.py``, ``src/data.py``) and
where it differs, on purpose:

- Same: the loss (InfoNCE at 0.03 + 2.0 x RankNet on 10 x cosine over every teacher-ordered pair), the layout of
  in-batch negatives and of their gather across devices, last-token pooling with left padding, L2 normalisation,
  the hyper-parameters (lr 5e-6, linear schedule, 3% warm-up, 1 epoch, batch 8, accumulation 2, query 512 /
  passage 1,024 / prompt 32,768 tokens), LoRA's defaults (alpha 2r, dropout 0.05, q/k/v/o projections).
- Prompt format: by default the one the package infers with (the authors' evaluation code), so a model is trained
  on the prompt it will rerank with; ``prompt_format="authors-training"`` selects theirs (``Query:``,
  ``<|endoftext|>`` inside the chat message). The tests use the default, the format every user gets.
- Prompt passages: the first ``num_prompt_docs`` of the slate, each cut to 1,024 words, and the prompt cut evenly
  to its token budget, exactly as a rerank builds it; the authors put every passage in, uncut, and cut the prompt's
  end at 32,768 tokens.
- Truncation keeps ``<|endoftext|>`` last (the authors' tokenizer call cuts it off); positions count from each
  text's first real token, as inference does (the authors let left padding shift them).
- Batches never mix sources or slate lengths (the authors arrange batches by source, but the Trainer's random
  sampler then reshuffles their examples); a group's last, smaller batch is kept unless negatives are gathered
  across devices, where every batch must have the same shape and incomplete ones are dropped, as the authors do.
- ``negatives_cross_device`` on one process is the identity (the authors raise an error); on N processes the InfoNCE
  gradient is multiplied by N, so a step equals one process on the combined batch (the authors' is 1/N of that;
  ``authors_cross_device_scale`` keeps it).
- Launched as several processes without CUDA, the Trainer runs on gloo (``use_cpu``); a launch that would not make
  one distributed run is refused.
- The saved directory is a plain checkpoint (LoRA merged) with the tokenizer, its chat template and a model card.
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO, cast

from .._optional import require
from ..errors import E2RankValueError, TrainingDataError
from ..evaluation import EvalReport, evaluate, rerank_run
from ..model import E2RankModel, no_progress_bars, pool_last_token
from .config import Instructions, TrainConfig, instructions_for
from .data import Slate, SlateCollator, data_name, load_slates, make_batches, truncation_warnings
from .losses import E2RankLoss, e2rank_loss, gather_across_devices

for _module in ("torch", "accelerate", "transformers"):  # a missing one fails here, naming the extra
    require(_module, extra="train")

import torch  # noqa: E402
import transformers  # noqa: E402

__all__ = [
    "E2RankTrainer",
    "Objective",
    "TrainResult",
    "build_trainer",
    "evaluate_slates",
    "latest_checkpoint",
    "train",
    "training_arguments",
]

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
# Set by train() from its TrainConfig; overriding them through hf_args would break what train() relies on.
_RESERVED_HF_ARGS = {"output_dir", "per_device_train_batch_size", "remove_unused_columns"}
_CONFIG_DEFAULTS: dict[str, Any] = {item.name: item.default for item in fields(TrainConfig)}


@dataclass(frozen=True)
class Objective:
    """The loss settings; the defaults are :class:`TrainConfig`'s (the authors' values).

    Attributes:
        temperature: InfoNCE temperature.
        embedding_weight: Weight of the InfoNCE loss.
        ranknet_weight: Weight of the RankNet loss.
        ranknet_scale: Multiplies ``cos(prompt, passage)`` before RankNet.
        negatives_cross_device: Gather every device's queries and passages for InfoNCE.
        authors_cross_device_scale: With ``negatives_cross_device``, keep the authors' InfoNCE gradient, which is
            the gathered batch's divided by the number of processes; by default it is multiplied back (as Tevatron
            does), so a step equals one process on the combined batch.
    """

    temperature: float = _CONFIG_DEFAULTS["temperature"]
    embedding_weight: float = _CONFIG_DEFAULTS["embedding_weight"]
    ranknet_weight: float = _CONFIG_DEFAULTS["ranknet_weight"]
    ranknet_scale: float = _CONFIG_DEFAULTS["ranknet_scale"]
    negatives_cross_device: bool = _CONFIG_DEFAULTS["negatives_cross_device"]
    authors_cross_device_scale: bool = _CONFIG_DEFAULTS["authors_cross_device_scale"]


class E2RankTrainer(transformers.Trainer):  # type: ignore[misc,unused-ignore]
    """A ``transformers.Trainer`` whose loss is E2Rank's.

    Give it a model, a list of batches of slates (:func:`~.data.make_batches`) as ``train_dataset`` with
    ``per_device_train_batch_size=1`` (the trainer then shuffles the batches, never their contents) and a
    :class:`~.data.SlateCollator`. Logs ``embedding_loss`` and ``ranking_loss`` (unweighted, averaged over the
    steps since the last log and over devices) next to the Trainer's ``loss`` (the weighted total).

    Example:
        >>> trainer = E2RankTrainer(  # doctest: +SKIP
        ...     model=encoder.model,
        ...     args=transformers.TrainingArguments("out", per_device_train_batch_size=1, remove_unused_columns=False),
        ...     train_dataset=make_batches(slates, batch_size=8, seed=0),
        ...     data_collator=SlateCollator(encoder),
        ...     objective=Objective(),
        ... )
    """

    objective: Objective

    def __init__(
        self,
        *args: Any,
        objective: Objective | None = None,
        eval_slates: Sequence[Slate] | None = None,
        encoder: E2RankModel | None = None,
        num_prompt_docs: int = 20,
        instructions: Instructions | None = None,
        **kwargs: Any,
    ) -> None:
        if eval_slates is not None:
            kwargs.setdefault("eval_dataset", list(eval_slates))  # the Trainer wants one; evaluate() reranks them
        super().__init__(*args, **kwargs)
        self.objective = objective or Objective()
        self.eval_slates = eval_slates
        self.encoder = encoder
        self.eval_options: dict[str, Any] = {"num_prompt_docs": num_prompt_docs, "instructions": instructions}
        # compute_loss returns a per-batch mean: the Trainer must divide it by the accumulation steps. It does
        # that only for models that take no loss kwargs, and Qwen3Model.forward takes **kwargs (on 4.51 the
        # gradient would otherwise be grad_accum times too large).
        self.model_accepts_loss_kwargs = False
        self._parts: list[Any] = []
        items = self.train_dataset if isinstance(self.train_dataset, Sequence) else []
        self._slates_per_item = sum(len(b) for b in items) / len(items) if items else 1.0

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        q = pool_last_token(model, inputs["query"])
        d = pool_last_token(model, inputs["document"])
        prompt = pool_last_token(model, inputs["prompt"])
        objective = self.objective
        gather = objective.negatives_cross_device and self.args.world_size > 1
        loss: E2RankLoss = e2rank_loss(
            q,
            d,
            prompt,
            inputs["ranking"],
            grades=inputs.get("grades"),
            temperature=objective.temperature,
            ranknet_scale=objective.ranknet_scale,
            embedding_weight=objective.embedding_weight,
            ranknet_weight=objective.ranknet_weight,
            gather=gather_across_devices if gather else None,
            # Each process back-propagates the gathered InfoNCE through its own rows only, and the data-parallel
            # wrapper averages the gradients over processes: that is the combined batch's gradient / world size.
            embedding_grad_scale=self.args.world_size if gather and not objective.authors_cross_device_scale else 1,
        )
        if model.training:
            self._parts.append(torch.stack([loss.embedding.detach(), loss.ranking.detach()]))
        if return_outputs:
            return loss.total, {"embedding_loss": loss.embedding, "ranking_loss": loss.ranking}
        return loss.total

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """With ``eval_slates`` (and ``encoder``): nDCG@10 and the other rerank metrics of the model being trained.

        Reranks every evaluation slate with the current weights (each process alike, no collective calls), logs
        ``eval_nDCG@10``... and lets callbacks (early stopping, best checkpoint) see them.
        """
        if self.eval_slates is None or self.encoder is None:
            scores: dict[str, float] = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            return scores
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        current = E2RankModel(model, self.encoder.tokenizer, cache=False, prompts=self.encoder.prompts)
        report = evaluate_slates(current, self.eval_slates, **self.eval_options)
        model.train(was_training)
        metrics = {f"{metric_key_prefix}_{name}": value for name, value in report.after.items()}
        self.log(metrics)
        # the lint env has no transformers, so mypy sees Trainer as Any and cannot type its attribute
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)  # type: ignore[has-type,unused-ignore]
        return metrics

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs and self._parts:
            mean = self.accelerator.reduce(torch.stack(self._parts).mean(dim=0), reduction="mean")
            logs = {**logs, "embedding_loss": round(float(mean[0]), 4), "ranking_loss": round(float(mean[1]), 4)}
            self._parts = []
        if "train_samples_per_second" in logs:  # the Trainer counts dataset items, and an item is a batch of slates
            # in place: the Trainer returns this very dict as its train() metrics, which should say the same
            logs["train_samples_per_second"] = round(logs["train_samples_per_second"] * self._slates_per_item, 3)
        super().log(logs, *args, **kwargs)


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes:
        output_dir: Where the model was saved (load it with ``E2RankModel.from_pretrained``).
        model: The trained model in memory, as an :class:`E2RankModel` (the same weights as the saved ones).
        metrics: The Trainer's final metrics (``train_loss``, ``train_runtime``...).
        eval_first_stage: nDCG@10 (%) of the evaluation slates in their data order, when ``eval_data`` was given.
        eval_before: Evaluation of the base model's rerank.
        eval_after: Evaluation of the trained model's rerank (loaded back from ``output_dir``).
    """

    output_dir: Path
    model: E2RankModel
    metrics: dict[str, float] = field(default_factory=dict)
    eval_first_stage: float | None = None
    eval_before: EvalReport | None = None
    eval_after: EvalReport | None = None


def evaluate_slates(
    model: E2RankModel,
    slates: Sequence[Slate],
    *,
    num_prompt_docs: int = 20,
    instructions: Instructions | None = None,
) -> EvalReport:
    """Rerank each slate's passages (given in first-stage order) and score with the package's evaluation code.

    Relevance is each slate's ``relevance`` if given, else the teacher's top 10 graded 10..1 (nDCG@10 then says
    how well the model reproduces the teacher's top 10). Each slate is reranked with its source's instruction.
    ``report.before`` is the data order, ``report.after`` the rerank.
    """
    corpus: dict[str, str] = {}
    queries: dict[str, str] = {}
    first_stage: dict[str, dict[str, float]] = {}
    qrels: dict[str, dict[str, int]] = {}
    by_instruction: dict[str, list[str]] = {}
    for number, slate in enumerate(slates):
        qid = str(number)
        queries[qid] = slate.query
        ids = [f"{qid}/{j}" for j in range(len(slate.documents))]
        corpus.update(zip(ids, slate.documents))
        first_stage[qid] = {doc: float(len(ids) - j) for j, doc in enumerate(ids)}
        qrels[qid] = dict(zip(ids, slate.grades()))
        by_instruction.setdefault(instructions_for(slate.source, model.prompts, instructions)[1], []).append(qid)
    k = max(len(s.documents) for s in slates)
    reranked: dict[str, dict[str, float]] = {}
    for instruction, qids in by_instruction.items():
        group = {q: queries[q] for q in qids}
        reranked.update(
            rerank_run(
                model,
                corpus,
                group,
                first_stage,
                k=k,
                instruction=instruction,
                num_prompt_docs=num_prompt_docs,
            )
        )
    return evaluate(qrels, first_stage, reranked, k=k)


def training_arguments(config: TrainConfig) -> Any:
    """The ``transformers.TrainingArguments`` for a config (``hf_args`` applied last)."""
    fields = transformers.TrainingArguments.__dataclass_fields__
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    values: dict[str, Any] = {
        "output_dir": config.output,
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps or -1,
        "learning_rate": config.lr,
        "lr_scheduler_type": "linear",
        "per_device_train_batch_size": 1,  # a dataset item is a whole batch of config.batch_size slates
        "gradient_accumulation_steps": config.grad_accum,
        "bf16": config.bf16,
        # transformers 5.x renamed gradient_checkpointing to activation_checkpointing (the old name warns)
        checkpointing: config.gradient_checkpointing,
        f"{checkpointing}_kwargs": {"use_reentrant": False},  # three forward passes share one backward
        "logging_steps": config.logging_steps,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "seed": config.seed,
        "remove_unused_columns": False,  # the collator's keys are not the model's forward arguments
        "dataloader_pin_memory": torch.cuda.is_available(),  # pinning speeds copies to a GPU; on CPU torch warns
        "report_to": [name.strip() for name in config.report_to.split(",") if name.strip()] or "none",
        "ddp_find_unused_parameters": False,  # every parameter takes part in the loss (DDP skips a graph walk)
        # transformers 5 folded warmup_ratio into warmup_steps (a float below 1 is a ratio)
        ("warmup_ratio" if "warmup_ratio" in fields else "warmup_steps"): config.warmup_ratio,
    }
    if config.eval_steps is not None:
        # evaluate() reranks the eval slates; the best checkpoint by nDCG@10 is what ends in output
        values.update(
            eval_strategy="steps",
            eval_steps=config.eval_steps,
            save_steps=config.eval_steps,  # a checkpoint at every evaluation, so the best one can be kept
            metric_for_best_model="eval_nDCG@10",
            greater_is_better=True,
            load_best_model_at_end=True,
        )
    if _launched_world_size() > 1 and not torch.cuda.is_available():
        # Without CUDA, transformers sets up no process group unless told to run on the CPU: each process would
        # train alone on all the data. use_cpu gives one distributed run over gloo.
        values["use_cpu"] = True
    overrides = dict(item.split("=", 1) for item in config.hf_args)
    reserved = sorted(_RESERVED_HF_ARGS & set(overrides))
    if reserved:
        raise E2RankValueError(
            f"`hf_args` cannot set {', '.join(reserved)}: train() sets them (use `batch_size`, `output`)"
        )
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise E2RankValueError(f"`hf_args`: {', '.join(unknown)} is not a transformers.TrainingArguments field")
    if overrides:  # let transformers' own parser turn the strings into the fields' types
        parser = transformers.HfArgumentParser(cast(Any, transformers.TrainingArguments))
        argv = ["--output_dir", config.output]
        for name, value in overrides.items():
            argv += [f"--{name}", value]
        parsed, _ = parser.parse_known_args(argv)
        values.update({name: getattr(parsed, name) for name in overrides})
    _check_report_to(values["report_to"])
    return transformers.TrainingArguments(**values)


def _check_report_to(report_to: Any) -> None:
    """Refuse a reporting integration whose package is missing, naming it (transformers fails deep in a callback)."""
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    names = [n for n in names if n not in ("none", "all")]
    if not names:
        return
    integrations = cast(Any, transformers).integrations
    available = set(integrations.get_available_reporting_integrations())
    missing = [n for n in names if n not in available]
    if missing:
        raise E2RankValueError(
            f"`report_to`: {', '.join(missing)} is not available: its package is not installed (pip install "
            f"{' '.join(missing)}), or it is not an integration transformers knows; available here: "
            f"{', '.join(sorted(available)) or 'none'}"
        )


def _launched_world_size() -> int:
    """The number of processes torchrun or accelerate launched (``WORLD_SIZE``), 1 when run directly."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def _check_distributed(args: Any) -> None:
    """Refuse to start when the launcher started several processes but the Trainer did not join them in one run."""
    launched = _launched_world_size()
    if launched > 1 and args.world_size != launched:
        raise E2RankValueError(
            f"{launched} processes were launched (WORLD_SIZE={launched}) but transformers set up a world of "
            f"{args.world_size}: each process would train alone on all the data. Check `hf_args` (use_cpu, "
            "ddp_backend) and the launcher's settings."
        )
    # accelerate's launcher for CPUs (without --multi_gpu) starts several processes only through MPI; asked for
    # more than one without it, it starts one and marks it with MASTER_PORT but no world size.
    world_vars = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
    if "ACCELERATE_USE_CPU" in os.environ and "MASTER_PORT" in os.environ and not any(map(os.environ.get, world_vars)):
        raise E2RankValueError(
            "accelerate launch started one process where several were asked for: without --multi_gpu it starts "
            "several on CPUs only through MPI (--mpirun_hostfile). For one run over N processes use "
            "`accelerate launch --multi_gpu --num_processes N` (it works without GPUs, on gloo) or torchrun; for "
            "one process, --num_processes 1."
        )


def latest_checkpoint(output: str | os.PathLike[str]) -> tuple[Path | None, list[str]]:
    """The newest complete ``checkpoint-N`` in ``output`` and why each newer one was skipped.

    The Trainer writes ``trainer_state.json`` last, after the weights, optimizer and RNG states, so a checkpoint
    whose trainer state is missing or unreadable was cut short (a stop during a save) and cannot be resumed.

    Returns:
        The checkpoint directory (``None`` if there is none) and one line per skipped checkpoint.
    """
    found = []
    for path in Path(output).glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        if path.is_dir() and step.isdigit():
            found.append((int(step), path))
    skipped = []
    for _, path in sorted(found, reverse=True):
        state = path / "trainer_state.json"
        try:
            json.loads(state.read_text(encoding="utf-8"))
        except FileNotFoundError:
            skipped.append(f"{path.name}: no trainer_state.json (the run stopped while saving it)")
            continue
        except (OSError, ValueError) as exc:
            skipped.append(f"{path.name}: trainer_state.json unreadable ({exc})")
            continue
        return path, skipped
    return None, skipped


def _check_output(config: TrainConfig) -> tuple[Path | None, list[str]]:
    """Refuse an output directory in use; with ``resume``, the checkpoint to resume from and the ones skipped."""
    output = Path(config.output)
    if config.resume:
        checkpoint, skipped = latest_checkpoint(output)
        if checkpoint is None:
            why = f" ({'; '.join(skipped)})" if skipped else ""
            raise E2RankValueError(f"`resume`: no complete checkpoint-* directory in {output} to resume from{why}")
        return checkpoint, skipped
    if output.is_dir() and any(output.iterdir()):
        raise E2RankValueError(
            f"`output` {output} is not empty: set `resume` to continue from its last checkpoint, or choose another "
            "`output`"
        )
    return None, []


def _align_special_tokens(model_config: Any, tokenizer: Any) -> None:
    """Give the model's config the tokenizer's EOS/BOS/PAD ids, as the Trainer does at its start.

    Qwen3 embedding checkpoints say EOS ``<|endoftext|>`` in the config and ``<|im_end|>`` in the tokenizer; the
    Trainer would align them itself and warn on every run. Embedding never reads these ids (the prompt format
    appends its own end token); the saved config agrees with the saved tokenizer either way.
    """
    for name in ("eos_token_id", "bos_token_id", "pad_token_id"):
        token_id = getattr(tokenizer, name)
        current = getattr(model_config, name, None)
        if token_id is None or token_id == current or (isinstance(current, list) and token_id in current):
            continue
        # several EOS ids: keep them all, the tokenizer's first (as the Trainer does)
        setattr(model_config, name, [token_id, *current] if isinstance(current, list) else token_id)


def build_trainer(
    config: TrainConfig, batches: list[list[Slate]], args: Any, eval_slates: Sequence[Slate] | None = None
) -> tuple[E2RankTrainer, E2RankModel]:
    """The :class:`E2RankTrainer` of a run: the base model in float32 (LoRA-wrapped if asked), its collator, loss.

    Returns the trainer and the :class:`E2RankModel` around the model being trained (its tokenizer and prompts).
    """
    limit = max(config.max_query_tokens, config.max_doc_tokens, config.max_prompt_tokens)
    encoder = E2RankModel.from_pretrained(
        config.model, device="cpu", dtype="float32", cache=False, prompts=config.prompts, max_length=limit
    )  # float32 master weights; --bf16 trains under autocast
    model = encoder.model
    _align_special_tokens(model.config, encoder.tokenizer)
    if config.lora_r is not None:
        peft = require("peft", extra="train")
        lora = peft.LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha or 2 * config.lora_r,
            lora_dropout=0.05,
            target_modules=list(LORA_TARGETS),
            task_type=peft.TaskType.FEATURE_EXTRACTION,
        )
        model = peft.get_peft_model(model, lora)
    trainer = E2RankTrainer(
        model=model,
        args=args,
        train_dataset=batches,  # a list is a map-style dataset; each item a whole batch
        data_collator=SlateCollator(
            encoder,
            max_query_tokens=config.max_query_tokens,
            max_doc_tokens=config.max_doc_tokens,
            max_prompt_tokens=config.max_prompt_tokens,
            num_prompt_docs=config.num_prompt_docs,
            instructions=config.task_instructions(),
        ),
        processing_class=encoder.tokenizer,
        objective=Objective(**{item.name: getattr(config, item.name) for item in fields(Objective)}),
        eval_slates=eval_slates if config.eval_steps is not None else None,
        encoder=encoder,
        num_prompt_docs=config.num_prompt_docs,
        instructions=config.task_instructions(),
        callbacks=(
            [transformers.EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience)]
            if config.early_stopping_patience is not None
            else None
        ),
    )
    return trainer, encoder


def train(config: TrainConfig, *, out: TextIO | None = None) -> TrainResult:
    """Fine-tune ``config.model`` on ``config.data`` with the E2Rank objective and save it to ``config.output``.

    Args:
        config: The run's settings.
        out: Where to print progress lines (the main process only); default standard output.

    Returns:
        A :class:`TrainResult`; the saved directory loads with ``E2RankModel.from_pretrained(config.output)``
        (pass ``prompts=config.prompts`` if you trained with a non-default prompt format).

    Raises:
        TrainingDataError: A data line is malformed (the message names the file and line).
        E2RankValueError: A setting is invalid, or the output directory is in use.
    """
    stream = out or sys.stdout
    checkpoint, skipped = _check_output(config)
    instructions = config.task_instructions()
    slates = load_slates(config.data, config.data_format)
    dev_format = config.eval_data_format or config.data_format
    dev = load_slates(config.eval_data, dev_format) if config.eval_data is not None else None
    data = data_name(config.data)
    args = training_arguments(config)
    _check_distributed(args)
    main = args.process_index == 0

    def say(line: str) -> None:
        if main:
            print(line, file=stream, flush=True)

    for line in skipped:
        say(f"resume: skipping {line}")
    if checkpoint is not None:
        say(f"resume: continuing from {checkpoint} (the newest checkpoint with its trainer state)")
    gathering = config.negatives_cross_device and args.world_size > 1
    batches = make_batches(slates, config.batch_size, config.seed, same_shape=gathering, path=data)
    if not batches:
        raise TrainingDataError(data, 0, f"fewer slates than `batch_size` {config.batch_size} in every group")
    kept = sum(len(b) for b in batches)
    largest = max(len(b) for b in batches)
    if largest < config.batch_size:
        say(
            f"note: batch_size {config.batch_size} is larger than the data: the largest batch holds {largest} slates "
            "(a batch holds slates of one source and one slate length)"
        )
    say(
        f"{len(slates)} slates from {data}: {len(batches)} batches of up to {config.batch_size}"
        + (f" ({len(slates) - kept} slates left out of incomplete batches)" if kept < len(slates) else "")
    )

    prompts = config.prompts
    first_stage = before = None
    if dev is not None:
        with args.main_process_first(desc="evaluating the base model"):
            if main:
                base = E2RankModel.from_pretrained(config.model, device=str(args.device), cache=False, prompts=prompts)
                before = evaluate_slates(base, dev, num_prompt_docs=config.num_prompt_docs, instructions=instructions)
                first_stage = before.before["nDCG@10"]
                base_ndcg = before.after["nDCG@10"]
                say(f"nDCG@10 on {len(dev)} eval slates: data order {first_stage:.2f}, base model {base_ndcg:.2f}")
                del base
                _free_memory()

    trainer, encoder = build_trainer(config, batches, args, dev)
    if main:
        for line in truncation_warnings(
            encoder,
            slates,
            max_query_tokens=config.max_query_tokens,
            max_doc_tokens=config.max_doc_tokens,
            instructions=instructions,
        ):
            say(f"warning: {line}")
    with no_progress_bars(transformers):  # a "Writing model shards" bar per checkpoint saved; the logs say enough
        output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

        trained: Any = trainer.model
        if config.lora_r is not None:
            trained = trained.merge_and_unload()
            if args.should_save:
                trained.save_pretrained(config.output)
                encoder.tokenizer.save_pretrained(config.output)
        else:
            trainer.save_model(config.output)  # the tokenizer (processing_class) with it; gathers DeepSpeed/FSDP
    trained.eval()
    result = TrainResult(
        output_dir=Path(config.output),
        model=E2RankModel(trained, encoder.tokenizer, name_or_path=config.output, cache=False, prompts=prompts),
        metrics=dict(output.metrics),
        eval_first_stage=first_stage,
        eval_before=before,
    )
    if main:
        if dev is not None:
            after_model = E2RankModel.from_pretrained(
                config.output, device=str(args.device), cache=False, prompts=prompts
            )
            result.eval_after = evaluate_slates(
                after_model, dev, num_prompt_docs=config.num_prompt_docs, instructions=instructions
            )
            del after_model
            say(f"nDCG@10 on {len(dev)} eval slates: trained model {result.eval_after.after['nDCG@10']:.2f}")
        write_model_card(config, result, n_slates=len(slates), n_passages=sum(len(s.documents) for s in slates))
        say(f"saved to {config.output}: load it with E2RankModel.from_pretrained({config.output!r})")
    return result


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def write_model_card(config: TrainConfig, result: TrainResult, *, n_slates: int, n_passages: int) -> Path:
    """Write ``README.md`` into the output directory: base model, data size, settings, evaluation, how to load."""
    settings = {}
    for item in fields(config):  # not asdict(): it would deep-copy an in-memory dataset
        value = getattr(config, item.name)
        if item.name in ("data", "eval_data") and value is not None:
            value = data_name(value)
        if value not in (None, [], False):
            settings[item.name] = value
    lines = [
        "---",
        f"base_model: {json.dumps(config.model)}",
        "library_name: transformers",
        "pipeline_tag: feature-extraction",
        "tags: [e2rank, embeddings, reranking, listwise]",
        "---",
        "",
        f"# E2Rank fine-tune of {config.model}",
        "",
        "An embedding model trained with the E2Rank objective (InfoNCE on query/passage cosines plus RankNet on",
        "listwise-prompt/passage cosines, arXiv 2510.22733) by `e2rank train` from `e2rank-integrations`: it embeds",
        "queries and passages for retrieval and reranks a candidate list with one listwise prompt embedding.",
        "",
        "## Training data",
        "",
        f"- data: `{data_name(config.data)}`",
        f"- {n_slates} slates, {n_passages} passages",
        f"- prompt format: `{config.prompt_format}`",
        "",
        "## Settings",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {k} | `{v}` |" for k, v in settings.items()),
        "",
    ]
    metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    if metrics:
        lines += ["## Training", "", *(f"- {k}: {v:.4g}" for k, v in metrics.items()), ""]
    if result.eval_before is not None and result.eval_after is not None:
        lines += [
            "## Evaluation",
            "",
            f"On `{data_name(config.eval_data)}` ({result.eval_after.queries} slates), reranking each slate:",
            "",
            "| metric | data order | base model | this model |",
            "|---|---|---|---|",
            *(
                f"| {name} | {result.eval_before.before[name]:.2f} | {result.eval_before.after[name]:.2f} | "
                f"{result.eval_after.after[name]:.2f} |"
                for name in result.eval_after.after
            ),
            "",
        ]
    custom = config.instruction is not None or config.instructions is not None
    if custom:
        table = config.task_instructions()
        lines += [
            "## Instructions",
            "",
            "Trained with these task instructions (query instruction / the listwise prompt's opening). Pass the same",
            "to `embed_queries(..., instruction=...)` and `rerank(..., instruction=...)`.",
            "",
            "| source | query | rerank |",
            "|---|---|---|",
            *(
                f"| {'(any other)' if source is None else source} | {json.dumps(q)} | {json.dumps(r)} |"
                for source, (q, r) in table.items()
            ),
            "",
        ]
    prompts_arg = (
        "" if config.prompt_format == "package" else ", prompts=PROMPT_FORMATS[" + repr(config.prompt_format) + "]"
    )
    load = [
        "## Use",
        "",
        "```python",
        "from e2rank_integrations import E2RankModel",
    ]
    if prompts_arg:
        load.append("from e2rank_integrations.training.config import PROMPT_FORMATS")
    load += [
        "",
        f"model = E2RankModel.from_pretrained({config.output!r}{prompts_arg})",
        'results = model.rerank("a query", ["a passage", "another passage"]'
        + (f", instruction={config.task_instructions()[None][1]!r})" if custom else ")"),
        "```",
        "",
        "## Versions",
        "",
        *(f"- {p}: {_version(p)}" for p in ("e2rank-integrations", "torch", "transformers", "accelerate", "peft")),
        "",
    ]
    path = Path(config.output) / "README.md"
    os.makedirs(config.output, exist_ok=True)
    path.write_text("\n".join(lines + load))
    return path
