"""Latency of one agent search-tool call over 1,000 indexed passages: E2Rank's tool against a pointwise reranker.

Both sides are LangChain tools over the same InMemoryVectorStore and the same backbone, and do the same work but
the rerank: embed the query, retrieve 50 candidates, rerank them to 5, pack those into 1,500 tokens with cited
passages (``pack_context``), return content and Documents.

  e2rank     ``create_e2rank_tool(E2RankRetriever(k=50, top_n=5), max_tokens=1500)``: the rerank embeds one text,
             the listwise prompt (the candidates' vectors come from the store)
  pointwise  the same steps with a pointwise reranker on the same backbone: one forward pass per (query,
             candidate) pair, in Qwen3-Reranker's prompt format (``rerank_latency.pointwise_scorer``)

The model is a random-weight checkpoint of E2Rank-0.6B's real shape (hidden 1024, Qwen3's tokenizer) with
``--layers`` of its 28 layers, so that a CPU finishes in minutes: every forward pass scales with the layer count,
so the ratio moves little with it. The 1,000 passages are indexed through the real ``E2RankEmbeddings`` path with
random stored vectors (their values do not change a call's cost; embedding them would take this CPU many
minutes). Rounds are interleaved in one process, each call with a query of its own (never a cache hit).
``pack_context``'s share is timed inside the E2Rank tool's own calls.

    python benchmarks/agent_tool.py              # 4 of the 28 layers, 3 rounds; writes results/agent_tool.json
    python benchmarks/agent_tool.py --layers 28  # the full depth
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import date
from typing import Any

import numpy as np
from _common import RESULTS, cache_random_vectors, checkpoint, machine, passages, peak_rss_mb
from langchain_core.documents import Document
from langchain_core.tools import StructuredTool
from langchain_core.vectorstores import InMemoryVectorStore
from rerank_latency import QUERY, pointwise_scorer

import e2rank_integrations.langchain as e2rank_langchain
from e2rank_integrations import E2RankModel
from e2rank_integrations.context import pack_context
from e2rank_integrations.langchain import E2RankEmbeddings, E2RankRetriever, create_e2rank_tool

K, TOP_N, MAX_TOKENS = 50, 5, 1500


def pointwise_tool(store: InMemoryVectorStore, model: E2RankModel) -> StructuredTool:
    """The same tool with a pointwise reranker: retrieve K, score each (query, candidate) pair, keep TOP_N, pack."""
    score = pointwise_scorer(model)

    def search(query: str) -> tuple[str, list[Document]]:
        candidates = store.similarity_search(query, k=K)
        scores = score(query, [d.page_content for d in candidates])
        best = [candidates[i] for i in np.argsort(-scores, kind="stable")[:TOP_N]]
        packed = pack_context(
            query,
            [d.page_content for d in best],
            max_tokens=MAX_TOKENS,
            backend=model,
            sources=[d.metadata["source"] for d in best],
        )
        return packed.text, [best[item.index] for item in packed.items]

    return StructuredTool.from_function(
        search, name="search", description="Search the passages.", response_format="content_and_artifact"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4, help="layers of the 28 (default 4)")
    parser.add_argument("--passages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after one warm-up round")
    parser.add_argument("--out", default=str(RESULTS / "agent_tool.json"))
    args = parser.parse_args()

    model = E2RankModel.from_pretrained(checkpoint(args.layers))
    texts = passages(args.passages)
    cache_random_vectors(model, texts)
    store = InMemoryVectorStore(E2RankEmbeddings(backend=model))
    docs = [Document(page_content=t, metadata={"source": f"passage-{i}.md"}, id=f"p{i}") for i, t in enumerate(texts)]
    store.add_documents(docs)  # the real indexing path; every vector is a cache hit
    assert model.stats()["texts_embedded"] == 0, model.stats()

    e2rank = create_e2rank_tool(
        E2RankRetriever(vectorstore=store, backend=model, k=K, top_n=TOP_N), max_tokens=MAX_TOKENS
    )
    tools = {"e2rank": e2rank, "pointwise": pointwise_tool(store, model)}

    packing: list[float] = []  # seconds of each pack_context call inside the E2Rank tool
    real_pack = e2rank_langchain.pack_context

    def timed_pack(*a: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return real_pack(*a, **kw)
        finally:
            packing.append(time.perf_counter() - start)

    e2rank_langchain.pack_context = timed_pack  # the tool looks it up at call time

    times: dict[str, list[float]] = {name: [] for name in tools}
    embedded: dict[str, list[int]] = {name: [] for name in tools}
    contents: dict[str, str] = {}
    print(
        f"model: random E2Rank-0.6B shape, {args.layers} of 28 layers, {model.device} {model.dtype}; "
        f"{len(docs)} passages indexed; one call = retrieve {K}, rerank to {TOP_N}, pack to {MAX_TOKENS} tokens",
        flush=True,
    )
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for name, tool in tools.items():
            call = {
                "name": "search",
                "args": {"query": f"{QUERY} ({name} {round_})"},
                "id": f"{name}-{round_}",
                "type": "tool_call",
            }
            before = model.stats()["texts_embedded"]
            start = time.perf_counter()
            message = tool.invoke(call)
            seconds = time.perf_counter() - start
            assert message.status == "success" and message.artifact, message
            contents[name] = message.content
            if round_:
                times[name].append(seconds)
                embedded[name].append(model.stats()["texts_embedded"] - before)
            print(
                f"[{round_}] {name:<9} {seconds:8.3f} s  texts embedded {model.stats()['texts_embedded'] - before}",
                flush=True,
            )
    pack_times = packing[1:]  # the warm-up round's call is left out, as for the calls

    medians = {name: statistics.median(values) for name, values in times.items()}
    pack_share = statistics.median(p / t for p, t in zip(pack_times, times["e2rank"]))
    result = {
        "date": date.today().isoformat(),
        "command": f"python benchmarks/agent_tool.py --layers {args.layers} --rounds {args.rounds}",
        "machine": machine(),
        "model": {"shape": "E2Rank-0.6B", "layers": args.layers, "weights": "random", "dtype": model.dtype},
        "passages": len(docs),
        "call": {"k": K, "top_n": TOP_N, "max_tokens": MAX_TOKENS},
        "median_s": medians,
        "runs_s": times,
        "texts_embedded_per_call": {name: statistics.median(v) for name, v in embedded.items()},
        "pointwise_vs_e2rank": medians["pointwise"] / medians["e2rank"],
        "pack_context_median_s": statistics.median(pack_times),
        "pack_context_share_of_e2rank_call": pack_share,
        "content_tokens": {name: model.count_tokens([text])[0] for name, text in contents.items()},
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(
        f"median tool call: e2rank {medians['e2rank']:.3f} s, pointwise {medians['pointwise']:.3f} s, "
        f"pointwise / e2rank = {result['pointwise_vs_e2rank']:.2f}x; "
        f"pack_context {result['pack_context_median_s'] * 1000:.1f} ms, {pack_share:.3%} of the e2rank call"
    )
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
