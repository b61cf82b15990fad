"""Training data: each malformed input is refused with its file and line; batches never mix slate lengths; the
collator encodes exactly as E2RankModel embeds; the ``e2rank train`` command's interface."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("accelerate")

from e2rank_integrations import E2RankValueError, TrainingDataError
from e2rank_integrations.cli import build_parser, main
from e2rank_integrations.training import Slate, SlateCollator, TrainConfig, load_slates, make_batches, train
from e2rank_integrations.training.config import TASK_INSTRUCTIONS

GOOD = {"query": "what is a tiger", "document": ["a big cat", "a fruit", "a river"], "ranking": [0, 2, 1]}


def write(tmp_path, *lines, name="train.jsonl"):
    path = tmp_path / name
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({k: v for k, v in GOOD.items() if k != "ranking"}, "train.jsonl:2: no 'ranking'"),
        ({**GOOD, "ranking": [0, 0, 1]}, "train.jsonl:2: 'ranking' must be a permutation of 0..2 (or 1..3)"),
        ({**GOOD, "ranking": [0, 1]}, "train.jsonl:2: 'ranking' must be a permutation"),
        ({**GOOD, "ranking": [1, 2, 4]}, "train.jsonl:2: 'ranking' must be a permutation"),
        ({**GOOD, "ranking": "0 1 2"}, "train.jsonl:2: 'ranking' must be a permutation"),
        ({**GOOD, "ranking": [0.0, 1.0, 2.0]}, "train.jsonl:2: 'ranking' must be a permutation"),
        ({**GOOD, "query": ""}, "train.jsonl:2: 'query' must be a non-empty string"),
        ({**GOOD, "document": "a big cat"}, "train.jsonl:2: 'document' must be a list of strings"),
        ({**GOOD, "document": ["only one"], "ranking": [0]}, "train.jsonl:2: 'document' has 1 passage(s)"),
        ({**GOOD, "source": 3}, "train.jsonl:2: 'source' must be a string"),
        ({**GOOD, "relevance": [1, -1, 0]}, "train.jsonl:2: 'relevance' must be a list of 3 non-negative integers"),
        ("{not json", "train.jsonl:2: not valid JSON"),
        ("[1, 2]", "train.jsonl:2: expected a JSON object, got list"),
    ],
)
def test_a_bad_line_is_named(tmp_path, bad, message):
    path = write(tmp_path, GOOD, bad, GOOD)
    with pytest.raises(TrainingDataError) as caught:
        load_slates(path)
    assert message in str(caught.value)
    assert caught.value.line == 2


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_an_empty_file_is_refused(tmp_path, content):
    path = tmp_path / "train.jsonl"
    path.write_text(content)
    with pytest.raises(TrainingDataError, match=r"train\.jsonl: empty file: no line holds a slate"):
        load_slates(path)


def test_rankings_are_zero_or_one_based_and_blank_lines_keep_numbering(tmp_path):
    path = write(tmp_path, GOOD, "", {**GOOD, "ranking": [3, 1, 2], "source": "msmarco", "extra": 1})
    first, second = load_slates(path)
    assert first.ranking == (0, 2, 1) and first.line == 1
    assert second.ranking == (2, 0, 1) and second.line == 3 and second.source == "msmarco"


def test_graded_lines_train_on_their_grades_with_ties(tmp_path):
    graded = {"query": "q", "document": ["a", "b", "c", "d"], "relevance": [0, 2, 0, 2]}
    scored = {"query": "q", "document": ["a", "b", "c"], "scores": [0.1, -3, 7.5]}
    both = {**GOOD, "relevance": [0, 0, 1]}  # an order wins; relevance grades the evaluation only
    first, second, third = load_slates(write(tmp_path, graded, scored, both))
    assert first.ranking == (1, 3, 0, 2) and first.train_grades() == (0, 2, 0, 2)
    assert second.ranking == (2, 0, 1) and second.labels == (0.1, -3.0, 7.5)
    assert third.labels is None and third.train_grades() == (3.0, 1.0, 2.0)
    flat = {"query": "q", "document": ["a", "b"], "relevance": [1, 1]}
    with pytest.raises(TrainingDataError, match=r":1: every passage has the same grade"):
        load_slates(write(tmp_path, flat, name="flat.jsonl"))
    with pytest.raises(TrainingDataError, match=r":1: 'scores' must be a list of 2 finite numbers"):
        load_slates(write(tmp_path, {**flat, "scores": [1, "x"]}, name="bad.jsonl"))


@pytest.mark.parametrize(
    ("data_format", "line", "documents", "grades"),
    [
        ("triples", {"query": "q", "positive": "p", "negative": "n"}, ("p", "n"), (1, 0)),
        ("triples", {"anchor": "q", "pos": "p", "neg": "n"}, ("p", "n"), (1, 0)),
        ("pairs-with-negatives", {"query": "q", "pos": ["p"], "neg": ["n1", "n2"]}, ("p", "n1", "n2"), (1, 0, 0)),
        (
            "scored",
            {"query": "q", "pos": ["p"], "neg": ["n1", "n2"], "pos_scores": [0.9], "neg_scores": [0.2, 0.5]},
            ("p", "n1", "n2"),
            (0.9, 0.2, 0.5),
        ),
    ],
)
def test_common_formats_convert_to_graded_slates(tmp_path, data_format, line, documents, grades):
    (slate,) = load_slates(write(tmp_path, line), data_format=data_format)
    assert slate.query == "q" and slate.documents == documents and slate.train_grades() == grades


def test_a_line_of_another_format_is_named(tmp_path):
    with pytest.raises(TrainingDataError, match=r"train\.jsonl:2: no 'neg' or 'negative' \(pairs-with-negatives"):
        load_slates(
            write(tmp_path, {"query": "q", "pos": ["p"], "neg": ["n"]}, {"query": "q", "pos": ["p"]}),
            data_format="pairs-with-negatives",
        )


def test_grades_are_relevance_or_the_teacher_top_ten():
    slate = Slate("q", tuple("abcdefghijkl"), ranking=(11, 10, *range(10)))
    grades = slate.grades()
    assert grades[11] == 10 and grades[10] == 9 and grades[0] == 8 and grades[7] == 1 and grades[9] == 0
    assert Slate("q", ("a", "b"), (1, 0), relevance=(0, 3)).grades() == (0, 3)


def slates_of(*sizes, source=None):
    return [
        Slate(f"q{i}", tuple(f"d{j}" for j in range(n)), tuple(range(n)), source, i + 1) for i, n in enumerate(sizes)
    ]


def test_batches_never_mix_slate_lengths_or_sources():
    slates = slates_of(3, 4, 3, 4, 3, 3, 5) + slates_of(3, 3, source="nq")
    batches = make_batches(slates, batch_size=2, seed=0)
    assert sorted(len(b) for b in batches) == [1, 2, 2, 2, 2]  # groups: 3 x4, 4 x2, 5 x1, nq-3 x2
    for batch in batches:
        assert len({(s.source, len(s.documents)) for s in batch}) == 1
    assert sorted(s.query for b in batches for s in b) == sorted(s.query for s in slates)  # none lost
    assert make_batches(slates, 2, seed=0) == batches  # seeded


def test_same_shape_batches_need_one_slate_length(tmp_path):
    with pytest.raises(TrainingDataError, match=r"train\.jsonl:2: 4 passages where line 1 has 3: gathering"):
        make_batches(slates_of(3, 4, 3), 2, seed=0, same_shape=True, path="train.jsonl")
    batches = make_batches(slates_of(3, 3, 3, 3, 3), 2, seed=0, same_shape=True)
    assert [len(b) for b in batches] == [2, 2]  # the incomplete batch is dropped, as the authors do


def test_the_collator_refuses_unequal_slates_naming_lines(tiny_model):
    with pytest.raises(ValueError, match=r"unequal length in one batch.*line 1: 3 passages, line 2: 4"):
        SlateCollator(tiny_model)([slates_of(3, 4)])


def test_the_collator_encodes_as_the_model_embeds(tiny_path):
    """Pooling the collated inputs gives the vectors E2RankModel returns for the same query, passages and prompt."""
    import torch

    from e2rank_integrations import E2RankModel
    from e2rank_integrations.model import pool_last_token

    model = E2RankModel.from_pretrained(tiny_path, cache=False)
    slate = Slate("what is a tiger", ("a big cat " * 3, "a fruit", "a river flows"), (0, 2, 1), "nq", 1)
    other = Slate("a lemon", ("yellow fruit", "sour", "a car"), (1, 0, 2), None, 2)
    batch = SlateCollator(model, num_prompt_docs=2)([[slate, other]])
    with torch.inference_mode():
        vectors = {key: pool_last_token(model.model, batch[key]).numpy() for key in ("query", "document", "prompt")}

    query_instruction, rerank_instruction = TASK_INSTRUCTIONS["nq"]
    expected_queries = np.vstack(
        [model.embed_queries([slate.query], instruction=query_instruction), model.embed_queries([other.query])]
    )
    expected_docs = model.embed_documents([*slate.documents, *other.documents])
    prompts = [
        model.listwise_prompt(slate.query, slate.documents, instruction=rerank_instruction, num_prompt_docs=2),
        model.listwise_prompt(other.query, other.documents, num_prompt_docs=2),  # no source: the default instruction
    ]
    expected_prompts = model.embed_formatted(prompts)
    np.testing.assert_allclose(vectors["query"], expected_queries, atol=1e-5)
    np.testing.assert_allclose(vectors["document"], expected_docs, atol=1e-5)
    np.testing.assert_allclose(vectors["prompt"], expected_prompts, atol=1e-5)
    assert batch["ranking"].tolist() == [[0, 2, 1], [1, 0, 2]]


def test_own_instructions_win_over_the_authors_and_a_file_wins_per_source(tmp_path):
    from e2rank_integrations.training.config import instructions_for

    common = {"model": "m", "data": "d", "output": "o"}
    authors = TrainConfig(**common).task_instructions()
    assert instructions_for("nq", TrainConfig(**common).prompts, authors) == TASK_INSTRUCTIONS["nq"]
    own = TrainConfig(**common, instruction="Find statutes").task_instructions()
    assert instructions_for("nq", TrainConfig(**common).prompts, own) == ("Find statutes", "Find statutes")
    table = tmp_path / "instructions.json"
    table.write_text(json.dumps({"law": "Find statutes", "*": {"query": "Q", "rerank": "R:"}}))
    both = TrainConfig(**common, instruction="X", instructions=str(table)).task_instructions()
    prompts = TrainConfig(**common).prompts
    assert instructions_for("law", prompts, both) == ("Find statutes", "Find statutes")
    assert instructions_for("nq", prompts, both) == instructions_for(None, prompts, both) == ("Q", "R:")
    table.write_text(json.dumps({"law": ""}))
    with pytest.raises(E2RankValueError, match=r"`instructions`: .*'law' must be a non-empty text"):
        TrainConfig(**common, instructions=str(table)).task_instructions()


# ---------------------------------------------------------------------------- the command


def test_every_train_option_says_its_default():
    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    train = subcommands.choices["train"]
    for action in train._actions:
        if action.dest == "help":
            continue
        assert action.help and ("default" in action.help or "required" in action.help), action.dest
    assert "pip install 'e2rank-integrations[train]'" in train.format_help()
    assert "e2rank train --model" in train.format_help()


def test_cli_options_map_to_the_config():
    from dataclasses import fields

    args = build_parser().parse_args(["train", "--model", "m", "--data", "d", "--output", "o", "--lora-r", "8"])
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    assert config == TrainConfig(model="m", data="d", output="o", lora_r=8)
    assert (config.lr, config.temperature, config.ranknet_weight, config.ranknet_scale) == (5e-6, 0.03, 2.0, 10.0)
    assert (config.batch_size, config.grad_accum, config.max_prompt_tokens) == (8, 2, 32768)


def test_cli_reports_a_bad_line_in_one_line(tmp_path, tiny_path, capsys):
    path = write(tmp_path, GOOD, {**GOOD, "ranking": [0, 1, 1]})
    code = main(["train", "--model", str(tiny_path), "--data", str(path), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert f"e2rank train: error: {path}:2: 'ranking' must be a permutation" in err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_used_output_directory_and_a_resume_without_checkpoint(tmp_path, tiny_path, capsys):
    data = write(tmp_path, GOOD)
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("x")
    base = ["train", "--model", str(tiny_path), "--data", str(data)]
    assert main([*base, "--output", str(used)]) == 1
    assert "is not empty: set --resume to continue" in capsys.readouterr().err
    assert main([*base, "--output", str(used), "--resume"]) == 1
    assert "no complete checkpoint-* directory" in capsys.readouterr().err
    assert main([*base, "--output", str(tmp_path / "o"), "--hf-arg", "per_device_train_batch_size=4"]) == 1
    assert "use --batch-size, --output" in capsys.readouterr().err
    assert main([*base, "--output", str(tmp_path / "o"), "--hf-arg", "not_a_field=1"]) == 1
    assert "--hf-arg: not_a_field is not a transformers.TrainingArguments field" in capsys.readouterr().err
    assert main([*base, "--output", str(tmp_path / "o"), "--eval-steps", "5"]) == 1
    assert "error: --eval-steps needs --eval-data" in capsys.readouterr().err  # the library names `eval_steps`
    with pytest.raises(E2RankValueError, match="`lr` must be > 0"):
        TrainConfig(model="m", data="d", output="o", lr=0)


def test_module_entry_point_is_the_train_command():
    """``python -m e2rank_integrations.training`` (what torchrun runs) parses as ``e2rank train``."""
    result = subprocess.run(
        [sys.executable, "-m", "e2rank_integrations.training", "--help"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "usage: e2rank train" in result.stdout and "--negatives-cross-device" in result.stdout


def test_truncation_a_batch_larger_than_the_data_and_own_instruction(tmp_path, tiny_path, capsys):
    """Truncation and batch size are reported; the model card records the instruction trained with. The data are
    records in memory (as a ``datasets.Dataset`` would be)."""
    long = {**GOOD, "document": ["word " * 60, "a fruit", "a river"]}
    output = str(tmp_path / "o")
    train(
        TrainConfig(
            model=str(tiny_path),
            data=[GOOD, long, GOOD],
            output=output,
            max_steps=1,
            max_query_tokens=8,
            max_doc_tokens=16,
            instruction="Find the animal",
        )
    )
    said = capsys.readouterr().out
    assert "warning: max_query_tokens=8 removes the query text entirely from 3 of 3 queries" in said
    assert "warning: max_doc_tokens=16 cuts more than 50% of the tokens of 1 of 9 passages (first: <list>:2)" in said
    assert "note: batch_size 8 is larger than the data: the largest batch holds 3 slates" in said
    assert "3 slates from <list>" in said
    card = (tmp_path / "o" / "README.md").read_text()
    assert "- data: `<list>`" in card
    assert '| (any other) | "Find the animal" | "Find the animal" |' in card
    assert "instruction='Find the animal')" in card


def test_a_missing_reporting_package_is_named_before_training(tmp_path):
    import importlib.util

    from e2rank_integrations.training.trainer import training_arguments

    missing = next((n for n in ("wandb", "mlflow", "clearml") if importlib.util.find_spec(n) is None), None)
    if missing is None:
        pytest.skip("every candidate reporting package is installed here")
    for config in (
        TrainConfig(model="m", data="d", output=str(tmp_path), report_to=missing),
        TrainConfig(model="m", data="d", output=str(tmp_path), hf_args=[f"report_to={missing}"]),
    ):
        with pytest.raises(E2RankValueError, match=f"`report_to`: {missing} is not available: .*pip install {missing}"):
            training_arguments(config)
    with pytest.raises(E2RankValueError, match="`eval_steps` needs `eval_data`"):
        TrainConfig(model="m", data="d", output="o", eval_steps=5)


def test_parquet_and_in_memory_records_read_as_json_lines(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{**GOOD, "source": "nq"}, {**GOOD, "ranking": [3, 1, 2], "source": "msmarco"}]
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    expected = load_slates(write(tmp_path, *rows))
    assert load_slates(path) == expected
    assert load_slates(iter(rows)) == expected  # any iterable of records: a list, a datasets.Dataset...
    pq.write_table(pa.Table.from_pylist([GOOD, {**GOOD, "ranking": [0, 0, 1]}]), path)
    with pytest.raises(TrainingDataError, match=r"train\.parquet:2: 'ranking' must be a permutation"):
        load_slates(path)
    with pytest.raises(TrainingDataError, match=r"<list>:1: no 'negative' or 'neg' \(triples format\)"):
        load_slates([{"query": "q", "pos": "p"}], data_format="triples")


def test_training_on_triples_evaluates_graded_slates_of_their_own_format(tiny_path, tmp_path, capsys):
    triples = [{"query": f"q{i}", "positive": "a big cat", "negative": "a river"} for i in range(4)]
    graded = [{"query": "what is a tiger", "document": ["a fruit", "a big cat", "a river"], "relevance": [0, 2, 1]}]
    common = {"model": str(tiny_path), "data": triples, "data_format": "triples", "eval_data": graded}
    with pytest.raises(TrainingDataError, match=r"<list>:1: no 'positive' or 'pos' \(triples format\)"):
        train(TrainConfig(output=str(tmp_path / "a"), max_steps=1, **common))  # as --data, by default
    result = train(TrainConfig(output=str(tmp_path / "b"), max_steps=1, eval_data_format="slates", **common))
    assert result.eval_after.queries == 1 and result.eval_first_stage < 100  # graded: data order is not the best
    with pytest.raises(E2RankValueError, match="`eval_data_format` must be one of slates, triples"):
        TrainConfig(output="o", eval_data_format="tsv", **common)


def test_a_datasets_dataset_and_parquet_rows_with_other_rows_columns(tmp_path):
    """Rows of mixed layouts, as a JSON-lines file loaded by `datasets` (or written to Parquet) holds them: every row
    has every column, None where its line had no such key; None means absent."""
    datasets = pytest.importorskip("datasets")
    pq = pytest.importorskip("pyarrow.parquet")
    lines = [
        {**GOOD, "source": "nq"},
        {"query": "q", "document": ["a", "b", "c"], "relevance": [0, 2, 1]},
        {"query": "q", "document": ["a", "b", "c"], "scores": [0.1, 0.5, 0.2]},
    ]
    path = write(tmp_path, *lines)
    expected = load_slates(path)
    assert [s.ranking for s in expected] == [(0, 2, 1), (1, 2, 0), (1, 2, 0)]
    dataset = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
    assert dataset[1]["ranking"] is None  # the column exists in every row
    assert load_slates(dataset) == expected
    assert load_slates(dataset.to_iterable_dataset()) == expected  # streamed: read through once
    pq.write_table(dataset.data.table, tmp_path / "train.parquet")
    assert load_slates(tmp_path / "train.parquet") == expected
    bad = datasets.Dataset.from_list([GOOD, {**GOOD, "ranking": [0, 0, 1]}])
    with pytest.raises(TrainingDataError, match=r"<Dataset>:2: 'ranking' must be a permutation"):
        load_slates(bad)


def test_a_directory_of_shards_reads_in_name_order_and_errors_name_the_shard(tmp_path):
    import gzip

    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{**GOOD, "ranking": list(r)} for r in ([0, 1, 2], [2, 1, 0], [1, 0, 2], [0, 2, 1])]
    shards = tmp_path / "data"
    shards.mkdir()
    pq.write_table(pa.Table.from_pylist(rows[2:]), shards / "train-00001-of-00002.parquet")
    with gzip.open(shards / "train-00000-of-00002.jsonl.gz", "wt") as handle:
        handle.write("\n".join(json.dumps(r) for r in rows[:2]) + "\n")
    (shards / "README.md").write_text("not data")  # what a dataset folder also holds: skipped
    slates = load_slates(shards)
    assert slates == load_slates(write(tmp_path, *rows))
    assert [s.where for s in slates][1:3] == [
        f"{shards}/train-00000-of-00002.jsonl.gz:2",
        f"{shards}/train-00001-of-00002.parquet:1",
    ]
    bad = [GOOD, {**GOOD, "ranking": [0, 0, 1]}]
    pq.write_table(pa.Table.from_pylist(bad), shards / "train-00001-of-00002.parquet")
    with pytest.raises(TrainingDataError, match=r"train-00001-of-00002\.parquet:2: 'ranking' must be a permutation"):
        load_slates(shards)
    pq.write_table(pa.Table.from_pylist(rows[2:]), shards / "train-00001-of-00002.parquet")  # good again
    (shards / "train-00002-of-00002.parquet").write_text("not parquet")
    with pytest.raises(TrainingDataError, match=r"train-00002-of-00002\.parquet: not a Parquet file \("):
        load_slates(shards)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingDataError, match=r"empty: a directory without any \.jsonl"):
        load_slates(tmp_path / "empty")


def test_on_every_topic_slates_a_ranking_that_ignores_the_query_scores_exactly_chance():
    """The bound the learnability test compares with: any fixed order of each passage set, asked by every topic."""
    import random

    from e2rank_integrations.evaluation import evaluate
    from e2rank_integrations.training.synthetic import chance_ndcg, make_query_topic_task

    slates = make_query_topic_task(6, topics=4, per_topic=2, every_topic=True, seed=5)
    qrels = {str(i): {f"{i}/{j}": g for j, g in enumerate(s["relevance"])} for i, s in enumerate(slates)}
    rng = random.Random(0)
    for _ in range(3):
        orders = {}  # one random order per passage set, whatever its query
        runs = {}
        for i, slate in enumerate(slates):
            key = tuple(slate["document"])
            orders.setdefault(key, rng.sample(range(len(key)), len(key)))
            runs[str(i)] = {f"{i}/{j}": float(len(key) - rank) for rank, j in enumerate(orders[key])}
        assert evaluate(qrels, runs, runs, k=10).after["nDCG@10"] == pytest.approx(chance_ndcg(4, 2))
    by_query = {str(i): {f"{i}/{j}": float(g) for j, g in enumerate(s["relevance"])} for i, s in enumerate(slates)}
    assert evaluate(qrels, by_query, by_query, k=10).after["nDCG@10"] == pytest.approx(100)
