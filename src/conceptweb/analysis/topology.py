"""Concept webs of a walk policy (edges with pi >= tau, traffic of correct walks) and their topology.

Definitions (SPEC section 3):
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
from conceptweb.model.policy import entropy, softmax
from conceptweb.model.rollouts import sample_rollouts
from conceptweb.rundir import RunDir

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
    """The directed web i -> j with pi(j|i) >= tau from a transition table probs (N, K).

    Duplicate neighbour columns are summed; self-loops are dropped. If `nodes` is given, the web
    is restricted to edges whose two endpoints are both in `nodes`. Each edge carries "pi".
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
    """The concept web of the policy softmax(logits / temperature): edges with pi >= tau."""
    return web_from_probs(softmax(np.asarray(logits, float), temperature), neighbors, tau, nodes)


def traffic_web(paths: Iterable[Sequence[int] | None], min_count: int = 1) -> nx.DiGraph:
    """Directed edges used by the given (correct) paths; each edge carries "count" (uses)."""
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
    """A web as a networkx graph: graphs pass through, an edge list becomes a DiGraph."""
    return web if isinstance(web, nx.Graph) else nx.DiGraph(list(web))


def undirected_projection(web: Web) -> nx.Graph:
    """The simple undirected graph of a web's edges, without its isolated nodes."""
    g = nx.Graph()
    g.add_edges_from((int(a), int(b)) for a, b in as_graph(web).edges() if a != b)
    return g


# -- topology ------------------------------------------------------------------------------------
def _edge_key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a <= b else (b, a)


def path_edges(path: Sequence[int]) -> set[tuple[int, int]]:
    """The undirected edges (min, max) a node path crosses."""
    seq = [int(x) for x in path]
    return {_edge_key(a, b) for a, b in zip(seq[:-1], seq[1:], strict=True) if a != b}


