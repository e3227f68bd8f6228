"""Concept webs of a walk policy (edges with pi >= tau, traffic of correct walks) and their topology.

Definitions (docs/analysis.md, D1 to D8, the specification this module implements):
- the **concept web** of a policy is the directed graph of edges i -> j with pi(j|i) >= tau
  (default 0.5), optionally restricted to the nodes that correct rollouts visit;
- the **traffic web** is the directed graph of edges that correct rollouts use;
- topology is measured on the undirected projection of a web, whose nodes are the nodes that
  touch at least one web edge (isolated nodes are not part of a web): average degree
  <k> = 2|E|/|V|, connected components ("islands") and their sizes, the fraction of web nodes in
  the largest component, bridges ("trunk edges") and how many problems' correct paths cross each,
  leaves (degree 1), and the geodesic length between a problem's start and answer inside the web.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix

from conceptweb.analysis.results import Result, optional
from conceptweb.errors import ConceptwebError
from conceptweb.model.engines import get_engine, numba_available
from conceptweb.model.policy import entropy, softmax
from conceptweb.rundir import RunDir
from conceptweb.runformat import Checkpoint

__all__ = [
    "DEFAULT_TAU",
    "DEFAULT_ANALYSIS_G",
    "DEFAULT_L",
    "TOPOLOGY_COLUMNS",
    "web_from_probs",
    "concept_web",
    "traffic_web",
    "Web",
    "as_graph",
    "undirected_projection",
    "path_edges",
    "bridge_load",
    "WebTopology",
    "web_topology",
    "WalkSample",
    "sample_correct_paths",
    "PolicyArrays",
    "CheckpointWeb",
    "policy_from_checkpoint",
    "compute_checkpoint_web",
    "checkpoint_web",
    "run_max_length",
    "load_policy",
    "web_at_step",
    "topology_row",
    "topology_over_training",
]

DEFAULT_TAU = 0.5
DEFAULT_ANALYSIS_G = 32
DEFAULT_L = 100

TOPOLOGY_COLUMNS = [
    "step",
    "n_nodes",
    "n_edges",
    "avg_degree",
    "n_components",
    "giant_size",
    "giant_fraction",
    "n_bridges",
    "n_trunk_bridges",
    "max_bridge_load",
    "n_leaves",
    "mean_geodesic",
    "frac_connected",
    "mean_directed_geodesic",
    "frac_directed",
    "leaf_entropy",
    "trunk_entropy",
    "traffic_n_nodes",
    "traffic_n_edges",
    "traffic_avg_degree",
    "frac_problems_with_path",
]


# -- webs ----------------------------------------------------------------------------------------
def web_from_probs(
    probs: np.ndarray,
    neighbors: np.ndarray,
    tau: float = DEFAULT_TAU,
    nodes: Iterable[int] | None = None,
) -> nx.DiGraph:
    """The concept web of a transition table: directed edges i -> j with pi(j|i) >= tau.

    Definition: docs/analysis.md, D1. Duplicate neighbour columns are summed; self-loops are
    dropped.

    Parameters
    ----------
    probs : array (N, K)
        pi(neighbors[i, k] | i); rows sum to 1.
    neighbors : int array (N, K)
        The k-th neighbour of node i.
    tau : float
        Threshold on pi (default 0.5).
    nodes : iterable of int, optional
        Keep only edges whose two endpoints are in `nodes`.

    Returns
    -------
    networkx.DiGraph
        The web; each edge carries its probability as "pi"; the graph attribute "tau".

    Raises
    ------
    ConceptwebError
        If probs and neighbors are not the same (N, K) shape.

    Examples
    --------
    >>> probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    >>> neighbors = np.array([[1, 2], [0, 2], [0, 1]])
    >>> sorted(web_from_probs(probs, neighbors).edges())
    [(0, 1), (1, 0), (1, 2), (2, 1)]
    """
    probs = np.asarray(probs, dtype=np.float64)
    neighbors = np.asarray(neighbors)
    if probs.shape != neighbors.shape or probs.ndim != 2:
        raise ConceptwebError(
            f"probs {probs.shape} and neighbour table {neighbors.shape} must be the same (N, K)"
        )
    N, K = probs.shape
    rows = np.repeat(np.arange(N), K)
    mat = coo_matrix((probs.ravel(), (rows, neighbors.ravel())), shape=(N, N)).tocsr()
    mat.sum_duplicates()
    coo = mat.tocoo()
    keep = (coo.data >= tau) & (coo.row != coo.col)
    src, dst, pi = coo.row[keep], coo.col[keep], coo.data[keep]
    if nodes is not None:
        allowed = np.zeros(N, dtype=bool)
        idx = np.fromiter((int(n) for n in nodes), dtype=np.int64)
        allowed[idx[(idx >= 0) & (idx < N)]] = True
        ok = allowed[src] & allowed[dst]
        src, dst, pi = src[ok], dst[ok], pi[ok]
    order = np.lexsort((dst, src))
    web = nx.DiGraph(tau=float(tau))
    web.add_weighted_edges_from(
        zip(src[order].tolist(), dst[order].tolist(), pi[order].tolist(), strict=True), weight="pi"
    )
    return web


def concept_web(
    logits: np.ndarray,
    neighbors: np.ndarray,
    tau: float = DEFAULT_TAU,
    temperature: float = 1.0,
    nodes: Iterable[int] | None = None,
) -> nx.DiGraph:
    """The concept web of the tabular policy softmax(logits / temperature) (docs/analysis.md, D1).

    Parameters
    ----------
    logits : array (N, K)
        The policy's logits theta[i, k] over node i's neighbours.
    neighbors : int array (N, K)
        The k-th neighbour of node i.
    tau : float
        Threshold on pi (default 0.5).
    temperature : float
        Softmax temperature T.
    nodes : iterable of int, optional
        Keep only edges whose two endpoints are in `nodes`.

    Returns
    -------
    networkx.DiGraph
        Edges i -> j with pi(j|i) >= tau, each with "pi".

    Examples
    --------
    >>> logits = np.array([[3.0, 0.0], [0.0, 0.0], [0.0, 3.0]])
    >>> neighbors = np.array([[1, 2], [0, 2], [0, 1]])
    >>> sorted(concept_web(logits, neighbors).edges())
    [(0, 1), (1, 0), (1, 2), (2, 1)]
    >>> concept_web(logits, neighbors, temperature=100.0, tau=0.6).number_of_edges()
    0
    """
    return web_from_probs(softmax(np.asarray(logits, float), temperature), neighbors, tau, nodes)


def traffic_web(paths: Iterable[Sequence[int] | None], min_count: int = 1) -> nx.DiGraph:
    """The traffic web: directed edges used by the given (correct) paths (docs/analysis.md, D5).

    Parameters
    ----------
    paths : iterable of node sequences or None
        One path per walk or problem; None entries are skipped.
    min_count : int
        Keep edges used at least this many times.

    Returns
    -------
    networkx.DiGraph
        Each edge carries "count", its number of uses.

    Examples
    --------
    >>> web = traffic_web([[0, 1, 2], [0, 1], None])
    >>> web[0][1]["count"], web[1][2]["count"]
    (2, 1)
    """
    counts: dict[tuple[int, int], int] = {}
    for p in paths:
        if p is None:
            continue
        seq = [int(x) for x in p]
        for a, b in zip(seq[:-1], seq[1:], strict=True):
            if a != b:
                counts[(a, b)] = counts.get((a, b), 0) + 1
    web = nx.DiGraph()
    for (a, b), c in sorted(counts.items()):
        if c >= min_count:
            web.add_edge(a, b, count=c)
    return web


Web = nx.Graph | Iterable[tuple[int, int]]


def as_graph(web: Web) -> nx.Graph:
    """A web as a networkx graph: graphs pass through, an edge list becomes a DiGraph.

    >>> sorted(as_graph([(0, 1), (1, 2)]).edges())
    [(0, 1), (1, 2)]
    """
    return web if isinstance(web, nx.Graph) else nx.DiGraph(list(web))


def undirected_projection(web: Web) -> nx.Graph:
    """The simple undirected graph of a web's edges, without its isolated nodes (D2).

    Parameters
    ----------
    web : networkx graph or iterable of (i, j)
        A directed or undirected web, or its edge list.

    Returns
    -------
    networkx.Graph
        One edge {i, j} per connected pair (a reciprocal pair counts once), no self-loops.

    Examples
    --------
    >>> undirected_projection([(0, 1), (1, 0), (1, 2), (3, 3)]).number_of_edges()
    2
    """
    g = nx.Graph()
    g.add_edges_from((int(a), int(b)) for a, b in as_graph(web).edges() if a != b)
    return g


# -- topology ------------------------------------------------------------------------------------
def _edge_key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a <= b else (b, a)


def path_edges(path: Sequence[int]) -> set[tuple[int, int]]:
    """The undirected edges (min, max) that a node path crosses.

    >>> sorted(path_edges([3, 2, 1, 2]))
    [(1, 2), (2, 3)]
    """
    seq = [int(x) for x in path]
    return {_edge_key(a, b) for a, b in zip(seq[:-1], seq[1:], strict=True) if a != b}


def bridge_load(
    bridges: Sequence[tuple[int, int]], paths: Iterable[Sequence[int] | None]
) -> list[int]:
    """For each bridge, how many of the paths cross it, in either direction (docs/analysis.md, D6).

    Parameters
    ----------
    bridges : sequence of (i, j)
        Undirected edges.
    paths : iterable of node sequences or None
        One path per problem (None: no path); a path counts once per bridge.

    Returns
    -------
    list of int
        The load of each bridge, in the order given.

    Examples
    --------
    >>> bridge_load([(1, 2), (2, 3)], [[1, 2, 3], [3, 2], None, [1, 2, 1, 2]])
    [2, 2]
    """
    index = {_edge_key(a, b): i for i, (a, b) in enumerate(bridges)}
    load = [0] * len(bridges)
    for p in paths:
        if p is None:
            continue
        for e in path_edges(p):
            i = index.get(e)
            if i is not None:
                load[i] += 1
    return load


def _geodesics(
    g: nx.Graph, sources: np.ndarray, targets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Shortest-path length from each source to its target inside g (NaN if not connected)."""
    out = np.full(sources.size, np.nan)
    hops = np.full(sources.size, False)
    cache: dict[int, dict[int, int]] = {}
    for q, (s, t) in enumerate(zip(sources.tolist(), targets.tolist(), strict=True)):
        if s not in g or t not in g:
            continue
        if s not in cache:
            cache[s] = nx.single_source_shortest_path_length(g, s)
        d = cache[s].get(t)
        if d is not None:
            out[q] = d
            hops[q] = True
    return out, hops


