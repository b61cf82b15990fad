"""benchmarks/run_all.py turns case results into ratios, targets and README tables correctly (no timing here)."""

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


def test_readme_has_the_markers(run_all):
    readme = run_all.README.read_text()
    for section in ("cpu", "gpu"):
        assert f"<!-- benchmarks:{section}:start -->" in readme
        assert f"<!-- benchmarks:{section}:end -->" in readme
