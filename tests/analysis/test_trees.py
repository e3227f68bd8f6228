"""Inverse trees, freezing and phases on hand-built webs, and the summary sections of a run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conceptweb.analysis.trees import (
    dominant_successors,
    freezing_steps,
    run_phases,
    tree_stats,
    tree_structure,
    trees_over_training,
    trees_sections,
)

# 0 -> 2 <- 1, 2 -> 3 -> 7 (an in-tree rooted at answer 7); 4 -> 5 -> 6 -> 4 (a cycle)
SUCC = np.array([2, 2, 3, 7, 5, 6, 4, -1])


def _policy(succ: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two actions per node: the successor with 0.9 (or a 0.5/0.5 split where there is none)."""
    N = succ.size
    other = (np.arange(N) + 1) % N
    first = np.where(succ >= 0, succ, (np.arange(N) + 2) % N)
    probs = np.where(succ[:, None] >= 0, [0.9, 0.1], [0.5, 0.5])
    return probs, np.stack([first, other], axis=1)


def test_dominant_successors_use_tau():
    probs, nb = _policy(SUCC)
    assert dominant_successors(probs, nb, 0.6).tolist() == SUCC.tolist()
    assert (dominant_successors(probs, nb, 0.95) == -1).all()


def test_tree_structure_separates_trees_from_cycles():
    label, cyclic = tree_structure(SUCC)
    assert label[0] == label[1] == label[2] == label[3] == label[7]
    assert label[4] == label[5] == label[6] != label[0]
    assert not cyclic[label[0]] and cyclic[label[4]]
    lone = np.array([-1, -1, 1, -1])
    label, cyclic = tree_structure(lone)
    assert label.tolist() == [-1, 0, 0, -1] and cyclic.tolist() == [False]


def test_tree_stats_of_a_hand_built_web():
    st = tree_stats(SUCC, np.array([0, 1, 4]), np.array([7, 7, 3]), L=20)
    assert st["n_web_nodes"] == 8 and st["n_web_edges"] == 7
    assert st["n_trees"] == 1 and st["n_cyclic"] == 1
    assert st["tree_fraction"] == pytest.approx(5 / 8) and st["largest_tree"] == 5
    assert st["n_roots_at_answers"] == 1
    assert st["max_in_degree"] == 2 and st["n_merge_nodes"] == 1
    assert st["n_multi_input_trees"] == 1  # starts 0 and 1 merge into the tree of answer 7
    assert st["merged_problems_frac"] == pytest.approx(2 / 3)
    assert st["greedy_solved_frac"] == pytest.approx(2 / 3)  # 4 circles 4 -> 5 -> 6 -> 4


def test_two_separate_chains_do_not_merge():
    succ = np.array([1, 2, -1, 4, 5, -1])
    st = tree_stats(succ, np.array([0, 3]), np.array([2, 5]))
    assert st["n_trees"] == 2 and st["tree_fraction"] == 1.0
    assert st["n_multi_input_trees"] == 0 and st["merged_problems_frac"] == 0.0
    assert st["n_merge_nodes"] == 0 and st["greedy_solved_frac"] == 1.0


def test_freezing_steps():
    steps = [0, 10, 20, 30]
    dom = np.array(
        [
            [1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1],
            [1, 2, 1, 1, 1],
        ]
    )
    ent = np.array(
        [
            [1.0, 0.1, 0.1, 0.1, 0.1],
            [0.5, 0.1, 0.2, 0.1, 0.1],
            [0.2, 0.1, 0.2, 0.1, 0.5],
            [0.1, 0.1, 0.9, 0.1, 0.1],
        ]
    )
    got = freezing_steps(steps, dom, ent, threshold=0.3)
    # node 0 cools at 20; 1 switches successor at 30; 2 heats up at the end; 3 always frozen;
    # 4 thaws at 20 and refreezes at 30
    assert got[[0, 1, 3, 4]].tolist() == [20.0, 30.0, 0.0, 30.0] and np.isnan(got[2])


def test_run_phases():
    ph = run_phases([0, 10, 20, 30, 40], [0, 3, 5, 2, 1], np.array([30.0, 30.0, 40.0, np.nan]))
    assert ph == {"nucleation_end": 20.0, "freezing_start": 30.0, "ordered": True}
    ph = run_phases([0, 10], [0, 0], np.array([np.nan]))
    assert np.isnan(ph["nucleation_end"]) and ph["ordered"] is None


def test_trees_over_a_run(base_run):
    series = trees_over_training(base_run)
    assert series.table["step"].tolist() == base_run.checkpoint_steps()
    assert series.dominant.shape == series.entropies.shape == (len(series.table), 60)
    first = series.table.iloc[0]
    assert first["n_web_nodes"] == 0  # the uniform policy (K=4) has no dominant successor
    trees, freezing = trees_sections(series)
    assert trees["step"] == base_run.checkpoint_steps()[-1]
    assert 0 <= trees["tree_fraction"] <= 1 and trees["n_web_nodes"] > 0
    assert freezing["n_nodes"] == int((series.final_succ >= 0).sum())
    assert 0 <= freezing["n_frozen"] <= freezing["n_nodes"]


def test_chains_lengthen_with_the_giant_component():
    from conceptweb.analysis.chains import chains_section

    steps = np.arange(1, 201)
    length = np.where(steps < 60, 30 - 0.4 * steps, 6 + 0.02 * (steps - 60))  # a V
    metrics = pd.DataFrame({"step": steps, "len_correct_mean": length})
    ck = np.arange(0, 201, 20)
    topo = pd.DataFrame(
        {"step": ck, "giant_fraction": np.linspace(0.1, 0.9, ck.size), "n_nodes": 100}
    )
    sec = chains_section(metrics, topo)
    assert 55 <= sec["min_step"] <= 65 and sec["n_checkpoints"] >= 5
    assert sec["rho"] > 0.9 and sec["rise_frac"] > 0.3 and sec["lengthens"] is True
    topo["giant_fraction"] = np.linspace(0.9, 0.1, ck.size)  # the web falls apart instead
    assert chains_section(metrics, topo)["lengthens"] is False


def test_frustration_precedes_collapse():
    from conceptweb.analysis.chains import collapse_timing_section

    steps = np.arange(1, 201)
    div = np.where(steps < 80, 1 + steps / 20, 5 - (steps - 80) / 30)  # peak 5 at 80, onset ~110
    metrics = pd.DataFrame({"step": steps, "n_distinct_correct_mean": div})
    sec = collapse_timing_section(metrics, 90.0)
    assert 100 <= sec["onset_step"] <= 120 and sec["frustration_first"] is True
    assert collapse_timing_section(metrics, 150.0)["frustration_first"] is False
    flat = pd.DataFrame({"step": steps, "n_distinct_correct_mean": np.full(200, 2.0)})
    sec = collapse_timing_section(flat, 10.0)
    assert sec["onset_step"] is None and sec["frustration_first"] is False


def test_summary_has_the_v3_sections(base_run):
    from conceptweb.analysis.summary import V3_SECTION_KEYS, analyze_run

    s = analyze_run(base_run)
    for section, keys in V3_SECTION_KEYS.items():
        assert list(s[section])[: len(keys)] == keys, section
    assert s["pass_at_k"]["G"] == 16 and set(s["pass_at_k"]["train"]) == {"1", "2", "4", "8", "16"}
    assert set(s["chains"]) >= {"rho", "lengthens"} and "onset_step" in s["collapse_timing"]
