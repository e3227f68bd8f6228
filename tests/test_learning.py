"""GRPO and every registered estimator, SFT and Adam: gradients against finite differences and a
brute-force loop, and the zero-advantage rule."""

from __future__ import annotations

import numpy as np
import pytest

from conceptweb.algorithms.estimators import ESTIMATORS, make_estimator
from conceptweb.algorithms.grpo import group_advantages, grpo_loss_and_grad, grpo_update
from conceptweb.algorithms.optim import Adam
from conceptweb.algorithms.sft import SFTBatch, sft_loss_and_grad, sft_update
from conceptweb.config import GRPOConfig
from conceptweb.model.graph import random_regular_graph
from conceptweb.model.policy import log_softmax, softmax
from conceptweb.model.rollouts import sample_rollouts


def _fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (f(xp) - f(xm)) / (2 * h)
    return g


@pytest.fixture
def setting():
    rng = np.random.default_rng(7)
    g = random_regular_graph(8, 3, seed=2)
    logits = rng.normal(0, 1, (8, 3))
    sources, targets = np.array([0, 1, 2]), np.array([5, 6, 7])
    ro = sample_rollouts(g.neighbors, softmax(logits, 1.3), sources, targets, 6, 8, rng)
    return g, logits, ro


def _walk_weight(name: str, ro, m: int, cfg: GRPOConfig) -> float:
    """The loss weight of each token of walk m under estimator `name`, written out."""
    M, L = ro.nodes.shape
    if name == "dr_grpo":
        return 1.0 / (M * L)
    if name == "reinforce":
        return 1.0 / M
    if name.startswith("reinforce_pp"):
        return 1.0 / ro.lengths.sum()
    if name == "dapo":
        r = ro.rewards.reshape(-1, ro.G)
        keep = np.repeat(r.min(axis=1) != r.max(axis=1), ro.G)
        return float(keep[m]) / ro.lengths[keep].sum()
    if cfg.length_norm:
        return 1.0 / (M * ro.lengths[m])
    return 1.0 / ro.lengths.sum()


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
@pytest.mark.parametrize(
    "cfg_kwargs, T, clipped, ref",
    [
        ({}, 1.3, False, False),
        ({"length_norm": False}, 1.3, False, False),
        ({"kl_coef": 0.3, "entropy_coef": 0.2}, 1.3, False, True),
        ({"clip_eps": 0.1}, 1.0, True, False),
    ],
)
def test_grpo_gradient_matches_finite_differences(
    setting, cfg_kwargs, T, clipped, ref, engine, estimator
):
    _, logits, ro = setting
    cfg = GRPOConfig(estimator=estimator, **cfg_kwargs)
    est = make_estimator(estimator)
    adv = est.advantages(ro, cfg)
    assert np.any(adv != 0)
    old = None
    if clipped:
        _, node, action = ro.tokens()
        shifted = logits + np.random.default_rng(3).normal(0, 0.3, logits.shape)
        old = log_softmax(shifted, T)[node, action]
    ref_lp = log_softmax(np.zeros_like(logits), T) if ref else None

    def loss(x):
        return grpo_loss_and_grad(x, T, ro, adv, cfg, old, ref_lp, engine=engine, estimator=est)[0]

    _, grad, stats = grpo_loss_and_grad(
        logits, T, ro, adv, cfg, old, ref_lp, engine=engine, estimator=est
    )
    np.testing.assert_allclose(grad, _fd_grad(loss, logits), atol=1e-6)
    if clipped:
        assert 0 < stats["clip_frac"] < 1  # the clipped branch was exercised


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
@pytest.mark.parametrize("length_norm", [True, False])
def test_vanilla_policy_gradient_by_brute_force(engine, estimator, length_norm):
    """Without clipping, the gradient is sum_tokens w * A * d log pi(a|s) computed token by token."""
    rng = np.random.default_rng(0)
    g = random_regular_graph(10, 3, seed=0)
    logits = rng.normal(0, 1, (10, 3))
    ro = sample_rollouts(
        g.neighbors, softmax(logits), np.array([0, 4, 7]), np.array([9, 2, 1]), 5, 6, rng
    )
    ro.success[10:] = True  # the third group is all right: no signal (DAPO drops it)
    cfg = GRPOConfig(estimator=estimator, length_norm=length_norm)
    est = make_estimator(estimator)
    adv = est.advantages(ro, cfg)
    expected = np.zeros_like(logits)
    p = softmax(logits)
    for m in range(ro.lengths.size):
        w = _walk_weight(estimator, ro, m, cfg)
        for t in range(ro.lengths[m]):
            i, a = ro.nodes[m, t], ro.actions[m, t]
            d = -p[i].copy()
            d[a] += 1
            expected[i] -= adv[m] * w * d
    _, grad, _ = grpo_loss_and_grad(logits, 1.0, ro, adv, cfg, engine=engine, estimator=est)
    assert np.abs(expected).max() > 1e-3  # some walk carries a signal
    np.testing.assert_allclose(grad, expected, atol=1e-12)


def test_all_success_or_all_failure_gives_zero_advantage():
    r = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0], dtype=float)
    adv = group_advantages(r, 4)
    assert np.all(adv[:8] == 0)
    assert np.all(adv[8:][r[8:] == 1] > 0) and np.all(adv[8:][r[8:] == 0] < 0)
    np.testing.assert_allclose(adv[8:].mean(), 0, atol=1e-12)


def test_uniform_groups_leave_logits_unchanged():
    g = random_regular_graph(8, 3, seed=2)
    logits = np.zeros((8, 3))
    ro = sample_rollouts(
        g.neighbors, softmax(logits), np.array([0]), np.array([1]), 4, 1, np.random.default_rng(0)
    )
    ro.success[:] = False  # every rollout fails: no learning signal
    before = logits.copy()
    grpo_update(logits, 1.0, ro, GRPOConfig(), Adam(logits.shape, 0.1))
    np.testing.assert_array_equal(logits, before)


def test_sft_gradient_and_learning(setting, engine):
    g, logits, _ = setting
    paths = g.shortest_paths(np.array([0, 1]), np.array([5, 6]))
    batch = SFTBatch.from_paths(g, paths)

    def loss(x):
        return sft_loss_and_grad(x, 1.0, batch, engine)[0]

    np.testing.assert_allclose(
        sft_loss_and_grad(logits, 1.0, batch, engine)[1], _fd_grad(loss, logits), atol=1e-6
    )
    x = logits.copy()
    opt = Adam(x.shape, 0.1)
    first = sft_update(x, 1.0, batch, opt, engine)["loss"]
    for _ in range(200):
        last = sft_update(x, 1.0, batch, opt, engine)["loss"]
    assert last < 0.05 * first
    # only nodes on the paths move
    on_path = np.unique(batch.nodes)
    off = np.setdiff1d(np.arange(g.N), on_path)
    np.testing.assert_array_equal(x[off], logits[off])


def test_adam_matches_reference_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2))
    opt = Adam(x.shape, lr=0.01, beta1=0.8, beta2=0.9, eps=1e-6)
    m = v = np.zeros_like(x)
    ref = x.copy()
    for t in range(1, 6):
        g = rng.normal(size=x.shape)
        m = 0.8 * m + 0.2 * g
        v = 0.9 * v + 0.1 * g * g
        ref = ref - 0.01 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.9**t)) + 1e-6)
        opt.step(x, g)
    np.testing.assert_allclose(x, ref, rtol=1e-12)
