"""Two processes launched by torchrun on CPUs (gloo) make ONE training run: its first step equals one process on the
combined batch (loss, losses' parts, gradient norm, weights), and only rank 0 writes the output and the log.
``accelerate launch --multi_gpu`` makes one such run too; its CPU launcher without MPI, which starts one process where
several were asked for, is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("accelerate")

from e2rank_integrations import E2RankValueError
from e2rank_integrations.training import TrainConfig, train
from e2rank_integrations.training.synthetic import make_topic_task, write_jsonl

SCRIPT = """
    import json, sys
    from e2rank_integrations.training import TrainConfig, train
    train(TrainConfig(**json.loads(sys.argv[1])))
"""


def step_one(output):
    state = json.loads((output / "checkpoint-1" / "trainer_state.json").read_text())
    assert state["global_step"] == 1
    return state["log_history"][0]


def test_torchrun_on_cpus_is_one_run_equal_to_one_process_on_the_combined_batch(tiny_path, tmp_path):
    from safetensors.numpy import load_file

    data = write_jsonl(make_topic_task(8, seed=1), tmp_path / "train.jsonl")  # 2 batches of 4: one per process
    common = {
        "model": str(tiny_path),
        "data": str(data),
        "grad_accum": 1,
        "max_steps": 1,
        "save_steps": 1,
        "logging_steps": 1,
        "warmup_ratio": 0.0,
        "negatives_cross_device": True,
        "hf_args": ["disable_tqdm=true"],
    }
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT))
    two = tmp_path / "two"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)]
    ran = subprocess.run(
        [*launch, json.dumps({**common, "output": str(two), "batch_size": 4})], capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    log = ran.stdout + ran.stderr
    assert log.count("saved to ") == 1 and log.count("8 slates from") == 1  # rank 0 alone speaks
    assert log.count("'embedding_loss'") == 1  # one step logged once, not once per process

    one = tmp_path / "one"
    train(TrainConfig(output=str(one), batch_size=8, **common))

    distributed, single = step_one(two), step_one(one)
    for key in ("loss", "grad_norm", "embedding_loss", "ranking_loss"):
        assert distributed[key] == pytest.approx(single[key], rel=1e-4), key
    expected, got = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-6, err_msg=name)
    assert (two / "README.md").is_file() and not list(two.glob("*.tmp*"))


def test_accelerate_launch_multi_gpu_on_cpus_is_one_run(tiny_path, tmp_path):
    """One step of 2 processes x 4 slates takes both batches of 8 slates: one run, not two of one batch each."""
    data = write_jsonl(make_topic_task(8, seed=1), tmp_path / "train.jsonl")
    output = tmp_path / "out"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]
    train_args = ["--model", str(tiny_path), "--data", str(data), "--output", str(output), "--batch-size", "4"]
    train_args += ["--max-steps", "1", "--save-steps", "1", "--grad-accum", "1", "--hf-arg", "disable_tqdm=true"]
    ran = subprocess.run([*launch, "-m", "e2rank_integrations.training", *train_args], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    log = ran.stdout + ran.stderr
    assert log.count("saved to ") == 1 and log.count("8 slates from") == 1
    state = json.loads((output / "checkpoint-1" / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and state["epoch"] == 1.0  # one process alone would be at epoch 0.5


def test_accelerate_cpu_launcher_starting_one_of_several_processes_is_refused(tiny_path, tmp_path, monkeypatch):
    """What ``accelerate launch --cpu --num_processes 2`` (no MPI) gives its single process (checked on 1.16)."""
    data = write_jsonl(make_topic_task(8, seed=1), tmp_path / "train.jsonl")
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    with pytest.raises(E2RankValueError, match="accelerate launch started one process where several were asked"):
        train(TrainConfig(model=str(tiny_path), data=str(data), output=str(tmp_path / "out"), max_steps=1))
    assert not (tmp_path / "out").exists()
