"""Annealed-RLVR on CoNet: the online detector, heating operators and their records."""

from __future__ import annotations

import numpy as np
import pytest

from conceptweb.algorithms.callbacks import Callback, default_callbacks
from conceptweb.algorithms.heating import HEATING_OPERATORS, select_hard_problems
from conceptweb.algorithms.trainer import Trainer, TrainHistory
from conceptweb.analysis.detector import FrustrationDetector, forgetting_counts
from conceptweb.config import config_to_dict
from conceptweb.experiments.runs import make_trigger, train_run
from conceptweb.rundir import RunDir
from tests.conftest import small_config


def synthetic_run(seed: int, frustration: bool, S: int = 400, Q: int = 64):
    """Per-problem accuracy: logistic learning, plus (optionally) a wave of forgetting at 150-200."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, S + 1)[:, None]
    onset = rng.uniform(20, 120, size=Q)
    p = 1 / (1 + np.exp(-(t - onset) / 6))
    if frustration:
        hit = rng.random(Q) < 0.5
        start = rng.uniform(140, 170, size=Q)
        dip = (t > start) & (t < start + 30) & hit
        p = np.where(dip, 0.1, p)
    acc = rng.binomial(16, np.clip(p, 0, 1)) / 16
    reward = acc.mean(axis=1)
    length = 20 - 10 * reward + rng.normal(0, 0.2, S)
    return acc, reward, length


def history_of(acc, reward, length, upto):
    h = TrainHistory(len(reward), acc.shape[1])
    for i in range(upto):
        h.append(i + 1, reward[i], length[i], acc[i])
    return h


def first_fire(det, acc, reward, length):
    h = TrainHistory(len(reward), acc.shape[1])
    for i in range(len(reward)):
        h.append(i + 1, reward[i], length[i], acc[i])
        if det.decide(h)[0]:
            return i + 1
    return None


@pytest.mark.parametrize("seed", range(4))
def test_detector_fires_after_the_frustration_peak(seed):
    acc, reward, length = synthetic_run(seed, frustration=True)
    F = forgetting_counts(acc, 10)
    det = FrustrationDetector()
    step = first_fire(det, acc, reward, length)
    assert step is not None
    h = history_of(acc, reward, length, step)
    ev = det.decide(h)[1]
    assert ev["F_peak"] >= det.min_forgetting
    assert 150 <= ev["F_peak_step"] <= 215  # the peak it reports is in the forgetting wave
    assert ev["F_peak_step"] + det.patience <= step <= ev["F_peak_step"] + 3 * det.patience
    assert np.nansum(F[:100]) < np.nansum(F[150:230])


@pytest.mark.parametrize("seed", range(4))
def test_detector_stays_silent_without_frustration(seed):
    acc, reward, length = synthetic_run(seed, frustration=False)
    assert first_fire(FrustrationDetector(), acc, reward, length) is None
    # ... unless told to fire on the knee alone
    assert (
        first_fire(FrustrationDetector(signal="knee", min_forgetting=0.0), acc, reward, length)
        is not None
    )


def test_detector_never_fires_before_min_steps():
    acc, reward, length = synthetic_run(0, frustration=True)
    det = FrustrationDetector(min_steps=300)
    assert first_fire(det, acc, reward, length) >= 300
    assert not det.decide(history_of(acc, reward, length, 299))[0]


def test_detector_does_not_peek():
    acc, reward, length = synthetic_run(1, frustration=True)
    det = FrustrationDetector()
    cut = 170
    acc2, reward2, length2 = acc.copy(), reward.copy(), length.copy()
    rng = np.random.default_rng(9)
    acc2[cut:] = rng.random(acc2[cut:].shape)
    reward2[cut:] = rng.random(reward2[cut:].shape)
    for s in range(1, cut + 1, 7):
        a = det.decide(history_of(acc, reward, length, s))
        b = det.decide(history_of(acc2, reward2, length2, s))
        assert a == b


def test_select_hard_problems():
    recent = np.array([[0.0, 0.5, 0.05, 1.0], [0.1, 0.4, 0.0, 1.0]])
    assert select_hard_problems(recent, 0.1).tolist() == [0, 2]


class WatchHeating(Callback):
    """Collects the nodes whose logits heating may touch: what each heating step trained on."""

    def __init__(self) -> None:
        self.visited: set[int] = set()
        self.problems: list[np.ndarray] = []

    def on_heat_step(self, trainer, heat) -> None:
        self.problems.append(heat.problems.copy())
        if heat.used_walks is not None:
            w = heat.used_walks
            self.visited.update(w.nodes[w.nodes >= 0].tolist())
        if heat.used_batch is not None:
            self.visited.update(heat.used_batch.nodes.tolist())


def _trainer_at(tmp_path, operator, watch=None, at=8, steps=25, **sets):
    cfg = small_config(
        steps=steps,
        **{
            "anneal.mode": "at",
            "anneal.at_step": at,
            "anneal.heat.operator": operator,
            "anneal.heat.steps": 8,
            "anneal.heat.threshold": 0.5,
            **sets,
        },
    )
    run = RunDir.create(tmp_path / operator, config_to_dict(cfg))
    extra = [watch] if watch is not None else []
    t = Trainer(cfg, run, trigger=make_trigger(cfg), callbacks=[*default_callbacks(run), *extra])
    t.start()
    t.run(stop_after=at)
    return t


@pytest.mark.parametrize("operator", HEATING_OPERATORS.names())
def test_heating_touches_only_the_selected_problems(tmp_path, operator):
    watch = WatchHeating()
    t = _trainer_at(tmp_path, operator, watch)
    selected = t.state.heat.problems.copy()
    assert selected.size > 0
    assert (t.state.heat.first, t.state.heat.last) == (9, 16)
    before = t.state.logits.copy()
    # nodes the selected problems could have touched: their reference paths (the reset acts
    # on those when heating starts), and what each heating step trained on (the watch)
    for path in t.world.shortest_paths(selected):
        watch.visited |= set(path.tolist())
    t.run(stop_after=8)
    assert len(watch.problems) == 8  # one heating update per heating step
    assert all(np.array_equal(p, selected) for p in watch.problems)
    assert watch.visited
    changed = np.flatnonzero(np.any(t.state.logits != before, axis=1))
    assert changed.size > 0
    assert set(changed.tolist()) <= watch.visited
    untouched = sorted(set(range(t.state.logits.shape[0])) - watch.visited)
    assert np.array_equal(t.state.logits[untouched], before[untouched])


def test_annealed_run_records_show_the_heating(tmp_path):
    cfg = small_config(
        steps=60,
        **{
            "anneal.mode": "at",
            "anneal.at_step": 25,
            "anneal.heat.steps": 10,
            "anneal.heat.threshold": 0.3,
        },
    )
    run = train_run(cfg, tmp_path / "a")
    m = run.read_metrics()
    assert len(m) == 60  # heating steps are counted in the step budget
    assert m.loc[m["phase"] == "sft", "step"].tolist() == list(range(26, 36))
    assert (m["phase"] == "rl").sum() == 50
    assert (m["n_heat_problems"] > 0).sum() == 10
    assert m["det_fire"].fillna(False).astype(bool).sum() == 1


def test_auto_annealing_fires_at_most_once_and_resumes_exactly(tmp_path):
    cfg = small_config(
        steps=120,
        **{
            "anneal.mode": "auto",
            "anneal.detector.min_forgetting": 0.0,
            "anneal.detector.signal": "knee",
            "anneal.detector.min_steps": 20,
            "anneal.heat.threshold": 1.0,
        },
    )
    full = train_run(cfg, tmp_path / "full")
    m = full.read_metrics()
    fired = m["det_fire"].fillna(False).astype(bool)
    assert fired.sum() == 1
    assert m.loc[fired, "det_n_selected"].iloc[0] > 0
    assert (m["phase"] == "sft").sum() == cfg.anneal.heat.steps
    run = RunDir.create(tmp_path / "cut", config_to_dict(cfg))
    t = Trainer(cfg, run, trigger=make_trigger(cfg))
    t.start()
    t.run(stop_after=int(m.loc[fired, "step"].iloc[0]) + 3)  # stop in the middle of the heating
    resumed = train_run(None, tmp_path / "cut", resume=True)
    np.testing.assert_array_equal(full.load_checkpoint().logits, resumed.load_checkpoint().logits)


def test_detector_on_a_recorded_run(tmp_path):
    """Replaying a real CoNet run: one decision to heat, at a major peak of the past-only F(t)."""
    from conceptweb.analysis.detector import trailing_mean
    from conceptweb.analysis.dynamics import accuracy_matrix
    from conceptweb.config import resolve_config

    cfg = resolve_config(
        "tiny",
        sets=[
            "seed=1",
            "model.K=4",
            "problems.Q=64",
            "steps=250",
            "eval.every=0",
            "checkpoint.every=250",
        ],
    )
    run = train_run(cfg, tmp_path / "r")
    m = run.read_metrics()
    acc = accuracy_matrix(run.read_problems()).to_numpy()
    det = FrustrationDetector()
    F = trailing_mean(forgetting_counts(acc, det.window), 2 * det.window, full=True)
    fires = []
    for s in range(1, len(m) + 1):
        fire, ev = det.decide(
            history_of(acc, m["reward_mean"].to_numpy(), m["len_correct_mean"].to_numpy(), s)
        )
        if fire:
            fires.append((s, ev))
    assert fires, "the run has frustration; the detector must fire"
    step, ev = fires[0]
    assert (
        step == ev["F_peak_step"] + det.patience
    )  # as soon as the peak has held for `patience` steps
    assert ev["F_peak"] >= 0.5 * np.nanmax(F)  # a major peak of the run, not a ripple
    assert ev["F_peak"] == pytest.approx(np.nanmax(F[:step]))  # it saw nothing after `step`
    quiet = FrustrationDetector(min_forgetting=float(np.nanmax(F)) + 0.01)
    assert (
        first_fire(quiet, acc, m["reward_mean"].to_numpy(), m["len_correct_mean"].to_numpy())
        is None
    )
