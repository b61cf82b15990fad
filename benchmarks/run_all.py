"""Run every benchmark, one case per process, and write the results, the plots and the documentation's tables.

    python benchmarks/run_all.py --quick     # about 13 minutes on a 2-core CPU
    python benchmarks/run_all.py             # the full grid (slower)
    python benchmarks/run_all.py --device cuda   # the GPU rows (bfloat16, all 28 layers) on a CUDA machine
    python benchmarks/run_all.py --device cuda --render   # plot and tables again from the saved JSON

Every figure is a ratio against a baseline measured in the same run on the same machine; absolute times are
context. Results go to benchmarks/results/{quick,full,gpu}.json; the plot to docs/assets/; the full tables into
docs/benchmarks.md and a headline table (from every saved result) into README.md, between the
`<!-- benchmarks:... -->` markers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from _common import RESULTS, ROOT, machine

HERE = Path(__file__).resolve().parent
README = ROOT / "README.md"
DOCS = ROOT / "docs" / "benchmarks.md"
ASSETS = ROOT / "docs" / "assets"

# repeat: timed runs per rerank case (their median); embed_repeat: per throughput case; requests_per_client: the
# server load is that many requests per client (at least 8).
GRIDS = {
    "quick": {"layers": 2, "reuse_n": [20, 100], "scaling_n": 1000, "baseline_n": [20, 100], "repeat": 3,
              "embed_repeat": 2, "texts": 96, "clients": [1, 32], "requests_per_client": 1},
    "full": {"layers": 4, "reuse_n": [20, 100, 500], "scaling_n": 1000, "baseline_n": [20, 100, 500, 1000], "repeat": 3,
             "embed_repeat": 3, "texts": 256, "clients": [1, 8, 32, 64], "requests_per_client": 2},
    # The whole 28-layer model: a GPU runs it in milliseconds, so more repeats and texts steady the medians.
    "gpu": {"layers": 28, "reuse_n": [20, 100, 500], "scaling_n": 1000, "baseline_n": [20, 100, 500, 1000],
            "repeat": 10, "embed_repeat": 10, "texts": 1024, "clients": [32, 1, 64, 8], "requests_per_client": 2},
}  # fmt: skip


def run_case(script: str, case: str, *args: Any) -> dict[str, Any]:
    """Run one case in a fresh process and return its JSON result (or the error)."""
    command = [sys.executable, str(HERE / script), "--case", case, *map(str, args)]
    print(f"  {script} {case} {' '.join(map(str, args))}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=HERE)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        print(f"    failed: {' | '.join(tail)}", flush=True)
        return {"error": "\n".join(tail)}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - start, 1)
    return result


def _gpu_args(device: str | None) -> list[str]:
    return ["--device", device, "--dtype", "bfloat16"] if device and device.startswith("cuda") else []


Cases = Iterator[tuple[tuple[Any, ...], Callable[[], dict[str, Any]]]]  # (where in the section, how to measure)


def measure_rerank(grid: dict[str, Any], device: str | None) -> Cases:
    layers, repeat, extra = grid["layers"], grid["repeat"], _gpu_args(device)
    for case, sizes in [
        ("reuse", grid["reuse_n"]),
        ("reuse_scaling", [grid["scaling_n"]]),
        ("reuse_budget", [100]),
        ("no_reuse", grid["baseline_n"]),
        ("pointwise", grid["baseline_n"]),
        ("cross_encoder", grid["baseline_n"]),
    ]:
        for n in sizes:
            args = ["--n", n, "--layers", layers, "--repeat", repeat, *extra]
            yield (case, n), partial(run_case, "rerank_latency.py", case, *args)


def measure_embed(grid: dict[str, Any], device: str | None) -> Cases:
    extra = _gpu_args(device)
    int8 = [] if extra else ["ours_int8", "int8_quality"]  # int8 is a CPU option
    sizes = ["--texts", grid["texts"], "--layers", grid["layers"], "--repeat", grid["embed_repeat"], *extra]
    for case in ["ours", "st", "readme", *int8, "roofline"]:
        yield (case,), partial(run_case, "embed_throughput.py", case, *sizes)


def measure_server(grid: dict[str, Any], device: str | None) -> Cases:
    layers, per_client = grid["layers"], grid["requests_per_client"]
    yield ("inprocess",), partial(run_case, "server_load.py", "inprocess", "--layers", layers)
    for clients in grid["clients"]:  # in the grid's order: the rows that matter most first
        for scenario in ("embed", "rerank"):
            for batching in ("off", "on"):
                yield (f"{scenario}/{clients}/{batching}",), partial(
                    run_case, "server_load.py", "load", "--scenario", scenario, "--clients", clients,
                    "--batching", batching, "--layers", layers, "--requests", max(8, per_client * clients),
                )  # fmt: skip


SECTIONS = {"rerank": measure_rerank, "embed": measure_embed, "server": measure_server}


def _case(rerank: dict[str, Any], case: str, n: int) -> dict[str, Any]:
    """One rerank case's result at N (keys are ints in memory, strings once read back from JSON)."""
    runs = rerank.get(case, {})
    found: dict[str, Any] = runs.get(n) or runs.get(str(n)) or {}
    return found


