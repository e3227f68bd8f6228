"""RLVR estimators: advantages by their definitions, DAPO's clip-higher and dynamic sampling,
REINFORCE's running baseline across checkpoint and resume, and every estimator learning.

(Each estimator's gradient against finite differences and a brute-force loop is in
tests/test_learning.py, parametrised over the registry.)
"""

from __future__ import annotations

import numpy as np
import pytest

from conceptweb.algorithms.estimators import (
    BASELINE_DECAY,
    ESTIMATORS,
    informative_groups,
    make_estimator,
    replace_groups,
)
from conceptweb.algorithms.trainer import Trainer
from conceptweb.config import GRPOConfig, config_to_dict
from conceptweb.experiments.runs import train_run
from conceptweb.model.graph import random_regular_graph
from conceptweb.model.policy import softmax
from conceptweb.model.rollouts import sample_rollouts
from conceptweb.rundir import RunDir
from tests.conftest import small_config


@pytest.fixture
def rollouts():
    rng = np.random.default_rng(7)
    g = random_regular_graph(8, 3, seed=2)
    logits = rng.normal(0, 1, (8, 3))
    sources, targets = np.array([0, 1, 2, 3]), np.array([5, 6, 7, 4])
    ro = sample_rollouts(g.neighbors, softmax(logits, 1.3), sources, targets, 6, 8, rng)
    ro.success[18:] = True  # the last problem's group is all right: uninformative
    ro.success[:6] = [True, False, False, True, False, False]
    return ro


def _by_definition(name: str, r: np.ndarray, eps: float) -> np.ndarray:
    """Each estimator's advantages written out walk by walk (r: problems x G)."""
    P, G = r.shape
    out = np.zeros_like(r)
    for q in range(P):
        for i in range(G):
            if name in ("dr_grpo", "reinforce"):  # reinforce: first step, baseline = group mean
                out[q, i] = r[q, i] - r[q].mean()
            elif name == "rloo":
                out[q, i] = r[q, i] - np.delete(r[q], i).mean()
            elif name in ("grpo", "dapo"):
                out[q, i] = (r[q, i] - r[q].mean()) / (r[q].std(ddof=1) + eps)
    if name == "reinforce_pp":
        out = (r - r.mean()) / (r.std() + eps)
    if name == "reinforce_pp_baseline":
        a = r - r.mean(axis=1, keepdims=True)
        out = (a - a.mean()) / (a.std() + eps)
    return out.ravel()


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_advantages_follow_their_definitions(rollouts, name):
    cfg = GRPOConfig(estimator=name)
    adv = make_estimator(name).advantages(rollouts, cfg)
    expected = _by_definition(name, rollouts.rewards.reshape(-1, rollouts.G), cfg.adv_eps)
    np.testing.assert_allclose(adv, expected, atol=1e-12)


def test_dapo_clips_higher_than_lower_and_drops_uniform_groups(rollouts):
    cfg = GRPOConfig(clip_eps=0.2, clip_eps_high=0.28)
    assert make_estimator("dapo").clip_range(cfg) == pytest.approx((0.8, 1.28))
    assert make_estimator("grpo").clip_range(cfg) == pytest.approx((0.8, 1.2))
    w = make_estimator("dapo").walk_weights(rollouts, cfg)
    dropped = rollouts.problem == 3
    assert np.all(w[dropped] == 0) and np.all(w[~dropped] > 0)
    assert (w * rollouts.lengths).sum() == pytest.approx(1.0)  # a mean over the kept tokens


def _uniform_group(ro, q: int, value: bool):
    ro.success[q * ro.G : (q + 1) * ro.G] = value
    return ro


