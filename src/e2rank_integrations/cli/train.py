"""``e2rank train``: fine-tune an embedding model into an E2Rank reranker; options are TrainConfig's fields."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from .._optional import check_extras
from ..training.config import DATA_FORMATS, PROMPT_FORMATS, TrainConfig
from ._common import epilog


def add_parser(sub: Any) -> None:
    """The ``train`` subcommand; its options are :class:`~e2rank_integrations.training.TrainConfig`'s fields."""
    d = TrainConfig(model="", data="", output="")
    train_p = sub.add_parser(
        "train",
        help="fine-tune an embedding model into an E2Rank reranker (needs the `train` extra)",
        description=(
            "Fine-tune an embedding model with E2Rank's objective (InfoNCE + RankNet over cosine similarity). "
            "The defaults are the authors'."
        ),
        epilog=epilog(
            "train",
            """
            e2rank train --model Alibaba-NLP/E2Rank-0.6B --data train.jsonl --output my-reranker \\
                --bf16 --gradient-checkpointing --eval-data dev.jsonl
            several GPUs (the same options):
            torchrun --nproc-per-node 8 -m e2rank_integrations.training --model ... --data ... --output ...
            """,
            """
            input (--data, --eval-data: JSON lines, .parquet or a folder of them), a slate per line (see --data-format):
              {"query": "...", "document": ["passage", ...], "ranking": [2, 0, 1], "source": "msmarco"}
              ranking: indices into document, best first (or relevance / scores: a grade per passage);
              source (optional) picks the task's instructions (or --instruction, --instructions).
            output: --output loads with E2RankModel.from_pretrained (LoRA merged), with a model card README.md.
            """,
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = train_p.add_argument
    add("--model", required=True, help="base model: hub id or local directory of an embedding model (required)")
    add("--data", required=True, help="training slates: JSON lines (.gz too), Parquet, or a folder of them (required)")
    add("--output", required=True, help="directory for checkpoints and the trained model (required)")
    add(
        "--data-format",
        choices=list(DATA_FORMATS),
        default=d.data_format,
        help="layout of --data lines (and --eval-data's, unless --eval-data-format): slates (query, document, "
        "ranking|relevance|scores), triples (query, positive, negative), pairs-with-negatives (query, pos: [...], "
        f"neg: [...]), scored (the same with pos_scores, neg_scores) (default: {d.data_format})",
    )
    add("--epochs", type=float, default=d.epochs, help=f"passes over the data (default: {d.epochs:g})")
    add("--max-steps", type=int, default=d.max_steps, help="stop after this many optimizer steps (default: --epochs)")
    add("--lr", type=float, default=d.lr, help=f"peak learning rate, linear schedule (default: {d.lr:g})")
    add(
        "--warmup-ratio",
        type=float,
        default=d.warmup_ratio,
        help=f"share of steps warming up (default: {d.warmup_ratio:g})",
    )
    add("--batch-size", type=int, default=d.batch_size, help=f"slates per device per step (default: {d.batch_size})")
    add("--grad-accum", type=int, default=d.grad_accum, help=f"steps per optimizer update (default: {d.grad_accum})")
    add("--temperature", type=float, default=d.temperature, help=f"InfoNCE temperature (default: {d.temperature:g})")
    add(
        "--embedding-weight",
        type=float,
        default=d.embedding_weight,
        help=f"InfoNCE weight (default: {d.embedding_weight:g})",
    )
    add(
        "--ranknet-weight", type=float, default=d.ranknet_weight, help=f"RankNet weight (default: {d.ranknet_weight:g})"
    )
    add(
        "--ranknet-scale",
        type=float,
        default=d.ranknet_scale,
        help=f"cosine scale in RankNet (default: {d.ranknet_scale:g})",
    )
    add(
        "--negatives-cross-device",
        action="store_true",
        help="use every GPU's passages as InfoNCE negatives (default: off; needs slates of one length)",
    )
    add(
        "--authors-cross-device-scale",
        action="store_true",
        help="with --negatives-cross-device, keep the authors' InfoNCE gradient / number of GPUs (default: off)",
    )
    add(
        "--num-prompt-docs",
        type=int,
        default=d.num_prompt_docs,
        help=f"passages in a listwise prompt (default: {d.num_prompt_docs})",
    )
    add(
        "--max-query-tokens",
        type=int,
        default=d.max_query_tokens,
        help=f"longest query (default: {d.max_query_tokens})",
    )
    add("--max-doc-tokens", type=int, default=d.max_doc_tokens, help=f"longest passage (default: {d.max_doc_tokens})")
    add(
        "--max-prompt-tokens",
        type=int,
        default=d.max_prompt_tokens,
        help=f"prompt token budget (default: {d.max_prompt_tokens})",
    )
    add(
        "--prompt-format",
        choices=list(PROMPT_FORMATS),
        default=d.prompt_format,
        help=f"listwise prompt: E2RankModel's inference one, or the authors' training one (default: {d.prompt_format})",
    )
    add(
        "--instruction",
        default=d.instruction,
        help="one task description for every slate: the query instruction and the listwise prompt's opening; "
        "rerank with the same instruction (default: the authors' per source)",
    )
    add(
        "--instructions",
        metavar="FILE",
        default=d.instructions,
        help='JSON {source: text or {"query": ..., "rerank": ...}, "*": for any other}; wins over --instruction '
        "(default: none)",
    )
    add(
        "--lora-r",
        type=int,
        default=d.lora_r,
        help="train LoRA adapters of this rank, merged at the end (default: all weights)",
    )
    add("--lora-alpha", type=int, default=d.lora_alpha, help="LoRA alpha (default: 2 x --lora-r)")
    add("--bf16", action="store_true", help="bfloat16 mixed precision (default: off)")
    add("--gradient-checkpointing", action="store_true", help="recompute activations to save memory (default: off)")
    add(
        "--eval-data",
        default=d.eval_data,
        help="held-out slates, read as --data is: nDCG@10 before and after training (default: none)",
    )
    add(
        "--eval-data-format",
        choices=list(DATA_FORMATS),
        default=d.eval_data_format,
        help="layout of --eval-data lines, e.g. graded slates to evaluate training on triples (default: --data-format)",
    )
    add(
        "--eval-steps",
        type=int,
        default=d.eval_steps,
        help="also rerank --eval-data every N steps, checkpointing each time; the best nDCG@10 is kept as the "
        "output (default: only before and after)",
    )
    add(
        "--early-stopping-patience",
        type=int,
        default=d.early_stopping_patience,
        help="with --eval-steps, stop after N evaluations without a better nDCG@10 (default: never)",
    )
    add(
        "--report-to",
        default=d.report_to,
        help=f"report metrics to tensorboard, wandb, mlflow... (comma-separated; needs the package) "
        f"(default: {d.report_to})",
    )
    add("--resume", action="store_true", help="continue from the newest complete checkpoint in --output (default: off)")
    add("--save-steps", type=int, default=d.save_steps, help=f"checkpoint every N steps (default: {d.save_steps})")
    add(
        "--logging-steps",
        type=int,
        default=d.logging_steps,
        help=f"log losses every N steps (default: {d.logging_steps})",
    )
    add("--seed", type=int, default=d.seed, help=f"seed of batches and data order (default: {d.seed})")
    add(
        "--hf-arg",
        dest="hf_args",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any transformers.TrainingArguments field, repeatable, e.g. --hf-arg deepspeed=ds.json (default: none)",
    )


def run(args: argparse.Namespace) -> int:
    """Fine-tune (see :func:`e2rank_integrations.training.train`); bad settings or data end in one line."""
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    check_extras(["train"], "`e2rank train`")
    from ..training import train  # needs the `train` extra

    train(config)
    return 0