def _mean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


@dataclass(frozen=True)
class WebTopology(Result):
    """Topology of a web's undirected projection (definitions: docs/analysis.md, "Concept web").

    The traffic fields are set for the web of a checkpoint (compute_checkpoint_web) only.
    """

    n_nodes: int
    n_edges: int
    avg_degree: float
    n_components: int
    component_sizes: tuple[int, ...]
    giant_size: int
    giant_fraction: float
    n_bridges: int
    bridges: tuple[tuple[int, int], ...]
    bridge_load: tuple[int, ...]
    n_trunk_bridges: int
    max_bridge_load: int
    n_leaves: int
    leaves: tuple[int, ...]
    geodesics: tuple[float, ...]
    mean_geodesic: float
    frac_connected: float
    directed_geodesics: tuple[float, ...]
    mean_directed_geodesic: float
    frac_directed: float
    leaf_entropy: float
    trunk_entropy: float
    traffic_n_nodes: int | None = optional()
    traffic_n_edges: int | None = optional()
    traffic_avg_degree: float | None = optional()
    frac_problems_with_path: float | None = optional()


def web_topology(
    web: Web,
    sources: Sequence[int] | np.ndarray | None = None,
    targets: Sequence[int] | np.ndarray | None = None,
    paths: Sequence[Sequence[int] | None] | None = None,
    node_entropy: np.ndarray | None = None,
    trunk_min_load: int = 2,
) -> WebTopology:
    """Topology of a web measured on its undirected projection (docs/analysis.md, D2 to D8).

    Works on any web: a concept web of a CoNet policy, a traffic web, or an edge list extracted
    from language-model rollouts.

    Parameters
    ----------
    web : networkx graph or iterable of (i, j)
        The web (directed or not); an edge list is read as directed.
    sources, targets : sequences of int, optional
        Each problem's start and answer node (for geodesics); the same length.
    paths : sequence of node sequences or None, optional
        One correct path per problem, or None (for bridge loads and trunk edges).
    node_entropy : array (N,), optional
        Entropy of pi at each node (for leaf and trunk entropy); indexed by node id.
    trunk_min_load : int
        A bridge is a trunk edge when at least this many problems' paths cross it (2).

    Returns
    -------
    WebTopology
        Counts, component sizes, bridges and their loads, leaves, geodesics, entropies.

    Raises
    ------
    ConceptwebError
        If sources and targets differ in length.

    Examples
    --------
    A triangle 0-1-2 with a tail 2-3: one island, one bridge, one leaf.

    >>> t = web_topology([(0, 1), (1, 2), (2, 0), (2, 3)], sources=[0], targets=[3])
    >>> t.n_nodes, t.n_edges, t.avg_degree, t.n_components
    (4, 4, 2.0, 1)
    >>> t.bridges, t.leaves, t.geodesics
    (((2, 3),), (3,), (2.0,))
    """
    web = as_graph(web)
    g = undirected_projection(web)
    n_nodes = g.number_of_nodes()
    n_edges = g.number_of_edges()
    comps = sorted((len(c) for c in nx.connected_components(g)), reverse=True)
    bridges = sorted(_edge_key(a, b) for a, b in nx.bridges(g)) if n_edges else []
    degree = dict(g.degree())
    leaves = sorted(n for n, d in degree.items() if d == 1)
    inner = sorted(n for n, d in degree.items() if d >= 2)
    src = np.asarray([] if sources is None else sources, dtype=np.int64)
    tgt = np.asarray([] if targets is None else targets, dtype=np.int64)
    if src.shape != tgt.shape:
        raise ConceptwebError("sources and targets must have the same length")
    geo, connected = _geodesics(g, src, tgt)
    if web.is_directed():
        dgeo, dconnected = _geodesics(web, src, tgt)
    else:
        dgeo, dconnected = geo, connected
    loads = bridge_load(bridges, paths) if paths is not None else [0] * len(bridges)
    if node_entropy is not None:
        ent = np.asarray(node_entropy, dtype=float)
        leaf_entropy = _mean(ent[leaves]) if leaves else float("nan")
        trunk_entropy = _mean(ent[inner]) if inner else float("nan")
    else:
        leaf_entropy = trunk_entropy = float("nan")
    n_problems = int(src.size)
    return WebTopology(
        n_nodes=n_nodes,
        n_edges=n_edges,
        avg_degree=2.0 * n_edges / n_nodes if n_nodes else float("nan"),
        n_components=len(comps),
        component_sizes=tuple(comps),
        giant_size=comps[0] if comps else 0,
        giant_fraction=comps[0] / n_nodes if n_nodes else float("nan"),
        n_bridges=len(bridges),
        bridges=tuple(bridges),
        bridge_load=tuple(loads),
        n_trunk_bridges=int(sum(1 for x in loads if x >= trunk_min_load)),
        max_bridge_load=int(max(loads)) if loads else 0,
        n_leaves=len(leaves),
        leaves=tuple(leaves),
        geodesics=tuple(geo.tolist()),
        mean_geodesic=_mean(geo),
        frac_connected=float(connected.mean()) if n_problems else float("nan"),
        directed_geodesics=tuple(dgeo.tolist()),
        mean_directed_geodesic=_mean(dgeo),
        frac_directed=float(dconnected.mean()) if n_problems else float("nan"),
        leaf_entropy=leaf_entropy,
        trunk_entropy=trunk_entropy,
    )


