"""Substrate graph families for CoNet: random regular, Erdős–Rényi, Barabási–Albert, Watts–Strogatz, community.

Every family is built as adjacency lists (the out-neighbours of each node) and stored in a
`ConceptGraph`'s (N, K) table. Where degrees differ between nodes the table is as wide as
the largest out-degree and a node's row is padded by repeating its last neighbour; padded
slots are not actions (`ConceptGraph.valid_actions`) and the policy masks them with
`conceptweb.model.policy.mask_logits`, so the walk never takes them.

Undirected families list both directions of every edge; directed variants give every node
exactly K out-neighbours (in-degrees differ), so the walk never meets a dead end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from conceptweb.errors import ConceptwebError
from conceptweb.model.graph import ConceptGraph, random_regular_graph

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["GRAPH_FAMILIES", "build_graph", "graph_from_out_lists", "check_graph_params"]

GRAPH_FAMILIES = ("random_regular", "erdos_renyi", "barabasi_albert", "watts_strogatz", "community")


def graph_from_out_lists(out: list[list[int]]) -> ConceptGraph:
    """A ConceptGraph from out-neighbour lists (each non-empty), padded to the largest out-degree."""
    if any(len(row) == 0 for row in out):
        raise ConceptwebError("every node needs at least one out-neighbour")
    width = max(len(row) for row in out)
    table = np.empty((len(out), width), dtype=np.int32)
    for i, row in enumerate(out):
        nb = sorted(set(int(j) for j in row))
        table[i, : len(nb)] = nb
        table[i, len(nb) :] = nb[-1]
    return ConceptGraph(table)


def _undirected(g: nx.Graph, rng: np.random.Generator) -> ConceptGraph:
    """Both directions of every edge; an isolated node gets one edge to a random other node."""
    N = g.number_of_nodes()
    for i in range(N):
        if g.degree(i) == 0:
            j = int(rng.integers(N - 1))
            g.add_edge(i, j + (j >= i))
    return graph_from_out_lists([sorted(g.adj[i]) for i in range(N)])


def _k_out(N: int, K: int, weights_of: object, rng: np.random.Generator) -> ConceptGraph:
    """Each node, in random order, draws K distinct out-neighbours with weights_of(i, indeg)."""
    indeg = np.zeros(N)
    out: list[list[int]] = [[] for _ in range(N)]
    for i in rng.permutation(N):
        w = np.asarray(weights_of(int(i), indeg), dtype=np.float64).copy()  # type: ignore[operator]
        w[i] = 0.0
        chosen = rng.choice(N, size=K, replace=False, p=w / w.sum())
        out[i] = chosen.tolist()
        indeg[chosen] += 1
    return graph_from_out_lists(out)


def _ring_out(N: int, K: int, p: float, rng: np.random.Generator) -> ConceptGraph:
    """Directed small world: K nearest ring neighbours (K/2 each side), each rewired with prob p."""
    half = K // 2
    out = []
    for i in range(N):
        row = [(i + d) % N for d in range(-half, half + 1) if d != 0]
        for k in range(len(row)):
            if rng.random() < p:
                free = np.setdiff1d(np.arange(N), [i, *row])
                row[k] = int(rng.choice(free))
        out.append(row)
    return graph_from_out_lists(out)


def _communities(N: int, n_comm: int) -> np.ndarray:
    """Community label of each node: contiguous blocks of (nearly) equal size."""
    return (np.arange(N) * n_comm) // N


def check_graph_params(
    family: str, N: int, K: int, directed: bool, communities: int = 8, community_in: float = 0.9
) -> None:
    """Raise ConceptwebError if the family cannot be built with these sizes."""
    if family not in GRAPH_FAMILIES:
        raise ConceptwebError(
            f"unknown graph family {family!r}; known: {', '.join(GRAPH_FAMILIES)}"
        )
    if N < 2 or K < 1 or K >= N:
        raise ConceptwebError(f"K={K} must be at least 1 and smaller than N={N}")
    if family == "random_regular":
        if directed:
            raise ConceptwebError(
                "random_regular has no directed variant; use erdos_renyi with directed"
            )
        if (N * K) % 2:
            raise ConceptwebError(f"N*K must be even for a K-regular graph (N={N}, K={K})")
    if family in ("barabasi_albert", "watts_strogatz") and K % 2:
        raise ConceptwebError(f"{family} needs an even K (mean degree), got K={K}")
    if family == "community":
        if not 1 <= communities <= N // 2:
            raise ConceptwebError(f"communities must be in [1, N/2], got {communities}")
        if N // communities <= K and community_in > 0:
            raise ConceptwebError(
                f"K={K} is too large for communities of {N // communities} nodes; "
                "use fewer communities"
            )


def build_graph(
    family: str,
    N: int,
    K: int,
    seed: int,
    *,
    directed: bool = False,
    rewire_p: float = 0.1,
    communities: int = 8,
    community_in: float = 0.9,
) -> ConceptGraph:
    """A graph of the named family with N nodes and mean (out-)degree K, reproducible from seed.

    - random_regular: every node has exactly K neighbours (the default; output unchanged).
    - erdos_renyi: G(N, p = K/(N-1)); directed: every node draws K uniform out-neighbours.
    - barabasi_albert: preferential attachment with m = K/2 edges per new node (scale-free);
      directed: out-neighbours drawn with weight in-degree + 1 (scale-free in-degree).
    - watts_strogatz: ring lattice of K nearest neighbours, edges rewired with rewire_p.
    - community: `communities` equal blocks; a fraction community_in of the expected
      degree K falls inside a node's block (a planted-partition, stochastic-block graph).
    """
    check_graph_params(family, N, K, directed, communities, community_in)
    rng = np.random.default_rng([int(seed), 17])
    if family == "random_regular":
        return random_regular_graph(N, K, seed)
    import networkx as nx  # the other families are networkx's generators

    if family == "erdos_renyi":
        if directed:
            return _k_out(N, K, lambda i, d: np.ones(N), rng)
        return _undirected(nx.fast_gnp_random_graph(N, K / (N - 1), seed=int(seed)), rng)
    if family == "barabasi_albert":
        if directed:
            return _k_out(N, K, lambda i, d: d + 1.0, rng)
        return _undirected(nx.barabasi_albert_graph(N, K // 2, seed=int(seed)), rng)
    if family == "watts_strogatz":
        if directed:
            return _ring_out(N, K, rewire_p, rng)
        return _undirected(nx.watts_strogatz_graph(N, K, rewire_p, seed=int(seed)), rng)
    labels = _communities(N, communities)
    if directed:

        def comm_weights(i: int, _indeg: np.ndarray) -> np.ndarray:
            inside = labels == labels[i]
            n_in, n_out = inside.sum() - 1, (~inside).sum()
            w_out = (1 - community_in) / n_out if n_out else 0.0
            return np.where(inside, community_in / n_in, w_out)

        return _k_out(N, K, comm_weights, rng)
    sizes = np.bincount(labels).tolist()
    p_in = min(1.0, community_in * K / (sizes[0] - 1))
    p_out = (1 - community_in) * K / max(N - sizes[0], 1)
    probs = [[p_in if a == b else p_out for b in range(communities)] for a in range(communities)]
    g = nx.stochastic_block_model(sizes, probs, seed=int(seed))
    return _undirected(nx.Graph(g), rng)
