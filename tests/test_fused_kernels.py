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