# -- correct walks sampled from a policy ---------------------------------------------------------
@dataclass
class WalkSample:
    """Correct walks of a policy: per problem its modal correct path (or None), and their traffic."""

    paths: list[np.ndarray | None]
    accuracy: np.ndarray
    visited: np.ndarray
    traffic: nx.DiGraph = field(repr=False)


def sample_correct_paths(
    probs: np.ndarray,
    neighbors: np.ndarray,
    sources: np.ndarray,
    targets: np.ndarray,
    G: int,
    L: int,
    rng: np.random.Generator,
    engine: str = "numpy",
) -> WalkSample:
    """Sample G walks per problem; each problem's path is its most frequent correct walk (D5).

    Parameters
    ----------
    probs : array (N, K)
        The policy's transition probabilities.
    neighbors : int array (N, K)
        The k-th neighbour of node i.
    sources, targets : int arrays (P,)
        Each problem's start and answer node.
    G : int
        Walks per problem.
    L : int
        Maximum steps per walk.
    rng : numpy.random.Generator
        Source of randomness.
    engine : str
        The rollout engine that samples the walks (`conceptweb.model.engines`); engines draw
        different random numbers, so each gives its own (equally valid) sample.

    Returns
    -------
    WalkSample
        paths (start to answer inclusive, or None), accuracy per problem, visited nodes
        (answers included) and the traffic web of all correct walks. Ties between equally
        frequent correct walks go to the shorter, then to the earlier sampled one.

    Examples
    --------
    A ring of 4 walked upwards with certainty:

    >>> neighbors = np.array([[3, 1], [0, 2], [1, 3], [2, 0]])
    >>> probs = np.tile([0.0, 1.0], (4, 1))
    >>> s = sample_correct_paths(probs, neighbors, np.array([0]), np.array([2]), 4, 5,
    ...                          np.random.default_rng(0))
    >>> s.paths[0].tolist(), s.accuracy.tolist()
    ([0, 1, 2], [1.0])
    """
    sources = np.asarray(sources, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    P = int(sources.size)
    if P == 0:
        return WalkSample([], np.zeros(0), np.zeros(0, np.int64), nx.DiGraph())
    ro = get_engine(engine).sample(neighbors, probs, sources, targets, G, L, rng)
    okw = np.flatnonzero(ro.success)
    # successful walks only (at large N most walks fail, and an (M, L) copy would be large)
    seq = np.full((okw.size, L + 1), -1, dtype=np.int64)
    seq[:, :L] = ro.nodes[okw]
    seq[np.arange(okw.size), ro.lengths[okw]] = targets[ro.problem[okw]]
    a, b = seq[:, :-1], seq[:, 1:]
    valid = (a >= 0) & (b >= 0)
    N = int(np.asarray(neighbors).shape[0])
    codes, counts = np.unique(a[valid] * N + b[valid], return_counts=True)
    traffic = nx.DiGraph()
    traffic.add_edges_from(
        (int(c // N), int(c % N), {"count": int(n)}) for c, n in zip(codes, counts, strict=True)
    )
    visited = np.unique(seq[seq >= 0])
    ok_hashes = ro.path_hashes(okw)  # aligned with okw
    paths: list[np.ndarray | None] = []
    ok_problem = ro.problem[okw]
    order = np.argsort(ok_problem, kind="stable")  # successful walks grouped by problem
    bounds = np.searchsorted(ok_problem[order], np.arange(P + 1))
    for q in range(P):
        rows = order[bounds[q] : bounds[q + 1]]  # rows of okw, seq and ok_hashes
        walks = okw[rows]
        if walks.size == 0:
            paths.append(None)
            continue
        h = ok_hashes[rows]
        uh, first, cnt = np.unique(h, return_index=True, return_counts=True)
        # most frequent, then shortest, then earliest
        lens = ro.lengths[walks[first]]
        best = np.lexsort((first, lens, -cnt))[0]
        row = int(rows[first[best]])
        paths.append(seq[row, : int(ro.lengths[okw[row]]) + 1].copy())
    acc = np.bincount(ro.problem, weights=ro.success, minlength=P) / G
    return WalkSample(paths, acc, visited.astype(np.int64), traffic)


# -- checkpoints ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PolicyArrays:
    """A walk policy and its training problems, as a checkpoint holds them (analysis inputs).

    pi(.|i) = softmax(logits[i] / temperature) over the neighbours neighbors[i]; problem q
    runs from sources[q] to targets[q]; walks stop after L steps (None: unknown); `engine`
    samples the walks that analysis measures (the one the run trained with, by default).
    """

    step: int
    logits: np.ndarray
    neighbors: np.ndarray
    sources: np.ndarray
    targets: np.ndarray
    temperature: float = 1.0
    L: int | None = None
    engine: str = "numpy"


@dataclass(frozen=True, eq=False)
class CheckpointWeb:
    """The concept web of one checkpoint, its topology, and the correct walks measured on it."""

    step: int
    web: nx.DiGraph = field(repr=False)
    topology: WebTopology = field(repr=False)
    sample: WalkSample = field(repr=False)
    sources: np.ndarray = field(repr=False)
    targets: np.ndarray = field(repr=False)
    node_entropy: np.ndarray = field(repr=False)


def policy_from_checkpoint(
    ck: Checkpoint, step: int, L: int | None = None, engine: str = "numpy"
) -> PolicyArrays:
    """The policy arrays of a loaded checkpoint; L defaults to the checkpoint's (stored) L.

    The checkpoint was checked against the run format when it was read
    (`conceptweb.runformat.Checkpoint`), so its arrays are there and of the right shapes.
    """
    return PolicyArrays(
        int(step),
        np.asarray(ck.logits, dtype=np.float64),
        np.asarray(ck.neighbors, dtype=np.int64),
        np.asarray(ck.sources),
        np.asarray(ck.targets),
        ck.temperature,
        ck.L if L is None else L,
        engine,
    )


def compute_checkpoint_web(
    policy: PolicyArrays,
    tau: float = DEFAULT_TAU,
    *,
    restrict_to_visited: bool = False,
    G: int = DEFAULT_ANALYSIS_G,
    seed: int = 0,
) -> CheckpointWeb:
    """The concept web of a policy, its topology, and the correct walks measured on it (pure).

    Correct paths (for bridge loads, the traffic web and the optional restriction to visited
    nodes) come from G walks per problem of at most policy.L steps (100 if unknown), sampled
    with a generator seeded by (seed, 7, step), so the result is deterministic
    (docs/analysis.md, D5).

    Parameters
    ----------
    policy : PolicyArrays
        Logits, neighbours, problems, temperature and L (e.g. from load_policy).
    tau : float
        Web threshold (D1).
    restrict_to_visited : bool
        Keep only web edges between nodes that correct walks visit.
    G : int
        Walks per problem (32).
    seed : int
        Seed of the walks.

    Returns
    -------
    CheckpointWeb
        The web, its WebTopology (with the traffic fields set), the walks, node entropies.

    Examples
    --------
    A line 0-1-2 walked rightwards; the one problem runs from 0 to 2.

    >>> neighbors = np.array([[1, 1], [0, 2], [1, 1]])
    >>> logits = np.array([[0.0, 0.0], [-20.0, 20.0], [0.0, 0.0]])
    >>> policy = PolicyArrays(0, logits, neighbors, np.array([0]), np.array([2]), 1.0, 5)
    >>> cw = compute_checkpoint_web(policy, G=4)
    >>> sorted(cw.web.edges()), cw.topology.n_trunk_bridges, cw.sample.paths[0].tolist()
    ([(0, 1), (1, 2), (2, 1)], 0, [0, 1, 2])
    """
    L = policy.L if policy.L is not None else DEFAULT_L
    probs = softmax(policy.logits, policy.temperature)
    rng = np.random.default_rng([int(seed), 7, int(policy.step)])
    sources, targets = policy.sources, policy.targets
    sample = sample_correct_paths(
        probs, policy.neighbors, sources, targets, G, L, rng, engine=policy.engine
    )
    visited = sample.visited if restrict_to_visited else None
    web = web_from_probs(probs, policy.neighbors, tau, visited)
    ent = entropy(probs)
    topo = web_topology(web, sources, targets, sample.paths, ent)
    tg = undirected_projection(sample.traffic)
    n, m = tg.number_of_nodes(), tg.number_of_edges()
    has = np.array([p is not None for p in sample.paths], dtype=bool)
    topo = replace(
        topo,
        traffic_n_nodes=n,
        traffic_n_edges=m,
        traffic_avg_degree=2.0 * m / n if n else float("nan"),
        frac_problems_with_path=float(has.mean()) if has.size else float("nan"),
    )
    return CheckpointWeb(int(policy.step), web, topo, sample, sources, targets, ent)


def checkpoint_web(
    ck: Checkpoint,
    step: int,
    tau: float = DEFAULT_TAU,
    *,
    restrict_to_visited: bool = False,
    G: int = DEFAULT_ANALYSIS_G,
    L: int | None = None,
    seed: int = 0,
) -> CheckpointWeb:
    """compute_checkpoint_web on a loaded checkpoint (L: the run's, else the checkpoint's).

    Raises ConceptwebError if the checkpoint lacks the policy's arrays.
    """
    policy = policy_from_checkpoint(ck, step, L)
    return compute_checkpoint_web(
        policy, tau, restrict_to_visited=restrict_to_visited, G=G, seed=seed
    )


def _open(run: RunDir | str | Path) -> RunDir:
    return run if isinstance(run, RunDir) else RunDir.open(run)


def run_max_length(run: RunDir) -> int | None:
    """The run's maximum walk length L from its config (None if it has none)."""
    try:
        L = run.read_config().get("model", {}).get("L")
    except ConceptwebError:
        return None
    return int(L) if isinstance(L, int) and L > 0 else None


def load_policy(run: RunDir | str | Path, step: int | None = None) -> PolicyArrays:
    """The policy of a run's checkpoint at `step` (latest if None).

    Parameters
    ----------
    run : RunDir or path
        A run directory with checkpoints.
    step : int, optional
        The checkpoint's step (default: the latest).

    Returns
    -------
    PolicyArrays
        With L as the checkpoint stores it (format 1: the run's config, model.L).

    Raises
    ------
    ConceptwebError
        If the run has no checkpoints, no checkpoint at `step`, or one without logits.
    """
    run = _open(run)
    steps = run.checkpoint_steps()
    if not steps:
        raise ConceptwebError(
            f"{run.path} has no checkpoints (run kind {run.kind!r}); the concept web needs a "
            "policy's logits, which CoNet runs save every checkpoint.every steps"
        )
    step = steps[-1] if step is None else int(step)
    ck = run.load_checkpoint(step)
    return policy_from_checkpoint(ck, step, engine=analysis_engine(run))  # L: stored in it


def analysis_engine(run: RunDir) -> str:
    """The engine whose walks measure a run's webs: the one it trained with (run.json; runs
    written before run.json named it used numpy), numpy where numba is not installed."""
    try:
        name = run.read_meta().get("engine", "numpy")
    except ConceptwebError:
        name = "numpy"
    return "numba" if name == "numba" and numba_available() else "numpy"


_WEB_CACHE: dict[tuple[Any, ...], CheckpointWeb] = {}
_WEB_CACHE_SIZE = 4  # a report asks for the same few snapshots several times


def _checkpoint_web(
    run: RunDir, step: int, tau: float, restrict_to_visited: bool, G: int, seed: int
) -> CheckpointWeb:
    """compute_checkpoint_web of a run's checkpoint, remembered for the last few requests
    (keyed by the checkpoint file's identity, so a resumed or rewritten run is recomputed)."""
    path = run.checkpoint_path(step)
    try:
        st = path.stat()
        stamp: tuple[Any, ...] = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = ()
    key = (*stamp, tau, restrict_to_visited, G, seed)
    if stamp and key in _WEB_CACHE:
        _WEB_CACHE[key] = _WEB_CACHE.pop(key)  # most recently used last
        return _WEB_CACHE[key]
    cw = compute_checkpoint_web(
        load_policy(run, step), tau, restrict_to_visited=restrict_to_visited, G=G, seed=seed
    )
    if stamp:
        _WEB_CACHE[key] = cw
        while len(_WEB_CACHE) > _WEB_CACHE_SIZE:
            del _WEB_CACHE[next(iter(_WEB_CACHE))]
    return cw


def web_at_step(
    run: RunDir | str | Path,
    step: int | None = None,
    tau: float = DEFAULT_TAU,
    *,
    restrict_to_visited: bool = False,
    G: int = DEFAULT_ANALYSIS_G,
    seed: int = 0,
) -> CheckpointWeb:
    """The web of a run's checkpoint at `step` (latest if None): load_policy, then
    compute_checkpoint_web (the last few are remembered: a report draws the same snapshots
    more than once). Raises ConceptwebError as load_policy does.
    """
    run = _open(run)
    if step is None:
        steps = run.checkpoint_steps()
        if not steps:
            load_policy(run)  # its error
        step = steps[-1]
    return _checkpoint_web(run, int(step), tau, restrict_to_visited, G, seed)


def topology_row(cw: CheckpointWeb) -> dict[str, Any]:
    """The scalar columns of TOPOLOGY_COLUMNS for one checkpoint."""
    topo = cw.topology.to_dict()
    row = {"step": cw.step}
    row.update({c: topo[c] for c in TOPOLOGY_COLUMNS if c != "step"})
    return row


def topology_over_training(
    run: RunDir | str | Path,
    tau: float = DEFAULT_TAU,
    *,
    restrict_to_visited: bool = False,
    G: int = DEFAULT_ANALYSIS_G,
    seed: int = 0,
    steps: Sequence[int] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """One row of topology per checkpoint (columns TOPOLOGY_COLUMNS); empty without checkpoints.

    Checkpoints are loaded one at a time (load_policy) and measured (compute_checkpoint_web);
    on_progress(done, total) is called after each.
    """
    run = _open(run)
    available = run.checkpoint_steps()
    todo = available if steps is None else [s for s in steps if s in set(available)]
    rows = []
    for i, s in enumerate(todo):
        rows.append(topology_row(_checkpoint_web(run, s, tau, restrict_to_visited, G, seed)))
        if on_progress is not None:
            on_progress(i + 1, len(todo))
    return pd.DataFrame(rows, columns=TOPOLOGY_COLUMNS)
