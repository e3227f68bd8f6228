"""Statistics across seeds: means with confidence intervals and paired comparisons of arms."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "mean_ci",
    "MIN_SEEDS",
    "Interval",
    "seed_interval",
    "paired_comparison",
    "holm",
    "verdict",
]


def mean_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lower, upper) with a Student-t confidence interval; NaNs are dropped (D18).

    One value gives a mean without an interval (NaN bounds); none gives NaN.

    >>> m, lo, hi = mean_ci(np.array([1.0, 2.0, 3.0]))
    >>> m, round(lo, 3), round(hi, 3)
    (2.0, -0.484, 4.484)
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if x.size == 1:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return m, m - half, m + half


MIN_SEEDS = 3  # fewer values than this: a mean, but no interval ("too few seeds")


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its 95% interval; `method` says how it was made.

    method: "t" (Student-t), "bootstrap" (percentile bootstrap of the mean, for bounded
    quantities: it never leaves the range of the values), "too few seeds" (no interval) or
    "none" (no finite value).
    """

    mean: float
    low: float
    high: float
    n: int
    method: str


def seed_interval(
    x: np.ndarray,
    bounds: tuple[float, float] | None = None,
    level: float = 0.95,
    min_n: int = MIN_SEEDS,
    n_boot: int = 4000,
) -> Interval:
    """The mean of `x` over seeds and an interval that respects the quantity's range.

    Quantities with `bounds` (fractions in [0, 1], steps in [0, steps], counts >= 0) get a
    percentile bootstrap interval of the mean (deterministic: resampling seed 0), which lies
    inside the range of the values and so inside the bounds; others a Student-t interval.
    With fewer than `min_n` finite values there is no interval.

    >>> iv = seed_interval(np.array([0.9, 1.0, 1.0, 0.95]), bounds=(0, 1))
    >>> iv.method, 0.9 <= iv.low <= iv.mean <= iv.high <= 1.0
    ('bootstrap', True)
    >>> seed_interval(np.array([1.0, 2.0])).method
    'too few seeds'
    """
    v = np.asarray(x, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0, "none")
    m = float(v.mean())
    if v.size < min_n:
        return Interval(m, math.nan, math.nan, int(v.size), "too few seeds")
    if bounds is None:
        _, lo, hi = mean_ci(v, level)
        return Interval(m, lo, hi, int(v.size), "t")
    rng = np.random.default_rng(0)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    lo, hi = max(float(lo), bounds[0]), min(float(hi), bounds[1])
    return Interval(m, lo, hi, int(v.size), "bootstrap")


def paired_comparison(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Compare arm `a` with arm `b` on the same seeds: mean of a - b, its CI and two tests (D18).

    Pairs where either value is NaN are dropped. p_t is the paired t-test, p_wilcoxon the
    Wilcoxon signed-rank test (NaN when every difference is zero or fewer than 2 pairs).

    >>> c = paired_comparison(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 1.1, 1.9, 3.0]))
    >>> round(c["mean_diff"], 3), c["p_t"] < 0.001
    (1.0, True)
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    mean, lo, hi = mean_ci(d, level)
    out = {
        "n": int(d.size),
        "mean_diff": mean,
        "ci_low": lo,
        "ci_high": hi,
        "p_t": math.nan,
        "p_wilcoxon": math.nan,
    }
    if d.size >= 2:
        if np.all(d == d[0]):
            out["p_t"] = 1.0 if d[0] == 0 else 0.0
        else:
            out["p_t"] = float(stats.ttest_1samp(d, 0.0).pvalue)
        if np.any(d != 0):
            out["p_wilcoxon"] = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    return out


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (family-wise error control over several comparisons).

    NaN p-values stay NaN and do not count in the family.

    >>> holm(np.array([0.01, 0.04, 0.03, np.nan])).round(2).tolist()
    [0.03, 0.06, 0.06, nan]
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (ok.size - rank) * p[idx]))
        out[idx] = running
    return out


def verdict(
    comparison: dict[str, float],
    alpha: float = 0.05,
    higher_is_better: bool = True,
    p_key: str = "p_t",
) -> str:
    """'helped', 'hurt' or 'no significant difference' from a paired comparison (p-value `p_key`).

    >>> verdict({"mean_diff": -0.1, "p_t": 0.01}), verdict({"mean_diff": 0.1, "p_t": 0.2})
    ('hurt', 'no significant difference')
    """
    p = comparison.get(p_key, math.nan)
    diff = comparison.get("mean_diff", math.nan)
    if not np.isfinite(p) or not np.isfinite(diff) or p >= alpha or diff == 0:
        return "no significant difference"
    better = diff > 0 if higher_is_better else diff < 0
    return "helped" if better else "hurt"
