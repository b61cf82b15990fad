"""The argument checks live in ``validators``; their old homes, ``prompts`` and ``scoring``, still export them."""

from __future__ import annotations

import numpy as np
import pytest

from e2rank_integrations import prompts, scoring, validators


def test_the_old_import_paths_give_the_same_checks():
    for module in (prompts, scoring):
        for name in set(validators.__all__) & set(module.__all__):
            assert getattr(module, name) is getattr(validators, name), (module.__name__, name)
    moved = set(validators.__all__) - {"check_score_threshold"}  # new in validators: no old home
    assert moved <= set(prompts.__all__) | set(scoring.__all__)


@pytest.mark.parametrize("value", [0.5, -1, np.float32(0.25)])
def test_score_threshold_takes_numbers(value):
    assert validators.check_score_threshold(value) == float(value)
    assert validators.check_score_threshold(None) is None


@pytest.mark.parametrize(("value", "error"), [(True, TypeError), ("0.5", TypeError), (float("nan"), ValueError)])
def test_score_threshold_refuses_what_is_not_a_finite_number(value, error):
    with pytest.raises(error, match="score_threshold must be"):
        validators.check_score_threshold(value)


@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3)])
def test_counts_take_python_and_numpy_integers(value):
    assert validators.check_positive_int(value, "k") == 3 and type(validators.check_positive_int(value, "k")) is int
    assert validators.check_optional_positive_int(value, "max_prompt_tokens") == 3
    assert validators.check_top_n(value) == 3


@pytest.mark.parametrize("value", [True, np.float64(3.0), 3.0, "3"])
def test_counts_refuse_what_is_not_an_integer_naming_it(value):
    with pytest.raises(TypeError, match=r"^k must be a positive integer"):
        validators.check_positive_int(value, "k")
