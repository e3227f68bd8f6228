"""Concept webs and their topology on hand-built graphs with known answers."""

from __future__ import annotations

import json
import math
import os

import networkx as nx
import numpy as np
import pytest

from conceptweb.analysis.topology import (
    TOPOLOGY_COLUMNS,
    analysis_engine,
    concept_web,
    sample_correct_paths,
    topology_over_training,
    traffic_web,
    web_at_step,
    web_from_probs,
    web_topology,
)
from conceptweb.errors import ConceptwebError
from conceptweb.model.engines import numba_available
from conceptweb.model.policy import softmax


def test_path_graph():
    web = nx.DiGraph([(0, 1), (1, 2), (2, 3), (3, 4)])
    t = web_topology(web, sources=[0, 4, 1], targets=[4, 0, 3])
    assert (t.n_nodes, t.n_edges) == (5, 4)
    assert t.avg_degree == pytest.approx(1.6)
    assert t.n_components == 1 and t.component_sizes == (5,)
    assert t.giant_fraction == 1.0
    assert t.n_bridges == 4 and t.bridges == ((0, 1), (1, 2), (2, 3), (3, 4))
    assert t.leaves == (0, 4)
    # undirected geodesics; along directed web edges 4 -> 0 is impossible
    assert t.geodesics == (4, 4, 2)
    assert t.mean_geodesic == pytest.approx(10 / 3)
    assert t.directed_geodesics[0] == 4 and math.isnan(t.directed_geodesics[1])
    assert t.frac_connected == 1.0 and t.frac_directed == pytest.approx(2 / 3)


def test_star_graph():
    web = nx.star_graph(5)  # centre 0, leaves 1..5
    ent = np.array([2.0, 0.5, 0.5, 0.5, 0.5, 1.0])
    t = web_topology(web, sources=[1, 2], targets=[2, 0], node_entropy=ent)
    assert t.avg_degree == pytest.approx(2 * 5 / 6)
    assert t.n_bridges == 5 and t.n_leaves == 5
    assert t.geodesics == (2, 1)
    assert t.leaf_entropy == pytest.approx(0.6)
    assert t.trunk_entropy == pytest.approx(2.0)


def test_binary_tree():
    web = nx.balanced_tree(2, 2)  # 7 nodes, 6 edges, 4 leaves
    t = web_topology(web, sources=[3], targets=[6])
    assert (t.n_nodes, t.n_edges, t.n_leaves, t.n_bridges) == (7, 6, 4, 6)
    assert t.avg_degree == pytest.approx(12 / 7)
    assert t.geodesics == (4,)


def test_two_islands_joined_by_one_bridge():
    web = nx.Graph([(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3), (2, 3)])
    paths = [[0, 2, 3, 5], [0, 1, 2], [5, 3, 2], None, [4, 3, 2, 3, 2, 1]]
    t = web_topology(web, sources=[0, 0, 5], targets=[5, 2, 2], paths=paths)
    assert t.n_components == 1 and t.n_bridges == 1
    assert t.bridges == ((2, 3),)
    assert t.bridge_load == (3,)  # crossed in either direction, once per problem
    assert t.n_trunk_bridges == 1 and t.max_bridge_load == 3
    assert t.n_leaves == 0
    assert t.avg_degree == pytest.approx(14 / 6)
    assert t.geodesics == (3, 1, 2)
    # cutting the bridge leaves two islands, no bridges, and no path across
    web.remove_edge(2, 3)
    t = web_topology(web, sources=[0, 0], targets=[5, 2])
    assert t.n_components == 2 and t.component_sizes == (3, 3)
    assert t.giant_fraction == 0.5 and t.n_bridges == 0
    assert math.isnan(t.geodesics[0]) and t.frac_connected == 0.5


def test_empty_web_does_not_crash():
    t = web_topology(nx.DiGraph(), sources=[0], targets=[1])
    assert t.n_nodes == 0 and t.n_components == 0 and t.n_bridges == 0
    assert math.isnan(t.avg_degree) and math.isnan(t.mean_geodesic)
    assert t.frac_connected == 0.0


def _toy_policy():
    neighbors = np.array([[1, 2], [0, 2], [1, 3], [0, 2]])
    logits = np.array([[2.0, 0.0], [0.0, 0.0], [0.0, 3.0], [-1.0, 1.0]])
    return logits, neighbors


def test_concept_web_thresholds_and_temperature():
    logits, neighbors = _toy_policy()
    web = concept_web(logits, neighbors, tau=0.5)
    assert sorted(web.edges()) == [(0, 1), (1, 0), (1, 2), (2, 3), (3, 2)]
    assert web[0][1]["pi"] == pytest.approx(softmax(logits)[0, 0])
    t = web_topology(web)
    assert t.n_edges == 3 and t.avg_degree == pytest.approx(1.5)
    web = concept_web(logits, neighbors, tau=0.6)
    assert sorted(web.edges()) == [(0, 1), (2, 3), (3, 2)]
    assert web_topology(web).n_components == 2
    # a hot policy is nearly uniform: nothing passes 0.6
    assert concept_web(logits, neighbors, tau=0.6, temperature=100.0).number_of_edges() == 0
    # restriction to a node set keeps only edges inside it
    web = concept_web(logits, neighbors, tau=0.5, nodes=[0, 1, 2])
    assert sorted(web.edges()) == [(0, 1), (1, 0), (1, 2)]


