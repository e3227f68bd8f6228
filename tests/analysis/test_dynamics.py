"""Detectors on synthetic curves with known knees and minima, including ones that must not fire."""

from __future__ import annotations

import math
from math import comb

import numpy as np
import pandas as pd
import pytest

from conceptweb.analysis.dynamics import (
    accuracy_matrix,
    detect_v_shape,
    edge_means,
    fit_logistic,
    fit_two_stage,
    forgetting_events,
    frustration_analysis,
    frustration_candidates,
    frustration_index,
    frustration_peak,
    mean_at_k,
    pass_at_k,
    transition_fits,
)

T = np.arange(1, 601, dtype=float)


def _noise(seed: int, scale: float) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, T.size)


# -- two-stage ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_piecewise_curve_is_two_stage_with_its_knee(seed):
    y = np.where(T < 150, 0.1 + 0.7 * T / 150, 0.8 + 0.1 * (T - 150) / 450) + _noise(seed, 0.02)
    r = fit_two_stage(T, y)
    assert r.is_two_stage, r.reason
    assert abs(r.knee_step - 150) < 8
    assert r.slope_early == pytest.approx(0.7 / 150, rel=0.05)
    assert r.slope_late == pytest.approx(0.1 / 450, rel=0.3)
    assert r.slope_ratio > 5 and r.bic_piecewise < r.bic_saturating


@pytest.mark.parametrize("c", [15.0, 60.0, 200.0])
@pytest.mark.parametrize("noise", [0.0, 0.02])
def test_exponential_saturation_is_not_two_stage(c, noise):
    y = 0.9 - 0.8 * np.exp(-T / c) + _noise(3, noise)
    r = fit_two_stage(T, y)
    assert not r.is_two_stage
    assert r.bic_saturating < r.bic_piecewise
    assert "saturating" in r.reason


def test_gentle_bend_fails_the_slope_ratio():
    y = np.where(T < 300, 0.002 * T, 0.6 + 0.001 * (T - 300)) + _noise(4, 0.005)
    r = fit_two_stage(T, y)
    assert r.bic_piecewise < r.bic_saturating  # a real kink ...
    assert r.slope_ratio == pytest.approx(2.0, rel=0.15)
    assert not r.is_two_stage and "5 x" in r.reason  # ... but not two stages


def test_falling_late_stage_counts_as_steep_ratio():
    y = np.where(T < 100, 0.008 * T, 0.8 - 0.0002 * (T - 100)) + _noise(5, 0.01)
    r = fit_two_stage(T, y)
    assert r.is_two_stage and math.isnan(r.slope_ratio)


def test_two_stage_is_robust_to_bad_input():
    r = fit_two_stage([1, 2, 3], [0.1, 0.2, 0.3])
    assert not r.is_two_stage and "too few" in r.reason and math.isnan(r.knee_step)
    r = fit_two_stage(T, np.full(T.size, 0.4))
    assert not r.is_two_stage and r.reason == "flat curve"
    y = np.where(T < 150, 0.1 + 0.7 * T / 150, 0.8 + 0.1 * (T - 150) / 450)
    y[::7] = np.nan
    r = fit_two_stage(T, y)
    assert r.is_two_stage and abs(r.knee_step - 150) < 2
    assert fit_two_stage([], []).reason.startswith("too few")


# -- V -----------------------------------------------------------------------------------------
def test_v_is_found_at_its_minimum():
    y = 10 + 20 * ((T - 240) / 240) ** 2
    y = np.where(T > 240, 10 + 8 * ((T - 240) / 360) ** 2, y) + _noise(6, 0.5)
    r = detect_v_shape(T, y)
    assert r.is_v, r.reason
    assert abs(r.min_step - 240) < 30
    assert r.drop_frac > 0.5 and r.rise_frac > 0.5
    assert r.min_len == pytest.approx(10, abs=1)


def test_monotone_decrease_is_not_a_v():
    y = 5 + 40 * np.exp(-T / 80) + _noise(7, 0.3)
    r = detect_v_shape(T, y)
    assert not r.is_v
    assert r.drop_frac > 0.5


@pytest.mark.parametrize(
    "curve, why",
    [
        # minimum in the last 10% of steps
        (lambda t: 30 - 0.04 * t + 4 * np.maximum(t - 570, 0) ** 2 / 900, "last 10%"),
        # falls only ~10%
        (lambda t: 10 - 1.0 * np.sin(np.pi * t / 600), "falls by less"),
        # rises only ~5% after a deep fall
        (lambda t: np.where(t < 300, 30 - 0.066 * t, 10.2 + 0.0017 * (t - 300)), "rises by less"),
    ],
)
def test_near_misses_are_not_vs(curve, why):
    r = detect_v_shape(T, curve(T) + _noise(8, 0.05))
    assert not r.is_v and why in r.reason


def test_v_ignores_nans_and_short_series():
    y = 10 + 20 * ((T - 300) / 300) ** 2
    y[:20] = np.nan  # no correct rollouts yet
    assert detect_v_shape(T, y).is_v
    r = detect_v_shape([1, 2, 3], [3, 2, 3])
    assert not r.is_v and "too few" in r.reason


