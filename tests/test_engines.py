"""Rollout engines: selection, the numpy fallback, and learning curves that agree in distribution."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from conceptweb.algorithms.trainer import Trainer
from conceptweb.errors import ConceptwebError
from conceptweb.model import engines
from tests.conftest import modules_loaded_by, small_config


def test_auto_falls_back_to_numpy_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(engines, "numba_available", lambda: False)
    monkeypatch.setattr(engines, "_CACHE", {})
    assert engines.get_engine("auto").name == "numpy"
    assert engines.get_engine("auto").name == "numpy"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "numba is not installed" in err
    with pytest.raises(ConceptwebError, match="needs numba"):
        engines.get_engine("numba")
    with pytest.raises(ConceptwebError, match="unknown engine"):
        engines.get_engine("cuda")


def test_a_resumed_auto_run_keeps_its_engine(tmp_path):
    from conceptweb.config import config_to_dict
    from conceptweb.rundir import RunDir

    cfg = small_config(steps=3)
    run = RunDir.create(tmp_path / "r", config_to_dict(cfg))
    run.update_meta(engine="numpy")
    assert Trainer(cfg, run).engine.name == "numpy"


def _reward_curves(engine: str, seeds: range, steps: int, every: int) -> np.ndarray:
    curves = []
    for seed in seeds:
        cfg = small_config(
            seed=seed,
            steps=steps,
            **{"model.engine": engine, "model.N": 120, "model.K": 4, "problems.Q": 24},
        )
        t = Trainer(cfg, None)
        t.start()
        t.run()
        r = np.array([m["reward_mean"] for m in t.recorder.metrics])
        curves.append(r.reshape(-1, every).mean(axis=1))
    return np.array(curves)


def _assert_same_learning_curve(steps: int, every: int) -> None:
    """Mean reward over 8 seeds, per block of steps: the compiled engine's within the spread."""
    pytest.importorskip("numba")
    ref = _reward_curves("numpy", range(8), steps, every)
    fast = _reward_curves("numba", range(8), steps, every)
    spread = np.sqrt(ref.var(axis=0, ddof=1) / 8 + fast.var(axis=0, ddof=1) / 8)
    gap = np.abs(ref.mean(axis=0) - fast.mean(axis=0))
    assert np.all(gap <= 3 * spread + 0.02), (ref.mean(axis=0), fast.mean(axis=0), spread)
    assert fast.mean(axis=0)[-1] > fast.mean(axis=0)[0] + 0.2  # it learns at all


def test_engines_learn_alike():
    _assert_same_learning_curve(steps=60, every=10)


@pytest.mark.slow
def test_engines_learn_alike_at_length():
    _assert_same_learning_curve(steps=400, every=50)


def _walks_and_weights(engine_name: str):
    from conceptweb.model.graph import random_regular_graph
    from conceptweb.model.policy import softmax

    g = random_regular_graph(40, 4, seed=3)
    logits = np.random.default_rng(0).normal(0, 1, g.neighbors.shape)
    src = np.arange(8)
    ro = engines.get_engine(engine_name).sample(
        g.neighbors, softmax(logits), src, (src + 20) % 40, 6, 25, np.random.default_rng(4)
    )
    w = np.random.default_rng(1).normal(size=ro.lengths.size)
    w[::3] = 0.0  # skipped walks
    w[1], w[2] = 0.5, -0.5  # two walks whose weights cancel on the nodes they share
    return ro, w, logits


def test_walk_logprob_equals_the_token_form(engine):
    """The dense per-walk form of the log-likelihood gives the token form's value and gradient."""
    ro, w, logits = _walks_and_weights(engine.name)
    walk, node, action = ro.tokens()
    total, grad = engine.walk_logprob(ro, w, logits, 0.7)
    ref_total, ref_grad = engines.get_engine("numpy").weighted_logprob(
        walk, node, action, w, logits, 0.7
    )
    np.testing.assert_allclose(total, ref_total, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-12, atol=1e-15)
    visits = np.bincount(node[walk < 24], minlength=logits.shape[0])
    np.testing.assert_array_equal(engine.visits(ro, 24, logits.shape[0]), visits)


def _numpy_uses_libm() -> bool:
    """Whether numpy's float64 exp and log are the C library's here (as compiled kernels' are);
    on processors with AVX-512 numpy has its own, which may differ in the last bit."""
    x = np.random.default_rng(0).normal(0, 10, 4000)
    return bool(
        np.array_equal(np.exp(x), [math.exp(v) for v in x])
        and np.array_equal(np.log(np.abs(x)), [math.log(abs(v)) for v in x])
    )


