"""Wall time of ``E2RankRerank.compress_documents`` on 50 Documents, with and without prior indexing, in one run.

Without indexing, the rerank embeds the 50 candidates and the prompt (51 texts). After the candidates were indexed
into a LangChain vector store with ``E2RankEmbeddings`` on the same backend, it embeds only the prompt. The model
is a random-weight checkpoint of E2Rank-0.6B's real shape (hidden 1024, Qwen3's tokenizer) with fewer layers, so
that a CPU finishes in minutes: costs scale with the layer count, the ratio much less so. Rankings mean nothing.

    python benchmarks/langchain_rerank.py                # 7 of the 28 layers, 3 repeats
    python benchmarks/langchain_rerank.py --layers 28    # the full depth
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import checkpoint, passages
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from e2rank_integrations import E2RankModel
from e2rank_integrations.langchain import E2RankEmbeddings, E2RankRerank

QUERY = "Why is it warmer in summer than in winter?"


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def counters(model: E2RankModel) -> str:
    stats = model.stats()
    embedded, tokens, hits = stats["texts_embedded"], stats["tokens_embedded"], stats["cache_hits"]
    return f"texts embedded {embedded:>3}, tokens {tokens:>5}, cache hits {hits:>3}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=7, help="layers of the 28 (default 7)")
    parser.add_argument("--docs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    path = checkpoint(args.layers)
    model = E2RankModel.from_pretrained(path)
    texts = passages(args.docs)
    docs = [Document(page_content=text, metadata={"n": i}, id=f"p{i}") for i, text in enumerate(texts)]
    lengths = model.count_tokens([model.prompts.document(t) for t in texts])
    embeddings = E2RankEmbeddings(backend=model)
    reranker = E2RankRerank(backend=model, top_n=5)
    print(
        f"model: random E2Rank-0.6B shape (hidden {model.dimension}), {args.layers} of 28 layers, "
        f"{model.device} {model.dtype}, torch threads {torch.get_num_threads()}"
    )
    print(f"{len(docs)} documents of {min(lengths)}-{max(lengths)} tokens (mean {statistics.mean(lengths):.0f})")

    # The retriever's order, once: both timed reranks get exactly these Documents in exactly this order.
    store = InMemoryVectorStore(embeddings)
    store.add_documents(docs)
    retrieved = store.similarity_search(QUERY, k=len(docs))
    reranker.compress_documents(docs[:3], "warm-up")  # first-call costs land on neither side

    without, with_index = [], []
    for repeat in range(args.repeats):
        model.cache.clear()
        model.reset_stats()
        seconds, _ = timed(reranker.compress_documents, retrieved, QUERY)
        without.append(seconds)
        print(f"[{repeat}] without indexing: {seconds:7.3f} s  {counters(model)}", flush=True)

        model.cache.clear()
        indexing, _ = timed(InMemoryVectorStore(embeddings).add_documents, docs)
        model.reset_stats()
        seconds, _ = timed(reranker.compress_documents, retrieved, QUERY)
        with_index.append(seconds)
        print(
            f"[{repeat}] after indexing:   {seconds:7.3f} s  {counters(model)}  (indexing: {indexing:.3f} s)",
            flush=True,
        )

    base, reuse = statistics.median(without), statistics.median(with_index)
    print(
        f"median compress_documents, {len(docs)} documents: without indexing {base:.3f} s, "
        f"after indexing {reuse:.3f} s, ratio {base / reuse:.2f}x (no-indexing baseline = 1.00x)"
    )


if __name__ == "__main__":
    main()
