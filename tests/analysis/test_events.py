"""Events between successive observations: the binomial rule, online = offline, sparse sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conceptweb.analysis.detector import FrustrationDetector, forgetting_counts
from conceptweb.analysis.events import (
    EventTracker,
    binomial_state,
    observation_events,
    observation_frustration,
    read_observations,
)


def test_binomial_rule_needs_a_confident_observation() -> None:
    # G = 8 at the default 90% level: 7-8 correct is solved, 0-1 unsolved, the rest says nothing
    states = binomial_state(np.full(9, 8), np.arange(9))
    np.testing.assert_array_equal(states, [-1, -1, 0, 0, 0, 0, 0, 1, 1])
    assert binomial_state([0], [0])[0] == 0
    assert binomial_state([64], [40])[0] == 1  # 0.62 of 64 is confidently above 0.5


def test_events_span_any_gap_and_ignore_uninformative_observations() -> None:
    t = EventTracker(4)
    assert t.observe(1, [0, 1], [8, 8], [8, 0]) == (0, 0)
    assert t.observe(2, [0], [8], [4]) == (0, 0)  # 4/8 says nothing: 0 stays solved
    assert t.observe(90, [0, 1, 2], [8, 8, 8], [0, 8, 0]) == (1, 1)  # 88 steps later
    assert t.observe(91, [2, 2], [4, 4], [4, 4]) == (0, 1)  # repeated ids pool into 8/8
    f, lr = t.events_at([1, 2, 3, 90, 91])
    np.testing.assert_array_equal(f, [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(lr, [0, 0, 0, 1, 1])
    # spread over the gap since the last informative observation: 2..90 and 91..91
    f, lr = t.spread_at([1, 2, 3, 90, 91, 92])
    np.testing.assert_allclose(f, [0, 1 / 89, 1 / 89, 1 / 89, 0, 0])
    np.testing.assert_allclose(lr, [0, 1 / 89, 1 / 89, 1 / 89, 1, 0])
    assert t.spread_at(range(1, 92))[0].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="outside 0..3"):
        t.observe(92, [4], [8], [8])


def test_offline_replay_counts_exactly_the_online_events() -> None:
    rng = np.random.default_rng(3)
    rows = []
    tracker = EventTracker(50)
    online = []
    for step in range(1, 120):
        q = rng.choice(50, 12, replace=False)
        p = 0.5 + 0.45 * np.sin(step / 9 + q)
        k = rng.binomial(8, p)
        online.append(tracker.observe(step, q, np.full(12, 8), k))
        rows += [
            {"step": step, "problem": a, "n": 8, "n_correct": b} for a, b in zip(q, k, strict=True)
        ]
    ev = observation_events(pd.DataFrame(rows))
    per_step = ev.groupby("step")[["forget", "learn"]].sum()
    np.testing.assert_array_equal(per_step.to_numpy(), np.array(online))
    assert per_step["forget"].sum() > 5  # the case is not empty
    # the offline analysis of a run (analyze's frustration section) counts the same events
    table = pd.DataFrame(rows).assign(accuracy=lambda d: d["n_correct"] / d["n"], phase="rl")
    acc = table.pivot_table(index="step", columns="problem", values="accuracy")
    fr = observation_frustration(table, acc, window=5)
    assert fr.n_forgetting_events == per_step["forget"].sum() == fr.forget.sum()
    assert fr.n_learning_events == per_step["learn"].sum()
    np.testing.assert_allclose(np.sum(tracker.spread_at(acc.index)[0]), per_step["forget"].sum())


def test_observation_table_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="lacks column"):
        read_observations(pd.DataFrame({"step": [1], "problem": [0]}))
    with pytest.raises(ValueError, match="exceeds n"):
        read_observations(pd.DataFrame({"step": [1], "problem": [0], "n": [2], "n_correct": [3]}))


class _Sparse:
    """A trigger history over an EventTracker (what the LLM monitor gives the detector)."""

    def __init__(self, n_problems: int) -> None:
        self.tracker = EventTracker(n_problems)
        self.steps_list: list[int] = []

    steps = property(lambda self: np.asarray(self.steps_list))
    reward = property(lambda self: np.zeros(len(self.steps_list)))
    len_correct = property(lambda self: np.ones(len(self.steps_list)))
    forgetting = property(lambda self: self.tracker.spread_at(self.steps_list)[0])


def _sparse_run(wave: bool, seed: int, steps: int = 240) -> tuple[int | None, int]:
    """40k problems, 128 sampled per step (G=8) and 512 sentinels every 5 steps.

    Accuracies are drawn from a U-shaped Beta(0.3, 0.3) and stay put, except, with `wave`,
    a fifth of the problems and half the sentinels, solved (0.95), are forgotten (0.05) at
    steps drawn from N(200, 10) and relearned 30 steps later: a forgetting wave peaking at
    step 200. Returns (the first
    step the detector fires or None, the total forgetting events it saw).
    """
    rng = np.random.default_rng(seed)
    Q, B, S = 40_000, 128, 512
    p = rng.beta(0.3, 0.3, Q)
    sentinels = rng.choice(Q, S, replace=False)
    when = np.full(Q, np.inf)
    if wave:
        hit = np.union1d(rng.choice(Q, Q // 5, replace=False), sentinels[: S // 2])
        p[hit], when[hit] = 0.95, rng.normal(200, 10, hit.size)
    det = FrustrationDetector(window=5, patience=8, min_steps=30)
    history, fired = _Sparse(Q), None
    for step in range(1, steps + 1):
        acc = np.where((step >= when) & (step < when + 30), 0.05, p)
        q = np.unique(rng.integers(0, Q, B))
        history.tracker.observe(step, q, np.full(q.size, 8), rng.binomial(8, acc[q]))
        if step % 5 == 0:
            history.tracker.observe(step, sentinels, np.full(S, 8), rng.binomial(8, acc[sentinels]))
        history.steps_list.append(step)
        if fired is None and det.decide(history)[0]:
            fired = step
    return fired, int(history.forgetting.sum())


@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_sampling_stays_silent_and_a_planted_wave_fires_near_its_peak(seed: int) -> None:
    fired, n_events = _sparse_run(wave=False, seed=seed)
    assert fired is None, f"fired at step {fired} on a run without forgetting ({n_events} events)"
    fired, n_events = _sparse_run(wave=True, seed=seed)
    assert fired is not None and 200 <= fired <= 220, (fired, n_events)  # peak at 200


def test_every_sample_correct_is_no_forgetting_however_sparse() -> None:
    # the case: 40k problems, 128 sampled per step, every sample correct
    Q, B, steps = 40_000, 128, 60
    rng = np.random.default_rng(0)
    history = _Sparse(Q)
    dense = np.full((steps, Q), np.nan)  # what the old dense history held (steps x problems)
    for step in range(1, steps + 1):
        q = np.unique(rng.integers(0, Q, B))
        history.tracker.observe(step, q, np.full(q.size, 8), np.full(q.size, 8))
        history.steps_list.append(step)
        dense[step - 1, q] = 1.0
    assert history.forgetting.sum() == 0
    assert not FrustrationDetector().decide(history)[0]
    # the smoothed dense definition turns "not sampled lately" into forgetting
    assert np.nansum(forgetting_counts(dense, 10)) > 1000
