import asyncio

import numpy as np
import pytest

from e2rank_integrations.scoring import (
    alistwise_rank,
    as_embeddings,
    cosine_scores,
    listwise_rank,
    normalize,
    rank,
    select,
)
from e2rank_integrations.types import RankResult
from e2rank_integrations.validators import check_positive_int, check_top_n


def test_normalize_rows_and_zero_vector():
    out = normalize([[3.0, 4.0], [0.0, 0.0]])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_cosine_scores_ignore_scale():
    scores = cosine_scores([2.0, 0.0], [[1.0, 0.0], [0.0, 5.0], [-3.0, 0.0]])
    np.testing.assert_allclose(scores, [1.0, 0.0, -1.0])
    assert cosine_scores([1.0, 0.0], np.zeros((0, 2))).shape == (0,)


def test_rank_sorts_descending_and_keeps_first_stage_order_on_ties():
    results = rank([0.1, 0.5, 0.1, 0.5])
    assert [r.index for r in results] == [1, 3, 0, 2]
    assert results[0] == RankResult(index=1, score=0.5)
    assert [r.index for r in rank([0.1, 0.5, 0.3], top_n=2)] == [1, 2]
    assert len(rank([0.1, 0.2], top_n=10)) == 2


@pytest.mark.parametrize("bad", [0, -1])
def test_top_n_below_one_is_an_error(bad):
    with pytest.raises(ValueError, match="top_n must be >= 1"):
        check_top_n(bad)


@pytest.mark.parametrize("bad", [True, 1.5, "3"])
def test_top_n_of_wrong_type_is_an_error(bad):
    with pytest.raises(TypeError, match="top_n"):
        check_top_n(bad)


def test_top_n_accepts_none_and_numpy_ints():
    assert check_top_n(None) is None
    assert check_top_n(np.int64(3)) == 3


def test_check_positive_int():
    assert check_positive_int(2, "passes") == 2
    with pytest.raises(ValueError, match="passes must be >= 1, got 0"):
        check_positive_int(0, "passes")
    with pytest.raises(TypeError, match="passes"):
        check_positive_int(None, "passes")


def test_select_threshold_then_top_n():
    results = rank([0.9, 0.2, 0.5, 0.7])
    assert [r.index for r in select(results, score_threshold=0.5)] == [0, 3, 2]
    assert [r.index for r in select(results, top_n=2, score_threshold=0.6)] == [0, 3]
    assert select(results, score_threshold=1.0) == []


def test_as_embeddings_checks_shape_and_values():
    out = as_embeddings([[3.0, 4.0]], rows=1, dim=2)
    np.testing.assert_allclose(out, [[0.6, 0.8]])
    with pytest.raises(ValueError, match=r"shape \(2, dim\)"):
        as_embeddings([[1.0, 0.0]], rows=2)
    with pytest.raises(ValueError, match="dimension 3"):
        as_embeddings([[1.0, 0.0]], rows=1, dim=3)
    with pytest.raises(ValueError, match="NaN"):
        as_embeddings([[np.nan, 0.0]], rows=1)
    with pytest.raises(TypeError, match=r"doc_embeddings\[0\]\[0\] must be a number, got str"):
        as_embeddings([["a", "b"]], rows=1)
    with pytest.raises(TypeError, match="2-D array of numbers, got object"):
        as_embeddings(object(), rows=1)


def test_ragged_embeddings_are_named_in_our_words():
    from e2rank_integrations.errors import E2RankValueError

    with pytest.raises(E2RankValueError) as caught:
        as_embeddings([[1.0, 0.0], [1.0, 0.0], [0.5]], rows=3)
    assert str(caught.value) == "doc_embeddings[2] has 1 values but doc_embeddings[0] has 2"
    with pytest.raises(TypeError, match=r"stored\[1\] must be a list of numbers, got float"):
        as_embeddings([[1.0, 0.0], 3.0], rows=2, name="stored")


def test_listwise_rank_feeds_each_pass_the_previous_order():
    docs = np.eye(3, dtype=np.float32)
    seen = []

    def prompt_vector(order):
        seen.append(list(order))
        return [0.1, 0.9, 0.5] if len(seen) == 1 else [0.0, 0.0, 1.0]

    results = listwise_rank(prompt_vector, docs, passes=2, top_n=2)
    assert seen == [[0, 1, 2], [1, 2, 0]]
    assert [r.index for r in results] == [2, 0]


def test_the_async_driver_ranks_as_the_sync_one():
    docs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    prompts = {0: [0.3, -1.0, 0.2, 0.5], 1: [1.0, 0.1, -0.4, 0.2], 2: [-0.2, 0.4, 0.9, -0.7]}
    seen = {"sync": [], "async": []}

    def prompt_vector(order):
        seen["sync"].append(list(order))
        return prompts[len(seen["sync"]) - 1]

    async def aprompt_vector(order):
        await asyncio.sleep(0)  # a real suspension, as the server's batcher makes
        seen["async"].append(list(order))
        return prompts[len(seen["async"]) - 1]

    expected = listwise_rank(prompt_vector, docs, passes=3, top_n=4)
    got = asyncio.run(alistwise_rank(aprompt_vector, docs, passes=3, top_n=4))
    assert got == expected and len(got) == 4
    assert seen["async"] == seen["sync"] and seen["sync"][1] != seen["sync"][0]


def test_fill_embeddings_keeps_stored_vectors_and_fills_the_gaps():
    from e2rank_integrations.scoring import fill_embeddings, missing_rows

    stored = [[3.0, 4.0], None, np.array([0.0, 5.0]), None]
    assert missing_rows(stored) == [1, 3]
    out = fill_embeddings(stored, [[1.0, 0.0], [0.0, -2.0]])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], atol=1e-7)
    np.testing.assert_allclose(fill_embeddings([[2.0, 0.0]]), [[1.0, 0.0]])
    np.testing.assert_allclose(fill_embeddings([None], [[0.0, 3.0]]), [[0.0, 1.0]])
    assert fill_embeddings([]).shape == (0, 0)


def test_fill_embeddings_errors():
    from e2rank_integrations.scoring import fill_embeddings

    with pytest.raises(ValueError, match=r"stored vectors have dimension 2 but the computed ones 3"):
        fill_embeddings([[1.0, 0.0], None], [[1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"computed node vectors must have shape \(1, dim\)"):
        fill_embeddings([[1.0, 0.0], None], name="node vectors")
    with pytest.raises(ValueError, match="every candidate has a stored vector"):
        fill_embeddings([[1.0, 0.0]], [[1.0, 0.0]])
    with pytest.raises(ValueError, match=r"doc_embeddings\[1\] has 1 values but doc_embeddings\[0\] has 2"):
        fill_embeddings([[1.0, 0.0], [1.0]])
    with pytest.raises(ValueError, match="NaN"):
        fill_embeddings([[1.0, float("nan")]])