def _s(result: dict[str, Any] | None) -> float | None:
    return None if not result or "median_s" not in result else float(result["median_s"])


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Ratios against the baselines of the same run, and whether each target is met."""
    rerank, embed = results["rerank"], results["embed"]

    def ratio(num: float | None, den: float | None) -> float | None:
        return None if num is None or den is None or den == 0 else num / den

    a = {int(n): _s(r) for n, r in rerank["reuse"].items()}
    # (a) at the largest N comes from the scaling case, which measures it anyway.
    scaling = next(iter(rerank["reuse_scaling"].values()), {})
    for key, seconds in scaling.get("median_s", {}).items():
        if key.startswith("reuse_") and int(key[6:]) not in a:
            a[int(key[6:])] = seconds
    table = ("no_reuse", "pointwise", "cross_encoder")
    at = {n: {case: _s(_case(rerank, case, n)) for case in table} for n in a}
    summary: dict[str, Any] = {"rerank": {}, "targets": {}}
    for n in sorted(a):
        row = at[n]
        summary["rerank"][n] = {
            "reuse_s": a[n],
            "no_reuse_x": ratio(row.get("no_reuse"), a[n]),
            "pointwise_x": ratio(row.get("pointwise"), a[n]),
            "cross_encoder_x": ratio(row.get("cross_encoder"), a[n]),
        }
    s100 = summary["rerank"].get(100, {})
    big = max(a)
    budget = _s(_case(rerank, "reuse_budget", 100))
    tokens_per_s = {case: embed.get(case, {}).get("tokens_per_s") for case in ("ours", "st", "readme", "ours_int8")}
    roof = embed.get("roofline", {})
    quality = embed.get("int8_quality", {})
    summary["embed"] = {
        "tokens_per_s": tokens_per_s,
        "vs_st_x": ratio(tokens_per_s["ours"], tokens_per_s["st"]),
        "vs_readme_x": ratio(tokens_per_s["ours"], tokens_per_s["readme"]),
        "int8_x": ratio(tokens_per_s["ours_int8"], tokens_per_s["ours"]),
        "efficiency": ratio((tokens_per_s["ours"] or 0) * roof.get("flops_per_token", 0), roof.get("matmul_flops")),
        "int8_quality": quality,
    }
    server = results.get("server", {})
    solo_http = server.get("embed/1/on", {}).get("p50_s")
    summary["http_overhead"] = ratio(solo_http, server.get("inprocess", {}).get("p50_s"))
    summary["batching_x"] = {
        f"{scenario}/{clients}": ratio(
            server.get(f"{scenario}/{clients}/on", {}).get("requests_per_s"),
            server.get(f"{scenario}/{clients}/off", {}).get("requests_per_s"),
        )
        for scenario in ("embed", "rerank")
        for clients in sorted({int(k.split("/")[1]) for k in server if k.count("/") == 2})
    }
    summary["budget_x"] = ratio(a.get(100), budget)
    # The overhead targets come from one process with interleaved rounds: separate processes differ by more.
    summary["bare_overhead"] = scaling.get("reuse_100_vs_bare")
    medians = scaling.get("median_s", {})
    if "tokenize_prompt" in medians:  # what (a) adds to the forward pass besides the tokenizer
        summary["bare_overhead_tokenized"] = (medians["reuse_100"] - medians["tokenize_prompt"]) / medians[
            "bare_forward"
        ]
    summary["big_vs_100"] = scaling.get("reuse_n_vs_100")
    e = summary["embed"]
    targets = {
        "(a) >= 3.5x faster than (b) at N=100": (s100.get("no_reuse_x"), 3.5, ">="),
        "(a) >= 4x faster than (c) at N=100": (s100.get("pointwise_x"), 4.0, ">="),
        f"(a) at N={big} within 1.2x of N=100": (summary["big_vs_100"], 1.2, "<="),
        "(a) within 5% of a bare forward pass": (summary["bare_overhead"], 1.05, "<="),
        "embed >= 1.0x sentence-transformers": (e["vs_st_x"], 1.0, ">="),
        "embed >= 1.3x the README code": (e["vs_readme_x"], 1.3, ">="),
        "int8 >= 1.5x embed throughput": (e["int8_x"], 1.5, ">="),
        "int8 cosine >= 0.99 (min)": (quality.get("cosine_min"), 0.99, ">="),
        "int8 top-10 overlap >= 0.9 (mean)": (quality.get("top10_overlap_mean"), 0.9, ">="),
        "server batching >= 2x no batching at 32 clients (embed)": (summary["batching_x"].get("embed/32"), 2.0, ">="),
        "HTTP overhead < 10% for a 32-text embed (1 client)": (summary["http_overhead"], 1.10, "<"),
    }
    for name, (value, bound, op) in targets.items():
        met = None if value is None else {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
        summary["targets"][name] = {"value": value, "met": met}
    return summary


def _cell(result: dict[str, Any]) -> str | None:
    """What a table cell says instead of numbers: the case was not run, or failed."""
    return "not run" if not result else ("failed" if "error" in result else None)


def _time(seconds: float | None) -> str:
    return "n/a" if seconds is None else (f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s")


def _fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def markdown(results: dict[str, Any], summary: dict[str, Any], mode: str) -> str:
    m = results["machine"]
    rerank = results["rerank"]
    gpu = "gpu" in m
    dtype = "bfloat16" if gpu else "float32"
    hardware = f"{m['gpu']} ({dtype})" if gpu else f"{m['cpu']}, {m['cores']} cores ({dtype})"
    lines = [
        f"Measured by `python benchmarks/run_all.py{ {'quick': ' --quick', 'gpu': ' --device cuda'}.get(mode, '') }` "
        f"on {hardware}, torch "
        f"{m['torch']}, transformers {m.get('transformers')}, a random-weight checkpoint of the real "
        f"E2Rank-0.6B shape with {results['grid']['layers']} of its 28 layers (the cost per layer is the real one; "
        f"weights do not change it). {results['date']}.",
        "",
        "**Rerank latency** against the number of candidates N (BEIR-like passages of about 200 tokens, 20 in the "
        "prompt). (a) E2Rank reusing stored embeddings; (b) E2Rank as the authors' evaluation runs it, embedding "
        "every candidate; (c) a pointwise reranker on the same backbone (Qwen3-Reranker's prompt, one pass per "
        "pair); (d) sentence-transformers `CrossEncoder` on the same checkpoint. Times are medians; `x` is how "
        "many times slower than (a) in the same run.",
        "",
        "| N | (a) reuse | (b) re-embed | (c) pointwise | (d) CrossEncoder | peak RSS (a) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    scaling = next(iter(rerank["reuse_scaling"].values()), {})
    tokenize_s = scaling.get("median_s", {}).get("tokenize_prompt")
    tokenize_ms = None if tokenize_s is None else tokenize_s * 1000
    for n, row in summary["rerank"].items():
        rss = (_case(rerank, "reuse", n) or scaling).get("peak_rss_mb")
        cells = [_time(row["reuse_s"])]
        for case, x in (("no_reuse", "no_reuse_x"), ("pointwise", "pointwise_x"), ("cross_encoder", "cross_encoder_x")):
            r = _case(rerank, case, n)
            cells.append(_cell(r) or f"{_time(_s(r))} ({_fmt(row[x], '.1f', 'x')})")
        lines.append(f"| {n} | {' | '.join(cells)} | {_fmt(rss, '.0f')} MiB |")
    lines += [
        "",
        f"(a) costs {_fmt(summary['bare_overhead'], '.3f', 'x')} one bare forward pass of the same prompt's token ids "
        f"(tokenizing the prompt takes {_fmt(tokenize_ms, '.1f', ' ms')} of it; the rest of (a) costs "
        f"{_fmt(summary.get('bare_overhead_tokenized'), '.3f', 'x')} the bare pass); (a) at the largest N costs "
        f"{_fmt(summary['big_vs_100'], '.2f', 'x')} (a) at N=100. With a prompt budget of 128 tokens per prompt "
        f"document, (a) at N=100 runs {_fmt(summary['budget_x'], '.2f', 'x')} as fast.",
        "",
        f"**Embedding throughput** on {results['grid']['texts']} texts of very different lengths (batch 32):",
        "",
        "| implementation | tokens/s | vs ours | peak RSS |",
        "|---|---:|---:|---:|",
    ]
    e = summary["embed"]
    ours = e["tokens_per_s"]["ours"]
    labels = {
        "ours": "E2RankModel (length-sorted batches)",
        "st": "sentence-transformers, same checkpoint, last-token pooling",
        "readme": "the authors' README code (pad to longest, input order)",
        "ours_int8": 'E2RankModel, `quantize="int8"`',
    }
    for case, label in labels.items():
        if gpu and case == "ours_int8":  # int8 is a CPU option
            continue
        tps = e["tokens_per_s"][case]
        versus = None if not tps or not ours else tps / ours
        rss = results["embed"].get(case, {}).get("peak_rss_mb")
        lines.append(f"| {label} | {_fmt(tps, '.0f')} | {_fmt(versus, '.2f', 'x')} | {_fmt(rss, '.0f')} MiB |")
    q = e["int8_quality"]
    int8 = (
        f" int8 agreement with float32: embedding cosine min {_fmt(q.get('cosine_min'), '.4f')} (mean "
        f"{_fmt(q.get('cosine_mean'), '.4f')}), top-10 overlap after rerank {_fmt(q.get('top10_overlap_mean'), '.2f')}."
    )
    lines += [
        "",
        f"Ours reaches {_fmt((e['efficiency'] or 0) * 100, '.0f', '%')} of this machine's {dtype} matmul roofline "
        f"(model FLOPs per token x tokens/s over the FLOP/s `torch.mm` reaches here).{'' if gpu else int8}",
        "",
        "**Server** (`e2rank serve` on a real port, httpx clients; embed: 32 new texts per request, so the cache "
        "never answers; rerank: 100 indexed candidates and a new query per request, so each request embeds its "
        "prompt). `x` compares batching on with off at the same concurrency.",
        "",
        "| scenario | clients | batching off: req/s, p50, p99 | batching on: req/s, p50, p99 | on vs off "
        "| server RSS |",
        "|---|---:|---|---|---:|---:|",
    ]
    server = results.get("server", {})
    for key, x in summary.get("batching_x", {}).items():
        scenario, clients = key.split("/")
        cells = []
        for batching in ("off", "on"):
            r = server.get(f"{key}/{batching}", {})
            cells.append(_cell(r) or f"{r['requests_per_s']:.2f}/s, {_time(r['p50_s'])}, {_time(r['p99_s'])}")
        rss = server.get(f"{key}/on", {}).get("server_peak_rss_mb")
        lines.append(
            f"| {scenario} | {clients} | {cells[0]} | {cells[1]} | {_fmt(x, '.2f', 'x')} | {_fmt(rss, '.0f')} MiB |"
        )
    lines += [
        "",
        f"One client's 32-text embed over HTTP takes {_fmt(summary.get('http_overhead'), '.3f', 'x')} the same embed "
        "in process.",
        "",
        "**Targets** (issue 8):",
        "",
        "| target | measured | met |",
        "|---|---:|:---:|",
    ]
    for name, t in summary["targets"].items():
        if gpu and "int8" in name:
            continue
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "no")
        lines.append(f"| {name} | {_fmt(t['value'], '.3f')} | {met} |")
    return "\n".join(lines)


def plot(results: dict[str, Any], summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = {"reuse": "(a) E2Rank, reused embeddings", "no_reuse": "(b) E2Rank, re-embed candidates",
              "pointwise": "(c) pointwise, same backbone", "cross_encoder": "(d) CrossEncoder"}  # fmt: skip
    for case, label in labels.items():
        points = sorted((int(n), _s(r)) for n, r in results["rerank"][case].items() if _s(r) is not None)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("candidates N")
    ax.set_ylabel("rerank latency (s)")
    where = results["machine"].get("gpu", "CPU")
    ax.set_title(f"Rerank latency, E2Rank-0.6B shape ({results['grid']['layers']}/28 layers), {where}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def headline(results_dir: Path) -> str:
    """The README's table: rerank latency of (a), (b) and (c) at N=100 and the largest N measured, per saved run."""
    lines = [
        "| rerank of N candidates | E2Rank, reusing stored embeddings | E2Rank, re-embedding them | pointwise "
        "reranker, same backbone |",
        "|---|---:|---:|---:|",
    ]
    for mode in ("gpu", "quick"):
        path = results_dir / f"{mode}.json"
        if not path.exists():
            continue
        results = json.loads(path.read_text())
        summary, rerank, m = summarize(results), results["rerank"], results["machine"]
        layers = results["grid"]["layers"]
        where = f"{m['gpu']}" if "gpu" in m else f"{m['cores']} CPU cores ({layers} of 28 layers)"
        measured = [n for n in summary["rerank"] if _s(_case(rerank, "no_reuse", n)) is not None and n >= 100]
        for n in sorted({min(measured), max(measured)}) if measured else []:
            row = summary["rerank"][n]
            cells = [
                f"{_time(_s(_case(rerank, case, n)))} ({_fmt(row[x], '.1f', 'x')})"
                for case, x in (("no_reuse", "no_reuse_x"), ("pointwise", "pointwise_x"))
            ]
            lines.append(f"| {where}, N={n} | {_time(row['reuse_s'])} | {' | '.join(cells)} |")
    return "\n".join(lines)


