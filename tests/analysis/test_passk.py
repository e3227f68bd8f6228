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


def test_final_evaluation_draws_final_g_samples(tmp_path):
    from conceptweb.experiments.ablation import run_metrics
    from conceptweb.experiments.passk_arms import pass_at_k_of_run
    from conceptweb.experiments.runs import train_run
    from tests.conftest import small_config

    run = train_run(small_config(steps=20, **{"eval.final_G": 256}), tmp_path / "r")
    ev = run.read_eval()
    assert set(ev[ev["step"] == 20]["G"]) == {256} and set(ev[ev["step"] == 10]["G"]) == {16}
    m = pass_at_k_of_run(run)
    assert list(m)[-1] == "pass_at_256"
    assert m["pass_at_1"] <= m["pass_at_8"] <= m["pass_at_256"] <= 1.0
    assert m["pass_at_8"] == pytest.approx(run_metrics(run, 8).final_best_at_k)


def test_pass_at_k_arms_are_paired_and_holm_corrected():
    from conceptweb.experiments.passk_arms import compare_pass_at_k, pass_at_k_markdown

    rng = np.random.default_rng(0)
    rows = []
    for seed in range(8):
        base = rng.uniform(0.5, 0.7)
        rows.append({"arm": "plain", "seed": seed, "pass_at_1": base, "pass_at_64": base + 0.1})
        rows.append({"arm": "a", "seed": seed, "pass_at_1": base, "pass_at_64": base + 0.2})
        rows.append({"arm": "b", "seed": seed, "pass_at_1": base + 0.01, "pass_at_64": base + 0.1})
    table = compare_pass_at_k(pd.DataFrame(rows), "plain", ["plain", "a", "b"])
    a64 = table[(table["arm"] == "a") & (table["k"] == 64)].iloc[0]
    assert a64["diff_mean_diff"] == pytest.approx(0.1) and a64["diff_p_holm"] < 0.01
    a1 = table[(table["arm"] == "a") & (table["k"] == 1)].iloc[0]
    assert a1["diff_mean_diff"] == 0 and a1["diff_p_holm"] == 1.0
    assert table["k"].tolist() == [1, 1, 1, 64, 64, 64]
    assert "| a | 64 |" in pass_at_k_markdown(table)
