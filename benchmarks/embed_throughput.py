"""Embedding throughput (tokens/s) on texts of very different lengths, one case per process.

Cases, all on the same checkpoint and texts:
  ours          E2RankModel (length-sorted batches under a token budget, no cache)
  ours_int8     the same with quantize="int8" (dynamic int8 linear layers, CPU)
  st            sentence-transformers loading the same checkpoint, last-token pooling, normalised
  readme        the authors' README code: pad to the longest of each batch, in input order
  int8_quality  agreement of int8 with float32: embedding cosine, top-10 overlap after rerank
  roofline      the matmul FLOP/s torch reaches here (float32 on CPU, --dtype on GPU), the FLOPs per token
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import case_main, checkpoint, flops_per_token, matmul_flops, mixed_texts, passages, timed

EOS = "<|endoftext|>"


def texts(args: argparse.Namespace) -> list[str]:
    return mixed_texts(args.texts, seed=1)


def token_count(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint(args.layers))
    return sum(len(ids) for ids in tokenizer([t + EOS for t in texts(args)], add_special_tokens=False)["input_ids"])


def throughput(run: Any, args: argparse.Namespace, warmup: Any) -> dict[str, Any]:
    warmup()  # a few texts: first-call costs out of the timing, without a whole extra pass
    result = timed(run, repeat=args.repeat, warmup=0)
    tokens = token_count(args)
    return {**result, "tokens": tokens, "tokens_per_s": tokens / result["median_s"]}


def ours(args: argparse.Namespace, **kwargs: Any) -> dict[str, Any]:
    from e2rank_integrations import E2RankModel

    model = E2RankModel.from_pretrained(
        checkpoint(args.layers), cache=False, batch_size=args.batch_size, device=args.device, **kwargs
    )
    data = texts(args)
    return throughput(lambda: model.embed_documents(data), args, lambda: model.embed_documents(data[:8]))


def case_ours(args: argparse.Namespace) -> dict[str, Any]:
    return ours(args)


def case_ours_int8(args: argparse.Namespace) -> dict[str, Any]:
    return ours(args, quantize="int8")


def case_st(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from sentence_transformers import SentenceTransformer, models

    path = str(checkpoint(args.layers))
    transformer = models.Transformer(path, model_args={"dtype": getattr(torch, args.dtype)})
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="lasttoken")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device=args.device or "cpu")
    data = [t + EOS for t in texts(args)]
    return throughput(
        lambda: model.encode(data, batch_size=args.batch_size), args, lambda: model.encode(data[:8], batch_size=8)
    )


def case_readme(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F
    from transformers import AutoModel, AutoTokenizer

    path = checkpoint(args.layers)
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
    device = args.device or "cpu"
    model = AutoModel.from_pretrained(path, dtype=getattr(torch, args.dtype)).to(device).eval()
    data = [t + EOS for t in texts(args)]

    def run(data: list[str] = data) -> None:  # the README's recipe, batch by batch in input order
        for start in range(0, len(data), args.batch_size):
            batch = tokenizer(
                data[start : start + args.batch_size],
                padding=True,
                truncation=True,
                max_length=8192,
                return_tensors="pt",
            )
            with torch.no_grad():
                out = model(**batch.to(device))
                F.normalize(out.last_hidden_state[:, -1], p=2, dim=1)

    return throughput(run, args, lambda: run(data[:8]))


def case_int8_quality(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from e2rank_integrations import E2RankModel

    path = checkpoint(args.layers)
    full = E2RankModel.from_pretrained(path)
    int8 = E2RankModel.from_pretrained(path, quantize="int8")
    data = texts(args)
    cosine = np.sum(full.embed_documents(data) * int8.embed_documents(data), axis=1)
    docs = passages(100, seed=3)
    queries = ["What causes the seasons?", "How do vaccines train the immune system?", "Why does bread rise?"]
    overlaps = []
    for query in queries:
        a = {r.index for r in full.rerank(query, docs, top_n=10)}
        b = {r.index for r in int8.rerank(query, docs, top_n=10)}
        overlaps.append(len(a & b) / 10)
    return {
        "cosine_min": float(cosine.min()),
        "cosine_mean": float(cosine.mean()),
        "top10_overlap_mean": float(np.mean(overlaps)),
        "top10_overlap_min": float(np.min(overlaps)),
    }


def case_roofline(args: argparse.Namespace) -> dict[str, Any]:
    return {
        # a GPU needs big products to reach its peak; a CPU reaches it at 2048
        "matmul_flops": matmul_flops(device=args.device, dtype=args.dtype, size=8192)
        if args.device and args.device.startswith("cuda")
        else matmul_flops(),
        "flops_per_token": flops_per_token(checkpoint(args.layers)),  # plus attention, small at these lengths
    }


CASES = {
    "ours": case_ours,
    "ours_int8": case_ours_int8,
    "st": case_st,
    "readme": case_readme,
    "int8_quality": case_int8_quality,
    "roofline": case_roofline,
}


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--dtype", default="float32", help="dtype of the baselines (float32 on CPU, bfloat16 on GPU)")


if __name__ == "__main__":
    case_main(CASES, add_args)
