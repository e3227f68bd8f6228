"""Rollout engines: selection, the numpy fallback, and learning curves that agree in distribution."""

from __future__ import annotations

import numpy as np
import pytest

from conceptweb.algorithms.trainer import Trainer
from conceptweb.errors import ConceptwebError
from conceptweb.model import engines
from tests.conftest import small_config


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
