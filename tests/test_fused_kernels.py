"""The compiled engine's fused per-step kernels give the numbers of the numpy code they replace,
bit for bit (so a run's records, walks and checkpoints do not depend on which code ran)."""

from __future__ import annotations

import numpy as np
import pytest

from conceptweb.model import engines

pytest.importorskip("numba")

_MASK = np.uint64(2**64 - 1)


def _mix(z: int) -> int:
    """SplitMix64's output function on Python integers (modulo 2 ** 64)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def _walk_by_the_rule(probs, neighbors, source, target, L, seed, m):
    """Walk m drawn one step at a time as the kernel's docstring says: u from (seed, m, t), the
    first action whose cumulative probability exceeds u, the last entry counting as 1."""
    gamma = 0x9E3779B97F4A7C15
    state = _mix(seed ^ _mix((m * gamma + gamma) & 0xFFFFFFFFFFFFFFFF))
    cdf = np.cumsum(probs, axis=1)
    here, nodes, actions = source, [], []
    for _ in range(L):
        state = (state + gamma) & 0xFFFFFFFFFFFFFFFF
        u = (_mix(state) >> 11) / 2.0**53
        a = int(np.count_nonzero(cdf[here, :-1] <= u))
        nodes.append(here)
        actions.append(a)
        here = int(neighbors[here, a])
        if here == target:
            return nodes, actions, True
    return nodes, actions, False


def test_compiled_walks_follow_their_rule_draw_by_draw():
    """Every walk of the compiled kernels (one core, many cores, batched replicas) is the walk its
    rule gives, also where a row's probabilities add up to less than 1."""
    from conceptweb.model import numba_kernels
    from conceptweb.model.graph import random_regular_graph
    from conceptweb.model.replicas import ReplicaSampler, WalkRequest

    g = random_regular_graph(50, 5, seed=1)
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.full(5, 0.3), size=50)
    probs[::2] *= 0.8  # rows whose cumulative sum ends below 1: the last entry counts as 1
    src = np.arange(10, dtype=np.int64)
    tgt = (src * 7 + 3) % 50
    G, L = 4, 30
    engine = engines.get_engine("numba")
    walks = engine.sample(g.neighbors, probs, src, tgt, G, L, np.random.default_rng(5))
    seed = int(np.random.default_rng(5).integers(0, 2**63))
    for m in range(src.size * G):
        nodes, actions, ok = _walk_by_the_rule(
            probs, g.neighbors, src[m // G], tgt[m // G], L, seed, m
        )
        n = len(nodes)
        assert walks.lengths[m] == n and walks.success[m] == ok
        assert walks.nodes[m, :n].tolist() == nodes and walks.actions[m, :n].tolist() == actions
        assert (walks.nodes[m, n:] == -1).all() and (walks.actions[m, n:] == -1).all()
    cdf = np.empty_like(probs)
    numba_kernels.cumsum_rows(probs, cdf)
    args = (cdf, g.neighbors.astype(np.int32), src, tgt, G, L, seed)
    out = (np.empty((40, L), np.int32), np.empty((40, L), np.int16), np.empty(40, np.int32))
    out = (*out, np.empty(40, bool))
    numba_kernels.walks_parallel(*args, *out)
    for name, x in zip(("nodes", "actions", "lengths", "success"), out, strict=True):
        np.testing.assert_array_equal(x, getattr(walks, name), err_msg=name)
    reqs = [
        WalkRequest(engine, g.neighbors, probs, src, tgt, G, L, np.random.default_rng(5))
        for _ in range(2)
    ]
    for batched in ReplicaSampler(threads=1).sample(reqs):
        np.testing.assert_array_equal(batched.nodes, walks.nodes)
        np.testing.assert_array_equal(batched.actions, walks.actions)


def _kernel_modules():
    """The in-process JIT kernels and, where a C compiler built it, the ahead-of-time module."""
    from conceptweb.model import numba_aot, numba_kernels

    aot = numba_aot.load()
    return [numba_kernels] if aot is None else [numba_kernels, aot]


def _compiled_engines():
    out = []
    for k in _kernel_modules():
        e = engines.NumbaEngine()
        e.k = k
        out.append(e)
    return out


def test_adam_steps_equal_numpys_bit_for_bit():
    """Several Adam steps of the kernel give numpy's parameters and moments exactly (gradients
    with zeros, tiny and huge entries; learning rates and betas as configs set them)."""
    from conceptweb.algorithms.optim import Adam

    rng = np.random.default_rng(3)
    grads = [rng.normal(0, 10.0 ** rng.integers(-6, 4), (30, 7)) for _ in range(6)]
    for g in grads[::2]:
        g[rng.random(g.shape) < 0.4] = 0.0
    for engine in _compiled_engines():
        for lr, b1, b2 in ((0.1, 0.9, 0.999), (3e-3, 0.5, 0.95)):
            start = rng.normal(size=(30, 7))
            ref, fast = start.copy(), start.copy()
            opt_ref, opt_fast = Adam(start.shape, lr, b1, b2), Adam(start.shape, lr, b1, b2)
            for g in grads:
                opt_ref.step(ref, g)
                opt_fast.step(fast, g, engine)
            np.testing.assert_array_equal(fast, ref)
            np.testing.assert_array_equal(opt_fast.m, opt_ref.m)
            np.testing.assert_array_equal(opt_fast.v, opt_ref.v)
            assert not np.array_equal(fast, start)


def _walks(G=5, L=20):
    from conceptweb.model.graph import random_regular_graph
    from conceptweb.model.policy import softmax

    g = random_regular_graph(60, 4, seed=5)
    logits = np.random.default_rng(6).normal(0, 2, g.neighbors.shape)
    src = np.arange(12)
    probs = softmax(logits)
    ro = engines.get_engine("numba").sample(
        g.neighbors, probs, src, (src * 5 + 17) % 60, G, L, np.random.default_rng(7)
    )
    return ro, probs


def test_latest_successes_are_kept_as_numpy_keeps_them():
    ro, _ = _walks()
    stats = engines.get_engine("numba").stats(ro)
    shortest = stats["shortest_success"]
    assert (shortest >= 0).any() and (shortest < 0).any()
    targets = (np.arange(12) * 5 + 17) % 60
    ref = np.full((12, 21), -1, dtype=np.int32)
    ref[::3] = 99  # rows without a success this step keep what they held
    engines.NumpyEngine().keep_walks(ro, shortest, targets, ref)
    for engine in _compiled_engines():
        out = np.full((12, 21), -1, dtype=np.int32)
        out[::3] = 99
        engine.keep_walks(ro, shortest, targets, out)
        np.testing.assert_array_equal(out, ref)


def test_entropy_means_equal_the_numpy_sums_of_the_engines_tables():
    """The fused entropy and visit counts give what numpy's sums of the engine's own entropies
    and visit counts give (policy.entropy's numbers are checked in test_engines)."""
    ro, probs = _walks()
    for engine in _compiled_engines():
        for n_walks in (0, 17, ro.lengths.size):
            ent = engine.entropy(probs)
            visits = engine.visits(ro, n_walks, probs.shape[0])
            mean = float(np.add.reduce(ent)) / ent.size
            visited = float((visits * ent).sum() / max(visits.sum(), 1))
            assert engine.entropy_means(probs, ro, n_walks) == (mean, visited)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 127, 128, 129, 800, 1000, 4099, 100_000])
def test_pairwise_sum_adds_in_numpys_order(n):
    from conceptweb.model import numba_kernels

    rng = np.random.default_rng(n)
    a = rng.random(n) * 10.0 ** rng.uniform(-8, 8, n) * rng.choice([-1, 1], n)
    assert numba_kernels.pairwise_sum(a) == np.add.reduce(a)
