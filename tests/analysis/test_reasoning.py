"""Webs extracted from text: linking, the web at tau, reasoning-graph measures, <k> sensitivity."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from conceptweb.analysis.reasoning import (
    avg_degree_of_sequences,
    checkpoint_topology,
    degree_sensitivity,
    edges_frame,
    graph_topology,
    meta_min_count,
    reasoning_measures,
    sequences_of,
    transition_counts,
    web_from_edges,
)


def steps_frame(seqs: list[list[int]], step: int = 0) -> pd.DataFrame:
    rows = []
    for i, seq in enumerate(seqs):
        for pos, c in enumerate(seq):
            rows.append(
                {
                    "step": step,
                    "record_step": 1,
                    "problem": i % 3,
                    "sample": i,
                    "position": pos,
                    "correct": True,
                    "text": f"c{c}",
                    "concept": c,
                }
            )
    return pd.DataFrame(rows)


def test_counts_and_conditional_probabilities_by_hand() -> None:
    seqs = [[0, 1, 2], [0, 1, 3], [0, 1, 2], [1, 1]]
    counts = transition_counts(seqs)
    assert counts == {(0, 1): 3, (1, 2): 2, (1, 3): 1, (1, 1): 1}
    e = edges_frame(7, counts)
    assert list(e.columns) == ["step", "src", "dst", "count", "prob"]
    p = {(r.src, r.dst): r.prob for r in e.itertuples()}
    assert p[(0, 1)] == 1.0 and p[(1, 2)] == pytest.approx(0.5)
    assert p[(1, 3)] == pytest.approx(0.25) and p[(1, 1)] == pytest.approx(0.25)
    assert set(e["step"]) == {7}
    web = web_from_edges(e, 0.5)  # the self-loop 1->1 never enters the web
    assert sorted(web.edges()) == [(0, 1), (1, 2)]
    assert sorted(web_from_edges(e, 0.2).edges()) == [(0, 1), (1, 2), (1, 3)]


def test_sequences_follow_positions_not_row_order() -> None:
    s = steps_frame([[4, 5, 6]]).iloc[::-1]
    assert sequences_of(s) == [[4, 5, 6]]


def test_in_tree_measures_on_a_hand_built_web() -> None:
    # two inputs (0, 1) merge into 2, which leads to 3; a separate chain 5 -> 6
    edges = edges_frame(0, {(0, 2): 1, (1, 2): 1, (2, 3): 1, (5, 6): 1})
    web = web_from_edges(edges, 0.5)
    m = reasoning_measures(web, edges)
    assert m["n_roots"] == 3 and m["n_sinks"] == 2 and m["n_merges"] == 1
    assert m["max_in_degree"] == 2 and m["mean_merge_inputs"] == 2
    assert m["frac_in_trees"] == 1.0 and m["n_cycles"] == 0 and m["n_cycle_nodes"] == 0
    assert m["diameter"] == 2 and m["frac_dominant"] == 1.0
    assert math.isnan(m["small_world"])  # a tree has no clustering


def test_cycles_break_the_in_tree() -> None:
    edges = edges_frame(0, {(0, 1): 1, (1, 2): 1, (2, 0): 1, (3, 0): 1})
    m = reasoning_measures(web_from_edges(edges, 0.5), edges)
    assert m["n_cycles"] == 1 and m["n_cycle_nodes"] == 3 and m["frac_in_trees"] == 0.0


def test_small_world_index_matches_its_definition() -> None:
    g = nx.connected_watts_strogatz_graph(60, 6, 0.1, seed=1)
    web = nx.DiGraph()
    web.add_edges_from(g.edges())
    edges = edges_frame(0, {e: 1 for e in g.edges()})
    m = reasoning_measures(web, edges)
    n, k = 60, 6.0
    C, L = nx.average_clustering(g), nx.average_shortest_path_length(g)
    assert m["small_world"] == pytest.approx((C / (k / n)) / (L / (math.log(n) / math.log(k))))
    assert m["small_world"] > 2


def test_topology_row_matches_conet_columns() -> None:
    seqs = [[0, 1, 2], [0, 1, 2], [3, 1, 2], [4, 4]]
    steps = steps_frame(seqs)
    edges = edges_frame(0, transition_counts(seqs))
    row = checkpoint_topology(0, steps, edges, 0.5, 5)
    # web: 0->1, 3->1, 1->2 (4->4 is a self-loop): 4 nodes, 3 edges
    assert row["n_nodes"] == 4 and row["n_edges"] == 3 and row["avg_degree"] == 1.5
    assert row["n_components"] == 1 and row["n_bridges"] == 3 and row["n_leaves"] == 3
    assert row["n_trunk_bridges"] == 1  # 1-2 is crossed by the modal paths of problems 0, 1, 2
    assert row["n_completions"] == 4


def test_avg_degree_with_weights_equals_duplicated_sequences() -> None:
    seqs = [np.array([0, 1, 2]), np.array([0, 2]), np.array([2, 3])]
    w = np.array([2.0, 0.0, 1.0])
    dup = [seqs[0], seqs[0], seqs[2]]
    assert avg_degree_of_sequences(seqs, 0.5, 4, w) == avg_degree_of_sequences(dup, 0.5, 4)
    assert avg_degree_of_sequences(dup, 0.5, 4) == pytest.approx(2 * 3 / 4)


def test_degree_sensitivity_intervals_contain_the_point() -> None:
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(0, 6, size=5)) for _ in range(40)]
    steps = steps_frame(seqs)
    steps["concept_k3"] = steps["concept"] % 3
    out = degree_sensitivity(steps, {6: "concept", 3: "concept_k3"}, [0.2, 0.5], n_boot=50)
    assert list(out["n_concepts"]) == [3, 3, 6, 6]
    ok = out.dropna()
    assert ((ok["lo"] <= ok["avg_degree"] + 1e-9) & (ok["avg_degree"] <= ok["hi"] + 1e-9)).all()
    again = degree_sensitivity(steps, {6: "concept", 3: "concept_k3"}, [0.2, 0.5], n_boot=50)
    pd.testing.assert_frame_equal(out, again)  # seeded


def test_support_threshold_drops_edges_estimated_from_few_transitions() -> None:
    # 0 leaves once (P(1|0) = 1 from one observation); 2 leaves 5 times, once to itself
    e = edges_frame(0, {(0, 1): 1, (2, 3): 4, (2, 2): 1})
    assert sorted(web_from_edges(e, 0.5).edges()) == [(0, 1), (2, 3)]  # default: as before
    assert sorted(web_from_edges(e, 0.5, min_count=1).edges()) == [(0, 1), (2, 3)]
    assert sorted(web_from_edges(e, 0.5, min_count=2).edges()) == [(2, 3)]
    # the self-loop counts in the denominator (5 transitions out of 2) but is never an edge
    assert sorted(web_from_edges(e, 0.1, min_count=5).edges()) == [(2, 3)]
    assert web_from_edges(e, 0.5, min_count=6).number_of_edges() == 0
    m = reasoning_measures(web_from_edges(e, 0.5, 2), e, 2)
    assert m["frac_dominant"] == 1.0  # of the supported concepts only: 2


def test_support_is_counted_per_checkpoint() -> None:
    # concept 0 leaves once in each of two checkpoints: never twice in one
    e = pd.concat([edges_frame(0, {(0, 1): 1}), edges_frame(5, {(0, 1): 1})])
    assert web_from_edges(e, 0.5, min_count=2).number_of_edges() == 0
    steps = pd.concat([steps_frame([[0, 1]], step=0), steps_frame([[0, 1]], step=5)])
    topo = graph_topology(steps, e, {"n_concepts": 2}, 0.5, min_count=2)
    assert list(topo["step"]) == [0, 5] and list(topo["n_edges"]) == [0, 0]
    assert list(graph_topology(steps, e, {"n_concepts": 2}, 0.5)["n_edges"]) == [1, 1]


def test_graph_meta_gives_the_support_threshold_and_old_graphs_read_as_one() -> None:
    assert meta_min_count({"n_concepts": 4}) == 1  # graphs built before the knob
    assert meta_min_count({"n_concepts": 4, "min_count": 3}) == 3
    assert meta_min_count({"n_concepts": 4, "min_count": 3}, 2) == 2  # an explicit override
    seqs = [[0, 1], [2, 3], [2, 3]]
    steps, e = steps_frame(seqs), edges_frame(0, transition_counts(seqs))
    assert graph_topology(steps, e, {"n_concepts": 4}, 0.5)["n_edges"].tolist() == [2]
    meta = {"n_concepts": 4, "min_count": 2}
    assert graph_topology(steps, e, meta, 0.5)["n_edges"].tolist() == [1]


def test_avg_degree_with_support_matches_the_web_and_the_bootstrap() -> None:
    seqs = [[0, 1], [2, 3], [2, 3], [3, 4], [3, 4]]
    arrs = [np.array(s) for s in seqs]
    e = edges_frame(0, transition_counts(seqs))
    for m, k in ((1, 6 / 5), (2, 4 / 3), (3, math.nan)):
        got = avg_degree_of_sequences(arrs, 0.5, 5, min_count=m)
        row = checkpoint_topology(0, steps_frame(seqs), e, 0.5, 5, m)
        if math.isnan(k):
            assert math.isnan(got) and row["n_edges"] == 0
        else:
            assert got == pytest.approx(k) and row["avg_degree"] == pytest.approx(k)
    sens = degree_sensitivity(steps_frame(seqs), {5: "concept"}, [0.5], n_boot=20, min_count=2)
    assert sens["avg_degree"].iloc[0] == pytest.approx(4 / 3)
