"""`e2rank train` end to end on tiny generated checkpoints: it learns a query-dependent teacher order, the saved
directory reranks exactly as the trained model in memory, LoRA merges into a plain checkpoint, a resumed run ends where
an uninterrupted one does."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("accelerate")

from e2rank_integrations import E2RankModel
from e2rank_integrations.training import TrainConfig, train
from e2rank_integrations.training.synthetic import chance_ndcg, make_query_topic_task, make_topic_task, write_jsonl

# The learnability task: 4 topics of 3 words, a query is its topic's words, a slate one 2-word passage of each topic,
# and the teacher ranks the query's topic's passage first. Every held-out passage set is asked once per topic, so a
# ranking that ignores the query (the data order, or any fixed one) scores exactly chance_ndcg on them.
TASK = {"topics": 4, "words_per_topic": 3, "per_topic": 1, "passage_words": 2, "query_words": 3}
CHANCE = chance_ndcg(TASK["topics"], TASK["per_topic"])
# A random tiny model is not a pretrained embedder, so it gets a far larger learning rate than the authors' 5e-6;
# the objective, the encoding and the loop are the ones every run uses.
LEARN = {"lr": 1e-2, "max_steps": 120, "batch_size": 8, "grad_accum": 1, "warmup_ratio": 0.1, "seed": 0}
EVAL_STEPS = 40


def tensors(directory):
    from safetensors.numpy import load_file

    return load_file(str(directory / "model.safetensors"))


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp("task")
    train_path = write_jsonl(make_query_topic_task(240, seed=1, **TASK), root / "train.jsonl")
    dev_path = write_jsonl(make_query_topic_task(8, seed=2, every_topic=True, **TASK), root / "dev.jsonl")  # 32 slates
    return train_path, dev_path


@pytest.fixture(scope="module")
def learned(task, tiny_path, tmp_path_factory):
    train_path, dev_path = task
    output = tmp_path_factory.mktemp("learned") / "model"
    config = TrainConfig(
        model=str(tiny_path),
        data=str(train_path),
        output=str(output),
        eval_data=str(dev_path),
        eval_steps=EVAL_STEPS,
        **LEARN,
    )
    return config, train(config)


def test_training_learns_a_query_dependent_order(learned):
    _, result = learned
    before = result.eval_before.after["nDCG@10"]
    after = result.eval_after.after["nDCG@10"]
    print(
        f"nDCG@10 on held-out queries: chance {CHANCE:.2f}, data order {result.eval_first_stage:.2f}, "
        f"before {before:.2f}, after {after:.2f}"
    )
    assert result.eval_first_stage == pytest.approx(CHANCE)  # a ranking that ignores the query
    assert after > CHANCE + 25


def test_evaluation_during_training_keeps_the_best_checkpoint(learned):
    _, result = learned
    last = result.output_dir / f"checkpoint-{LEARN['max_steps']}"
    state = json.loads((last / "trainer_state.json").read_text())
    scores = {entry["step"]: entry["eval_nDCG@10"] for entry in state["log_history"] if "eval_nDCG@10" in entry}
    assert sorted(scores) == list(range(EVAL_STEPS, LEARN["max_steps"] + 1, EVAL_STEPS))
    best = max(scores, key=lambda step: scores[step])
    assert state["best_metric"] == pytest.approx(scores[best])
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best}")
    assert result.eval_after.after["nDCG@10"] == pytest.approx(scores[best], abs=1e-6)  # the best is what was saved


def test_the_saved_directory_reranks_as_the_trained_model(learned, task):
    config, result = learned
    saved = E2RankModel.from_pretrained(config.output, cache=False)
    for slate in make_topic_task(5, seed=3):
        in_memory = result.model.rerank(slate["query"], slate["document"])
        loaded = saved.rerank(slate["query"], slate["document"])
        assert [r.index for r in loaded] == [r.index for r in in_memory]
        np.testing.assert_allclose([r.score for r in loaded], [r.score for r in in_memory], atol=1e-6)


def test_the_output_has_tokenizer_chat_template_and_model_card(learned, tiny_path):
    config, result = learned
    saved = E2RankModel.from_pretrained(config.output, cache=False)
    base = E2RankModel.from_pretrained(tiny_path, cache=False)
    assert saved.chat_wrap("x") == base.chat_wrap("x")  # the chat template was saved with the tokenizer
    assert saved.count_tokens(["Search Query: héllo 北京"]) == base.count_tokens(["Search Query: héllo 北京"])
    card = (result.output_dir / "README.md").read_text()
    assert f"base_model: {json.dumps(str(tiny_path))}" in card
    assert "- 240 slates, 960 passages" in card
    assert "| lr | `0.01` |" in card and "| max_steps | `120` |" in card
    assert "| nDCG@10 |" in card
    assert result.metrics["train_loss"] > 0
    # slates per second, not batches per second (the Trainer's items): 240 slates make 30 full batches of 8
    slates_per_step = config.batch_size * config.grad_accum
    speed = result.metrics["train_steps_per_second"] * slates_per_step
    assert result.metrics["train_samples_per_second"] == pytest.approx(speed, rel=0.02)


def test_lora_through_the_module_entry_point_merges_into_a_plain_checkpoint(task, tiny_path, tmp_path):
    """``python -m e2rank_integrations.training`` (what torchrun runs) with --lora-r: adapters merged and saved."""
    train_path, _ = task
    output = tmp_path / "lora"
    command = [sys.executable, "-m", "e2rank_integrations.training", "--model", str(tiny_path), "--data"]
    command += [str(train_path), "--output", str(output), "--lora-r", "4", "--max-steps", "3", "--lr", "1e-3"]
    command += ["--batch-size", "4", "--logging-steps", "1", "--hf-arg", "disable_tqdm=true"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'embedding_loss'" in result.stdout + result.stderr and "'ranking_loss'" in result.stdout + result.stderr
    assert "PAD/BOS/EOS" not in result.stderr and "pin_memory" not in result.stderr  # no warnings about our setup
    assert not (output / "adapter_config.json").exists()

    trained, base = tensors(output), tensors(tiny_path)
    assert set(trained) == set(base)  # the base model's own names: no lora_A/lora_B left
    changed = [name for name in base if not np.array_equal(trained[name], base[name])]
    assert changed and all(name.split(".")[-2] in {"q_proj", "k_proj", "v_proj", "o_proj"} for name in changed)
    assert E2RankModel.from_pretrained(output).rerank("apple", ["apple pie", "river"])  # loads and reranks


def test_resume_ends_where_an_uninterrupted_run_does(task, tiny_path, tmp_path, capsys):
    """Even when the newest checkpoint was cut short by a stop during its save (no trainer state): it is skipped."""
    train_path, _ = task
    common = {"model": str(tiny_path), "data": str(train_path), "lr": 1e-4, "batch_size": 4, "max_steps": 4}
    whole = tmp_path / "whole"
    train(TrainConfig(output=str(whole), save_steps=2, **common))
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(whole / "checkpoint-2", resumed / "checkpoint-2")  # as if the run had stopped after step 2
    shutil.copytree(whole / "checkpoint-4", resumed / "checkpoint-4")  # ... and again while saving step 4
    (resumed / "checkpoint-4" / "trainer_state.json").unlink()
    capsys.readouterr()
    result = train(TrainConfig(output=str(resumed), save_steps=2, resume=True, **common))
    said = capsys.readouterr().out
    assert "resume: skipping checkpoint-4: no trainer_state.json" in said
    assert f"resume: continuing from {resumed / 'checkpoint-2'}" in said
    assert result.metrics["epoch"] > 0
    expected, got = tensors(whole), tensors(resumed)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-6, err_msg=name)
    assert not np.array_equal(tensors(whole / "checkpoint-2")["norm.weight"], expected["norm.weight"])