def test_duplicate_neighbours_are_summed():
    web = web_from_probs(np.full((2, 2), 0.5), np.array([[1, 1], [0, 0]]), tau=0.9)
    assert sorted(web.edges()) == [(0, 1), (1, 0)]
    with pytest.raises(ConceptwebError):
        web_from_probs(np.ones((2, 3)), np.zeros((2, 2), dtype=int))


def test_traffic_web_counts_uses():
    web = traffic_web([[0, 1, 2], [0, 1, 3], None, [2, 1]])
    assert web[0][1]["count"] == 2 and web[1][2]["count"] == 1 and web[2][1]["count"] == 1
    assert web.number_of_edges() == 4


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_sampled_paths_of_a_deterministic_policy(engine):
    if engine == "numba" and not numba_available():
        pytest.skip("numba is not installed")
    # ring of 6: node i steps to (i - 1) or (i + 1); the policy always goes up
    neighbors = np.array([sorted([(i - 1) % 6, (i + 1) % 6]) for i in range(6)])
    logits = np.where(neighbors == (np.arange(6)[:, None] + 1) % 6, 30.0, -30.0)
    probs = softmax(logits)
    s = sample_correct_paths(
        probs,
        neighbors,
        np.array([0, 4]),
        np.array([3, 1]),
        8,
        10,
        np.random.default_rng(0),
        engine=engine,
    )
    assert [p.tolist() for p in s.paths] == [[0, 1, 2, 3], [4, 5, 0, 1]]
    assert s.accuracy.tolist() == [1.0, 1.0]
    assert s.visited.tolist() == [0, 1, 2, 3, 4, 5]
    assert s.traffic[0][1]["count"] == 16  # 8 walks of each problem use 0 -> 1
    # too short a budget: no correct path
    s = sample_correct_paths(
        softmax(logits), neighbors, np.array([0]), np.array([3]), 4, 2, np.random.default_rng(0)
    )
    assert s.paths == [None] and s.accuracy.tolist() == [0.0]


def test_topology_over_training_matches_each_checkpoint(base_run):
    df = topology_over_training(base_run)
    assert list(df.columns) == TOPOLOGY_COLUMNS
    assert df["step"].tolist() == base_run.checkpoint_steps()
    assert df.loc[0, "n_edges"] == 0  # the uniform initial policy has no edge with pi >= 0.5
    for step in (10, df["step"].iloc[-1]):
        ck = base_run.load_checkpoint(step)
        web = concept_web(ck.logits, ck.neighbors, 0.5, ck.temperature)
        t = web_topology(web, ck.sources, ck.targets)
        row = df[df["step"] == step].iloc[0]
        for key in ("n_nodes", "n_edges", "n_components", "n_bridges", "n_leaves"):
            assert row[key] == getattr(t, key), key
    # deterministic, and the web grows during training
    again = topology_over_training(base_run)
    assert df.equals(again)
    assert df["n_edges"].iloc[-1] > 0


def test_web_at_step_errors(base_run, run_copy):
    with pytest.raises(ConceptwebError, match="no checkpoint at step 15"):
        web_at_step(base_run, 15)
    llm = run_copy(base_run)
    for p in llm.checkpoints_dir.iterdir():
        p.unlink()
    with pytest.raises(ConceptwebError, match="no checkpoints"):
        web_at_step(llm)
    assert topology_over_training(llm).empty


def test_webs_are_measured_with_the_engine_the_run_trained_with(base_run, run_copy):
    trained_with = base_run.read_meta().get("engine", "numpy")
    expected = "numba" if trained_with == "numba" and numba_available() else "numpy"
    assert analysis_engine(base_run) == expected
    old = run_copy(base_run, "format1")  # run.json without an engine: numpy, as such runs did
    meta = old.read_meta()
    meta.pop("engine", None)
    old.meta_path.write_text(json.dumps(meta))
    assert analysis_engine(old) == "numpy"


def test_a_report_reuses_a_checkpoints_web_until_the_checkpoint_changes(base_run, run_copy):
    run = run_copy(base_run, "cached")
    first = web_at_step(run, 10)
    assert web_at_step(run, 10) is first  # figures and the interactive page ask again
    assert web_at_step(run, 20) is not first
    # a checkpoint rewritten (resume, retraining) is measured again
    ck = run.checkpoint_path(10)
    data = ck.read_bytes()
    ck.unlink()
    ck.write_bytes(data)
    os.utime(ck, ns=(1, 1))
    again = web_at_step(run, 10)
    assert again is not first
    assert sorted(again.web.edges()) == sorted(first.web.edges())
