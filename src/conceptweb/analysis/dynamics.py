"""Training-dynamics diagnostics: two-stage fit, V-shape, forgetting/learning events, frustration,
per-problem transitions, collapse, and pass@k, all on plain arrays (CoNet and LLM runs alike).

Definitions: docs/analysis.md, D9 to D15 and D18 (the specification this module implements;
where the paper is silent the choice is ours and stated there). No function here raises on
NaNs, flat or short series: it returns NaN / False with a "reason".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit, minimize_scalar

from conceptweb.analysis.results import Result

__all__ = [
    "TWO_STAGE_MIN_RATIO",
    "V_EDGE_FRAC",
    "V_MIN_DROP",
    "V_MIN_RISE",
    "SOLVED_THRESHOLD",
    "MIN_FIT_POINTS",
    "MAX_KNEE_CANDIDATES",
    "MIN_V_POINTS",
    "DEFAULT_EVENT_WINDOW",
    "LOGISTIC_MIN_RISE",
    "WIDTH_FACTOR",
    "bic",
    "PiecewiseFit",
    "fit_piecewise_linear",
    "SaturatingFit",
    "fit_saturating",
    "TwoStageFit",
    "fit_two_stage",
    "piecewise_curve",
    "saturating_curve",
    "default_smooth_window",
    "smooth_series",
    "VShape",
    "detect_v_shape",
    "accuracy_matrix",
    "solved_matrix",
    "forgetting_events",
    "default_frustration_window",
    "frustration_index",
    "Peak",
    "frustration_peak",
    "Frustration",
    "frustration_analysis",
    "LogisticFit",
    "fit_logistic",
    "transition_fits",
    "edge_means",
    "pass_at_k",
    "mean_at_k",
    "FrustrationCandidates",
    "frustration_candidates",
]

# thresholds of the definitions (docs/analysis.md, D9 to D11)
TWO_STAGE_MIN_RATIO = 5.0
V_EDGE_FRAC = 0.10
V_MIN_DROP = 0.15
V_MIN_RISE = 0.15
SOLVED_THRESHOLD = 0.5
# choices of ours (docs/analysis.md)
MIN_FIT_POINTS = 8
MAX_KNEE_CANDIDATES = 400
MIN_V_POINTS = 10
DEFAULT_EVENT_WINDOW = 5
LOGISTIC_MIN_RISE = 0.5
WIDTH_FACTOR = 2.0 * math.log(9.0)  # 10% -> 90% width of a logistic in units of its scale


def _finite_xy(steps: Any, values: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(steps, dtype=np.float64).ravel()
    y = np.asarray(values, dtype=np.float64).ravel()
    if t.shape != y.shape:
        raise ValueError(f"steps ({t.size}) and values ({y.size}) differ in length")
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    order = np.argsort(t, kind="stable")
    return t[order], y[order]


def bic(rss: float, n: int, n_params: int) -> float:
    """Bayesian information criterion n ln(RSS / n) + p ln n of a least-squares fit.

    >>> round(bic(1.0, 100, 3), 1)
    -446.7
    """
    rss = max(float(rss), 1e-300)
    return float(n * math.log(rss / n) + n_params * math.log(n))


# -- two-stage learning curve --------------------------------------------------------------------
def _piecewise_rss(u: np.ndarray, y: np.ndarray, k: float) -> tuple[float, np.ndarray]:
    X = np.stack([np.ones_like(u), np.minimum(u - k, 0.0), np.maximum(u - k, 0.0)], axis=1)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ coef
    return float(r @ r), coef


@dataclass(frozen=True)
class PiecewiseFit(Result):
    """A continuous two-segment line y = v + s1 min(t - knee, 0) + s2 max(t - knee, 0)."""

    knee: float
    value_at_knee: float
    slope_early: float
    slope_late: float
    rss: float
    n: int


def fit_piecewise_linear(steps: Any, values: Any, min_side: int = 3) -> PiecewiseFit:
    """Least-squares continuous two-segment linear fit; the knee is searched over all steps.

    Model: y = v + s1 min(t - knee, 0) + s2 max(t - knee, 0), with at least `min_side` points
    strictly on each side of the knee; the best grid knee is refined continuously between its
    neighbouring steps (docs/analysis.md, D9).

    Parameters
    ----------
    steps, values : array-like
        The curve; non-finite points are dropped.
    min_side : int
        Points required on each side of the knee.

    Returns
    -------
    PiecewiseFit
        knee, value_at_knee, slope_early, slope_late, rss and n (NaN when too short).

    Examples
    --------
    >>> t = np.arange(20.0)
    >>> fit = fit_piecewise_linear(t, np.minimum(t, 10.0))
    >>> round(fit.knee, 3), round(fit.slope_early, 3), round(abs(fit.slope_late), 3)
    (10.0, 1.0, 0.0)
    """
    t, y = _finite_xy(steps, values)
    n = t.size
    nan = float("nan")
    out = PiecewiseFit(nan, nan, nan, nan, nan, n)
    if n < 2 * min_side + 1 or t[-1] == t[0]:
        return out
    t0, span = t[0], t[-1] - t[0]
    u = (t - t0) / span
    cand = np.arange(min_side, n - min_side)
    if cand.size > MAX_KNEE_CANDIDATES:
        cand = np.unique(np.linspace(cand[0], cand[-1], MAX_KNEE_CANDIDATES).round().astype(int))
    ks = u[cand]
    # batched normal equations over all candidate knees
    lo = np.minimum(u[None, :] - ks[:, None], 0.0)
    hi = np.maximum(u[None, :] - ks[:, None], 0.0)
    one = np.ones_like(lo)
    X = np.stack([one, lo, hi], axis=2)  # (C, n, 3)
    XtX = np.einsum("cni,cnj->cij", X, X)
    Xty = np.einsum("cni,n->ci", X, y)
    ok = np.abs(np.linalg.det(XtX)) > 1e-12
    rss = np.full(ks.size, np.inf)
    if ok.any():
        coef = np.linalg.solve(XtX[ok], Xty[ok][..., None])[..., 0]
        resid = y[None, :] - np.einsum("cni,ci->cn", X[ok], coef)
        rss[ok] = (resid**2).sum(axis=1)
    if not np.isfinite(rss).any():
        return out
    best = int(np.argmin(rss))
    lo_k = u[cand[best - 1]] if best > 0 else u[cand[best] - 1]
    hi_k = u[cand[best + 1]] if best + 1 < cand.size else u[cand[best] + 1]
    k_best, rss_best = float(ks[best]), float(rss[best])
    if hi_k > lo_k:
        res = minimize_scalar(
            lambda k: _piecewise_rss(u, y, k)[0],
            bounds=(lo_k, hi_k),
            method="bounded",
            options={"xatol": 1e-6},
        )
        if res.success and float(res.fun) < rss_best:
            k_best, rss_best = float(res.x), float(res.fun)
    rss_best, coef = _piecewise_rss(u, y, k_best)
    return PiecewiseFit(
        knee=float(t0 + k_best * span),
        value_at_knee=float(coef[0]),
        slope_early=float(coef[1] / span),
        slope_late=float(coef[2] / span),
        rss=float(rss_best),
        n=n,
    )


def _sat(u: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.exp(-u / c)


@dataclass(frozen=True)
class SaturatingFit(Result):
    """A saturating curve y = a - b exp(-(t - t_first) / c), c in steps."""

    a: float
    b: float
    c: float
    rss: float
    n: int


def fit_saturating(steps: Any, values: Any) -> SaturatingFit:
    """Least-squares fit of y = a - b exp(-(t - t_first) / c), c > 0 (docs/analysis.md, D9).

    c is profiled on a log grid (a and b are linear given c), then refined with curve_fit.

    Parameters
    ----------
    steps, values : array-like
        The curve; non-finite points are dropped; at least 4 points.

    Returns
    -------
    SaturatingFit
        a, b, c (in steps), rss, n.

    Examples
    --------
    >>> t = np.arange(0.0, 100.0)
    >>> fit = fit_saturating(t, 1 - np.exp(-t / 20))
    >>> round(fit.a, 3), round(fit.b, 3), round(fit.c, 1)
    (1.0, 1.0, 20.0)
    """
    t, y = _finite_xy(steps, values)
    n = t.size
    nan = float("nan")
    if n < 4 or t[-1] == t[0]:
        return SaturatingFit(nan, nan, nan, nan, n)
    t0, span = t[0], t[-1] - t[0]
    u = (t - t0) / span
    best = (np.inf, nan, nan, nan)
    for c in np.geomspace(1e-3, 1e2, 121):
        X = np.stack([np.ones_like(u), -np.exp(-u / c)], axis=1)
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        r = y - X @ coef
        rss = float(r @ r)
        if rss < best[0]:
            best = (rss, float(coef[0]), float(coef[1]), float(c))
    rss, a, b, c = best
    try:
        with np.errstate(all="ignore"):
            p, _ = curve_fit(
                _sat, u, y, p0=[a, b, c], bounds=([-np.inf, -np.inf, 1e-4], [np.inf, np.inf, 1e3])
            )
        r = y - _sat(u, *p)
        rss_p = float(r @ r)
        if np.isfinite(rss_p) and rss_p < rss:
            rss, a, b, c = rss_p, float(p[0]), float(p[1]), float(p[2])
    except (RuntimeError, ValueError):
        pass
    return SaturatingFit(a=a, b=b, c=float(c * span), rss=rss, n=n)


@dataclass(frozen=True)
class TwoStageFit(Result):
    """The two-stage verdict on a learning curve and both fits behind it (docs/analysis.md)."""

    knee_step: float
    slope_early: float
    slope_late: float
    slope_ratio: float
    bic_piecewise: float
    bic_saturating: float
    is_two_stage: bool
    reason: str
    n_points: int
    value_at_knee: float
    sat_a: float
    sat_b: float
    sat_c: float
    t_first: float


def fit_two_stage(steps: Any, values: Any, min_ratio: float = TWO_STAGE_MIN_RATIO) -> TwoStageFit:
    """Is a learning curve two-stage? Piecewise-linear against saturating fit, by BIC.

    Two-stage (docs/analysis.md, D9): the continuous two-segment piecewise-linear fit (4
    parameters) has a lower BIC than a - b exp(-t / c) (3 parameters), and the early slope is
    positive and at least `min_ratio` (5) times the late slope. slope_ratio is
    slope_early / slope_late when the late slope is positive, else NaN (a flat or falling late
    stage always satisfies the ratio condition).

    Parameters
    ----------
    steps, values : array-like
        The mean reward per step; non-finite points are dropped.
    min_ratio : float
        Required early/late slope ratio.

    Returns
    -------
    TwoStageFit
        The verdict `is_two_stage` with its `reason`, the knee, both slopes, both BICs, and the
        saturating fit's parameters (sat_a, sat_b, sat_c, t_first) for plotting. Never raises
        on short or flat curves: is_two_stage is False with a reason.

    Examples
    --------
    >>> t = np.arange(300.0)
    >>> fit = fit_two_stage(t, np.where(t < 100, 0.008 * t, 0.8 + 0.0005 * (t - 100)))
    >>> fit.is_two_stage, round(fit.knee_step), round(fit.slope_ratio)
    (True, 100, 16)
    >>> fit_two_stage(t, np.full(300, 0.5)).reason
    'flat curve'
    """
    t, y = _finite_xy(steps, values)
    n = int(t.size)
    nan = float("nan")
    out: dict[str, Any] = {
        "knee_step": nan,
        "slope_early": nan,
        "slope_late": nan,
        "slope_ratio": nan,
        "bic_piecewise": nan,
        "bic_saturating": nan,
        "is_two_stage": False,
        "reason": "",
        "n_points": n,
        "value_at_knee": nan,
        "sat_a": nan,
        "sat_b": nan,
        "sat_c": nan,
        "t_first": float(t[0]) if n else nan,
    }
    if n < MIN_FIT_POINTS:
        out["reason"] = f"too few finite points ({n} < {MIN_FIT_POINTS})"
        return TwoStageFit(**out)
    if np.ptp(y) == 0:
        out["reason"] = "flat curve"
        return TwoStageFit(**out)
    pw = fit_piecewise_linear(t, y)
    sat = fit_saturating(t, y)
    out.update(
        knee_step=pw.knee,
        slope_early=pw.slope_early,
        slope_late=pw.slope_late,
        value_at_knee=pw.value_at_knee,
        sat_a=sat.a,
        sat_b=sat.b,
        sat_c=sat.c,
    )
    if not (np.isfinite(pw.rss) and np.isfinite(sat.rss)):
        out["reason"] = "a fit failed"
        return TwoStageFit(**out)
    # a floor on the residuals keeps BIC finite for noise-free curves
    floor = 1e-12 * max(float(np.sum((y - y.mean()) ** 2)), 1e-300)
    out["bic_piecewise"] = bic(max(pw.rss, floor), n, 4)
    out["bic_saturating"] = bic(max(sat.rss, floor), n, 3)
    se, sl = pw.slope_early, pw.slope_late
    if sl > 0:
        out["slope_ratio"] = se / sl
    piecewise_wins = out["bic_piecewise"] < out["bic_saturating"]
    steep_enough = se > 0 and se >= min_ratio * sl
    out["is_two_stage"] = bool(piecewise_wins and steep_enough)
    if not piecewise_wins:
        out["reason"] = "the saturating curve fits better by BIC"
    elif se <= 0:
        out["reason"] = "the early segment does not rise"
    elif not steep_enough:
        out["reason"] = f"early slope < {min_ratio:g} x late slope"
    else:
        out["reason"] = "piecewise wins by BIC and the early slope is steep enough"
    return TwoStageFit(**out)


def piecewise_curve(t: Any, knee: float, value_at_knee: float, s1: float, s2: float) -> np.ndarray:
    """Evaluate the fitted continuous two-segment line at steps t (for plotting).

    >>> piecewise_curve([0, 10, 20], knee=10, value_at_knee=1.0, s1=0.1, s2=0.0).tolist()
    [0.0, 1.0, 1.0]
    """
    t = np.asarray(t, dtype=float)
    return value_at_knee + s1 * np.minimum(t - knee, 0.0) + s2 * np.maximum(t - knee, 0.0)


def saturating_curve(t: Any, a: float, b: float, c: float, t_first: float) -> np.ndarray:
    """Evaluate a - b exp(-(t - t_first) / c) at steps t (for plotting).

    >>> saturating_curve([0.0], a=1.0, b=1.0, c=5.0, t_first=0.0).tolist()
    [0.0]
    """
    t = np.asarray(t, dtype=float)
    return a - b * np.exp(-(t - t_first) / c)


# -- smoothing and the V -------------------------------------------------------------------------
def default_smooth_window(n: int) -> int:
    """Our default smoothing window: the odd number nearest 5% of the records, at least 5 (D10).

    >>> default_smooth_window(100), default_smooth_window(600)
    (5, 31)
    """
    w = max(5, int(round(0.05 * n)))
    return w if w % 2 else w + 1


def smooth_series(values: Any, window: int) -> np.ndarray:
    """Centred moving average over `window` records; NaNs are skipped, edges use what exists.

    >>> smooth_series([1.0, 2.0, float("nan"), 4.0], 3).tolist()
    [1.5, 1.5, 3.0, 4.0]
    """
    y = pd.Series(np.asarray(values, dtype=np.float64))
    return y.rolling(max(int(window), 1), center=True, min_periods=1).mean().to_numpy()


@dataclass(frozen=True)
class VShape(Result):
    """The V verdict on a length curve: its smoothed start, minimum and end (docs/analysis.md)."""

    min_step: float
    start_len: float
    min_len: float
    end_len: float
    drop_frac: float
    rise_frac: float
    is_v: bool
    reason: str
    smooth_window: float
    n_points: int


def detect_v_shape(
    steps: Any,
    lengths: Any,
    smooth: int | None = None,
    edge_frac: float = V_EDGE_FRAC,
    min_drop: float = V_MIN_DROP,
    min_rise: float = V_MIN_RISE,
) -> VShape:
    """Is the (mean correct-rollout) length curve V-shaped? (docs/analysis.md, D10)

    The series (steps without a finite length are dropped) is smoothed with a centred moving
    average of `smooth` records (default: default_smooth_window). A V: the smoothed minimum lies
    strictly inside the middle (1 - 2 edge_frac) of the step range, drop_frac =
    (start - min) / start >= min_drop and rise_frac = (end - min) / min >= min_rise, where start
    and end are the first and last smoothed values.

    Parameters
    ----------
    steps, lengths : array-like
        Mean length of correct rollouts per step.
    smooth : int, optional
        Smoothing window in records.
    edge_frac, min_drop, min_rise : float
        The criterion's thresholds (0.1, 0.15, 0.15).

    Returns
    -------
    VShape
        is_v with its reason, min_step, the smoothed start, minimum and end, drop_frac,
        rise_frac and the window used. Never raises on short series.

    Examples
    --------
    >>> t = np.arange(200.0)
    >>> v = detect_v_shape(t, 10 + np.abs(t - 80) / 4)
    >>> v.is_v, v.min_step, round(v.drop_frac, 2), round(v.rise_frac, 2)
    (True, 80.0, 0.64, 2.66)
    """
    t, y = _finite_xy(steps, lengths)
    n = int(t.size)
    nan = float("nan")
    out: dict[str, Any] = {
        "min_step": nan,
        "start_len": nan,
        "min_len": nan,
        "end_len": nan,
        "drop_frac": nan,
        "rise_frac": nan,
        "is_v": False,
        "reason": "",
        "smooth_window": nan,
        "n_points": n,
    }
    if n < MIN_V_POINTS:
        out["reason"] = f"too few finite points ({n} < {MIN_V_POINTS})"
        return VShape(**out)
    w = default_smooth_window(n) if smooth is None else max(int(smooth), 1)
    s = smooth_series(y, w)
    i = int(np.argmin(s))
    start, low, end = float(s[0]), float(s[i]), float(s[-1])
    out.update(
        min_step=float(t[i]),
        start_len=start,
        min_len=low,
        end_len=end,
        smooth_window=w,
        drop_frac=(start - low) / start if start > 0 else nan,
        rise_frac=(end - low) / low if low > 0 else nan,
    )
    span = t[-1] - t[0]
    lo_edge, hi_edge = t[0] + edge_frac * span, t[-1] - edge_frac * span
    if not lo_edge < t[i] < hi_edge:
        where = "first" if t[i] <= lo_edge else "last"
        out["reason"] = f"the minimum is in the {where} {edge_frac:.0%} of steps"
    elif not out["drop_frac"] >= min_drop:
        out["reason"] = f"falls by less than {min_drop:.0%} before the minimum"
    elif not out["rise_frac"] >= min_rise:
        out["reason"] = f"rises by less than {min_rise:.0%} after the minimum"
    else:
        out["is_v"] = True
        out["reason"] = "minimum inside, with a large enough fall and rise"
    return VShape(**out)


# -- per-problem events and frustration ----------------------------------------------------------
def accuracy_matrix(
    problems: pd.DataFrame, split: str | None = "train", value: str = "accuracy"
) -> pd.DataFrame:
    """Per-problem records as a (steps x problems) table of `value` (index step, columns problem).

    Rows of other splits are dropped when the table has a "split" column and `split` is given.

    >>> df = pd.DataFrame({"step": [1, 1, 2, 2], "problem": [0, 1, 0, 1],
    ...                    "accuracy": [0.0, 1.0, 0.5, 1.0]})
    >>> accuracy_matrix(df).to_numpy().tolist()
    [[0.0, 1.0], [0.5, 1.0]]
    """
    df = problems
    if split is not None and "split" in df.columns:
        df = df[df["split"] == split]
    if df.empty:
        return pd.DataFrame(dtype=float)
    table = df.pivot_table(index="step", columns="problem", values=value, aggfunc="mean")
    return table.sort_index().sort_index(axis=1).astype(float)


def solved_matrix(
    acc_matrix: Any, threshold: float = SOLVED_THRESHOLD, window: int = DEFAULT_EVENT_WINDOW
) -> np.ndarray:
    """Solved state a_q >= threshold after a centred moving average of `window` steps (D11).

    Missing values carry the previous state forward (unsolved before the first record).

    Raises ValueError if the matrix is not 2-D.

    >>> solved_matrix(np.array([[0.0], [1.0], [1.0], [0.0]]), window=1).ravel().tolist()
    [False, True, True, False]
    """
    acc = np.asarray(acc_matrix, dtype=np.float64)
    if acc.ndim != 2:
        raise ValueError(f"accuracy matrix must be (steps, problems), got shape {acc.shape}")
    if acc.size == 0:
        return np.zeros(acc.shape, dtype=bool)
    sm = pd.DataFrame(acc).rolling(max(int(window), 1), center=True, min_periods=1).mean()
    state = (sm >= threshold).astype(float).where(sm.notna())
    return state.ffill().fillna(0.0).to_numpy().astype(bool)


def forgetting_events(
    acc_matrix: Any, threshold: float = SOLVED_THRESHOLD, window: int = DEFAULT_EVENT_WINDOW
) -> tuple[np.ndarray, np.ndarray]:
    """Forgetting and learning events of each problem at each step (docs/analysis.md, D11).

    A forgetting event of q at row t: solved at t-1 and not at t; a learning event: the reverse
    (solved as in solved_matrix, i.e. after smoothing over `window` steps). Row 0 has no events.

    Parameters
    ----------
    acc_matrix : array (steps, problems)
        Per-problem accuracy.
    threshold : float
        Solved when the smoothed accuracy is >= threshold (0.5).
    window : int
        Centred smoothing window in records (5).

    Returns
    -------
    (forget, learn) : two bool arrays (steps, problems)

    Examples
    --------
    >>> forget, learn = forgetting_events(np.array([[0.0], [1.0], [1.0], [0.0]]), window=1)
    >>> np.flatnonzero(forget).tolist(), np.flatnonzero(learn).tolist()
    ([3], [1])
    """
    solved = solved_matrix(acc_matrix, threshold, window)
    forget = np.zeros_like(solved)
    learn = np.zeros_like(solved)
    if solved.shape[0] > 1:
        forget[1:] = solved[:-1] & ~solved[1:]
        learn[1:] = ~solved[:-1] & solved[1:]
    return forget, learn


def default_frustration_window(n_steps: int) -> int:
    """Our default window of F(t): about n/30 records, at least 5 (20 for a 600-step run; D12).

    >>> default_frustration_window(600), default_frustration_window(60)
    (20, 5)
    """
    return max(5, int(round(n_steps / 30)))


def frustration_index(forget_matrix: Any, window: int | None = None) -> np.ndarray:
    """F(t): forgetting events per step (all problems), centred moving average over `window` (D12).

    Raises ValueError if the event matrix is not 2-D.

    >>> frustration_index(np.array([[0, 0], [1, 1], [0, 0]]), window=1).tolist()
    [0.0, 2.0, 0.0]
    """
    f = np.asarray(forget_matrix)
    if f.ndim != 2:
        raise ValueError(f"event matrix must be (steps, problems), got shape {f.shape}")
    per_step = f.sum(axis=1).astype(np.float64)
    if window is None:
        window = default_frustration_window(per_step.size)
    return smooth_series(per_step, window)


@dataclass(frozen=True)
class Peak(Result):
    """Where an event index peaks: its step (NaN without events), its value, and why not."""

    peak_step: float
    peak_value: float
    reason: str


def frustration_peak(steps: Any, F: Any) -> Peak:
    """The step where F(t) peaks (the first one if tied); NaN if there is no forgetting at all.

    >>> frustration_peak([10, 20, 30], [0.0, 2.0, 2.0])
    Peak(peak_step=20.0, peak_value=2.0, reason='')
    """
    t = np.asarray(steps, dtype=np.float64)
    F = np.asarray(F, dtype=np.float64)
    if F.size == 0 or not np.isfinite(F).any() or np.nanmax(F) <= 0:
        return Peak(float("nan"), 0.0, "no forgetting events")
    i = int(np.nanargmax(F))
    return Peak(float(t[i]), float(F[i]), "")


@dataclass(frozen=True, eq=False)
class Frustration(Result):
    """Forgetting and learning events of every problem, F(t), L(t) and their peaks."""

    peak_step: float
    peak_value: float
    n_forgetting_events: int
    n_learning_events: int
    learning_peak_step: float
    window: int
    event_window: int
    reason: str
    F: np.ndarray = field(repr=False)
    L: np.ndarray = field(repr=False)
    forget: np.ndarray = field(repr=False)
    learn: np.ndarray = field(repr=False)


def frustration_analysis(
    steps: Any,
    acc_matrix: Any,
    threshold: float = SOLVED_THRESHOLD,
    event_window: int = DEFAULT_EVENT_WINDOW,
    window: int | None = None,
) -> Frustration:
    """Forgetting and learning events, F(t), L(t) and their peaks in one call (D11, D12).

    Parameters
    ----------
    steps : array-like (steps,)
        The step of each row.
    acc_matrix : array (steps, problems)
        Per-problem accuracy.
    threshold : float
        Solved threshold (0.5).
    event_window : int
        Smoothing of accuracy before events (5).
    window : int, optional
        Smoothing of F (default_frustration_window).

    Returns
    -------
    Frustration
        peak_step, peak_value, n_forgetting_events, n_learning_events, learning_peak_step,
        the windows, and the arrays F, L, forget, learn.

    Examples
    --------
    Two problems learnt at step 2; problem 1 is forgotten at step 4.

    >>> acc = np.array([[0, 0], [1, 1], [1, 1], [1, 0], [1, 0.0]])
    >>> fr = frustration_analysis([1, 2, 3, 4, 5], acc, event_window=1, window=1)
    >>> fr.peak_step, fr.n_forgetting_events, fr.n_learning_events
    (4.0, 1, 2)
    """
    t = np.asarray(steps, dtype=np.float64)
    forget, learn = forgetting_events(acc_matrix, threshold, event_window)
    if window is None:
        window = default_frustration_window(t.size)
    F = frustration_index(forget, window)
    Lr = frustration_index(learn, window)
    peak = frustration_peak(t, F)
    lpeak = frustration_peak(t, Lr)
    return Frustration(
        peak_step=peak.peak_step,
        peak_value=peak.peak_value,
        n_forgetting_events=int(forget.sum()),
        n_learning_events=int(learn.sum()),
        learning_peak_step=lpeak.peak_step,
        window=int(window),
        event_window=int(event_window),
        reason=peak.reason,
        F=F,
        L=Lr,
        forget=forget,
        learn=learn,
    )


# -- per-problem transitions ---------------------------------------------------------------------
def _logistic(t: np.ndarray, lo: float, hi: float, t0: float, s: float) -> np.ndarray:
    z = np.clip((t - t0) / s, -60.0, 60.0)
    return lo + (hi - lo) / (1.0 + np.exp(-z))


def _logistic_jac(t: np.ndarray, lo: float, hi: float, t0: float, s: float) -> np.ndarray:
    z = np.clip((t - t0) / s, -60.0, 60.0)
    sig = 1.0 / (1.0 + np.exp(-z))
    d = (hi - lo) * sig * (1.0 - sig)
    return np.stack([1.0 - sig, sig, -d / s, -d * z / s], axis=1)


@dataclass(frozen=True)
class LogisticFit(Result):
    """A logistic a(t) = lo + (hi - lo) / (1 + exp(-(t - t0) / s)) and its 10-90% width."""

    t0: float
    width: float
    lo: float
    hi: float
    r2: float
    ok: bool
    is_transition: bool
    reason: str


def fit_logistic(steps: Any, acc: Any) -> LogisticFit:
    """Fit a(t) = lo + (hi - lo) / (1 + exp(-(t - t0) / s)) to one problem's accuracy (D14).

    width = 2 ln(9) s, the steps from 10% to 90% of the transition. A coarse grid over t0 and s
    (lo, hi linear given them) starts a bounded least-squares refinement.

    Parameters
    ----------
    steps, acc : array-like
        One problem's accuracy over steps (non-finite points dropped).

    Returns
    -------
    LogisticFit
        t0, width, lo, hi, r2; ok is False with a reason when the series is too short or flat;
        is_transition when hi - lo >= 0.5.

    Examples
    --------
    >>> t = np.arange(100.0)
    >>> fit = fit_logistic(t, 1 / (1 + np.exp(-(t - 40) / 3)))
    >>> fit.is_transition, round(fit.t0, 1), round(fit.width, 1)
    (True, 40.0, 13.2)
    """
    t, y = _finite_xy(steps, acc)
    nan = float("nan")
    out: dict[str, Any] = {
        "t0": nan,
        "width": nan,
        "lo": nan,
        "hi": nan,
        "r2": nan,
        "ok": False,
        "is_transition": False,
        "reason": "",
    }
    if t.size < MIN_FIT_POINTS:
        out["reason"] = "too few points"
        return LogisticFit(**out)
    var = float(np.sum((y - y.mean()) ** 2))
    if np.ptp(y) == 0 or var == 0:
        out["reason"] = "flat"
        return LogisticFit(**out)
    span = float(t[-1] - t[0])
    dt = float(np.median(np.diff(t))) if t.size > 1 else 1.0
    lo_b, hi_b = min(0.0, float(y.min())), max(1.0, float(y.max()))
    best = (np.inf, nan, nan, nan, nan)
    t0_grid = np.linspace(t[0], t[-1], min(41, t.size))
    s_grid = np.geomspace(max(dt / 4, 1e-6), max(span / 2, dt), 12)
    for s in s_grid:
        sig = 1.0 / (1.0 + np.exp(-np.clip((t[None, :] - t0_grid[:, None]) / s, -60, 60)))
        sm, ym = sig.mean(axis=1), y.mean()
        cov = ((sig - sm[:, None]) * (y - ym)[None, :]).sum(axis=1)
        vs = ((sig - sm[:, None]) ** 2).sum(axis=1)
        slope = np.where(vs > 0, cov / np.where(vs > 0, vs, 1), 0.0)
        icpt = ym - slope * sm
        # keep the plateaus inside the range of the data (accuracies: [0, 1])
        lo_g = np.clip(icpt, lo_b, hi_b)
        slope = np.clip(icpt + slope, lo_b, hi_b) - lo_g
        icpt = lo_g
        rss = ((y[None, :] - icpt[:, None] - slope[:, None] * sig) ** 2).sum(axis=1)
        j = int(np.argmin(rss))
        if rss[j] < best[0]:
            best = (float(rss[j]), float(icpt[j]), float(icpt[j] + slope[j]), t0_grid[j], s)
    rss, lo, hi, t0, s = best
    try:
        if abs(hi - lo) < LOGISTIC_MIN_RISE / 2:
            raise RuntimeError("no transition to refine")
        with np.errstate(all="ignore"):
            lower = [lo_b, lo_b, t[0] - span, dt / 10]
            upper = [hi_b, hi_b, t[-1] + span, 2 * span + dt]
            p0 = np.clip([lo, hi, t0, s], lower, upper)
            p, _ = curve_fit(
                _logistic, t, y, p0=p0, bounds=(lower, upper), jac=_logistic_jac, max_nfev=200
            )
        r = y - _logistic(t, *p)
        if np.all(np.isfinite(p)) and float(r @ r) <= rss:
            rss, lo, hi, t0, s = float(r @ r), float(p[0]), float(p[1]), float(p[2]), float(p[3])
    except (RuntimeError, ValueError):
        pass
    return LogisticFit(
        t0=t0,
        width=WIDTH_FACTOR * s,
        lo=lo,
        hi=hi,
        r2=1.0 - rss / var,
        ok=True,
        is_transition=bool(hi - lo >= LOGISTIC_MIN_RISE),
        reason="",
    )


def transition_fits(
    steps: Any, acc_matrix: Any, problems: Sequence[Any] | None = None
) -> pd.DataFrame:
    """fit_logistic for every column of a (steps x problems) accuracy matrix, one row each.

    >>> t = np.arange(50.0)
    >>> df = transition_fits(t, np.stack([t > 20, np.zeros(50)], axis=1))
    >>> df["is_transition"].tolist(), df["reason"].tolist()
    ([True, False], ['', 'flat'])
    """
    acc = np.asarray(acc_matrix, dtype=np.float64)
    names = list(range(acc.shape[1])) if problems is None else list(problems)
    rows = []
    for j, q in enumerate(names):
        r = fit_logistic(steps, acc[:, j]).to_dict()
        r["problem"] = q
        rows.append(r)
    cols = ["problem", "t0", "width", "lo", "hi", "r2", "ok", "is_transition", "reason"]
    return pd.DataFrame(rows, columns=cols)


# -- collapse and edges of a series --------------------------------------------------------------
def edge_means(steps: Any, values: Any, frac: float = 0.1) -> tuple[float, float]:
    """Means of the finite values in the first and in the last `frac` of the step range (D15).

    >>> edge_means(np.arange(11), [1, 2, 3, 3, 3, 3, 3, 3, 3, 4, 5])
    (1.5, 4.5)
    """
    t, y = _finite_xy(steps, values)
    if t.size == 0:
        return float("nan"), float("nan")
    span = t[-1] - t[0]
    first = y[t <= t[0] + frac * span]
    last = y[t >= t[-1] - frac * span]
    return float(first.mean()), float(last.mean())


# -- pass@k --------------------------------------------------------------------------------------
def _pass_at_k_one(n: int, c: int, k: int) -> float:
    if not (0 <= c <= n) or k < 1 or k > n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    # 1 - C(n - c, k) / C(n, k) as a stable product
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def pass_at_k(n: Any, c: Any, k: int) -> float | np.ndarray:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k) (D18).

    n and c may be arrays (broadcast); returns a float for scalars. Raises ValueError unless
    0 <= c <= n and 1 <= k <= n.

    >>> pass_at_k(4, 1, 2)
    0.5
    >>> pass_at_k(np.array([4, 4]), np.array([0, 4]), 2).tolist()
    [0.0, 1.0]
    """
    nb, cb = np.broadcast_arrays(np.asarray(n), np.asarray(c))
    out = np.array(
        [
            _pass_at_k_one(int(a), int(b), int(k))
            for a, b in zip(nb.ravel(), cb.ravel(), strict=True)
        ]
    ).reshape(nb.shape)
    return float(out) if out.ndim == 0 else out


