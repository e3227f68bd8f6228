"""The SFT forgetting experiment: a hand-built run with a known cut bridge, and a real SFT run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conceptweb.analysis.forgetting import FORGETTING_KEYS, recovery_steps, sft_forgetting
from conceptweb.errors import ConceptwebError
from conceptweb.rundir import RunDir

S = 5  # SFT steps of the hand-built run
NEIGHBORS = np.array([[1, 1], [0, 2], [1, 3], [2, 4], [3, 3]])
RIGHT = np.array([[0.0, 0.0], [-20, 20], [-20, 20], [-20, 20], [0, 0]])


def _hand_built_sft_run(path) -> RunDir:
    """A line 0-1-2-3-4 walked rightwards; SFT turns node 2 back towards 1 (cuts 2-3).

    Problems: 0 -> 2 (does not cross 2-3), 2 -> 4 and 0 -> 4 (cross it). The two crossing
    problems are lost after SFT and solved again two RL steps later.
    """
    run = RunDir.create(path, {"sft": {"steps": S}, "model": {"L": 10}, "init_from": None})
    post = RIGHT.copy()
    post[2] = [20, -20]
    world = {
        "neighbors": NEIGHBORS,
        "sources": np.array([0, 2, 0]),
        "targets": np.array([2, 4, 4]),
        "temperature": np.array(1.0),
    }
    run.save_checkpoint(0, {**world, "logits": RIGHT})
    run.save_checkpoint(S, {**world, "logits": post})
    acc_by_step = {t: [1.0, 1.0, 1.0] for t in range(1, S + 1)}
    acc_by_step.update({S + 1: [1.0, 0.0, 0.0], S + 2: [1.0, 0.0, 0.0]})
    acc_by_step.update({t: [1.0, 1.0, 1.0] for t in range(S + 3, S + 8)})
    rows = [
        {"step": t, "problem": q, "split": "train", "accuracy": a}
        for t, accs in acc_by_step.items()
        for q, a in enumerate(accs)
    ]
    run.write_table("problems", pd.DataFrame(rows))
    run.write_table(
        "metrics",
        pd.DataFrame({"step": sorted(acc_by_step), "reward_mean": 0.5, "phase": "rl"}),
    )
    evals = [{"step": 0, "split": "train", "problem": q, "accuracy": 1.0} for q in range(3)] + [
        {"step": S, "split": "train", "problem": q, "accuracy": [1.0, 0.0, 0.2][q]}
        for q in range(3)
    ]
    run.write_table("eval", pd.DataFrame(evals))
    return run


def test_lost_problems_sit_behind_the_cut_bridge(tmp_path):
    run = _hand_built_sft_run(tmp_path / "hand")
    r = sft_forgetting(run, window=1)
    assert r.solved_before == 3 and r.solved_after_sft == 1
    assert r.lost_frac == pytest.approx(2 / 3)
    assert r.n_cut_bridges == 1 and r.n_bridges_before == 4
    assert r.lost_downstream_of_cut_bridges_frac == 1.0
    assert r.lost_rate_crossing_cut_bridge == 1.0 and r.lost_rate_elsewhere == 0.0
    assert r.recovery_steps == 2 and r.recovered_frac_end == 1.0
    assert r.measured_from == "eval"
    # without eval.parquet the per-step records of step 1 and step S + 1 are used
    run.eval_path.unlink()
    r = sft_forgetting(run, window=1)
    assert r.measured_from == "rollouts" and r.solved_after_sft == 1


def test_recovery_steps_by_hand():
    steps = np.arange(1, 11)
    acc = np.ones((10, 3))
    acc[4:7, 1] = 0.0  # lost problem 1 back at step 8
    acc[4:5, 2] = 0.0  # lost problem 2 back at step 6
    lost = np.array([False, True, True])
    assert recovery_steps(steps, acc, lost, start_step=4, window=1) == (3.0, 1.0)
    # 50% recovery is reached one step after SFT ends + 1 (step 6: 5 - 4 updates)
    assert recovery_steps(steps, acc, lost, 4, window=1, recover_frac=0.5)[0] == 1.0
    acc[:, 1] = 0.0  # never recovers
    rec, frac = recovery_steps(steps, acc, lost, 4, window=1)
    assert math.isnan(rec) and frac == 0.5
    assert recovery_steps(steps, acc, np.zeros(3, bool), 4) == (0.0, 1.0)


def test_real_sft_run(sft_run):
    r = sft_forgetting(sft_run)
    assert list(r.to_dict())[: len(FORGETTING_KEYS)] == FORGETTING_KEYS
    assert r.sft_steps == 20 and r.n_problems == 12
    # solved before/after SFT: the training evaluations at step 0 and at step S = 20
    ev = sft_run.read_eval()
    ev = ev[ev["split"] == "train"].pivot_table(index="problem", columns="step", values="accuracy")
    before, after = ev[0].to_numpy() >= 0.5, ev[20].to_numpy() >= 0.5
    assert r.measured_from == "eval"
    assert r.solved_before == before.sum() and r.solved_after_sft == after.sum()
    assert r.n_lost == (before & ~after).sum() > 0  # this SFT does forget
    assert r.lost_frac == pytest.approx(r.n_lost / r.solved_before)
    assert r.accuracy_after_sft == pytest.approx(ev[20].mean())
    assert r.after_checkpoint_step == 20
    assert r.new_accuracy_after_sft >= r.new_accuracy_before


def test_plain_run_is_not_an_sft_run(base_run):
    with pytest.raises(ConceptwebError, match="not an SFT run"):
        sft_forgetting(base_run)
