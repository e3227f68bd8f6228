"""Forgetting and learning events between successive observations of a problem, at any sampling rate.

A problem is *observed* when some of its rollouts are scored: n samples, n_correct of them
correct. One observation says "solved" only when a binomial confidence interval for its
accuracy lies wholly at or above the threshold (0.5), "unsolved" only when it lies wholly
below it, and nothing otherwise (Wilson score interval, two-sided level `confidence`, 0.9 by
default: with G = 8 samples, solved takes 7 or 8 correct, unsolved 0 or 1). A **forgetting
event** of q at step t: the last observation of q that said anything said "solved" and the
observation at t says "unsolved"; a **learning event** is the reverse. A problem not sampled
for a while is simply not observed: nothing about it changes until it is observed again,
however many steps pass, so sparse sampling (GRPO batches of 128 prompts out of 40,000) does
not invent events.

`EventTracker` applies the rule online with O(problems) memory and O(observations) work per
step (no steps x problems array); `observation_events` replays it offline over a table with
columns step, problem, n, n_correct, so the online detector and the offline analysis count
exactly the same events.

Example:
    >>> t = EventTracker(n_problems=3)
    >>> t.observe(1, [0, 1], [8, 8], [8, 0])
    (0, 0)
    >>> t.observe(5, [0, 1], [8, 8], [0, 8])   # problem 0 forgotten, problem 1 learned
    (1, 1)
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_CONFIDENCE",
    "EVENT_TABLE_COLUMNS",
    "EventTracker",
    "OBSERVED_PHASES",
    "ObservationHistory",
    "binomial_state",
    "observation_events",
    "observation_frustration",
    "read_observations",
]

DEFAULT_CONFIDENCE = 0.9
SOLVED = 0.5
EVENT_TABLE_COLUMNS = ["step", "problem", "n", "n_correct"]
OBSERVED_PHASES = ("rl", "sentinel")  # per-problem rows of an LLM run that count as observations


def binomial_state(
    n: Any, n_correct: Any, threshold: float = SOLVED, confidence: float = DEFAULT_CONFIDENCE
) -> np.ndarray:
    """Per observation: +1 solved, -1 unsolved, 0 undetermined (int8), by the Wilson interval.

    Solved when the interval's lower end is >= threshold, unsolved when its upper end is below
    it. An observation with n = 0 is undetermined.
    """
    n = np.asarray(n, dtype=np.float64)
    k = np.asarray(n_correct, dtype=np.float64)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    state = np.zeros(n.shape, dtype=np.int8)
    ok = n > 0
    state[ok & (centre - half >= threshold)] = 1
    state[ok & (centre + half < threshold)] = -1
    return state


class EventTracker:
    """Online events between successive observations: O(problems) memory, nothing dense.

    Per problem it keeps the last determined state (0 before any), the step of that
    observation, and the last `recent` observations (n, n_correct) for selecting hard problems.
    Per step it keeps the counts of forgetting and learning events and of observations.
    """

    def __init__(
        self,
        n_problems: int,
        threshold: float = SOLVED,
        confidence: float = DEFAULT_CONFIDENCE,
        recent: int = 8,
    ) -> None:
        self.n_problems = int(n_problems)
        self.threshold = threshold
        self.confidence = confidence
        self.state = np.zeros(self.n_problems, dtype=np.int8)
        self.state_step = np.full(self.n_problems, -1, dtype=np.int64)
        self.recent = int(recent)
        self._recent_n = np.zeros((self.n_problems, self.recent), dtype=np.int32)
        self._recent_c = np.zeros((self.n_problems, self.recent), dtype=np.int32)
        self._n_obs = np.zeros(self.n_problems, dtype=np.int64)
        self.counts: dict[int, list[int]] = {}  # step -> [forgetting, learning, observations]
        # each event spread evenly over the steps since the problem's previous informative
        # observation (when in that gap it happened is unknown): step -> change of the rate
        self._f_delta: dict[int, float] = {}
        self._l_delta: dict[int, float] = {}

    @staticmethod
    def _spread(delta: dict[int, float], since: np.ndarray, step: int) -> None:
        for a in since.tolist():
            lo = min(a + 1, step)  # a == step: observed twice in one step (batch + sentinels)
            w = 1.0 / (step + 1 - lo)
            delta[lo] = delta.get(lo, 0.0) + w
            delta[step + 1] = delta.get(step + 1, 0.0) - w

    def spread_at(self, steps: Any) -> tuple[np.ndarray, np.ndarray]:
        """(forgetting, learning) events per step with each event spread over its gap.

        An event found at step t on a problem last informatively observed at step a counts
        1/(t - a) at each step a+1..t: dense observations place it sharply, sparse ones spread
        it thin, so F(t) peaks where forgetting happened rather than where it was noticed.
        """
        steps = np.asarray(steps, dtype=np.int64)
        return _rate_at(self._f_delta, steps), _rate_at(self._l_delta, steps)

    def observe(self, step: int, problems: Any, n: Any, n_correct: Any) -> tuple[int, int]:
        """Fold one step's observations in; (forgetting events, learning events) they made.

        A problem listed twice in one call is pooled into one observation. Steps may repeat
        (training samples and a sentinel evaluation of the same step add up).
        """
        q, n, k = _pooled(problems, n, n_correct)
        if q.size and (q.min() < 0 or q.max() >= self.n_problems):
            bad = int(q[(q < 0) | (q >= self.n_problems)][0])
            raise ValueError(f"problem id {bad} is outside 0..{self.n_problems - 1}")
        new = binomial_state(n, k, self.threshold, self.confidence)
        prev = self.state[q]
        det = new != 0
        is_f = det & (prev == 1) & (new == -1)
        is_l = det & (prev == -1) & (new == 1)
        forget, learn = int(is_f.sum()), int(is_l.sum())
        self._spread(self._f_delta, self.state_step[q[is_f]], step)
        self._spread(self._l_delta, self.state_step[q[is_l]], step)
        self.state[q[det]] = new[det]
        self.state_step[q[det]] = step
        slot = self._n_obs[q] % self.recent
        self._recent_n[q, slot] = n
        self._recent_c[q, slot] = k
        self._n_obs[q] += 1
        c = self.counts.setdefault(int(step), [0, 0, 0])
        c[0] += forget
        c[1] += learn
        c[2] += int(q.size)
        return forget, learn

    def events_at(self, steps: Any) -> tuple[np.ndarray, np.ndarray]:
        """(forgetting, learning) event counts at each of `steps` (0 where nothing was observed)."""
        f = np.array([self.counts.get(int(s), (0, 0, 0))[0] for s in steps], dtype=np.float64)
        lr = np.array([self.counts.get(int(s), (0, 0, 0))[1] for s in steps], dtype=np.float64)
        return f, lr

    def recent_accuracy(self, recent: int) -> np.ndarray:
        """Per problem, pooled accuracy of its last `recent` observations (NaN if never seen)."""
        r = max(1, min(int(recent), self.recent))
        # the last r slots written, per problem, in ring order
        idx = (self._n_obs[:, None] - 1 - np.arange(r)[None, :]) % self.recent
        valid = np.arange(r)[None, :] < np.minimum(self._n_obs, r)[:, None]
        n = np.where(valid, np.take_along_axis(self._recent_n, idx, axis=1), 0).sum(axis=1)
        c = np.where(valid, np.take_along_axis(self._recent_c, idx, axis=1), 0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, c / np.maximum(n, 1), np.nan)

    def n_solved(self) -> int:
        """Problems whose last determined observation said solved."""
        return int((self.state == 1).sum())


def _rate_at(delta: dict[int, float], steps: np.ndarray) -> np.ndarray:
    if not delta or not steps.size:
        return np.zeros(steps.size)
    keys = np.fromiter(delta.keys(), dtype=np.int64, count=len(delta))
    vals = np.fromiter(delta.values(), dtype=np.float64, count=len(delta))
    order = np.argsort(keys)
    level = np.cumsum(vals[order])
    i = np.searchsorted(keys[order], steps, side="right") - 1
    out = np.where(i >= 0, level[np.maximum(i, 0)], 0.0)
    return np.where(np.abs(out) < 1e-9, 0.0, out)


def _pooled(problems: Any, n: Any, n_correct: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q = np.asarray(problems, dtype=np.int64).ravel()
    n = np.asarray(n, dtype=np.int64).ravel()
    k = np.asarray(n_correct, dtype=np.int64).ravel()
    if q.size == np.unique(q).size:
        return q, n, k
    uq, inv = np.unique(q, return_inverse=True)
    return uq, np.bincount(inv, weights=n).astype(np.int64), np.bincount(inv, k).astype(np.int64)


def read_observations(table: pd.DataFrame, source: str = "table") -> pd.DataFrame:
    """The columns step, problem, n, n_correct of a per-problem table, checked, sorted by step.

    Accepts conceptweb's problems.parquet (rows of other splits than `train` dropped) or any
    table with those four columns. Raises ValueError naming what is missing or wrong.
    """
    missing = [c for c in EVENT_TABLE_COLUMNS if c not in table.columns]
    if missing and "accuracy" in table.columns and "n" in table.columns and "n_correct" in missing:
        table = table.assign(n_correct=(table["accuracy"] * table["n"]).round())
        missing = [c for c in missing if c != "n_correct"]
    if missing:
        raise ValueError(
            f"{source} lacks column(s) {', '.join(missing)} (needs {', '.join(EVENT_TABLE_COLUMNS)})"
        )
    if "split" in table.columns:
        table = table[table["split"] == "train"]
    obs = table[EVENT_TABLE_COLUMNS].copy()
    for c in EVENT_TABLE_COLUMNS:
        values = pd.to_numeric(obs[c], errors="coerce")
        if values.isna().any() or (values < 0).any():
            raise ValueError(f"{source}: column {c} must hold non-negative integers")
        obs[c] = values.astype(np.int64)
    if (obs["n_correct"] > obs["n"]).any():
        raise ValueError(f"{source}: n_correct exceeds n in some rows")
    return obs.sort_values(["step", "problem"], kind="stable").reset_index(drop=True)


def observation_events(
    observations: pd.DataFrame,
    n_problems: int | None = None,
    threshold: float = SOLVED,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Offline replay of EventTracker: one row per (step, problem) observation with its event.

    Input: columns step, problem, n, n_correct (see read_observations). Output: those columns
    plus `state` (+1, -1, 0), `forget` and `learn` (bool), in step order; rows of the same
    (step, problem) are pooled into one observation, as the tracker pools them.
    """
    obs = read_observations(observations)
    obs = obs.groupby(["step", "problem"], as_index=False, sort=True)[["n", "n_correct"]].sum()
    if n_problems is None:
        n_problems = int(obs["problem"].max()) + 1 if len(obs) else 0
    tracker = EventTracker(n_problems, threshold, confidence, recent=1)
    forget = np.zeros(len(obs), dtype=bool)
    learn = np.zeros(len(obs), dtype=bool)
    state = binomial_state(obs["n"], obs["n_correct"], threshold, confidence)
    starts = np.flatnonzero(np.r_[True, np.diff(obs["step"].to_numpy()) != 0])
    ends = np.r_[starts[1:], len(obs)]
    q_all = obs["problem"].to_numpy()
    for a, b in zip(starts, ends, strict=True):
        grp = obs.iloc[a:b]
        q = q_all[a:b]
        prev = tracker.state[q].copy()
        tracker.observe(int(grp["step"].iloc[0]), q, grp["n"], grp["n_correct"])
        s = state[a:b]
        forget[a:b] = (s == -1) & (prev == 1)
        learn[a:b] = (s == 1) & (prev == -1)
    return obs.assign(state=state, forget=forget, learn=learn)


