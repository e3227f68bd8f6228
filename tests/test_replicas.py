"""Batched replicas: every replica of a batch is bit for bit the same run trained alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conceptweb.algorithms.replicas import BatchedTrainer
from conceptweb.algorithms.trainer import Trainer
from conceptweb.config import config_to_dict
from conceptweb.experiments.ablation import Ablation, AblationConfig
from conceptweb.experiments.runs import train_batch, train_run
from conceptweb.experiments.sweep import Sweep, sweep_config_from_options
from conceptweb.interfaces.cli import app
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


def _small_ablation(path, seeds=2) -> Ablation:
    sets = ["model.N=60", "model.K=4", "model.L=30", "problems.Q=10", "problems.held_out=4"]
    sets += ["grpo.G=8", "eval.G=16", "eval.every=10", "steps=30"]
    cfg = AblationConfig(
        preset="tiny",
        sets=sets,
        seeds=seeds,
        arms=["plain", "sft@10"],
        heat_steps=5,
        threshold=0.9,
        checkpoint_every=10,
    )
    return Ablation.open_or_create(path, cfg)


def test_a_batched_ablation_equals_one_run_at_a_time_and_resumes(tmp_path):
    alone = _small_ablation(tmp_path / "alone").run(workers=1)
    abl = _small_ablation(tmp_path / "batched")
    seen = []

    def stop_at_first(arm, seed, i, n):
        seen.append((arm, seed))
        raise KeyboardInterrupt  # the first batch (3 runs) trained, one result kept

    with pytest.raises(KeyboardInterrupt):
        abl.run(workers=1, on_done=stop_at_first, batch=3)
    assert len(abl.read_results()) == 1
    kept = abl.run_path(*seen[0]) / "metrics.parquet"
    stamp = kept.stat().st_mtime_ns
    batched = _small_ablation(tmp_path / "batched").run(workers=1, batch=3)
    assert kept.stat().st_mtime_ns == stamp  # a finished run with its result is not redone
    pd.testing.assert_frame_equal(batched, alone)
    for arm, seed in [("plain", 0), ("sft@10", 1)]:
        b = RunDir.open(_small_ablation(tmp_path / "alone").run_path(arm, seed))
        assert_same_run(RunDir.open(abl.run_path(arm, seed)), b)


def test_a_batched_sweep_gathers_the_same_table(tmp_path):
    sets = ["steps=16", "model.N=40", "model.L=20", "problems.Q=8", "problems.held_out=4"]
    sets += ["grpo.G=4", "eval.every=8", "checkpoint.every=8", "model.K=4,6", "seed=0,1"]
    cfg = sweep_config_from_options(None, None, sets)
    alone = Sweep.open_or_create(tmp_path / "alone", cfg).run(workers=1)
    batched = Sweep.open_or_create(tmp_path / "batched", cfg).run(workers=2, batch=2)
    pd.testing.assert_frame_equal(batched, alone)


def test_the_batch_option_of_the_commands(tmp_path):
    runner = CliRunner()
    sets = ["steps=8", "model.N=40", "model.L=20", "problems.Q=8", "problems.held_out=4"]
    sets += ["grpo.G=4", "eval.every=8", "seed=0,1"]
    args = ["sweep", "--out", str(tmp_path / "sw"), "--quiet", "--batch", "2", "--workers", "1"]
    result = runner.invoke(app, args + [x for s in sets for x in ("--set", s)])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "sw/results.csv")) == 2
    for command in ("sweep", "ablate", "reproduce"):
        bad = runner.invoke(app, [command, "--out", str(tmp_path / "x"), "--batch", "0"])
        assert bad.exit_code == 2 and "--batch" in bad.output
        assert not (tmp_path / "x").exists()
