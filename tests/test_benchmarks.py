"""benchmarks/run_all.py turns case results into ratios, targets and the docs' tables correctly (no timing here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def run_all():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import run_all

        yield run_all
    finally:
        sys.path.remove(str(BENCHMARKS))


def t(seconds: float, **extra) -> dict:
    return {"median_s": seconds, "peak_rss_mb": 1000.0, **extra}


@pytest.fixture
def results() -> dict:
    server = {"inprocess": {"p50_s": 1.0}}
    for scenario in ("embed", "rerank"):
        for clients in (1, 32):
            for batching, rps in (("off", 1.0), ("on", 2.5 if clients == 32 else 1.0)):
                server[f"{scenario}/{clients}/{batching}"] = {
                    "requests_per_s": rps, "p50_s": 1.05, "p99_s": 2.0, "server_peak_rss_mb": 900.0,
                }  # fmt: skip
    return {
        "machine": {"cpu": "test cpu", "cores": 2, "torch": "2.13", "transformers": "5"},
        "grid": {"layers": 2, "texts": 128},
        "date": "2026-11-27",
        "rerank": {
            "reuse": {20: t(1.0), 100: t(1.0)},
            "reuse_scaling": {
                "1000": {  # as read back from JSON
                    "median_s": {"bare_forward": 0.98, "reuse_100": 1.0, "reuse_1000": 1.1},
                    "reuse_100_vs_bare": 1.02,
                    "reuse_n_vs_100": 1.1,
                    "peak_rss_mb": 1200.0,
                }
            },
            "reuse_budget": {100: t(0.5)},
            "no_reuse": {20: t(2.0), 100: t(4.0)},
            "pointwise": {20: t(2.5), 100: t(5.0)},
            "cross_encoder": {20: {"error": "failed"}, 100: t(6.0)},
        },
        "embed": {
            "ours": {"tokens_per_s": 1000.0},
            "st": {"tokens_per_s": 800.0},
            "readme": {"tokens_per_s": 500.0},
            "ours_int8": {"tokens_per_s": 1600.0},
            "int8_quality": {"cosine_min": 0.995, "cosine_mean": 0.998, "top10_overlap_mean": 0.95},
            "roofline": {"matmul_flops": 1e11, "flops_per_token": 5e7},
        },
        "server": server,
    }


def test_summary_ratios_and_targets(run_all, results):
    summary = run_all.summarize(results)
    assert summary["rerank"][100]["no_reuse_x"] == pytest.approx(4.0)
    assert summary["rerank"][20]["cross_encoder_x"] is None  # a failed case is not a number
    assert summary["bare_overhead"] == pytest.approx(1.02)
    assert summary["big_vs_100"] == pytest.approx(1.1)
    assert summary["embed"]["vs_st_x"] == pytest.approx(1.25)
    assert summary["embed"]["efficiency"] == pytest.approx(0.5)
    assert summary["batching_x"]["embed/32"] == pytest.approx(2.5)
    assert summary["http_overhead"] == pytest.approx(1.05)
    met = {name: target["met"] for name, target in summary["targets"].items()}
    assert met["(a) >= 3.5x faster than (b) at N=100"] is True
    assert met["(a) within 5% of a bare forward pass"] is True
    assert met["embed >= 1.3x the README code"] is True
    assert met["server batching >= 2x no batching at 32 clients (embed)"] is True
    assert met["HTTP overhead < 10% for a 32-text embed (1 client)"] is True


def test_markdown_tables(run_all, results):
    summary = run_all.summarize(results)
    text = run_all.markdown(results, summary, "quick")
    assert "`python benchmarks/run_all.py --quick`" in text
    assert "| 100 | 1.00 s | 4.00 s (4.0x) | 5.00 s (5.0x) | 6.00 s (6.0x) | 1000 MiB |" in text
    assert "| 20 | 1.00 s | 2.00 s (2.0x) | 2.50 s (2.5x) | failed | 1000 MiB |" in text
    assert "| 1000 | 1.10 s | not run | not run | not run | 1200 MiB |" in text
    assert "| embed | 32 | 1.00/s, 1.05 s, 2.00 s | 2.50/s, 1.05 s, 2.00 s | 2.50x | 900 MiB |" in text
    assert "| (a) >= 4x faster than (c) at N=100 | 5.000 | yes |" in text
    assert "int8 agreement with float32: embedding cosine min 0.9950" in text


def test_gpu_tables_in_milliseconds_without_int8(run_all, results):
    results["machine"]["gpu"] = "NVIDIA H200"
    results["rerank"]["reuse"] = {20: t(0.035), 100: t(0.035)}
    scaling = results["rerank"]["reuse_scaling"]["1000"]
    scaling["median_s"] = {"tokenize_prompt": 0.01, "bare_forward": 0.03, "reuse_100": 0.04, "reuse_1000": 0.05}
    del results["server"]["rerank/1/on"]
    summary = run_all.summarize(results)
    assert summary["bare_overhead_tokenized"] == pytest.approx(1.0)  # (0.04 - 0.01) / 0.03
    text = run_all.markdown(results, summary, "gpu")
    assert "`python benchmarks/run_all.py --device cuda` on NVIDIA H200 (bfloat16)" in text
    assert "| 100 | 35.0 ms | 4.00 s (114.3x) |" in text
    assert "tokenizing the prompt takes 10.0 ms of it; the rest of (a) costs 1.000x the bare pass" in text
    assert "| rerank | 1 | 1.00/s, 1.05 s, 2.00 s | not run | n/a | n/a MiB |" in text
    assert "int8" not in text  # a CPU option: neither its row nor its targets


def test_headline_table_from_every_saved_run(run_all, results, tmp_path):
    import json

    (tmp_path / "quick.json").write_text(json.dumps(results))
    gpu = json.loads(json.dumps(results))
    gpu["machine"]["gpu"] = "NVIDIA H200"
    gpu["grid"]["layers"] = 28
    gpu["rerank"]["no_reuse"]["1000"] = t(30.0)
    gpu["rerank"]["pointwise"]["1000"] = t(40.0)
    (tmp_path / "gpu.json").write_text(json.dumps(gpu))
    lines = run_all.headline(tmp_path).splitlines()
    assert lines[0].startswith("| rerank of N candidates | E2Rank, reusing stored embeddings |")
    assert lines[2:] == [
        "| NVIDIA H200, N=100 | 1.00 s | 4.00 s (4.0x) | 5.00 s (5.0x) |",
        "| NVIDIA H200, N=1000 | 1.10 s | 30.00 s (27.3x) | 40.00 s (36.4x) |",
        "| 2 CPU cores (2 of 28 layers), N=100 | 1.00 s | 4.00 s (4.0x) | 5.00 s (5.0x) |",
    ]


def test_write_between_markers(run_all, tmp_path):
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- benchmarks:cpu:start -->\nold\n<!-- benchmarks:cpu:end -->\nafter\n")
    run_all.write_between_markers(page, "cpu", "new table")
    assert page.read_text() == "intro\n<!-- benchmarks:cpu:start -->\nnew table\n<!-- benchmarks:cpu:end -->\nafter\n"
    with pytest.raises(SystemExit, match="no <!-- benchmarks:gpu:start -->"):
        run_all.write_between_markers(page, "gpu", "x")


def test_the_docs_and_the_readme_have_the_markers(run_all):
    docs, readme = run_all.DOCS.read_text(), run_all.README.read_text()
    for section in ("cpu", "gpu"):
        assert f"<!-- benchmarks:{section}:start -->" in docs and f"<!-- benchmarks:{section}:end -->" in docs
    assert "<!-- benchmarks:headline:start -->" in readme and "<!-- benchmarks:headline:end -->" in readme
