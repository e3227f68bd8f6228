"""Graphs and problems: regularity, shortest paths, sampling rules and errors."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_shortest_paths_equal_the_dense_all_pairs_method(graph):
    """Chunked searches give the paths and lengths of one dense all-pairs call."""
    from scipy.sparse.csgraph import shortest_path

    import conceptweb.model.graph as graph_module

    dist, pred = shortest_path(
        graph.adjacency(), method="D", unweighted=True, return_predecessors=True
    )
    assert np.array_equal(graph.distances(), dist)
    s = np.repeat(np.arange(graph.N), 3)
    t = (s * 7 + np.tile([1, 2, 3], graph.N)) % graph.N
    keep = s != t
    s, t = s[keep], t[keep]
    old_budget = graph_module.ROW_BUDGET
    graph_module.ROW_BUDGET = graph.N * 2  # two sources per block
    try:
        paths = graph.shortest_paths(s, t)
    finally:
        graph_module.ROW_BUDGET = old_budget
    for path, a, b in zip(paths, s, t, strict=True):
        assert len(path) - 1 == dist[a, b]
        expected = [b]
        while expected[-1] != a:
            expected.append(pred[a, expected[-1]])
        assert path.tolist() == expected[::-1]


def _ring(N: int) -> ConceptGraph:
    i = np.arange(N)
    return ConceptGraph(np.sort(np.stack([(i - 1) % N, (i + 1) % N], axis=1), axis=1))


def test_problems_on_a_large_graph_need_no_dense_distance_matrix():
    """100,000 nodes: a dense distance matrix would need 80 GB; sampling stays small."""
    import tracemalloc

    g = _ring(100_000)
    tracemalloc.start()
    train, held = sample_problems(g, 2000, 200, np.random.default_rng(0), min_dist=3)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64 * 2**20
    assert len(train.pairs()) == 2000 and not train.pairs() & held.pairs()
    ring_dist = np.abs(train.sources.astype(np.int64) - train.targets)
    ring_dist = np.minimum(ring_dist, 100_000 - ring_dist)
    assert ring_dist.min() >= 3
    paths = g.shortest_paths(train.sources[:5], train.targets[:5])
    assert [len(p) - 1 for p in paths] == ring_dist[:5].tolist()


def test_sampling_by_rejection_respects_the_rules(graph, monkeypatch):
    """The large-graph sampler draws valid, distinct, disjoint pairs, and shared starts."""
    import conceptweb.model.problems as problems_module

    monkeypatch.setattr(problems_module, "EXHAUSTIVE_PAIRS", 0)
    rng = np.random.default_rng(1)
    train, held = sample_problems(graph, 40, 20, rng, min_dist=2, n_starts=5)
    dist = graph.distances()
    assert len(train.pairs()) == 40 and not train.pairs() & held.pairs()
    assert np.all(dist[train.sources, train.targets] >= 2)
    assert len(set(train.sources.tolist())) <= 5
    two = ConceptGraph(np.array([[1], [0], [3], [2]]))  # two separate edges: 4 valid pairs
    with pytest.raises(ConceptwebError, match="cannot sample"):
        sample_problems(two, 5, 0, rng)


def test_breadth_first_paths_of_large_graphs_are_shortest(graph, monkeypatch):
    """Graphs above DIJKSTRA_MAX_N use breadth-first search: same lengths, valid edges."""
    import conceptweb.model.graph as graph_module

    dist = graph.distances()
    monkeypatch.setattr(graph_module, "DIJKSTRA_MAX_N", 0)
    s = np.array([0, 0, 3, 7, 11, 29])
    t = np.array([5, 6, 20, 2, 29, 0])
    for path, a, b in zip(graph.shortest_paths(s, t), s, t, strict=True):
        assert path[0] == a and path[-1] == b and len(path) - 1 == dist[a, b]
        graph.action_index(path[:-1], path[1:])
    with pytest.raises(ConceptwebError, match="unreachable"):
        ConceptGraph(np.array([[1], [0], [3], [2]])).shortest_paths(np.array([0]), np.array([2]))


@pytest.mark.parametrize(("N", "K", "seed"), [(800, 8, 0), (800, 40, 3), (60, 4, 7), (51, 2, 11)])
def test_random_regular_graph_equals_networkx(N, K, seed):
    """The built-in generator makes networkx's graph for a seed, so runs stay the same."""
    g = nx.random_regular_graph(K, N, seed=seed)
    expected = np.array([sorted(g.adj[i]) for i in range(N)], dtype=np.int32)
    np.testing.assert_array_equal(random_regular_graph(N, K, seed).neighbors, expected)


@st.composite
def _regular_sizes(draw: st.DrawFn) -> tuple[int, int, int]:
    N = draw(st.integers(2, 40))
    K = draw(st.integers(1, N - 1))
    return (N + 1 if N * K % 2 else N), K, draw(st.integers(0, 2**32))