def observation_frustration(
    problems: pd.DataFrame,
    acc_matrix: pd.DataFrame,
    window: int,
    threshold: float = SOLVED,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Any:
    """frustration_analysis for runs recorded per observation (n, n_correct): a Frustration.

    Events are the online tracker's (observation_events); F and L are the events per step,
    each spread over its observation gap, then centred-smoothed over `window` records; the
    event matrices are aligned to `acc_matrix` (index step, columns problem) for figures.
    """
    from conceptweb.analysis.dynamics import Frustration, frustration_peak, smooth_series

    obs = problems
    if "phase" in obs.columns:
        obs = obs[obs["phase"].isin(OBSERVED_PHASES)]
    n_problems = int(max(obs["problem"].max() + 1 if len(obs) else 0, len(acc_matrix.columns)))
    ev = observation_events(obs, n_problems, threshold, confidence)
    tracker = EventTracker(n_problems, threshold, confidence, recent=1)
    for step, g in ev.groupby("step", sort=True):
        tracker.observe(int(step), g["problem"], g["n"], g["n_correct"])
    steps = acc_matrix.index.to_numpy()
    f_rate, l_rate = tracker.spread_at(steps)
    F, Lr = smooth_series(f_rate, window), smooth_series(l_rate, window)
    forget = np.zeros(acc_matrix.shape, dtype=bool)
    learn = np.zeros(acc_matrix.shape, dtype=bool)
    rows = pd.Index(steps).get_indexer(ev["step"])
    cols = pd.Index(acc_matrix.columns).get_indexer(ev["problem"])
    ok = (rows >= 0) & (cols >= 0)
    forget[rows[ok], cols[ok]] = ev["forget"].to_numpy()[ok]
    learn[rows[ok], cols[ok]] = ev["learn"].to_numpy()[ok]
    peak, lpeak = frustration_peak(steps, F), frustration_peak(steps, Lr)
    return Frustration(
        peak_step=peak.peak_step,
        peak_value=peak.peak_value,
        n_forgetting_events=int(ev["forget"].sum()),
        n_learning_events=int(ev["learn"].sum()),
        learning_peak_step=lpeak.peak_step,
        window=int(window),
        event_window=0,  # no smoothing of accuracy: the binomial rule decides
        reason=peak.reason,
        F=F,
        L=Lr,
        forget=forget,
        learn=learn,
    )


class ObservationHistory:
    """What a trigger sees of a sparsely sampled run: steps, reward, length, events per step.

    Implements the heating History protocol without a dense accuracy matrix: per-problem
    results go into an EventTracker, and `forgetting` gives the events per recorded step
    (each spread over its observation gap), which the frustration detector uses.
    """

    def __init__(self, n_problems: int, confidence: float = DEFAULT_CONFIDENCE) -> None:
        self.n_problems = n_problems
        self.tracker = EventTracker(n_problems, confidence=confidence)
        self._steps: list[int] = []
        self._reward: list[float] = []
        self._len: list[float] = []

    def observe(self, step: int, problems: Any, n: Any, n_correct: Any) -> None:
        """Per-problem results at `step` (training samples or a sentinel evaluation)."""
        self.tracker.observe(step, problems, n, n_correct)

    def append(self, step: int, reward: float, len_correct: float) -> None:
        """Close step `step` with its mean reward and mean length of correct completions."""
        self._steps.append(step)
        self._reward.append(reward)
        self._len.append(len_correct)

    @property
    def steps(self) -> np.ndarray:
        return np.asarray(self._steps, dtype=np.int64)

    @property
    def reward(self) -> np.ndarray:
        return np.asarray(self._reward, dtype=np.float64)

    @property
    def len_correct(self) -> np.ndarray:
        return np.asarray(self._len, dtype=np.float64)

    @property
    def forgetting(self) -> np.ndarray:
        """Forgetting events at each recorded step, each spread over its observation gap."""
        return self.tracker.spread_at(self._steps)[0]

    @property
    def learning(self) -> np.ndarray:
        return self.tracker.spread_at(self._steps)[1]

    def recent_accuracy(self, recent: int) -> np.ndarray:
        """Per problem, the pooled accuracy of its last `recent` observations (NaN if never seen)."""
        return self.tracker.recent_accuracy(recent)