def mean_at_k(n: Any, c: Any, k: int) -> float | np.ndarray:
    """Unbiased mean@k (expected fraction correct among k of the n samples), which is c / n.

    Raises ValueError unless 0 <= c <= n and 1 <= k <= n.

    >>> mean_at_k(16, 4, 8)
    0.25
    """
    nb, cb = np.broadcast_arrays(np.asarray(n, dtype=np.float64), np.asarray(c, dtype=np.float64))
    if np.any(cb < 0) or np.any(cb > nb) or k < 1 or np.any(k > nb):
        raise ValueError("mean@k needs 0 <= c <= n and 1 <= k <= n")
    out = cb / nb
    return float(out) if out.ndim == 0 else out


# -- the three candidates ------------------------------------------------------------------------
@dataclass(frozen=True)
class FrustrationCandidates(Result):
    """The three candidate steps of the maximally frustrated state and their spread."""

    forgetting_peak_step: float
    v_bottom_step: float
    knee_step: float
    spread: float


def frustration_candidates(
    forgetting_peak_step: float, v_bottom_step: float, knee_step: float
) -> FrustrationCandidates:
    """The three candidate steps of the maximally frustrated state side by side (D13).

    >>> frustration_candidates(120.0, 150.0, float("nan")).spread
    30.0
    """
    vals = [forgetting_peak_step, v_bottom_step, knee_step]
    finite = [float(v) for v in vals if v is not None and np.isfinite(v)]
    spread = (max(finite) - min(finite)) if len(finite) >= 2 else float("nan")
    return FrustrationCandidates(forgetting_peak_step, v_bottom_step, knee_step, spread)
