"""Training throughput of `e2rank train`: its loop (E2RankTrainer, collation included) against the bare
forward + backward + optimizer step of the same batches, in one run.

CPU (a tiny checkpoint: the loop's overhead):
    python benchmarks/train_throughput.py

GPU (the real E2Rank-0.6B shape, bf16, gradient checkpointing, 8 slates of 20 passages, ~4k-token prompts; step
time, tokens/s, peak memory, and model FLOPs utilisation against a bf16 matmul peak measured in the same run):
    python benchmarks/train_throughput.py --gpu

Both write benchmarks/results/train_throughput_{cpu,gpu}.json. Tokens are real (unpadded) tokens of the queries,
passages and listwise prompts a step embeds. The weights are random: the cost is real, the loss values mean nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, machine, matmul_flops, peak_rss_mb

PRESETS = {
    "cpu": {"shape": "tiny", "layers": None, "slates": 4, "passages": 20, "passage_words": 30, "steps": 12},
    "gpu": {"shape": "e2rank-0.6b", "layers": None, "slates": 8, "passages": 20, "passage_words": 195, "steps": 12},
}
WARMUP = 2  # steps left out of every timing (allocation, autotuning)


def make_slates(n: int, passages: int, words: int, seed: int = 0) -> list[Any]:
    """``n`` slates of ``passages`` passages of ``words`` words (about one token each) and a random teacher order."""
    from e2rank_integrations.training import Slate
    from e2rank_integrations.training.synthetic import WORDS

    rng = random.Random(seed)
    out = []
    for i in range(n):
        docs = tuple(" ".join(rng.choices(WORDS, k=words)) for _ in range(passages))
        ranking = tuple(rng.sample(range(passages), passages))
        out.append(Slate(" ".join(rng.choices(WORDS, k=12)), docs, ranking, None, i + 1))
    return out


def real_tokens(batch: dict[str, Any]) -> int:
    from e2rank_integrations.training.data import batch_tokens

    return batch_tokens(batch)


def model_flops(batch: dict[str, Any], config: Any) -> float:
    """Model FLOPs of one training step (forward and backward, 3x the forward; recomputation not counted)."""
    layers, hidden = config.num_hidden_layers, config.hidden_size
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    inter = config.intermediate_size
    # Per token and layer: q, k, v, o projections and the gated MLP (embedding lookups do no FLOPs).
    params = layers * (hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2 + 3 * hidden * inter)
    forward = 0.0
    for key in ("query", "document", "prompt"):
        inputs = batch[key]
        mask = inputs.get("attention_mask")
        lengths = (
            mask.sum(dim=1).tolist() if mask is not None else [inputs["input_ids"].shape[1]] * len(inputs["input_ids"])
        )
        for n in lengths:
            forward += 2 * params * n + 2 * layers * heads * head_dim * n * n  # causal QK^T and AV: 2 * 2 * L^2 / 2
    return 3 * forward


def run(preset: dict[str, Any], device: str, bf16: bool, checkpointing: bool) -> dict[str, Any]:
    import torch

    from e2rank_integrations.checkpoints import cached_random_checkpoint
    from e2rank_integrations.model import pool_last_token
    from e2rank_integrations.training import TrainConfig, e2rank_loss, make_batches
    from e2rank_integrations.training.trainer import build_trainer, training_arguments

    steps = preset["steps"]
    path = cached_random_checkpoint(preset["shape"], num_hidden_layers=preset["layers"])
    slates = make_slates(preset["slates"] * (steps + WARMUP), preset["passages"], preset["passage_words"])
    batches = make_batches(slates, preset["slates"], seed=0)
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            model=str(path),
            data="(generated)",
            output=out,
            batch_size=preset["slates"],
            grad_accum=1,
            max_steps=steps + WARMUP,
            bf16=bf16,
            gradient_checkpointing=checkpointing,
            logging_steps=10**6,
            save_steps=10**6,
            hf_args=[f"use_cpu={device == 'cpu'}", "disable_tqdm=true", "save_strategy=no"],
        )
        args = training_arguments(config)
        trainer, encoder = build_trainer(config, batches, args)
        collated = [trainer.data_collator([b]) for b in batches]
        tokens = [real_tokens(b) for b in collated]
        flops = [model_flops(b, encoder.model.config) for b in collated]
        start = time.perf_counter()
        for b in batches:
            trainer.data_collator([b])
        collate_s = (time.perf_counter() - start) / len(batches)

        # The loop: E2RankTrainer.train() over the batches (data loading and collation included), step times from a
        # callback so that the warm-up steps are left out.
        from transformers import TrainerCallback

        stamps: list[float] = []

        class Stamp(TrainerCallback):  # type: ignore[misc]
            def on_step_end(self, *_: Any, **__: Any) -> None:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                stamps.append(time.perf_counter())

        trainer.add_callback(Stamp())
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        loop_steps = [b - a for a, b in zip(stamps[WARMUP - 1 :], stamps[WARMUP:])]
        peak_memory = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None

        # The bare steps: the same model (now trained a little), the same batches already collated and on the device.
        model = trainer.model
        model.train()
        # The same optimizer as the loop's (transformers picks fused AdamW), with fresh states.
        trainer.optimizer = trainer.lr_scheduler = None
        optimizer = trainer.create_optimizer()
        autocast = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16)
        on_device = [  # ranking and grades are tensors; query, document and prompt dicts of tensors
            {
                k: v.to(device) if isinstance(v, torch.Tensor) else {n: t.to(device) for n, t in v.items()}
                for k, v in b.items()
            }
            for b in collated
        ]
        bare_steps = []
        for i, b in enumerate(on_device):
            start = time.perf_counter()
            with autocast:
                q, d, p = (pool_last_token(model, b[k]) for k in ("query", "document", "prompt"))
                loss = e2rank_loss(q, d, p, b["ranking"], grades=b["grades"])
            loss.total.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if i >= WARMUP:
                bare_steps.append(time.perf_counter() - start)

    measured_tokens = tokens[WARMUP:]
    loop_s, bare_s = statistics.median(loop_steps), statistics.median(bare_steps)
    step_tokens = statistics.median(measured_tokens)
    result: dict[str, Any] = {
        "preset": preset,
        "device": device,
        "bf16": bf16,
        "gradient_checkpointing": checkpointing,
        "tokens_per_step": step_tokens,
        "loop": {"step_s": loop_s, "tokens_per_s": step_tokens / loop_s, "steps": len(loop_steps)},
        "bare": {"step_s": bare_s, "tokens_per_s": step_tokens / bare_s, "steps": len(bare_steps)},
        "collate_s_per_step": collate_s,
        "loop_vs_bare": loop_s / bare_s,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if device != "cpu":
        peak = matmul_flops(seconds=3.0, size=8192, device=device, dtype="bfloat16")
        step_flops = statistics.median(flops[WARMUP:])
        result["gpu"] = {
            "peak_memory_gib": (peak_memory or 0) / 2**30,
            "bf16_matmul_peak_tflops": peak / 1e12,
            "model_tflops_per_step": step_flops / 1e12,
            "model_tflops_per_s": step_flops / loop_s / 1e12,
            "mfu": step_flops / loop_s / peak,
            "mfu_bare": step_flops / bare_s / peak,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="the GPU preset (E2Rank-0.6B shape, bf16, checkpointing)")
    parser.add_argument("--steps", type=int, default=None, help="measured steps (default 12)")
    parser.add_argument("--output", default=None, help="JSON file (default benchmarks/results/train_throughput_*.json)")
    args = parser.parse_args()
    name = "gpu" if args.gpu else "cpu"
    preset = dict(PRESETS[name])
    if args.steps:
        preset["steps"] = args.steps
    result = run(preset, "cuda" if args.gpu else "cpu", bf16=args.gpu, checkpointing=args.gpu)
    output = Path(args.output) if args.output else RESULTS / f"train_throughput_{name}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    loop, bare = result["loop"], result["bare"]
    print(
        f"{name}: {result['tokens_per_step']:.0f} tokens per step ({preset['slates']} slates of {preset['passages']})"
    )
    print(f"  e2rank train loop  {loop['step_s'] * 1000:8.1f} ms/step  {loop['tokens_per_s']:10.0f} tokens/s")
    print(f"  bare fwd+bwd+step  {bare['step_s'] * 1000:8.1f} ms/step  {bare['tokens_per_s']:10.0f} tokens/s")
    collate_ms = result["collate_s_per_step"] * 1000
    print(f"  loop / bare        {result['loop_vs_bare']:.3f}x  (collation {collate_ms:.1f} ms/step)")
    if "gpu" in result:
        gpu = result["gpu"]
        print(
            f"  peak memory {gpu['peak_memory_gib']:.1f} GiB, {gpu['model_tflops_per_s']:.1f} model TFLOP/s of a "
            f"measured {gpu['bf16_matmul_peak_tflops']:.0f} bf16 matmul peak: MFU {gpu['mfu']:.1%}"
        )
    print(f"written to {output}")


if __name__ == "__main__":
    main()
