"""Rerank wall time for 50 LlamaIndex nodes, with and without embedding reuse, in one run.

A random-weight checkpoint of the real E2Rank-0.6B shape (hidden 1024, Qwen3's vocabulary) with a fraction of
its layers stands in for the model: the weights make the ranking meaningless, the cost is the real one per layer.
Passages of about 150-250 tokens are built from the built-in corpus and indexed through ``E2RankEmbedding``
into a ``VectorStoreIndex``; for each query the retriever returns the top 50 nodes, which ``E2RankRerank``
reranks twice, on the same weights:

- reuse: the backend that indexed them, whose cache holds their vectors, so only the prompt is embedded;
- no reuse: the same weights with no cache, as a reranker that embeds every candidate (51 texts).

Run: ``python benchmarks/llama_index_rerank.py [--layers 7] [--queries 3]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from _common import checkpoint, passages
from llama_index.core import Document, VectorStoreIndex

from e2rank_integrations import E2RankModel
from e2rank_integrations.llama_index import E2RankEmbedding, E2RankRerank

QUERIES = [
    "Why are there two high tides a day?",
    "What makes the seasons change?",
    "How do vaccines train the immune system?",
    "How does a solar panel turn light into electricity?",
    "Who invented the printing press?",
]


def timed_rerank(reranker: E2RankRerank, nodes, query: str) -> tuple[float, list, dict]:
    backend = reranker.backend
    backend.reset_stats()
    start = time.perf_counter()
    out = reranker.postprocess_nodes(nodes, query_str=query)
    return time.perf_counter() - start, out, backend.stats()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=7, help="hidden layers of the 28 in E2Rank-0.6B")
    parser.add_argument("--queries", type=int, default=3, help="queries to time (each reranks 50 nodes twice)")
    parser.add_argument("--nodes", type=int, default=50, help="nodes retrieved and reranked per query")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "llama_index_rerank.json")
    args = parser.parse_args()

    path = checkpoint(args.layers)
    model = E2RankModel.from_pretrained(path)  # the in-memory LRU cache: what indexing fills
    no_reuse = E2RankModel(model.model, model.tokenizer, name_or_path=str(path), cache=False)  # same weights
    texts = passages(120)
    lengths = model.count_tokens([model.prompts.document(t) for t in texts])
    print(f"checkpoint: e2rank-0.6b shape, {args.layers} of 28 layers, {model.dtype} on {model.device}")
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(
        f"corpus: {len(texts)} passages of {min(lengths)}-{max(lengths)} tokens (median {statistics.median(lengths)})"
    )

    start = time.perf_counter()
    index = VectorStoreIndex.from_documents(
        [Document(text=t) for t in texts], embed_model=E2RankEmbedding(backend=model)
    )
    print(f"indexing: {time.perf_counter() - start:.1f} s")
    retriever = index.as_retriever(similarity_top_k=args.nodes)
    reuse_reranker = E2RankRerank(backend=model, top_n=5)
    cold_reranker = E2RankRerank(backend=no_reuse, top_n=5)
    model.embed_prompt("warm up")  # first-call overheads out of the timings
    no_reuse.embed_prompt("warm up")

    rows = []
    for n, query in enumerate(QUERIES[: args.queries]):
        nodes = retriever.retrieve(query)
        # Alternate which goes first, so that a slow phase of the shared machine does not favour one side.
        order = [("reuse", reuse_reranker), ("no reuse", cold_reranker)]
        timings = {}
        for name, reranker in order if n % 2 == 0 else order[::-1]:
            seconds, out, stats = timed_rerank(reranker, nodes, query)
            timings[name] = {"seconds": seconds, "ids": [x.node.node_id for x in out], "stats": stats}
        same = timings["reuse"]["ids"] == timings["no reuse"]["ids"]
        row = {
            "query": query,
            "nodes": len(nodes),
            "reuse_s": timings["reuse"]["seconds"],
            "no_reuse_s": timings["no reuse"]["seconds"],
            "reuse_texts_embedded": timings["reuse"]["stats"]["texts_embedded"],
            "reuse_tokens_embedded": timings["reuse"]["stats"]["tokens_embedded"],
            "no_reuse_texts_embedded": timings["no reuse"]["stats"]["texts_embedded"],
            "no_reuse_tokens_embedded": timings["no reuse"]["stats"]["tokens_embedded"],
            "same_top5": same,
        }
        rows.append(row)
        print(
            f"{query[:48]:<48}  reuse {row['reuse_s']:6.2f} s ({row['reuse_texts_embedded']} text, "
            f"{row['reuse_tokens_embedded']} tokens)   no reuse {row['no_reuse_s']:6.2f} s "
            f"({row['no_reuse_texts_embedded']} texts, {row['no_reuse_tokens_embedded']} tokens)   same top 5: {same}"
        )

    reuse = statistics.median(r["reuse_s"] for r in rows)
    baseline = statistics.median(r["no_reuse_s"] for r in rows)
    print(
        f"median rerank of {args.nodes} nodes: reuse {reuse:.2f} s, no reuse {baseline:.2f} s; "
        f"no reuse / reuse = {baseline / reuse:.2f}x"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "checkpoint": {"shape": "e2rank-0.6b", "num_hidden_layers": args.layers, "dtype": model.dtype},
        "device": model.device,
        "torch_threads": torch.get_num_threads(),
        "passages": len(texts),
        "passage_tokens": {"min": min(lengths), "median": statistics.median(lengths), "max": max(lengths)},
        "rows": rows,
        "median_reuse_s": reuse,
        "median_no_reuse_s": baseline,
        "speedup": baseline / reuse,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