@pytest.mark.parametrize("K", [1, 3, 8, 13, 40, 128, 130])
def test_policy_tables_equal_numpys_bit_for_bit(engine, K):
    """The engine's softmax and entropy give conceptweb.model.policy's numbers exactly (numpy's
    exp, log and order of summation), so the engine changes no walk and no record (to the last
    bit where numpy's exp and log are the C library's; within 4 ulps elsewhere)."""
    from conceptweb.model.policy import MASKED_LOGIT, entropy, softmax

    same = np.testing.assert_array_equal
    if not _numpy_uses_libm():
        same = functools.partial(np.testing.assert_allclose, rtol=1e-15, atol=1e-300)
    rng = np.random.default_rng(K)
    logits = rng.normal(0, 3, (200, K))
    logits[rng.random(logits.shape) < 0.2] = MASKED_LOGIT  # padding slots: probability 0
    logits[:, 0] = np.where(rng.random(200) < 0.5, logits[:, 0], 0.0)
    for T in (1.0, 0.7):
        probs = engine.softmax(logits, T)
        same(probs, softmax(logits, T))
        same(engine.entropy(probs), entropy(probs))


def test_kernels_compiled_ahead_equal_the_jit_ones():
    """The cached ahead-of-time module, the in-process JIT and the multi-core walks give the same
    numbers, bit for bit."""
    pytest.importorskip("numba")
    from conceptweb.model import numba_aot, numba_kernels

    aot = numba_aot.load()
    if aot is None:
        pytest.skip("no C compiler for the ahead-of-time build")
    by_jit, ahead = engines.NumbaEngine(), engines.NumbaEngine()
    by_jit.k, ahead.k = numba_kernels, aot
    a, w, logits = _walks_and_weights("numba")
    b = by_jit.sample(*_sample_args(a, logits))
    c = ahead.sample(*_sample_args(a, logits))
    parallel = {"walks": numba_kernels.walks_parallel, "cumsum_rows": numba_kernels.cumsum_rows}
    by_jit.k = type("ParallelWalks", (), {k: staticmethod(f) for k, f in parallel.items()})
    d = by_jit.sample(*_sample_args(a, logits))  # the multi-core kernel of large batches
    by_jit.k = numba_kernels
    for name in ("nodes", "actions", "lengths", "success"):
        np.testing.assert_array_equal(getattr(b, name), getattr(c, name), err_msg=name)
        np.testing.assert_array_equal(getattr(b, name), getattr(d, name), err_msg=name)
    for key, value in by_jit.stats(a).items():
        np.testing.assert_array_equal(ahead.stats(a)[key], value, err_msg=key)
    for method in ("walk_logprob",):
        x, y = (getattr(e, method)(a, w, logits, 0.7) for e in (by_jit, ahead))
        assert x[0] == y[0]
        np.testing.assert_array_equal(x[1], y[1])
    walk, node, action = a.tokens()
    x, y = (e.weighted_logprob(walk, node, action, w, logits, 0.7) for e in (by_jit, ahead))
    assert x[0] == y[0]
    np.testing.assert_array_equal(x[1], y[1])
    np.testing.assert_array_equal(by_jit.visits(a, 30, 40), ahead.visits(a, 30, 40))
    assert engines.KERNEL_ROW_MAX == numba_kernels.PAIRWISE_BLOCK
    probs = by_jit.softmax(logits, 0.7)
    np.testing.assert_array_equal(probs, ahead.softmax(logits, 0.7))
    np.testing.assert_array_equal(by_jit.entropy(probs), ahead.entropy(probs))


def _sample_args(ro, logits):
    from conceptweb.model.graph import random_regular_graph
    from conceptweb.model.policy import softmax

    g = random_regular_graph(40, 4, seed=3)
    src = np.arange(8)
    return g.neighbors, softmax(logits), src, (src + 20) % 40, 6, 25, np.random.default_rng(9)


def test_training_loads_no_compiler_and_no_graph_library():
    """A compiled-engine run imports neither numba (cached kernels) nor scipy and networkx."""
    pytest.importorskip("numba")
    from conceptweb.model import numba_aot

    if numba_aot.load() is None:
        pytest.skip("no C compiler for the ahead-of-time build")
    code = (
        "from conceptweb.algorithms.trainer import Trainer; "
        "from tests.conftest import small_config; "
        "t = Trainer(small_config(**{'model.engine': 'numba', 'steps': 3})); t.start(); t.run()"
    )
    assert modules_loaded_by(code, {"numba", "llvmlite", "scipy", "networkx"}) == []