def write_between_markers(path: Path, section: str, text: str) -> None:
    """Replace what lies between ``<!-- benchmarks:SECTION:start -->`` and its end marker in ``path``."""
    start, end = f"<!-- benchmarks:{section}:start -->", f"<!-- benchmarks:{section}:end -->"
    document = path.read_text()
    if start not in document or end not in document:
        raise SystemExit(f"{path} has no {start} ... {end} markers")
    head, rest = document.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}\n{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the quick grid (about 13 minutes on 2 cores)")
    parser.add_argument(
        "--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md, its plots and the README headline"
    )
    parser.add_argument("--device", default=None, help="cuda for the GPU rows (bfloat16, whole model); default: CPU")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="which to measure; the others are kept from "
                        "the saved results (default: %(default)s)")  # fmt: skip
    parser.add_argument("--only", default="", help="measure only the cases whose key starts with one of these "
                        "(e.g. reuse,embed/32), keeping the others from the saved results")  # fmt: skip
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON and plot (%(default)s)")
    parser.add_argument("--render", action="store_true", help="measure nothing: redo plot and tables from the JSON")
    args = parser.parse_args()
    gpu = bool(args.device and args.device.startswith("cuda"))
    mode = "gpu" if gpu else ("quick" if args.quick else "full")
    grid = GRIDS[mode]
    sections = [] if args.render else args.sections.split(",")
    if unknown := set(sections) - set(SECTIONS):
        parser.error(f"--sections: unknown {sorted(unknown)}; choose from {list(SECTIONS)}")
    path = args.results / f"{mode}.json"
    partial_run = set(sections) < set(SECTIONS) or bool(args.only)
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() and partial_run else {}
    args.results.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if sections:
        results.update(mode=mode, grid=grid, machine=machine(), date=time.strftime("%Y-%m-%d"))
    only = args.only.split(",") if args.only else []
    for section in sections:
        results[section] = results.get(section, {}) if only else {}
        for keys, measure in SECTIONS[section](grid, args.device):
            if only and not any("/".join(map(str, keys)).startswith(prefix) for prefix in only):
                continue
            node = results[section]
            for key in keys[:-1]:
                node = node.setdefault(str(key), {})  # str: the keys JSON gives back, so a merge replaces
            node[str(keys[-1])] = measure()
            path.write_text(json.dumps(results, indent=2, default=str) + "\n")  # a run cut short keeps its cases
    if missing := [section for section in SECTIONS if section not in results]:
        raise SystemExit(f"{path} has no {missing} results yet: run with --sections {','.join(missing)}")
    results["summary"] = summary = summarize(results)
    if sections:
        results["wall_s"] = round(time.perf_counter() - started, 1)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    plot(results, summary, (args.results if args.no_docs else ASSETS) / f"rerank_latency_{mode}.png")
    table = markdown(results, summary, mode)
    print("\n" + table)
    if not args.no_docs:
        write_between_markers(DOCS, "gpu" if gpu else "cpu", table)
        write_between_markers(README, "headline", headline(args.results))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
