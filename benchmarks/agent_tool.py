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

``--levers`` measures the E2Rank tool alone on the full shape (all 28 layers) over passages of about 100 tokens:
seconds per call and tokens embedded for float32 and int8 x 20/10/5 prompt documents x no cap or a
``max_prompt_tokens`` cap, and beside each the compute-bound time, 2 x dense parameters x tokens / the FLOP/s a
matmul probe of the model's MLP shape reaches in the same run (attention's own FLOPs left out). The load average
is recorded beside each row: on a shared machine the numbers are pessimistic.

    python benchmarks/agent_tool.py --levers     # writes results/agent_tool_levers.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import date
from typing import Any

import numpy as np
from _common import RESULTS, cache_random_vectors, checkpoint, flops_per_token, machine, passages, peak_rss_mb
from langchain_core.documents import Document
from langchain_core.tools import StructuredTool
from langchain_core.vectorstores import InMemoryVectorStore
from rerank_latency import QUERY, pointwise_scorer

import e2rank_integrations.langchain as e2rank_langchain
from e2rank_integrations import E2RankModel
from e2rank_integrations.context import pack_context
from e2rank_integrations.langchain import E2RankEmbeddings, E2RankRetriever, create_e2rank_tool

K, TOP_N, MAX_TOKENS = 50, 5, 1500
PROMPT_DOCS, CAPS = (20, 10, 5), (None, 512)


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


def linear_flops(quantize: str | None, rows: int = 512, seconds: float = 1.0) -> float:
    """FLOP/s of the model's widest dense shape (``rows`` tokens x 1024 -> 3072), as float32 or dynamic int8."""
    import torch

    layer = torch.nn.Linear(1024, 3072, bias=False)
    if quantize == "int8":
        layer = torch.ao.quantization.quantize_dynamic(layer, {torch.nn.Linear}, dtype=torch.qint8)
    x = torch.randn(rows, 1024)
    with torch.inference_mode():
        layer(x)
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            layer(x)
            runs += 1
    return 2 * rows * 1024 * 3072 * runs / (time.perf_counter() - start)


