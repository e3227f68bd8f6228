"""The pure compute_* functions on hand-made arrays and frames: no run directory on disk."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from conceptweb.analysis.dynamics import (
    detect_v_shape,
    fit_two_stage,
    frustration_analysis,
    transition_fits,
)
from conceptweb.analysis.forgetting import FORGETTING_KEYS, ForgettingInputs, compute_sft_forgetting
from conceptweb.analysis.summary import (
    SECTION_KEYS,
    AnalysisParams,
    RunRecords,
    compute_collapse,
    compute_summary,
    compute_web_summary,
)
from conceptweb.analysis.topology import (
    TOPOLOGY_COLUMNS,
    PolicyArrays,
    compute_checkpoint_web,
    topology_row,
    web_topology,
)

# a line 0-1-2-3-4 walked rightwards (pre-SFT); SFT turns node 2 back towards 1 (cuts 2-3)
NEIGHBORS = np.array([[1, 1], [0, 2], [1, 3], [2, 4], [3, 3]])
RIGHT = np.array([[0.0, 0.0], [-20, 20], [-20, 20], [-20, 20], [0, 0]])
SOURCES, TARGETS = np.array([0, 2, 0]), np.array([2, 4, 4])


def _policy(step: int, logits: np.ndarray) -> PolicyArrays:
    return PolicyArrays(step, logits, NEIGHBORS, SOURCES, TARGETS, 1.0, 10)


def test_web_topology_of_an_edge_list():
    """An edge list (e.g. a web extracted from LLM rollouts) is measured like a DiGraph."""
    t = web_topology([(0, 1), (1, 2), (2, 0), (2, 3)], sources=[0, 3], targets=[3, 0])
    assert (t.n_nodes, t.n_edges, t.n_components) == (4, 4, 1)
    assert t.bridges == ((2, 3),) and t.leaves == (3,)
    assert t.geodesics == (2, 2) and t.directed_geodesics[0] == 3
    assert math.isnan(t.directed_geodesics[1])  # no directed way back from 3
    assert t.to_dict()["bridges"] == [[2, 3]] and "traffic_n_nodes" not in t.to_dict()


def test_checkpoint_web_of_policy_arrays():
    cw = compute_checkpoint_web(_policy(0, RIGHT), tau=0.5, G=8)
    # nodes 0 and 4 have one neighbour twice: pi = 1 towards it
    assert sorted(cw.web.edges()) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 3)]
    assert [p.tolist() for p in cw.sample.paths] == [[0, 1, 2], [2, 3, 4], [0, 1, 2, 3, 4]]
    t = cw.topology
    assert (t.n_nodes, t.n_edges, t.n_bridges, t.n_leaves) == (5, 4, 4, 2)
    assert t.bridge_load == (2, 2, 2, 2) and t.n_trunk_bridges == 4
    assert t.traffic_n_edges == 4 and t.frac_problems_with_path == 1.0
    row = topology_row(cw)
    assert list(row) == TOPOLOGY_COLUMNS and row["step"] == 0


def _forgetting_inputs(**over) -> ForgettingInputs:
    post = RIGHT.copy()
    post[2] = [20, -20]
    acc = pd.DataFrame(
        [[1.0, 0.0, 0.0]] * 2 + [[1.0, 1.0, 1.0]] * 5, index=np.arange(6, 13), dtype=float
    )
    base = dict(
        sft_steps=5,
        before=pd.Series([1.0, 1.0, 1.0]),
        after=pd.Series([1.0, 0.0, 0.2]),
        measured_from="eval",
        accuracy=acc,
        pre=_policy(0, RIGHT),
        post=_policy(5, post),
    )
    return ForgettingInputs(**{**base, **over})


def test_sft_forgetting_sees_the_cut_trunk_edge():
    r = compute_sft_forgetting(_forgetting_inputs(), window=1)
    assert (r.solved_before, r.solved_after_sft, r.n_lost) == (3, 1, 2)
    assert r.lost_frac == pytest.approx(2 / 3)
    assert r.n_cut_bridges == 1 and r.n_bridges_before == 4
    assert r.lost_downstream_of_cut_bridges_frac == 1.0  # both lost problems crossed 2-3
    assert r.lost_rate_crossing_cut_bridge == 1.0 and r.lost_rate_elsewhere == 0.0
    # rollouts at step 8 were sampled after 7 updates, 2 of them RL: recovered in 2 steps
    assert r.recovery_steps == 2 and r.recovered_frac_end == 1.0
    assert r.after_checkpoint_step == 5
    assert list(r.to_dict())[: len(FORGETTING_KEYS)] == FORGETTING_KEYS


def test_sft_forgetting_without_checkpoints_or_loss():
    r = compute_sft_forgetting(_forgetting_inputs(pre=None, post=None), window=1)
    assert math.isnan(r.lost_downstream_of_cut_bridges_frac)
    assert "n_cut_bridges" not in r.to_dict()  # the mechanism needs both policies
    r = compute_sft_forgetting(_forgetting_inputs(after=pd.Series([1.0, 1.0, 0.9])))
    assert r.n_lost == 0 and r.lost_frac == 0.0 and r.recovery_steps == 0.0


def _records(metrics: pd.DataFrame, sft_steps: int = 0) -> RunRecords:
    return RunRecords(
        run=None,
        meta={"status": "finished"},
        config={"preset": "toy"},
        kind="conet",
        sft_steps=sft_steps,
        metrics=metrics,
        problems=pd.DataFrame(),
        checkpoint_steps=(),
    )


def test_summary_from_results_on_arrays():
    t = np.arange(1, 301, dtype=float)
    reward = np.where(t < 100, 0.1 + 0.008 * t, 0.9 + 0.0002 * (t - 100))
    length = 10 + 20 * np.abs(t - 150) / 150
    metrics = pd.DataFrame({"step": t, "reward_mean": reward, "len_correct_mean": length})
    acc = pd.DataFrame(np.tile((t[:, None] > 50).astype(float), (1, 4)), index=t)
    acc.iloc[120:140, 0] = 0.0  # problem 0 forgotten for 20 steps
    two, v = fit_two_stage(t, reward), detect_v_shape(t, length)
    fr = frustration_analysis(t, acc.to_numpy(), window=5)
    trans = transition_fits(t, acc.to_numpy())
    topo = pd.DataFrame(
        [
            {"step": 0, "n_components": 3, "leaf_entropy": 1.5, "trunk_entropy": 1.0},
            {"step": 300, "n_components": 1, "leaf_entropy": 0.5, "trunk_entropy": 0.2},
        ],
        columns=TOPOLOGY_COLUMNS,
    ).fillna({"avg_degree": 2.0, "n_nodes": 10, "n_edges": 10, "giant_fraction": 1.0})
    topo = topo.fillna(0)
    params = AnalysisParams(1, 0.5, 0.5, 5, fr.window, v.smooth_window, 32, 0)
    s = compute_summary(_records(metrics), acc, topo, two, v, fr, trans, None, {}, params)
    d = s.to_dict()
    json.dumps(d, allow_nan=False)
    for section, keys in SECTION_KEYS.items():
        if d[section] is not None:
            assert list(d[section])[: len(keys)] == keys, section
    assert d["two_stage"]["is_two_stage"] and d["two_stage"]["knee_step"] == pytest.approx(
        100, abs=3
    )
    assert d["v_shape"]["is_v"] and d["v_shape"]["min_step"] == pytest.approx(150, abs=5)
    assert d["frustration"]["n_forgetting_events"] == 1 and d["forgetting"] is None
    assert d["web"]["peak_islands_step"] == 0 and d["web"]["final_n_components"] == 1
    assert d["collapse"]["leaf_entropy_start"] == 1.5 and d["collapse"]["leaf_entropy_end"] == 0.5
    assert d["transitions"]["n_transitions"] == 4
    assert d["run"] == {
        "kind": "conet",
        "preset": "toy",
        "status": "finished",
        "first_step": 1,
        "last_step": 300,
        "n_steps": 300,
        "n_problems": 4,
        "n_checkpoints": 2,
        "sft_steps": 0,
        "phases": [],
    }


def test_web_summary_and_collapse_of_missing_data():
    assert compute_web_summary(pd.DataFrame(columns=TOPOLOGY_COLUMNS)) is None
    empty = pd.DataFrame(columns=TOPOLOGY_COLUMNS)
    assert compute_collapse(pd.DataFrame({"step": [1, 2]}), empty) is None
    c = compute_collapse(
        pd.DataFrame({"step": [1, 2], "n_distinct_correct_mean": [1.0, 3.0]}), empty
    )
    assert (c.diversity_start, c.diversity_end, c.diversity_peak_step) == (1.0, 3.0, 2)
    assert c.leaf_entropy_start is None and "trunk_entropy_start" not in c.to_dict()
