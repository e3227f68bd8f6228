"""Batched replicas: every replica of a batch is bit for bit the same run trained alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conceptweb.algorithms.replicas import BatchedTrainer
from conceptweb.algorithms.trainer import Trainer
from conceptweb.config import config_to_dict
from conceptweb.experiments.runs import train_batch, train_run
from conceptweb.rundir import RunDir
from tests.conftest import ENGINES, small_config


def assert_same_run(a: RunDir, b: RunDir) -> None:
    """Records, evaluations, every checkpoint (policy, optimisers, generator) equal."""
    pd.testing.assert_frame_equal(
        a.read_metrics().drop(columns="time_s"), b.read_metrics().drop(columns="time_s")
    )
    pd.testing.assert_frame_equal(a.read_problems(), b.read_problems())
    pd.testing.assert_frame_equal(a.read_eval(), b.read_eval())
    assert a.checkpoint_steps() == b.checkpoint_steps()
    for step in a.checkpoint_steps():
        ca, cb = a.load_checkpoint(step), b.load_checkpoint(step)
        np.testing.assert_array_equal(ca.logits, cb.logits)
        ta, tb = ca.require_trainer("a"), cb.require_trainer("b")
        assert ta.rng_state == tb.rng_state
        np.testing.assert_array_equal(ta.rl_adam.m, tb.rl_adam.m)
        np.testing.assert_array_equal(ta.own_paths, tb.own_paths)
    assert a.read_meta()["status"] == b.read_meta()["status"] == "finished"


def _batch_against_alone(tmp_path, configs) -> list[RunDir]:
    batch = train_batch(configs, [tmp_path / f"batch{i}" for i in range(len(configs))])
    for i, (cfg, run) in enumerate(zip(configs, batch, strict=True)):
        assert_same_run(run, train_run(cfg, tmp_path / f"alone{i}"))
    return batch


@pytest.mark.parametrize("engine", ENGINES)
def test_replicas_equal_their_runs_alone(tmp_path, engine):
    seeds = [small_config(seed=s, **{"model.engine": engine}) for s in (0, 1, 2)]
    _batch_against_alone(tmp_path, seeds)


def test_replicas_with_heating_resampling_and_other_sizes(tmp_path):
    """Arms of an ablation in one batch: heating at a step (SFT, temperature), the detector,
    dapo's resampling, and a replica of other sizes (sampled on its own)."""
    heat = {"anneal.heat.steps": 5, "anneal.heat.threshold": 1.0}
    at = {"anneal.mode": "at", "anneal.at_step": 15, **heat}
    auto = {"anneal.mode": "auto", "anneal.detector.min_forgetting": 0.0}
    auto |= {"anneal.detector.signal": "knee", "anneal.detector.min_steps": 20, **heat}
    configs = [
        small_config(seed=3, **at),
        small_config(seed=3, **at, **{"anneal.heat.operator": "temperature"}),
        small_config(seed=0, steps=120, **auto),
        small_config(seed=5, **{"grpo.estimator": "dapo"}),
        small_config(seed=6, steps=30, **{"model.N": 80}),
    ]
    runs = _batch_against_alone(tmp_path, configs)
    heated = [int((r.read_metrics()["n_heat_problems"] > 0).sum()) for r in runs]
    assert heated == [5, 5, 5, 0, 0]


def test_a_cut_batch_resumes_bit_for_bit(tmp_path):
    configs = [small_config(seed=s) for s in (0, 1)]
    runs = [RunDir.create(tmp_path / f"cut{s}", config_to_dict(c)) for s, c in enumerate(configs)]
    trainers = [Trainer(c, r) for c, r in zip(configs, runs, strict=True)]
    for t in trainers:
        t.start()
    results = BatchedTrainer(trainers).run(stop_after=23)
    assert [r.status for r in results] == ["running", "running"]
    for t in trainers:
        t.flush()  # records beyond the last checkpoint are on disk and must be dropped
    resumed = train_batch([None, None], [r.path for r in runs])
    for i, run in enumerate(resumed):
        assert_same_run(run, train_run(configs[i], tmp_path / f"alone{i}"))