def test_dapo_dynamic_sampling_refills_uniform_groups_up_to_the_cap(rollouts):
    """Uniform groups are resampled until informative or the cap; informative ones are kept."""
    _uniform_group(rollouts, 1, False)  # groups 1 (all wrong) and 3 (all right) are uniform
    calls = []

    def resample(problems):
        calls.append(problems.copy())
        new = sample_rollouts(
            random_regular_graph(8, 3, seed=2).neighbors,
            np.full((8, 3), 1 / 3),
            np.zeros(problems.size, dtype=np.int64),
            np.ones(problems.size, dtype=np.int64),
            rollouts.G,
            8,
            np.random.default_rng(len(calls)),
        )
        new.success[:] = False
        if len(calls) == 2:  # the second round makes problem 3's group informative
            new.success[np.flatnonzero(problems == 3)[0] * rollouts.G] = True
        return new

    est = make_estimator("dapo")
    out = est.refill(rollouts, resample, GRPOConfig(resample_rounds=3))
    np.testing.assert_array_equal(calls[0], [1, 3])
    np.testing.assert_array_equal(calls[1], [1, 3])
    np.testing.assert_array_equal(calls[2], [1])  # 3 is informative now; the cap ends at 3 rounds
    assert len(calls) == 3
    np.testing.assert_array_equal(informative_groups(out), [True, False, True, True])
    for q in (0, 2):  # informative groups are left as they were
        sl = slice(q * rollouts.G, (q + 1) * rollouts.G)
        np.testing.assert_array_equal(out.nodes[sl], rollouts.nodes[sl])
    assert est.refill(rollouts, resample, GRPOConfig(resample_rounds=0)) is rollouts


def test_replace_groups_swaps_whole_groups(rollouts):
    from conceptweb.algorithms.estimators import select_groups

    new = select_groups(rollouts, np.array([0, 0]))
    out = replace_groups(rollouts, np.array([2, 3]), new)
    np.testing.assert_array_equal(out.nodes[12:24], np.concatenate([rollouts.nodes[:6]] * 2))
    np.testing.assert_array_equal(out.success[12:24], np.tile(rollouts.success[:6], 2))
    np.testing.assert_array_equal(out.nodes[:12], rollouts.nodes[:12])


def test_reinforce_baseline_is_a_running_average(rollouts):
    est = make_estimator("reinforce")
    cfg = GRPOConfig(estimator="reinforce")
    means = rollouts.rewards.reshape(-1, rollouts.G).mean(axis=1)
    est.advantages(rollouts, cfg)
    np.testing.assert_allclose(est.state(), means)
    rollouts.success[:] = True
    adv = est.advantages(rollouts, cfg)
    np.testing.assert_allclose(adv, np.repeat(1 - means, rollouts.G))
    np.testing.assert_allclose(est.state(), BASELINE_DECAY * means + (1 - BASELINE_DECAY))
    other = make_estimator("reinforce")
    other.load_state(est.state())
    np.testing.assert_array_equal(other.advantages(rollouts, cfg), est.advantages(rollouts, cfg))


@pytest.mark.parametrize("name", ["reinforce", "dapo"])
def test_a_killed_run_resumes_exactly_with_estimator_state(tmp_path, name):
    """REINFORCE's baseline (and DAPO's extra draws of the RNG) survive checkpoint and resume."""
    cfg = small_config(steps=30, **{"grpo.estimator": name})
    full = train_run(cfg, tmp_path / "full")
    run = RunDir.create(tmp_path / "cut", config_to_dict(cfg))
    t = Trainer(cfg, run)
    t.start()
    t.run(stop_after=15)  # the checkpoint at 10 is the latest: steps 11..15 are redone
    if name == "reinforce":
        ck = run.load_checkpoint(10).trainer
        assert ck is not None and ck.estimator_state is not None
        assert ck.estimator_state.shape == (cfg.problems.Q,)
        assert not np.allclose(ck.estimator_state, t.estimator.state())  # it moved on
    resumed = train_run(None, tmp_path / "cut", resume=True)
    np.testing.assert_array_equal(full.load_checkpoint().logits, resumed.load_checkpoint().logits)
    np.testing.assert_array_equal(
        full.read_metrics()["reward_mean"], resumed.read_metrics()["reward_mean"]
    )


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_every_estimator_learns(name):
    """On the small world, 40 steps of each estimator raise the mean reward."""
    t = Trainer(small_config(steps=40, **{"grpo.estimator": name, "eval.every": 0}))
    t.start()
    t.run()
    reward = t.recorder.history.reward
    assert reward[-5:].mean() > reward[:5].mean() + 0.1
