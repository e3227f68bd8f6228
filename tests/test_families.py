"""Graph families and problem structures: degree statistics, padding masks, sampling rules."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from conceptweb.config import resolve_config
from conceptweb.errors import ConceptwebError
from conceptweb.model.engines import get_engine, numba_available
from conceptweb.model.families import build_graph
from conceptweb.model.graph import random_regular_graph
from conceptweb.model.policy import mask_logits, softmax
from conceptweb.model.problems import sample_problems


def _in_degrees(g) -> np.ndarray:
    valid = g.valid_actions()
    return np.bincount(g.neighbors[valid], minlength=g.N)


def _undirected_degrees(g) -> np.ndarray:
    return np.array([d for _, d in sorted(g.to_networkx().degree())])


def _is_symmetric(g) -> bool:
    valid = g.valid_actions()
    edges = set(zip(np.nonzero(valid)[0].tolist(), g.neighbors[valid].tolist(), strict=True))
    return all((j, i) in edges for i, j in edges)


def test_random_regular_family_is_the_default_graph():
    g = build_graph("random_regular", 60, 4, seed=3)
    assert np.array_equal(g.neighbors, random_regular_graph(60, 4, seed=3).neighbors)
    assert g.valid_actions().all()


def test_erdos_renyi_degrees_are_poisson_like():
    g = build_graph("erdos_renyi", 2000, 8, seed=0)
    deg = g.out_degrees()
    assert _is_symmetric(g) and deg.min() >= 1
    assert abs(deg.mean() - 8) < 0.3
    assert 6 < deg.var() < 10  # binomial(N-1, K/(N-1)): variance about K
    assert not np.any(g.neighbors == np.arange(g.N)[:, None])


def test_barabasi_albert_has_hubs():
    g = build_graph("barabasi_albert", 2000, 8, seed=0)
    deg = g.out_degrees()
    assert _is_symmetric(g)
    assert abs(deg.mean() - 8) < 0.2 and np.median(deg) < 8
    assert deg.max() > 8 * 8  # a heavy tail: ER at this size never exceeds about 25
    assert deg.max() == g.K  # the table is as wide as the largest degree


def test_watts_strogatz_is_clustered_with_short_paths():
    lattice = build_graph("watts_strogatz", 300, 8, seed=0, rewire_p=0.0)
    assert lattice.valid_actions().all() and lattice.K == 8
    ws = nx.average_clustering(build_graph("watts_strogatz", 300, 8, seed=0).to_networkx())
    er = nx.average_clustering(build_graph("erdos_renyi", 500, 8, seed=0).to_networkx())
    assert ws > 0.4 and er < 0.05
    small = build_graph("watts_strogatz", 300, 8, seed=0, rewire_p=0.2).to_networkx()
    assert nx.average_shortest_path_length(small) < 0.2 * nx.average_shortest_path_length(
        lattice.to_networkx()
    )


@pytest.mark.parametrize("directed", [False, True])
def test_community_graph_keeps_most_edges_inside_blocks(directed):
    g = build_graph("community", 800, 8, seed=1, directed=directed, communities=8, community_in=0.9)
    valid = g.valid_actions()
    src = np.nonzero(valid)[0]
    label = np.arange(800) * 8 // 800
    inside = (label[src] == label[g.neighbors[valid]]).mean()
    assert 0.85 < inside < 0.95
    assert abs(g.out_degrees().mean() - 8) < 0.5


@pytest.mark.parametrize("family", ["erdos_renyi", "barabasi_albert", "watts_strogatz"])
def test_directed_variants_have_out_degree_k(family):
    g = build_graph(family, 1000, 6, seed=2, directed=True)
    assert g.valid_actions().all() and g.K == 6
    assert not _is_symmetric(g)
    assert not np.any(g.neighbors == np.arange(g.N)[:, None])
    indeg = _in_degrees(g)
    assert indeg.sum() == 6000
    if family == "erdos_renyi":
        assert 4 < indeg.var() < 8
    if family == "barabasi_albert":
        assert indeg.max() > 5 * 6 and indeg.var() > 5 * 6


def test_graphs_are_reproducible_from_the_seed():
    a = build_graph("barabasi_albert", 300, 6, seed=4, directed=True)
    assert np.array_equal(
        a.neighbors, build_graph("barabasi_albert", 300, 6, seed=4, directed=True).neighbors
    )
    assert not np.array_equal(
        a.neighbors, build_graph("barabasi_albert", 300, 6, seed=5, directed=True).neighbors
    )


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_padding_slots_are_never_walked_and_get_no_gradient(engine):
    if engine == "numba" and not numba_available():
        pytest.skip("numba is not installed")
    eng = get_engine(engine)
    g = build_graph("barabasi_albert", 300, 4, seed=0)
    valid = g.valid_actions()
    assert not valid.all()
    logits = mask_logits(np.random.default_rng(0).normal(size=valid.shape), valid)
    probs = softmax(logits)
    assert np.all(probs[~valid] == 0) and np.allclose(probs.sum(axis=1), 1)
    src = np.arange(40)
    roll = eng.sample(g.neighbors, probs, src, (src + 100) % 300, 8, 50, np.random.default_rng(1))
    walk, node, action = roll.tokens()
    assert valid[node, action].all()
    grad = eng.logprob_grad(node, action, np.ones(node.size), probs, 1.0)
    assert np.all(grad[~valid] == 0)


@pytest.mark.parametrize(
    "sets",
    [
        ["model.graph=random_regular", "model.directed=true"],
        ["model.graph=watts_strogatz", "model.K=5"],
        ["model.graph=community", "model.communities=100"],
        ["problems.distinct=true", "problems.n_answers=4"],
        ["problems.distinct=true", "problems.Q=120"],
    ],
)
def test_impossible_graph_or_structure_configs_are_refused(sets):
    with pytest.raises(ConceptwebError):
        resolve_config("tiny", sets=sets)


def test_distinct_starts_and_answers(rng):
    g = build_graph("erdos_renyi", 300, 6, seed=0)
    train, held = sample_problems(g, 60, 20, rng, distinct=True)
    s, t = train.sources.tolist(), train.targets.tolist()
    assert len(set(s)) == 60 and len(set(t)) == 60 and not set(s) & set(t)
    assert len(set(held.sources.tolist())) == 20 and not train.pairs() & held.pairs()


def test_shared_answers_and_starts(rng):
    g = random_regular_graph(300, 6, seed=0)
    train, held = sample_problems(g, 64, 16, rng, n_answers=4)
    answers = set(train.targets.tolist())
    assert len(answers) == 4 and set(held.targets.tolist()) <= answers
    assert len(set(train.sources.tolist())) > 30
    train, _ = sample_problems(g, 64, 16, rng, n_answers=8, n_starts=10)
    assert len(set(train.targets.tolist())) <= 8 and len(set(train.sources.tolist())) <= 10


def test_impossible_structure_is_a_clear_error(rng):
    g = random_regular_graph(20, 4, seed=0)
    with pytest.raises(ConceptwebError, match="cannot sample"):
        sample_problems(g, 11, 0, rng, distinct=True)
