"""The walkthroughs in notebooks/ run top to bottom in a fresh kernel against a tiny generated checkpoint, leave no
process behind, and are committed with the outputs of a run on ``tiny-random`` (small, without library noise)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
LATENCY = NOTEBOOK_DIR / "06_latency.ipynb"

# The shape `benchmarks/run_all.py` writes (results["rerank"][case][N]["median_s"], N as strings); made-up numbers.
SAMPLE_RESULTS = {
    "mode": "quick",
    "grid": {"layers": 2, "reuse_n": [20, 100, 1000], "baseline_n": [20, 100], "repeat": 2, "texts": 128},
    "machine": {"cpu": "Example CPU", "cores": 2, "torch": "2.13.0"},
    "rerank": {
        "reuse": {"20": {"median_s": 0.4}, "100": {"median_s": 0.5}, "1000": {"median_s": 0.6}},
        "no_reuse": {"20": {"median_s": 1.1}, "100": {"median_s": 2.4}},
        "pointwise": {"20": {"median_s": 1.5}, "100": {"error": "a case that failed is left out of the plot"}},
        "cross_encoder": {"20": {"median_s": 1.4}},
    },
}


def test_every_walkthrough_is_here():
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_langchain_rag.ipynb",
        "03_llamaindex_query_engine.ipynb",
        "04_chroma.ipynb",
        "05_remote_server.ipynb",
        "06_latency.ipynb",
        "07_agent_tools.ipynb",
        "08_fine_tuning.ipynb",
    ]


# What a stored output must not show: the libraries' noise the package silences where it loads and trains.
NOISE = ("Loading weights", "Loading checkpoint shards", "IProgress not found", "pin_memory")
MAX_BYTES = 250_000  # outputs are for reading on a code host: a plot or two, not a log


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_with_small_outputs_of_a_tiny_random_run(path):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: stored from one run, top to bottom ({counts})"
    assert path.stat().st_size < MAX_BYTES, f"{path.name}: {path.stat().st_size} bytes of outputs"
    intro = "".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    assert "outputs stored here come from a run on `tiny-random`" in intro, f"{path.name}: say what the outputs are"
    for cell in code:
        for output in cell.outputs:
            text = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
            assert output.get("output_type") != "error", f"{path.name}: a stored error"
            assert not [n for n in NOISE if n in text], f"{path.name}: library noise in a stored output: {text[:300]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_runs_top_to_bottom(path, tiny_path, tmp_path, monkeypatch):
    execute(path, tiny_path, tmp_path, monkeypatch)


@pytest.mark.parametrize("source", ["results file", "live"])
def test_latency_plots_the_results_file_or_measures_live(source, tiny_path, tmp_path, monkeypatch):
    results = tmp_path / "results.json"
    if source == "results file":
        results.write_text(json.dumps(SAMPLE_RESULTS))
    monkeypatch.setenv("E2RANK_BENCHMARK_RESULTS", str(results))  # absent: the notebook measures live
    notebook = execute(LATENCY, tiny_path, tmp_path, monkeypatch)
    printed = "".join(out.get("text", "") for cell in notebook.cells for out in cell.get("outputs", []))
    if source == "results file":
        assert f"results file: {results}" in printed
        assert "no_reuse   4.8x" in printed  # 2.4 s against 0.5 s at N=100: the file's numbers were read
    else:
        assert "none: measuring live" in printed
    assert (tmp_path / "rerank_latency.png").stat().st_size > 0


def execute(path: Path, tiny_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch):
    """Run ``path`` in a fresh kernel in its own directory; fail if a process it started outlives it."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("E2RANK_MODEL", str(tiny_path))  # the kernel inherits this process's environment
    monkeypatch.setenv("E2RANK_NOTEBOOK_DIR", str(workdir))  # where notebooks may write files
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:  # the stored outputs are not this run's
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    try:
        client.execute(env=dict(os.environ))
    finally:
        # Every process the kernel started inherited the marker. Shutting the kernel down kills its process group;
        # one that left the group (a daemon, start_new_session) would outlive it unless the notebook stops it.
        leaked = survivors(f"E2RANK_NOTEBOOK_DIR={workdir}")
        for pid in leaked:
            os.kill(pid, signal.SIGKILL)
    assert not leaked, f"{path.name} left processes running: {leaked}"
    return notebook


def survivors(marker: str, grace: float = 10.0) -> list[int]:
    """Processes whose environment holds ``marker``, once ``grace`` seconds have passed for them to exit."""
    proc = Path("/proc")
    if not (proc / "self" / "environ").exists():  # not Linux: nothing to check with
        return []
    entry = marker.encode()
    deadline = time.monotonic() + grace
    while True:
        found = []
        for process in proc.iterdir():
            if not process.name.isdigit() or int(process.name) == os.getpid():
                continue
            try:
                if entry in (process / "environ").read_bytes().split(b"\0"):
                    found.append(int(process.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