@settings(max_examples=60, deadline=None)
@given(sizes=_regular_sizes())
def test_random_regular_graph_equals_networkx_on_any_size(sizes):
    """Dense graphs too, where networkx's pairing gets stuck and starts again (its test of
    whether the leftover nodes can still be joined decides when, quirks included)."""
    N, K, seed = sizes
    g = nx.random_regular_graph(K, N, seed=seed)
    expected = np.array([sorted(g.adj[i]) for i in range(N)], dtype=np.int32)
    np.testing.assert_array_equal(random_regular_graph(N, K, seed).neighbors, expected)


def _two_pieces(seed: int) -> ConceptGraph:
    a, b = random_regular_graph(40, 3, seed=seed), random_regular_graph(30, 3, seed=seed + 1)
    return ConceptGraph(np.concatenate([a.neighbors, b.neighbors + 40]))


@pytest.mark.parametrize("min_dist", [1, 2, 3, 6, 40])
def test_valid_pairs_are_those_the_distances_give(min_dist):
    """The valid (start, answer) mask of undirected graphs (components and a search of
    min_dist - 1 levels) is the one read off the full distance table."""
    from conceptweb.model.problems import _valid_mask

    g = _two_pieces(min_dist)
    rng = np.random.default_rng(min_dist)
    for starts in (np.arange(g.N), np.sort(rng.choice(g.N, 20, replace=False))):
        for answers in (None, np.sort(rng.choice(g.N, 25, replace=False))):
            dist = g.distances(starts)
            expected = np.isfinite(dist) & (dist >= min_dist)
            if answers is not None:
                expected[:, np.setdiff1d(np.arange(g.N), answers)] = False
            np.testing.assert_array_equal(_valid_mask(g, min_dist, starts, answers), expected)
            np.testing.assert_array_equal(g.within(starts, min_dist - 1), dist <= min_dist - 1)


def test_breadth_first_distances_and_components_equal_scipy():
    """numpy's search on undirected graphs gives scipy's distances and component partition."""
    from scipy.sparse.csgraph import connected_components, dijkstra

    a, b = random_regular_graph(40, 3, seed=2), random_regular_graph(30, 3, seed=3)
    g = ConceptGraph(np.concatenate([a.neighbors, b.neighbors + 40]))  # two pieces
    assert g.symmetric
    expected = dijkstra(g.adjacency(), unweighted=True, indices=np.arange(g.N))
    np.testing.assert_array_equal(g.distances(), expected)
    _, labels = connected_components(g.adjacency(), directed=True, connection="strong")
    got = g.components()
    assert np.array_equal(got[:, None] == got[None, :], labels[:, None] == labels[None, :])
    directed = ConceptGraph(np.array([[1], [2], [0], [0]]))  # 3 -> 0 one way only
    assert not directed.symmetric
    assert directed.distances(np.array([3]))[0].tolist() == [1, 2, 3, 0]
    assert len(set(directed.components().tolist())) == 2


def _listed_pairs_as_before(graph, n, rng, min_dist, answers=None):
    """The listing of every valid pair as first written: row and column arrays, a permutation."""
    dist = graph.distances(np.arange(graph.N))
    ok = np.isfinite(dist) & (dist >= min_dist)
    if answers is not None:
        allowed = np.zeros(graph.N, dtype=bool)
        allowed[answers] = True
        ok &= allowed[None, :]
    rows, cols = np.nonzero(ok)
    return [(int(rows[i]), int(cols[i])) for i in rng.permutation(rows.size)][:n]


@pytest.mark.parametrize("min_dist, answers", [(1, None), (3, None), (2, [0, 5, 7, 11, 29])])
@pytest.mark.parametrize("directed", [False, True])
def test_listed_pairs_draw_what_the_first_listing_drew(graph, min_dist, answers, directed):
    """Listing valid pairs by a running count (not row/column arrays) keeps every seed's problems
    and leaves the generator where it was; on undirected and directed graphs."""
    from conceptweb.model import problems as problems_module

    if directed:  # drop every reverse step of the first neighbour: shortest paths by Dijkstra
        nb = graph.neighbors.copy()
        nb[:, 0] = (np.arange(graph.N) + 1) % graph.N
        graph = ConceptGraph(nb)
        assert not graph.symmetric
    answers = None if answers is None else np.array(answers)
    new_rng, old_rng = np.random.default_rng(7), np.random.default_rng(7)
    pairs = problems_module._listed_pairs(
        graph, 20, new_rng, set(), min_dist, np.arange(graph.N), answers
    )
    assert pairs == _listed_pairs_as_before(graph, 20, old_rng, min_dist, answers)
    assert new_rng.random() == old_rng.random()
