"""pass@k at large budgets: the unbiased estimator against brute force, curves, summary section."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from conceptweb.analysis.dynamics import pass_at_k
from conceptweb.analysis.passk import (
    default_ks,
    pass_at_k_array,
    pass_at_k_curve,
    pass_at_k_section,
)


def _brute_force(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n samples (the first c correct) that hold a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 4, 9, 12])
def test_pass_at_k_equals_brute_force_over_all_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k_array(n, c, k) == pytest.approx(_brute_force(n, c, k), abs=1e-12)


def test_pass_at_k_is_exact_at_large_budgets():
    rng = np.random.default_rng(0)
    n = np.full(200, 512)
    c = rng.integers(0, 513, size=200)
    for k in (1, 64, 256, 512):
        fast = pass_at_k_array(n, c, k)
        slow = pass_at_k(n, c, k)  # the product form, one problem at a time
        assert np.allclose(fast, slow, rtol=1e-9, atol=1e-12)
    assert np.allclose(pass_at_k_array(n, c, 1), c / n)
    assert np.all(pass_at_k_array(n, np.minimum(c, 1), 512) == np.minimum(c, 1))


def test_pass_at_k_rejects_impossible_inputs():
    with pytest.raises(ValueError):
        pass_at_k_array(8, 9, 1)
    with pytest.raises(ValueError):
        pass_at_k_array(8, 2, 9)


def test_curve_and_summary_section():
    n_correct = [0, 1, 8, 3]
    df = pd.DataFrame(
        {
            "step": [10] * 4 + [20] * 4,
            "split": ["train", "train", "heldout", "heldout"] * 2,
            "problem": [0, 1, 0, 1] * 2,
            "n_correct": n_correct * 2,
            "G": [8] * 4 + [16] * 4,
        }
    )
    assert default_ks(16) == [1, 2, 4, 8, 16] and default_ks(12) == [1, 2, 4, 8, 12]
    curve = pass_at_k_curve(df)
    last = curve[(curve["step"] == 20) & (curve["split"] == "train")]
    assert last["k"].tolist() == [1, 2, 4, 8, 16]
    expected = [(_brute_force(16, 0, k) + _brute_force(16, 1, k)) / 2 for k in (1, 2, 4, 8, 16)]
    assert np.allclose(last["pass_at_k"], expected)
    assert np.all(np.diff(last["pass_at_k"]) >= 0)
    sec = pass_at_k_section(df)
    assert sec["step"] == 20 and sec["G"] == 16
    assert sec["train"]["16"] == pytest.approx(0.5) and sec["heldout"]["1"] == pytest.approx(
        11 / 32
    )
    assert pass_at_k_section(None) is None
