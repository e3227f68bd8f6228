"""Rollouts: walks stay on the graph, stop exactly at the target, and match hitting-time theory."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from conceptweb.model.engines import get_engine, numba_available
from conceptweb.model.graph import random_regular_graph
from conceptweb.model.policy import softmax
from conceptweb.model.rollouts import Rollouts, problem_stats


def _check_walks(g, ro: Rollouts, sources, targets, L):
    for m in range(ro.lengths.size):
        q = ro.problem[m]
        n = ro.lengths[m]
        assert 1 <= n <= L
        nodes, acts = ro.nodes[m], ro.actions[m]
        assert np.all(acts[:n] >= 0) and np.all(acts[n:] == -1) and np.all(nodes[n:] == -1)
        assert nodes[0] == sources[q]
        walk = list(nodes[:n]) + [g.neighbors[nodes[n - 1], acts[n - 1]]]
        for a, b, k in zip(walk[:-1], walk[1:], acts[:n], strict=True):
            assert g.neighbors[a, k] == b  # never leaves the graph
        visits_target = [x == targets[q] for x in walk[1:]]
        if ro.success[m]:
            assert visits_target[-1] and not any(visits_target[:-1])  # stops exactly at the target
        else:
            assert n == L and not any(visits_target)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), L=st.integers(1, 25), G=st.integers(1, 6))
def test_walks_are_valid(seed, L, G):
    for name in ("numpy", "numba") if numba_available() else ("numpy",):
        _check_engine_walks(get_engine(name), seed, L, G)


def _check_engine_walks(engine, seed, L, G):
    rng = np.random.default_rng(seed)
    g = random_regular_graph(20, 3 if seed % 2 else 4, seed=seed)
    probs = softmax(rng.normal(0, 2, g.neighbors.shape))
    sources = rng.choice(20, size=5, replace=False)
    targets = (sources + 1 + rng.integers(0, 18, size=5)) % 20
    ro = engine.sample(g.neighbors, probs, sources, targets, G, L, rng)
    assert ro.lengths.size == 5 * G
    _check_walks(g, ro, sources, targets, L)


def test_success_rate_matches_absorbing_chain(engine):
    rng = np.random.default_rng(0)
    g = random_regular_graph(12, 3, seed=4)
    probs = softmax(rng.normal(0, 1, g.neighbors.shape))
    s, t, L = 0, 7, 6
    P = np.zeros((12, 12))
    for i in range(12):
        for k in range(3):
            P[i, g.neighbors[i, k]] += probs[i, k]
    P[t] = 0
    P[t, t] = 1  # absorbing target
    hit_by = [np.linalg.matrix_power(P, n)[s, t] for n in range(L + 1)]
    G = 40_000
    ro = engine.sample(g.neighbors, probs, np.array([s]), np.array([t]), G, L, rng)
    p = hit_by[L]
    assert abs(ro.success.mean() - p) < 4 * np.sqrt(p * (1 - p) / G)
    # the exact-length distribution of successful walks
    for n in range(1, L + 1):
        q = hit_by[n] - hit_by[n - 1]
        obs = np.mean(ro.success & (ro.lengths == n))
        assert abs(obs - q) < 4 * np.sqrt(q * (1 - q) / G) + 1e-9


def test_problem_stats_counts_distinct_correct_paths(engine):
    # node 0 -> {1, 2}; 1 -> {3, 0}; 2 -> {3, 0}; 3 -> {1, 2}: two shortest routes 0->3
    neighbors = np.array([[1, 2], [3, 0], [3, 0], [1, 2]])
    probs = np.array([[0.5, 0.5], [1.0, 0.0], [1.0, 0.0], [0.5, 0.5]])
    rng = np.random.default_rng(1)
    ro = engine.sample(neighbors, probs, np.array([0]), np.array([3]), 64, 5, rng)
    stats = engine.stats(ro)
    assert stats["accuracy"][0] == 1.0
    assert stats["len_correct_mean"][0] == 2.0
    assert stats["n_distinct_correct"][0] == 2
    assert 0.5 < stats["path_entropy"][0] <= np.log(2) + 1e-12


def test_problem_stats_with_no_success_is_nan_not_error(engine):
    neighbors = np.array([[1], [0], [0]])  # node 2 is unreachable from 0
    probs = np.ones((3, 1))
    ro = engine.sample(
        neighbors, probs, np.array([0]), np.array([2]), 4, 7, np.random.default_rng(0)
    )
    stats = engine.stats(ro)
    assert stats["accuracy"][0] == 0 and np.isnan(stats["len_correct_mean"][0])
    assert np.all(ro.lengths == 7)


def test_engines_summarise_the_same_walks_identically(engine):
    """Per-problem statistics of one set of walks do not depend on the engine."""
    rng = np.random.default_rng(5)
    g = random_regular_graph(40, 3, seed=5)
    probs = softmax(rng.normal(0, 2, g.neighbors.shape))
    sources = np.arange(10)
    ro = get_engine("numpy").sample(g.neighbors, probs, sources, (sources + 17) % 40, 12, 30, rng)
    expected, got = problem_stats(ro), engine.stats(ro)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-12, equal_nan=True, err_msg=key)
    assert np.all(np.isnan(got["path_entropy"]) == (expected["n_correct"] == 0))


def test_engines_are_deterministic_per_seed(engine):
    """Same generator state, same walks; the cached tokens are the dense arrays flattened."""
    g = random_regular_graph(30, 4, seed=2)
    probs = softmax(np.random.default_rng(0).normal(0, 1, g.neighbors.shape))
    sources = np.arange(6)

    def walks(seed):
        return engine.sample(
            g.neighbors, probs, sources, sources + 10, 8, 20, np.random.default_rng(seed)
        )

    a, b, c = walks(1), walks(1), walks(2)
    np.testing.assert_array_equal(a.nodes, b.nodes)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert not np.array_equal(a.nodes, c.nodes)
    walk, t = np.nonzero(a.mask)
    for got, want in zip(a.tokens(), (walk, a.nodes[walk, t], a.actions[walk, t]), strict=True):
        np.testing.assert_array_equal(got, want)