def levers_table(result: dict[str, Any]) -> str:
    """The rows of a ``--levers`` result as the Markdown table of the README and docs/agents.md."""
    lines = [
        "| dtype | prompt docs | prompt cap | tokens embedded | s per call (best) | CPU s / thread | compute bound "
        "| load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        cap = row["max_prompt_tokens"] or "none"
        lines.append(
            f"| {row['dtype']} | {row['num_prompt_docs']} | {cap} | {row['tokens_embedded']:.0f} | "
            f"{row['median_s']:.1f} ({min(row['runs_s']):.1f}) | {row['cpu_s_per_thread']:.1f} | "
            f"{row['compute_bound_s']:.1f} s "
            f"({row['probe_gflops']:.0f} GFLOP/s; {row['vs_bound']:.1f}x) | {row['load_average'][0]:.1f} |"
        )
    return "\n".join(lines)


def levers(args: argparse.Namespace) -> None:
    """The E2Rank tool on the full shape: dtype x prompt documents x prompt-token cap, beside the compute bound."""
    path = checkpoint(args.layers)
    texts = passages(args.passages, words=(60, 90))  # about 100 tokens each, as in issue 21
    docs = [Document(page_content=t, metadata={"source": f"passage-{i}.md"}, id=f"p{i}") for i, t in enumerate(texts)]
    per_token = flops_per_token(path)
    rows: list[dict[str, Any]] = []
    passage_tokens = 0.0
    torch_threads = machine()["torch_threads"]
    for quantize in ("int8", None):  # int8 first: the agent's candidate setting is measured whatever happens
        model = E2RankModel.from_pretrained(path, dtype="float32", quantize=quantize)
        cache_random_vectors(model, texts)
        passage_tokens = statistics.median(model.count_tokens(texts))
        store = InMemoryVectorStore(E2RankEmbeddings(backend=model))
        store.add_documents(docs)  # every vector a cache hit; the store hands them to the rerank
        name = quantize or "float32"
        warm_up = E2RankRetriever(vectorstore=store, backend=model, k=K, top_n=TOP_N, num_prompt_docs=1)
        warm_up.invoke(f"{QUERY} (warm-up {name})")  # one short call per model: the first call's one-off costs
        for n_docs in PROMPT_DOCS:
            for cap in CAPS:
                retriever = E2RankRetriever(
                    vectorstore=store, backend=model, k=K, top_n=TOP_N, num_prompt_docs=n_docs, max_prompt_tokens=cap
                )
                tool = create_e2rank_tool(retriever, max_tokens=MAX_TOKENS)
                flops = linear_flops(quantize)  # just before the calls: on a shared CPU the load moves by the minute
                times, cpu, tokens, texts_embedded = [], [], [], []
                for round_ in range(args.rounds):  # a few calls: the long ones take minutes on a loaded CPU
                    before = model.stats()
                    start, cpu_start = time.perf_counter(), time.process_time()
                    message = tool.invoke(
                        {
                            "name": "search",
                            "args": {"query": f"{QUERY} ({name} {n_docs} {cap} {round_})"},
                            "id": f"{name}-{n_docs}-{cap}-{round_}",
                            "type": "tool_call",
                        }
                    )
                    seconds = time.perf_counter() - start
                    cpu.append(time.process_time() - cpu_start)
                    assert message.status == "success" and message.artifact, message
                    after = model.stats()
                    times.append(seconds)
                    tokens.append(after["tokens_embedded"] - before["tokens_embedded"])
                    texts_embedded.append(after["texts_embedded"] - before["texts_embedded"])
                median, embedded = statistics.median(times), statistics.median(tokens)
                bound = per_token * embedded / flops
                row = {
                    "dtype": name,
                    "num_prompt_docs": n_docs,
                    "max_prompt_tokens": cap,
                    "median_s": round(median, 3),
                    "runs_s": [round(t, 3) for t in times],
                    # CPU seconds over the threads: about what the call takes on this CPU when nothing else runs
                    "cpu_s_per_thread": round(statistics.median(cpu) / torch_threads, 3),
                    "tokens_embedded": embedded,  # the query and the listwise prompt
                    "texts_embedded": statistics.median(texts_embedded),
                    "probe_gflops": round(flops / 1e9, 1),
                    "compute_bound_s": round(bound, 3),
                    "vs_bound": round(median / bound, 2),
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
        del model, store
    result = {
        "date": date.today().isoformat(),
        "command": f"python benchmarks/agent_tool.py --levers --layers {args.layers} --rounds {args.rounds}",
        "machine": machine(),
        "model": {"shape": "E2Rank-0.6B", "layers": args.layers, "weights": "random"},
        "passages": len(docs),
        "passage_tokens_median": passage_tokens,
        "call": {"k": K, "top_n": TOP_N, "max_tokens": MAX_TOKENS, "candidate_vectors": "stored"},
        "dense_flops_per_token": per_token,
        "rows": rows,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(levers_table(result))
    with open(args.out or RESULTS / "agent_tool_levers.json", "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out or RESULTS / 'agent_tool_levers.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=None, help="layers of the 28 (default 4; 28 with --levers)")
    parser.add_argument("--passages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=None, help="timed calls (default 3 after a warm-up; 2: --levers)")
    parser.add_argument("--levers", action="store_true", help="the dtype x prompt-size table on the full shape")
    parser.add_argument("--out", default=None, help="default results/agent_tool.json (agent_tool_levers.json)")
    args = parser.parse_args()
    if args.levers:
        args.layers, args.rounds = args.layers or 28, args.rounds or 2
        levers(args)
        return
    args.layers, args.rounds = args.layers or 4, args.rounds or 3
    args.out = args.out or str(RESULTS / "agent_tool.json")

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
