"""Online detector of the maximally frustrated state: decides from the past alone when to heat.

At every step it sees the history so far (mean reward, mean length of correct rollouts, and
per-problem accuracy, one row per step) and nothing later. Three past-only signals:

- forgetting: F(t), the trailing mean over 2 x `window` steps of forgetting events per step,
  has peaked: its running maximum is at least `min_forgetting` and has not been exceeded for
  `patience` steps. Where the history carries per-observation events (`history.forgetting`,
  from `conceptweb.analysis.events.EventTracker`: LLM runs, `conceptweb detect`), an event is
  a problem whose last informative observation said solved and whose new one says unsolved,
  by a binomial confidence rule, however far apart they are: correct at any sampling rate.
  A dense history (CoNet, every problem sampled every step) without it uses per-problem
  accuracy smoothed over a trailing `window`: solved (>= 0.5) at the previous step and not now
  (docs/analysis.md, D11). With per-observation events the peak must also stand out of the
  noise floor: problems near accuracy 0.5 that are re-observed often (a sentinel set) flip by
  chance at a steady rate, which an absolute gate cannot tell from a wave. The events in F's
  peak window must be unlikely (Poisson upper tail <= `peak_p`, 1e-6) at the run's mean rate
  of events outside that window.
- knee: the trailing slope of the smoothed reward has fallen below a fifth of the steepest
  slope seen so far (the two-stage criterion of docs/analysis.md, D9), `patience` steps after it.
- length: the smoothed mean length of correct rollouts has passed its running minimum (the
  bottom of the V): the minimum is `patience` steps old and the length has risen 5% above it.

`signal` picks the deciding signal ("vote": at least two of the three). Whatever the signal,
the detector stays silent on a run whose frustration never reaches `min_forgetting` (set it
to 0 to allow firing on the knee or the V alone), and before `min_steps` steps of history.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from conceptweb.algorithms.heating import History
from conceptweb.config import DetectorConfig

__all__ = [
    "SLOPE_RATIO",
    "LENGTH_RISE",
    "SOLVED",
    "trailing_mean",
    "forgetting_counts",
    "FrustrationDetector",
]

SLOPE_RATIO = 5.0
LENGTH_RISE = 0.05
SOLVED = 0.5


def trailing_mean(x: np.ndarray, window: int, full: bool = False) -> np.ndarray:
    """Mean over the last `window` entries along axis 0, NaNs ignored.

    With full=True, steps with fewer than `window` entries behind them are NaN (no estimate
    from a half-empty window); otherwise they average what there is.

    >>> trailing_mean(np.array([1.0, 3.0, np.nan, 5.0]), 2).tolist()
    [1.0, 2.0, 3.0, 5.0]
    >>> trailing_mean(np.array([1.0, 3.0, 5.0]), 2, full=True).tolist()
    [nan, 2.0, 4.0]
    """
    x = np.asarray(x, dtype=np.float64)
    valid = ~np.isnan(x)
    filled = np.where(valid, x, 0.0)
    csum = np.cumsum(filled, axis=0)
    ccount = np.cumsum(valid, axis=0)
    lagged_sum = np.zeros_like(csum)
    lagged_count = np.zeros_like(ccount)
    lagged_sum[window:] = csum[:-window]
    lagged_count[window:] = ccount[:-window]
    count = ccount - lagged_count
    if full:
        count = np.where(
            np.arange(len(x)).reshape((-1,) + (1,) * (x.ndim - 1)) >= window - 1, count, 0
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (csum - lagged_sum) / np.maximum(count, 1), np.nan)


def forgetting_counts(accuracy: np.ndarray, window: int) -> np.ndarray:
    """Forgetting events per step from a (steps x problems) accuracy matrix, trailing smoothing.

    NaN where the trailing window is not yet full (docs/analysis.md, D17).

    >>> forgetting_counts(np.array([[1.0], [1.0], [0.0], [0.0]]), 1).tolist()
    [nan, 0.0, 1.0, 0.0]
    """
    if len(accuracy) < 2:
        return np.full(len(accuracy), np.nan)
    smooth = trailing_mean(accuracy, window, full=True)
    solved = smooth >= SOLVED
    events = (solved[:-1] & ~solved[1:]).sum(axis=1).astype(np.float64)
    events[np.isnan(smooth[:-1]).all(axis=1)] = np.nan  # no full window yet
    return np.concatenate([[np.nan], events])


def peak_significance(
    events: np.ndarray, peak_i: int, window: int, F_peak: float
) -> tuple[float, float]:
    """(noise floor in events per step, P-value of the peak window's events under it).

    The floor is the mean of the events per step outside the `window` steps ending at the peak,
    or after the peak if that is higher (chance flips grow as more problems have been seen);
    the P-value is the Poisson upper tail of the peak window's count at that rate.
    """
    from scipy.special import pdtrc  # P(X > k) for X ~ Poisson(m); lighter than scipy.stats

    e = np.nan_to_num(np.asarray(events, dtype=np.float64))
    lo = max(0, peak_i - window + 1)
    outside = np.r_[e[:lo], e[peak_i + 1 :]]
    after = e[peak_i + 1 :]
    floor = max(
        float(outside.mean()) if outside.size else 0.0, float(after.mean()) if after.size else 0.0
    )
    count = int(round(F_peak * window))
    return floor, float(pdtrc(count - 1, floor * window)) if count > 0 else 1.0


@dataclass
class FrustrationDetector:
    """Past-only trigger for Annealed-RLVR (implements the heating Trigger protocol; D17).

    Examples
    --------
    Four problems learnt at step 11 and all forgotten at step 21: the detector waits until the
    peak of forgetting is `patience` steps old.

    >>> from types import SimpleNamespace
    >>> acc = np.repeat([0.0, 1.0, 0.0], [10, 10, 30])[:, None].repeat(4, axis=1)
    >>> def history(n):
    ...     return SimpleNamespace(steps=np.arange(1, n + 1), reward=acc[:n].mean(1),
    ...                            len_correct=np.full(n, 5.0), accuracy=acc[:n])
    >>> detector = FrustrationDetector(window=2, min_steps=10, patience=5)
    >>> detector.decide(history(22))[0], detector.decide(history(30))[0]
    (False, True)
    """

    window: int = 10
    min_steps: int = 30
    patience: int = 20
    min_forgetting: float = 0.4
    signal: str = "forgetting"
    confidence: float = 0.9  # of the binomial rule, for histories that track observations
    peak_p: float = 1e-6  # ... whose F peak must be this unlikely under their noise floor

    @classmethod
    def from_config(cls, cfg: DetectorConfig) -> FrustrationDetector:
        return cls(
            cfg.window,
            cfg.min_steps,
            cfg.patience,
            cfg.min_forgetting,
            cfg.signal,
            cfg.confidence,
            cfg.peak_p,
        )

    def forgetting_per_step(self, history: History) -> np.ndarray:
        """Forgetting events at each step of `history`: per observation if it has them."""
        events = getattr(history, "forgetting", None)
        if events is not None:
            return np.asarray(events, dtype=np.float64)
        return forgetting_counts(history.accuracy, self.window)

    def signals(self, history: History) -> dict[str, float]:
        """The three signals and their evidence at the last step of `history`."""
        n = len(history.steps)
        w, pat = self.window, self.patience
        ev: dict[str, float] = {}
        F = trailing_mean(self.forgetting_per_step(history), 2 * w, full=True)
        peak_i = int(np.nanargmax(F)) if n and np.isfinite(F).any() else 0
        ev["F"] = float(F[-1]) if n and np.isfinite(F[-1]) else 0.0
        ev["F_peak"] = float(F[peak_i]) if n and np.isfinite(F[peak_i]) else 0.0
        ev["F_peak_step"] = float(history.steps[peak_i]) if n else 0.0
        ev["forgetting"] = float(n and ev["F_peak"] > 0 and (n - 1 - peak_i) >= pat)
        if getattr(history, "forgetting", None) is not None and np.isfinite(F).any():
            ev["F_floor"], ev["F_peak_p"] = peak_significance(
                self.forgetting_per_step(history), peak_i, 2 * w, ev["F_peak"]
            )

        r = trailing_mean(history.reward, w)
        lag = 2 * w
        slope = np.full(n, np.nan)
        if n > lag:
            slope[lag:] = (r[lag:] - r[:-lag]) / lag
        ev["slope"] = float(slope[-1]) if n else float("nan")
        knee = 0.0
        if np.isfinite(slope).any():
            top = int(np.nanargmax(slope))
            ev["slope_peak"] = float(slope[top])
            knee = float(
                slope[top] > 0 and (n - 1 - top) >= pat and slope[-1] < slope[top] / SLOPE_RATIO
            )
        ev["knee"] = knee

        length = trailing_mean(history.len_correct, w)
        bottom = 0.0
        if np.isfinite(length).any():
            lo = int(np.nanargmin(length))
            ev["len_min_step"] = float(history.steps[lo])
            bottom = float((n - 1 - lo) >= pat and length[-1] >= (1 + LENGTH_RISE) * length[lo])
        ev["length"] = bottom
        return ev

    def decide(self, history: History) -> tuple[bool, dict[str, float]]:
        """(heat now?, evidence) from the history up to the current step."""
        n = len(history.steps)
        if n < self.min_steps:
            return False, {}
        ev = self.signals(history)
        if ev["F_peak"] < self.min_forgetting:
            return False, ev
        if ev.get("F_peak_p", 0.0) > self.peak_p:
            return False, ev  # a peak that does not stand out of the noise floor of chance flips
        if self.signal == "vote":
            fire = ev["forgetting"] + ev["knee"] + ev["length"] >= 2
        else:
            fire = bool(ev[self.signal])
        return bool(fire), ev


def replay(
    observations: pd.DataFrame,
    detector: FrustrationDetector,
    per_step: pd.DataFrame | None = None,
    n_problems: int | None = None,
) -> dict[str, Any]:
    """Replay the online detector over recorded per-problem results, step by step.

    observations: columns step, problem, n, n_correct (conceptweb.analysis.events). per_step:
    optional columns step, reward_mean, len_correct_mean (for the knee and length signals;
    NaN without). At each step the detector sees exactly what it would have seen online.
    Returns whether and when it fired, its evidence then (or at the end), and the event counts.
    """
    from conceptweb.analysis.events import ObservationHistory, read_observations

    obs = read_observations(observations)
    if n_problems is None:
        n_problems = int(obs["problem"].max()) + 1 if len(obs) else 0
    steps = np.unique(obs["step"].to_numpy())
    if per_step is not None and len(per_step):
        steps = np.union1d(steps, per_step["step"].to_numpy().astype(np.int64))
        per = per_step.drop_duplicates("step", keep="last").set_index("step")
    else:
        per = pd.DataFrame(columns=["reward_mean", "len_correct_mean"])
    history = ObservationHistory(n_problems, detector.confidence)
    groups = {int(s): g for s, g in obs.groupby("step", sort=True)}
    fired_step, fire_evidence, evidence = None, {}, {}
    for step in steps.tolist():
        g = groups.get(int(step))
        if g is not None:
            history.observe(int(step), g["problem"], g["n"], g["n_correct"])
        row = per.loc[step] if step in per.index else {}
        history.append(
            int(step),
            float(row.get("reward_mean", np.nan)),
            float(row.get("len_correct_mean", np.nan)),
        )
        fire, evidence = detector.decide(history)
        if fire and fired_step is None:
            fired_step, fire_evidence = int(step), dict(evidence)
    f_counts, l_counts = history.tracker.events_at(history.steps)
    return {
        "fired": fired_step is not None,
        "fire_step": fired_step,
        "evidence": fire_evidence if fired_step is not None else evidence,
        "n_steps": int(len(steps)),
        "first_step": int(steps[0]) if len(steps) else None,
        "last_step": int(steps[-1]) if len(steps) else None,
        "n_problems": int(n_problems),
        "n_observations": int(len(obs)),
        "n_forgetting_events": int(f_counts.sum()),
        "n_learning_events": int(l_counts.sum()),
        "detector": asdict(detector),
    }
