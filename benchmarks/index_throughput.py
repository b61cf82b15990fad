"""`e2rank index` throughput against `embed_documents`' own on the same texts, measured in one run.

    python benchmarks/index_throughput.py                 # CPU: the ratio (target >= 0.95), quick
    python benchmarks/index_throughput.py --gpu           # GPU: the bulk-indexing grid below, one command

Cases (same checkpoint, same mixed-length texts, same model settings, no cache):
  embed      model.embed_documents(all texts): the baseline
  inprocess  index_corpus(corpus.jsonl -> Parquet part files) with the same model object
  cli        `e2rank index --input corpus.jsonl --output DIR` in a subprocess; its own summary gives the job's
             seconds (loading the model is not part of a bulk job's throughput), the wall time is reported too

`embed` and `inprocess` alternate `--repeat` times (so drift on a noisy machine hits both) and the medians are
compared. `--gpu` adds, on a CUDA device in bfloat16 with the real 28-layer 0.6B shape: the bf16 matmul peak
measured in the same run, tokens/s and MFU (model FLOPs x tokens/s / peak) of `embed_documents` under several
forward-pass token budgets, with widths rounded up to fixed buckets, sentence-transformers on the same checkpoint,
and `index_corpus` at the best budget. Results go to benchmarks/results/index_throughput[_gpu].json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, checkpoint, flops_per_token, machine, matmul_flops, mixed_texts

EOS = "<|endoftext|>"


def write_corpus(texts: list[str], directory: Path) -> Path:
    path = directory / "corpus.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": f"p{i}", "text": text}) + "\n")
    return path


def load(path: Path, device: str, dtype: str | None, **options: Any) -> Any:
    from e2rank_integrations import E2RankModel

    return E2RankModel.from_pretrained(path, device=device, dtype=dtype, cache=False, show_progress=False, **options)


def time_embed(model: Any, texts: list[str]) -> tuple[float, int]:
    sync = _sync(model)
    before = model.stats()["tokens_embedded"]
    start = time.perf_counter()
    model.embed_documents(texts)
    sync()
    return time.perf_counter() - start, model.stats()["tokens_embedded"] - before


def time_index(model: Any, corpus: Path, batch_size: int) -> tuple[float, int]:
    from e2rank_integrations.indexing import ParquetStore, index_corpus

    with tempfile.TemporaryDirectory() as out:
        sync = _sync(model)
        start = time.perf_counter()
        summary = index_corpus(corpus, ParquetStore(Path(out) / "v.parquet"), model, batch_size=batch_size)
        sync()
        seconds = time.perf_counter() - start
    assert summary.indexed == len(corpus.read_text().splitlines()), summary
    return seconds, summary.tokens


def time_cli(path: Path, corpus: Path, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "e2rank_integrations.cli", "index", "--model", str(path), "--input",
                   str(corpus), "--output", str(Path(out) / "v.parquet"), "--batch-size", str(args.batch_size),
                   "--device", args.device, "--no-progress"]  # fmt: skip
        if args.dtype:
            command += ["--dtype", args.dtype]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
    match = re.search(r"\((\d+) tokens\) in ([\d.]+) s", done.stdout)
    assert match, done.stdout + done.stderr
    return {"tokens": int(match[1]), "job_s": float(match[2]), "wall_s": round(wall, 2)}


def _sync(model: Any) -> Any:
    import torch

    return torch.cuda.synchronize if model.device.startswith("cuda") else (lambda: None)


def ratio_run(args: argparse.Namespace) -> dict[str, Any]:
    path = checkpoint(args.layers, dtype=args.dtype or "float32")
    # Unique texts: one embed_documents call embeds a repeated text once, batches of the index job once per batch.
    texts = list(dict.fromkeys(mixed_texts(args.texts, seed=1)))
    model = load(path, args.device, args.dtype)
    model.embed_documents(texts[:8])  # first-call costs out of the timing
    embed, inprocess, tokens = [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(texts, Path(tmp))
        for round_ in range(args.repeat):  # alternating, in ABBA order: drift and order effects hit both sides
            first_embed = round_ % 2 == 0
            if first_embed:
                seconds, tokens = time_embed(model, texts)
                embed.append(seconds)
            seconds, index_tokens = time_index(model, corpus, args.batch_size)
            inprocess.append(seconds)
            if not first_embed:
                seconds, tokens = time_embed(model, texts)
                embed.append(seconds)
            assert index_tokens == tokens, (index_tokens, tokens)  # the same work, token for token
        cli = time_cli(path, corpus, args)
    embed_s, inprocess_s = statistics.median(embed), statistics.median(inprocess)
    return {
        "texts": len(texts),
        "tokens": tokens,
        "layers": args.layers,
        "batch_size": args.batch_size,
        "embed": {"median_s": embed_s, "runs_s": embed, "tokens_per_s": tokens / embed_s},
        "inprocess": {"median_s": inprocess_s, "runs_s": inprocess, "tokens_per_s": tokens / inprocess_s},
        "cli": {**cli, "tokens_per_s": cli["tokens"] / cli["job_s"]},
        "ratio_inprocess": embed_s / inprocess_s,
        "ratio_cli": embed_s / cli["job_s"],
        "target": 0.95,
    }


class Bucketed:
    """The HF model, called with inputs left-padded to a width that is a multiple of `multiple` (few shapes)."""

    def __init__(self, model: Any, multiple: int, pad_id: int) -> None:
        self.model, self.multiple, self.pad_id, self.config = model, multiple, pad_id, model.config

    def parameters(self) -> Any:
        return self.model.parameters()

    def __call__(self, *, input_ids: Any, attention_mask: Any, position_ids: Any, use_cache: bool) -> Any:
        import torch

        rows, width = input_ids.shape
        extra = -width % self.multiple
        if extra:
            mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
            pad = input_ids.new_full((rows, extra), self.pad_id)
            input_ids = torch.cat([pad, input_ids], dim=1)
            attention_mask = torch.cat([torch.zeros_like(pad), mask], dim=1)
            position_ids = torch.cat([torch.zeros_like(pad), position_ids], dim=1)
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=use_cache
        )


def gpu_run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    assert torch.cuda.is_available(), "--gpu needs a CUDA device"
    path = checkpoint(args.layers, dtype="bfloat16")
    texts = list(dict.fromkeys(mixed_texts(args.texts, seed=1)))  # unique, as in ratio_run
    peak = matmul_flops(device="cuda", dtype="bfloat16", size=8192)
    per_token = flops_per_token(path)
    rows: dict[str, Any] = {"matmul_peak_flops": peak, "flops_per_token": per_token}

    def row(seconds: float, tokens: int) -> dict[str, Any]:
        rate = tokens / seconds
        return {"seconds": round(seconds, 3), "tokens": tokens, "tokens_per_s": rate, "mfu": per_token * rate / peak}

    best: tuple[float, int] = (0.0, 0)
    for budget in args.budgets:
        model = load(path, "cuda", "bfloat16", max_batch_tokens=budget, batch_size=budget)
        model.embed_documents(texts[:64])
        seconds, tokens = time_embed(model, texts)
        rows[f"embed/budget={budget}"] = row(seconds, tokens)
        best = max(best, (tokens / seconds, budget))
        for multiple in args.buckets:
            model.model = Bucketed(model.model, multiple, model._pad_id)
            model.embed_documents(texts[:64])
            seconds, tokens = time_embed(model, texts)
            rows[f"embed/budget={budget}/bucket={multiple}"] = row(seconds, tokens)
            model.model = model.model.model
        del model
        torch.cuda.empty_cache()
    budget = best[1]
    model = load(path, "cuda", "bfloat16", max_batch_tokens=budget, batch_size=budget)
    model.embed_documents(texts[:64])
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(texts, Path(tmp))
        seconds, tokens = time_index(model, corpus, args.batch_size)
        rows[f"index/budget={budget}"] = row(seconds, tokens)
        seconds, tokens = time_embed(model, texts)
        rows[f"embed/budget={budget}/again"] = row(seconds, tokens)
    rows["index_vs_embed"] = (
        rows[f"index/budget={budget}"]["tokens_per_s"] / rows[f"embed/budget={budget}/again"]["tokens_per_s"]
    )
    del model
    torch.cuda.empty_cache()
    rows.update(sentence_transformers(path, texts, args, row))
    st_best = max(v["tokens_per_s"] for k, v in rows.items() if k.startswith("st/"))
    rows["best_vs_st"] = best[0] / st_best
    rows["targets"] = {"mfu": 0.5, "vs_st": 1.5}
    return rows


def sentence_transformers(path: Path, texts: list[str], args: argparse.Namespace, row: Any) -> dict[str, Any]:
    import torch
    from sentence_transformers import SentenceTransformer, models

    transformer = models.Transformer(str(path), model_args={"dtype": torch.bfloat16})
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="lasttoken")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cuda")
    data = [t + EOS for t in texts]
    tokens = sum(len(ids) for ids in transformer.tokenizer(data, add_special_tokens=False)["input_ids"])
    out = {}
    for batch in (32, 128):
        model.encode(data[:64], batch_size=batch)
        torch.cuda.synchronize()
        start = time.perf_counter()
        model.encode(data, batch_size=batch)
        torch.cuda.synchronize()
        out[f"st/batch={batch}"] = row(time.perf_counter() - start, tokens)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="the GPU grid (bfloat16, 28 layers by default)")
    parser.add_argument("--texts", type=int, default=None, help="texts (default 512 on CPU, 20000 on GPU)")
    parser.add_argument("--layers", type=int, default=None, help="layers of the 0.6B shape (default 2 CPU, 28 GPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="texts per index batch (default 128 / 4096)")
    parser.add_argument("--repeat", type=int, default=3, help="alternating embed/index rounds (CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--budgets", type=int, nargs="+", default=[16384, 32768, 65536, 131072])
    parser.add_argument("--buckets", type=int, nargs="*", default=[64, 256])
    args = parser.parse_args()
    gpu = args.gpu
    args.texts = args.texts or (20000 if gpu else 512)
    args.layers = args.layers or (28 if gpu else 2)
    args.batch_size = args.batch_size or (4096 if gpu else 128)
    result = gpu_run(args) if gpu else ratio_run(args)
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "args": vars(args), **result}
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / ("index_throughput_gpu.json" if gpu else "index_throughput.json")
    target.write_text(json.dumps(result, indent=2) + "\n")
    if gpu:
        for key, value in result.items():
            if isinstance(value, dict) and "tokens_per_s" in value:
                print(f"{key:36s} {value['tokens_per_s']:>12.0f} tokens/s  MFU {value['mfu']:.1%}")
        print(f"index/embed {result['index_vs_embed']:.3f}; best embed / ST {result['best_vs_st']:.2f}x")
    else:
        print(f"embed_documents {result['embed']['tokens_per_s']:.0f} tokens/s ({result['embed']['median_s']:.2f} s)")
        print(f"index in-process {result['inprocess']['tokens_per_s']:.0f} tokens/s: {result['ratio_inprocess']:.3f}")
        print(f"e2rank index CLI {result['cli']['tokens_per_s']:.0f} tokens/s: {result['ratio_cli']:.3f} (job time)")
    print(f"written to {target}")


if __name__ == "__main__":
    main()
