"""Rerank latency against the number of candidates N, one case per process.

Cases (all on the same backbone and the same passages):
  reuse          (a) E2Rank reusing stored document embeddings: only the listwise prompt is embedded
  reuse_budget   (a) with a prompt token budget (`--doc-tokens` per prompt document)
  reuse_scaling  in one process, interleaved: tokenizing the prompt, one bare forward pass of its ids (the floor
                 for (a)), (a) at N=100 and (a) at `--n`, all on the same prompt
  no_reuse       (b) E2Rank as the authors' evaluation runs it: embed every candidate, then the prompt
  pointwise      (c) a pointwise reranker: one pass per query+candidate pair (Qwen3-Reranker's prompt)
  cross_encoder  (d) sentence-transformers CrossEncoder on the same checkpoint
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from _common import cache_random_vectors, case_main, checkpoint, passages, timed

QUERY = "Why is it colder in winter than in summer, and what role does the tilt of the Earth play?"
# Qwen3-Reranker's published prompt format, the pointwise baseline (c).
POINTWISE = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
    "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n"
    "<Query>: {query}\n<Document>: {doc}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
)


def load(args: argparse.Namespace, **kwargs: Any) -> Any:
    from e2rank_integrations import E2RankModel

    return E2RankModel.from_pretrained(checkpoint(args.layers), device=args.device, **kwargs)


def reuse(args: argparse.Namespace, budget: int | None = None) -> dict[str, Any]:
    model = load(args)
    docs = passages(args.n)
    model.embed_documents(docs)  # the retrieval stage stored these
    kwargs: dict[str, Any] = {}
    if budget is not None:
        overhead = model.count_tokens([model.listwise_prompt(QUERY, [])])[0]
        kwargs["max_prompt_tokens"] = overhead + 20 * budget
    runs = iter(range(10**6))
    # A new query each run, so the prompt is never a cache hit; the documents always are.
    result = timed(lambda: model.rerank(f"{QUERY} ({next(runs)})", docs, **kwargs), repeat=args.repeat)
    calls = args.repeat + 1
    stats = model.stats()
    assert stats["texts_embedded"] == len(docs) + calls, stats  # reuse: one text (the prompt) per rerank
    prompt = model.listwise_prompt(QUERY, docs, **kwargs)
    return {**result, "prompt_tokens": model.count_tokens([prompt])[0]}


def case_reuse(args: argparse.Namespace) -> dict[str, Any]:
    return reuse(args)


def case_reuse_budget(args: argparse.Namespace) -> dict[str, Any]:
    return reuse(args, budget=args.doc_tokens)


def case_reuse_scaling(args: argparse.Namespace) -> dict[str, Any]:
    """Overheads, measured where process-to-process noise cannot hide them: one process, rounds interleaved."""
    import statistics
    import time

    import torch

    model = load(args)
    docs = passages(args.n)  # passages(100) is a prefix of these: the same 20 documents open both prompts
    cache_random_vectors(model, docs)
    prompt = model.listwise_prompt(f"{QUERY} (0)", docs)
    ids = torch.tensor([model.tokenizer(prompt, add_special_tokens=False)["input_ids"]], device=model.device)
    queries = iter(range(1, 10**6))  # a new query each rerank: its prompt is never a cache hit

    def bare() -> None:
        with torch.inference_mode():
            model.model(input_ids=ids, use_cache=False)
        if ids.is_cuda:  # rerank returns numpy, so it waits for the GPU; the bare pass must too
            torch.cuda.synchronize()

    cases = {
        "tokenize_prompt": lambda: model.tokenizer(prompt, add_special_tokens=False),  # part of any rerank's cost
        "bare_forward": bare,
        "reuse_100": lambda: model.rerank(f"{QUERY} ({next(queries)})", docs[:100]),
        f"reuse_{args.n}": lambda: model.rerank(f"{QUERY} ({next(queries)})", docs),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(args.repeat + 1):  # round 0 warms up
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            if round_:
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    reranks = 2 * (args.repeat + 1)
    assert model.stats()["texts_embedded"] == reranks, model.stats()  # the prompts alone: every candidate was stored
    return {
        "median_s": medians,
        "reuse_100_vs_bare": medians["reuse_100"] / medians["bare_forward"],
        "reuse_n_vs_100": medians[f"reuse_{args.n}"] / medians["reuse_100"],
        "runs": args.repeat,
    }


def case_no_reuse(args: argparse.Namespace) -> dict[str, Any]:
    model = load(args, cache=False)
    docs = passages(args.n)
    result = timed(lambda: model.rerank(QUERY, docs), repeat=args.repeat)
    return {**result, "tokens_per_run": model.stats()["tokens_embedded"] // (args.repeat + 1)}


def pointwise_scorer(model: Any) -> Callable[[str, Sequence[str]], Any]:
    """(c) on `model`'s backbone: `score(query, docs)` runs one pass per (query, doc) pair, as Qwen3-Reranker does.

    The score is the last hidden state projected on the tied LM head's "yes" minus "no" rows (Qwen3-Reranker's
    yes/no logit difference); with random weights the scores mean nothing, but the cost is the real one.
    """
    yes, no = model.tokenizer.convert_tokens_to_ids(["yes", "no"])
    head = model.model.get_input_embeddings().weight  # tied LM head: the "yes" and "no" rows score a pair
    direction = (head[yes] - head[no]).detach().float().cpu().numpy()

    def score(query: str, docs: Sequence[str]) -> Any:
        return model.embed_formatted([POINTWISE.format(query=query, doc=d) for d in docs]) @ direction

    return score


def case_pointwise(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    model = load(args, cache=False)
    docs = passages(args.n)
    score = pointwise_scorer(model)
    result = timed(lambda: np.argsort(-score(QUERY, docs)), repeat=args.repeat)
    return {**result, "tokens_per_run": model.stats()["tokens_embedded"] // (args.repeat + 1)}


def case_cross_encoder(args: argparse.Namespace) -> dict[str, Any]:
    from sentence_transformers import CrossEncoder

    encoder = CrossEncoder(
        str(checkpoint(args.layers)), num_labels=1, device=args.device or "cpu", model_kwargs={"dtype": args.dtype}
    )
    if encoder.model.config.pad_token_id is None:  # Qwen3 configs have none; batching needs one
        encoder.model.config.pad_token_id = encoder.tokenizer.pad_token_id
    docs = passages(args.n)
    pairs = [(QUERY, d) for d in docs]
    return timed(lambda: encoder.rank(QUERY, docs, batch_size=32) and None, repeat=args.repeat) | {"pairs": len(pairs)}


CASES = {
    "reuse": case_reuse,
    "reuse_budget": case_reuse_budget,
    "reuse_scaling": case_reuse_scaling,
    "no_reuse": case_no_reuse,
    "pointwise": case_pointwise,
    "cross_encoder": case_cross_encoder,
}


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=100, help="candidates")
    parser.add_argument("--layers", type=int, default=4, help="layers of the 0.6B shape (28 in the real model)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--doc-tokens", type=int, default=128, help="tokens per prompt document (reuse_budget)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--dtype", default="float32", help="CrossEncoder dtype (ours follow the device default)")


if __name__ == "__main__":
    case_main(CASES, add_args)