# -- events and frustration --------------------------------------------------------------------
def test_forgetting_and_learning_events_by_hand():
    acc = np.array(
        [
            [0.0, 1.0, 0.5],
            [0.6, 1.0, 0.4],
            [0.7, 1.0, 0.6],
            [0.2, 1.0, np.nan],
            [0.8, 1.0, 0.3],
        ]
    )
    forget, learn = forgetting_events(acc, threshold=0.5, window=1)
    expected_f = np.zeros((5, 3), bool)
    expected_l = np.zeros((5, 3), bool)
    expected_l[1, 0] = expected_f[3, 0] = expected_l[4, 0] = True
    expected_f[1, 2] = expected_l[2, 2] = True
    expected_f[4, 2] = True  # NaN at row 3 carries "solved" forward, then 0.3 is a loss
    np.testing.assert_array_equal(forget, expected_f)
    np.testing.assert_array_equal(learn, expected_l)


def test_smoothing_removes_one_step_dips():
    acc = np.array([[1.0], [1.0], [0.0], [1.0], [1.0]])
    f1, l1 = forgetting_events(acc, window=1)
    assert f1[:, 0].tolist() == [False, False, True, False, False] and l1[3, 0]
    f3, l3 = forgetting_events(acc, window=3)
    assert not f3.any() and not l3.any()


def test_frustration_index_and_peak():
    forget = np.zeros((10, 4), bool)
    forget[2, :3] = True
    forget[6, :2] = True
    np.testing.assert_allclose(frustration_index(forget, window=1), forget.sum(1))
    F3 = frustration_index(forget, window=3)
    assert F3[1] == pytest.approx(1.0) and F3[2] == pytest.approx(1.0)
    assert F3[5] == pytest.approx(2 / 3) and F3[0] == pytest.approx(0.0)
    steps = np.arange(10, 110, 10)
    p = frustration_peak(steps, frustration_index(forget, window=1))
    assert p.peak_step == 30 and p.peak_value == 3
    p = frustration_peak(steps, np.zeros(10))
    assert math.isnan(p.peak_step) and "no forgetting" in p.reason


def test_frustration_analysis_finds_a_planted_burst():
    rng = np.random.default_rng(9)
    steps = np.arange(1, 301)
    acc = np.clip(0.9 + rng.normal(0, 0.02, (300, 40)), 0, 1)
    # problems 0..19 are forgotten around step 120 and relearned 15 steps later
    for q in range(20):
        t = 110 + q
        acc[t : t + 15, q] = 0.1
    r = frustration_analysis(steps, acc, window=11)
    assert 110 <= r.peak_step <= 131
    assert r.n_forgetting_events == 20 and r.n_learning_events == 20
    assert r.F.shape == (300,)


def test_accuracy_matrix_pivots_train_split():
    df = pd.DataFrame(
        {
            "step": [1, 1, 1, 2, 2, 2],
            "problem": [0, 1, 0, 0, 1, 0],
            "split": ["train", "train", "new"] * 2,
            "accuracy": [0.1, 0.2, 0.9, 0.3, 0.4, 0.8],
        }
    )
    A = accuracy_matrix(df)
    assert A.index.tolist() == [1, 2] and A.columns.tolist() == [0, 1]
    np.testing.assert_allclose(A.to_numpy(), [[0.1, 0.2], [0.3, 0.4]])


# -- transitions -------------------------------------------------------------------------------
def test_logistic_transition_width():
    t = np.arange(300.0)
    y = 1 / (1 + np.exp(-(t - 120) / 5))
    r = fit_logistic(t, y)
    assert r.ok and r.is_transition
    assert r.t0 == pytest.approx(120, abs=0.5)
    assert r.width == pytest.approx(2 * np.log(9) * 5, rel=0.02)
    noisy = np.clip(y + np.random.default_rng(1).normal(0, 0.1, t.size), 0, 1)
    r = fit_logistic(t, noisy)
    assert abs(r.t0 - 120) < 3 and 10 < r.width < 35
    sharp = fit_logistic(t, (t >= 200).astype(float))
    assert sharp.is_transition and sharp.width < 5 and abs(sharp.t0 - 199.5) < 1.5


def test_logistic_on_flat_and_short_series():
    assert fit_logistic(np.arange(50), np.full(50, 0.7)).reason == "flat"
    assert not fit_logistic([1, 2], [0, 1]).ok
    flatish = fit_logistic(np.arange(100), 0.5 + 0.01 * np.sin(np.arange(100)))
    assert flatish.ok and not flatish.is_transition
    df = transition_fits(np.arange(100), np.stack([np.arange(100) > 50, np.zeros(100)], 1))
    assert df["is_transition"].tolist() == [True, False]


# -- pass@k and helpers ------------------------------------------------------------------------
def test_pass_at_k_matches_the_combinatorial_formula():
    for n, c, k in [(10, 0, 1), (10, 10, 5), (2, 1, 1), (16, 3, 4), (64, 7, 8), (5, 2, 4)]:
        exact = 1 - comb(n - c, k) / comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
    np.testing.assert_allclose(pass_at_k(np.array([4, 4]), np.array([0, 2]), 2), [0.0, 5 / 6])
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)
    assert mean_at_k(16, 4, 8) == 0.25
    np.testing.assert_allclose(mean_at_k([8, 8], [2, 8], 4), [0.25, 1.0])


def test_edge_means_and_candidates():
    s, e = edge_means(np.arange(101), np.r_[np.full(11, 1.0), np.full(79, 5.0), np.full(11, 3.0)])
    assert (s, e) == (1.0, 3.0)
    c = frustration_candidates(125.0, 398.0, float("nan"))
    assert c.spread == 273.0 and math.isnan(c.knee_step)