def bridge_load(
    bridges: Sequence[tuple[int, int]], paths: Iterable[Sequence[int] | None]
) -> list[int]:
    """For each bridge, how many of the paths (one per problem) cross it, in either direction."""
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
    """Topology of a web (directed or undirected) measured on its undirected projection.

    sources/targets: the problems' start and answer nodes (for geodesics); paths: one correct
    path per problem or None (for bridge loads); node_entropy: entropy of pi at each node (for
    leaf and trunk entropy). Returns scalars plus lists: component_sizes, bridges, bridge_load,
    leaves, geodesics, directed_geodesics. A bridge is a "trunk" bridge when at least
    `trunk_min_load` problems' paths cross it. Trunk nodes are web nodes of degree >= 2.
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
) -> WalkSample:
    """Sample G walks per problem; each problem's path is its most frequent correct walk.

    Ties between equally frequent correct walks go to the shorter, then the earlier sampled one.
    Paths run from the start to the answer inclusive. `visited` lists the nodes correct walks
    visit (answers included); `traffic` is the traffic web of all correct walks.
    """
    sources = np.asarray(sources, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    P = int(sources.size)
    if P == 0:
        return WalkSample([], np.zeros(0), np.zeros(0, np.int64), nx.DiGraph())
    ro = sample_rollouts(neighbors, probs, sources, targets, G, L, rng)
    M = ro.problem.size
    seq = np.full((M, L + 1), -1, dtype=np.int64)
    seq[:, :L] = ro.nodes
    ok = ro.success
    okw = np.flatnonzero(ok)
    seq[okw, ro.lengths[okw]] = targets[ro.problem[okw]]
    a, b = seq[okw, :-1], seq[okw, 1:]
    valid = (a >= 0) & (b >= 0)
    N = int(np.asarray(neighbors).shape[0])
    codes, counts = np.unique(a[valid] * N + b[valid], return_counts=True)
    traffic = nx.DiGraph()
    traffic.add_edges_from(
        (int(c // N), int(c % N), {"count": int(n)}) for c, n in zip(codes, counts, strict=True)
    )
    on_path = seq[okw]
    visited = np.unique(on_path[on_path >= 0])
    hashes = ro.path_hashes()
    paths: list[np.ndarray | None] = []
    for q in range(P):
        walks = okw[ro.problem[okw] == q]
        if walks.size == 0:
            paths.append(None)
            continue
        h = hashes[walks]
        uh, first, cnt = np.unique(h, return_index=True, return_counts=True)
        # most frequent, then shortest, then earliest
        lens = ro.lengths[walks[first]]
        best = np.lexsort((first, lens, -cnt))[0]
        w = int(walks[first[best]])
        paths.append(seq[w, : int(ro.lengths[w]) + 1].copy())
    acc = np.bincount(ro.problem, weights=ok, minlength=P) / G
    return WalkSample(paths, acc, visited.astype(np.int64), traffic)


# -- checkpoints ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PolicyArrays:
    """A walk policy and its training problems, as a checkpoint holds them (analysis inputs).

    pi(.|i) = softmax(logits[i] / temperature) over the neighbours neighbors[i]; problem q
    runs from sources[q] to targets[q]; walks stop after L steps (None: unknown).
    """

    step: int
    logits: np.ndarray
    neighbors: np.ndarray
    sources: np.ndarray
    targets: np.ndarray
    temperature: float = 1.0
    L: int | None = None


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
    ck: dict[str, np.ndarray], step: int, L: int | None = None
) -> PolicyArrays:
    """The policy arrays of a loaded checkpoint; L defaults to the width of its own paths."""
    where = f"at step {step}"
    missing = [k for k in ("logits", "neighbors", "sources", "targets") if k not in ck]
    if missing:
        raise ConceptwebError(
            f"checkpoint {where} lacks {', '.join(missing)} (older or foreign format?)"
        )
    logits = np.asarray(ck["logits"], dtype=np.float64)
    neighbors = np.asarray(ck["neighbors"], dtype=np.int64)
    if logits.shape != neighbors.shape or logits.ndim != 2:
        raise ConceptwebError(f"checkpoint {where} has logits and neighbours of different shapes")
    T = float(ck["temperature"]) if "temperature" in ck else 1.0
    if L is None and "own_paths" in ck:
        L = int(ck["own_paths"].shape[1] - 1)
    return PolicyArrays(
        int(step), logits, neighbors, np.asarray(ck["sources"]), np.asarray(ck["targets"]), T, L
    )


def compute_checkpoint_web(
    policy: PolicyArrays,
    tau: float = DEFAULT_TAU,
    *,
    restrict_to_visited: bool = False,
    G: int = DEFAULT_ANALYSIS_G,
    seed: int = 0,
) -> CheckpointWeb:
    """Web and topology of a policy on its training problems.

    Correct paths (for bridge loads, the traffic web and the optional restriction to visited
    nodes) come from G walks per problem of at most policy.L steps (DEFAULT_L if unknown),
    sampled with a generator seeded by (seed, 7, step), so the result is deterministic.
    """
    L = policy.L if policy.L is not None else DEFAULT_L
    probs = softmax(policy.logits, policy.temperature)
    rng = np.random.default_rng([int(seed), 7, int(policy.step)])
    sources, targets = policy.sources, policy.targets
    sample = sample_correct_paths(probs, policy.neighbors, sources, targets, G, L, rng)
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
    ck: dict[str, np.ndarray],
    step: int,
    tau: float = DEFAULT_TAU,
    *,
    restrict_to_visited: bool = False,
    G: int = DEFAULT_ANALYSIS_G,
    L: int | None = None,
    seed: int = 0,
) -> CheckpointWeb:
    """compute_checkpoint_web on a loaded checkpoint (L: the run's, else the checkpoint's)."""
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
    """The policy of a run's checkpoint at `step` (latest if None); clear errors if none."""
    run = _open(run)
    steps = run.checkpoint_steps()
    if not steps:
        raise ConceptwebError(
            f"{run.path} has no checkpoints (run kind {run.kind!r}); the concept web needs a "
            "policy's logits, which CoNet runs save every checkpoint.every steps"
        )
    step = steps[-1] if step is None else int(step)
    return policy_from_checkpoint(run.load_checkpoint(step), step, run_max_length(run))


def web_at_step(
    run: RunDir | str | Path,
    step: int | None = None,
    tau: float = DEFAULT_TAU,
    *,
    restrict_to_visited: bool = False,
    G: int = DEFAULT_ANALYSIS_G,
    seed: int = 0,
) -> CheckpointWeb:
    """The web of a run's checkpoint at `step` (latest if None): load_policy, then compute."""
    return compute_checkpoint_web(
        load_policy(run, step), tau, restrict_to_visited=restrict_to_visited, G=G, seed=seed
    )


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
        cw = compute_checkpoint_web(
            load_policy(run, s), tau, restrict_to_visited=restrict_to_visited, G=G, seed=seed
        )
        rows.append(topology_row(cw))
        if on_progress is not None:
            on_progress(i + 1, len(todo))
    return pd.DataFrame(rows, columns=TOPOLOGY_COLUMNS)
