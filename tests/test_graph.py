"""Graphs and problems: regularity, shortest paths, sampling rules and errors."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from conceptweb.errors import ConceptwebError
from conceptweb.model.graph import ConceptGraph, random_regular_graph
from conceptweb.model.problems import sample_new_problems, sample_problems


def test_random_regular_graph_is_simple_and_regular():
    g = random_regular_graph(50, 6, seed=0)
    assert g.neighbors.shape == (50, 6)
    for i in range(50):
        row = g.neighbors[i]
        assert len(set(row.tolist())) == 6 and i not in row
        for j in row:
            assert i in g.neighbors[j]  # undirected: both directions walkable
    assert np.array_equal(g.neighbors, random_regular_graph(50, 6, seed=0).neighbors)
    assert not np.array_equal(g.neighbors, random_regular_graph(50, 6, seed=1).neighbors)


@pytest.mark.parametrize("N, K", [(1, 1), (10, 10), (11, 3), (5, 0)])
def test_impossible_graphs_are_refused(N, K):
    with pytest.raises(ConceptwebError):
        random_regular_graph(N, K, seed=0)


def test_shortest_paths_match_networkx(graph):
    nxg = graph.to_networkx()
    s = np.array([0, 3, 7, 11])
    t = np.array([5, 20, 2, 29])
    for path, a, b in zip(graph.shortest_paths(s, t), s, t, strict=True):
        assert path[0] == a and path[-1] == b
        assert len(path) - 1 == nx.shortest_path_length(nxg, a, b)
        graph.action_index(path[:-1], path[1:])  # every hop is an edge


def test_action_index_rejects_non_edges():
    g = ConceptGraph(np.array([[1, 2], [0, 2], [0, 1], [0, 1]]))
    assert g.action_index(np.array([0, 1]), np.array([2, 0])).tolist() == [1, 0]
    with pytest.raises(ConceptwebError, match="not an edge"):
        g.action_index(np.array([0]), np.array([3]))


def test_problems_are_distinct_disjoint_and_respect_min_dist(graph, rng):
    train, held = sample_problems(graph, 40, 20, rng, min_dist=2)
    assert len(train.pairs()) == 40 and len(held.pairs()) == 20
    assert not train.pairs() & held.pairs()
    dist = graph.distances()
    assert np.all(dist[train.sources, train.targets] >= 2)
    assert np.all(train.sources != train.targets)
    new = sample_new_problems(graph, 10, rng, train.pairs() | held.pairs())
    assert not new.pairs() & (train.pairs() | held.pairs())


def test_shared_starts(graph, rng):
    train, _ = sample_problems(graph, 30, 5, rng, n_starts=3)
    assert len(set(train.sources.tolist())) <= 3


def test_too_many_problems_is_a_clear_error(rng):
    g = random_regular_graph(6, 2, seed=0)
    with pytest.raises(ConceptwebError, match="cannot sample"):
        sample_problems(g, 40, 0, rng)
