"""Concept graphs stored as an (N, K) neighbour table, with shortest paths for reference solutions.

Shortest paths are computed a few source rows at a time, so memory stays bounded (no N x N
matrix) at N = 100,000 concepts and beyond. Distances and components of undirected graphs come
from a breadth-first search in numpy; scipy (reference paths, directed graphs) and networkx are
imported only where used, so that a training process stays small.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from conceptweb.errors import ConceptwebError

if TYPE_CHECKING:
    import networkx as nx
    from scipy.sparse import csr_matrix

ROW_BUDGET = 2**21  # entries of the (sources x N) distance block computed at once (16 MiB)
DIJKSTRA_MAX_N = 10_000  # up to this size, reference paths come from Dijkstra (see below)


@dataclass(frozen=True)
class ConceptGraph:
    """A directed walk graph: node i steps to neighbors[i, k] with action k (rows sorted)."""

    neighbors: np.ndarray  # (N, K) int32
    _csr: csr_matrix | None = field(default=None, repr=False, compare=False)
    _symmetric: bool | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        nb = np.asarray(self.neighbors)
        if nb.ndim != 2 or nb.shape[1] < 1:
            raise ConceptwebError(f"neighbour table must be (N, K), got shape {nb.shape}")
        if nb.min() < 0 or nb.max() >= nb.shape[0]:
            raise ConceptwebError("neighbour table refers to nodes outside the graph")
        object.__setattr__(self, "neighbors", nb.astype(np.int32, copy=False))

    @property
    def N(self) -> int:
        return int(self.neighbors.shape[0])

    @property
    def K(self) -> int:
        return int(self.neighbors.shape[1])

    @property
    def symmetric(self) -> bool:
        """Whether every step i -> j can be walked back (an undirected graph)."""
        if self._symmetric is None:
            nb = self.neighbors
            back = np.zeros(nb.shape, dtype=bool)
            for k in range(self.K):  # is i among the neighbours of neighbors[i, k]?
                back[:, k] = (nb[nb[:, k]] == np.arange(self.N)[:, None]).any(axis=1)
            object.__setattr__(self, "_symmetric", bool(back.all()))
        return bool(self._symmetric)

    def adjacency(self) -> csr_matrix:
        """Sparse (N, N) adjacency of the walk graph (1 where j is a neighbour of i)."""
        from scipy.sparse import csr_matrix

        if self._csr is None:
            rows = np.repeat(np.arange(self.N), self.K)
            data = np.ones(rows.size, dtype=np.float64)
            csr = csr_matrix((data, (rows, self.neighbors.ravel())), shape=(self.N, self.N))
            object.__setattr__(self, "_csr", csr)
        return self._csr  # type: ignore[return-value]

    def distances(self, sources: np.ndarray | None = None) -> np.ndarray:
        """Unweighted shortest-path lengths from `sources` (all nodes if None); inf if unreachable.

        The result is (len(sources), N): pass few sources on a large graph.
        """
        sources = np.arange(self.N) if sources is None else np.asarray(sources, dtype=np.int64)
        if sources.size == 0:
            return np.zeros((0, self.N))
        return np.concatenate([d for _, d, _ in self.distance_rows(sources)], axis=0)

    def distance_rows(
        self, sources: np.ndarray, predecessors: bool = False, budget: int = ROW_BUDGET
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """(chunk of sources, their distance rows, predecessor rows) in blocks of at most about
        `budget` entries.

        The rows equal those of one call on all sources (each source's search is independent),
        so chunking changes memory, never results.
        """
        sources = np.asarray(sources, dtype=np.int64)
        step = max(1, budget // self.N)
        if not predecessors and self.symmetric:
            for lo in range(0, sources.size, step):
                chunk = sources[lo : lo + step]
                yield chunk, self._bfs_distances(chunk), None
            return
        from scipy.sparse.csgraph import dijkstra

        for lo in range(0, sources.size, step):
            chunk = sources[lo : lo + step]
            out = dijkstra(
                self.adjacency(),
                unweighted=True,
                indices=chunk,
                return_predecessors=predecessors,
            )
            dist, pred = out if predecessors else (out, None)
            yield chunk, dist, pred

    def _bfs_distances(self, sources: np.ndarray) -> np.ndarray:
        """(len(sources), N) step counts of an undirected graph, by a breadth-first search that
        advances all sources together (the pull form, which needs the symmetry).

        The search state is kept node-major, (N, len(sources)), so that pulling from the
        neighbours gathers whole rows rather than single entries (several times faster).
        """
        nb = self.neighbors
        dist = np.full((self.N, sources.size), np.inf)
        frontier = np.zeros((self.N, sources.size), dtype=bool)
        frontier[sources, np.arange(sources.size)] = True
        seen = frontier.copy()
        d = 0
        while frontier.any():
            dist[frontier] = d
            d += 1
            nxt = frontier[nb[:, 0]]  # j is reached if one of its neighbours is on the frontier
            for k in range(1, self.K):
                nxt |= frontier[nb[:, k]]
            nxt &= ~seen
            seen |= nxt
            frontier = nxt
        return np.ascontiguousarray(dist.T)

    def components(self) -> np.ndarray:
        """Strongly connected component label of every node (same label: mutually reachable).

        Only equality of labels means something. Undirected graphs: the smallest node of each
        component, spread by minimum-label propagation with pointer jumping (numpy).
        """
        if not self.symmetric:
            from scipy.sparse.csgraph import connected_components

            _, labels = connected_components(self.adjacency(), directed=True, connection="strong")
            return labels
        labels = np.arange(self.N)
        while True:
            new = np.minimum(labels, labels[self.neighbors].min(axis=1))
            new = new[new]
            if np.array_equal(new, labels):
                return labels
            labels = new

    def shortest_paths(self, sources: np.ndarray, targets: np.ndarray) -> list[np.ndarray]:
        """One shortest path (node sequence from s to t inclusive) per (s, t) pair."""
        sources = np.asarray(sources, dtype=np.int64)
        targets = np.asarray(targets, dtype=np.int64)
        uniq, inverse = np.unique(sources, return_inverse=True)
        by_source: dict[int, list[int]] = {}
        for i, row in enumerate(inverse.tolist()):
            by_source.setdefault(int(uniq[row]), []).append(i)
        paths: list[np.ndarray] = [np.zeros(0, np.int32)] * sources.size
        for s, pred in self._predecessor_rows(uniq):
            for i in by_source[s]:
                paths[i] = _walk_back(pred, s, int(targets[i]))
        return paths

    def _predecessor_rows(self, sources: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(source, predecessor of every node on one shortest path from it; < 0 if none).

        Graphs up to DIJKSTRA_MAX_N nodes use the Dijkstra search of earlier versions, so their
        reference paths (ties included) stay the same; larger ones a breadth-first search, about
        ten times faster (5 ms per source at N = 100,000).
        """
        if self.N <= DIJKSTRA_MAX_N:
            for chunk, _, pred in self.distance_rows(sources, predecessors=True):
                assert pred is not None
                yield from zip(chunk.tolist(), pred, strict=True)
            return
        from scipy.sparse.csgraph import breadth_first_order

        for s in sources.tolist():
            _, pred = breadth_first_order(self.adjacency(), s, return_predecessors=True)
            yield s, pred

    def action_index(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """The action k with neighbors[src, k] == dst, for arrays of edges; error if not an edge."""
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        match = self.neighbors[src] == dst[:, None]
        if not match.any(axis=1).all():
            bad = int(np.flatnonzero(~match.any(axis=1))[0])
            raise ConceptwebError(f"{src[bad]} -> {dst[bad]} is not an edge of the graph")
        return match.argmax(axis=1)

    def valid_actions(self) -> np.ndarray:
        """(N, K) bool: False on padding slots (a repeat of the previous neighbour in a sorted row)."""
        nb = self.neighbors
        valid = np.ones(nb.shape, dtype=bool)
        valid[:, 1:] = nb[:, 1:] != nb[:, :-1]
        return valid

    def out_degrees(self) -> np.ndarray:
        """Number of distinct out-neighbours of each node, shape (N,)."""
        return self.valid_actions().sum(axis=1)

    def to_networkx(self) -> nx.Graph:
        """The undirected simple graph underlying the walk graph."""
        import networkx as nx

        g = nx.Graph()
        g.add_nodes_from(range(self.N))
        rows = np.repeat(np.arange(self.N), self.K)
        g.add_edges_from(zip(rows.tolist(), self.neighbors.ravel().tolist(), strict=True))
        return g


def _walk_back(pred: np.ndarray, s: int, t: int) -> np.ndarray:
    """The path s -> t read backwards from a predecessor row."""
    if t != s and pred[t] < 0:
        raise ConceptwebError(f"node {t} is unreachable from {s}")
    path = [t]
    while path[-1] != s:
        path.append(int(pred[path[-1]]))
    return np.array(path[::-1], dtype=np.int32)


def random_regular_graph(N: int, K: int, seed: int) -> ConceptGraph:
    """A uniformly random simple K-regular graph on N nodes (both edge directions walkable)."""
    if N < 2:
        raise ConceptwebError(f"a graph needs at least 2 nodes, got N={N}")
    if K < 1 or K >= N:
        raise ConceptwebError(f"K must satisfy 1 <= K < N, got K={K}, N={N}")
    if (N * K) % 2:
        raise ConceptwebError(f"N*K must be even for a K-regular graph (N={N}, K={K})")
    adj: list[list[int]] = [[] for _ in range(N)]
    for i, j in _random_regular_edges(N, K, random.Random(int(seed))):
        adj[i].append(j)
        adj[j].append(i)
    return ConceptGraph(np.array([sorted(a) for a in adj], dtype=np.int32))


def _random_regular_edges(n: int, d: int, rng: random.Random) -> set[tuple[int, int]]:
    """The edge set of networkx's `random_regular_graph(d, n, seed)` (networkx 3, BSD licence:
    the Steger-Wormald pairing algorithm), draw for draw, so graphs stay the same for a seed
    without importing networkx; tests compare the two."""

    def suitable(edges: set[tuple[int, int]], potential: dict[int, Any]) -> bool:
        if not potential:
            return True
        for s1 in potential:
            for s2 in potential:
                if s1 == s2:
                    break
                if s1 > s2:
                    s1, s2 = s2, s1
                if (s1, s2) not in edges:
                    return True
        return False

    def attempt() -> set[tuple[int, int]] | None:
        edges: set[tuple[int, int]] = set()
        stubs = list(range(n)) * d
        while stubs:
            potential: dict[int, int] = defaultdict(lambda: 0)
            rng.shuffle(stubs)
            it = iter(stubs)
            for s1, s2 in zip(it, it, strict=False):
                if s1 > s2:
                    s1, s2 = s2, s1
                if s1 != s2 and (s1, s2) not in edges:
                    edges.add((s1, s2))
                else:
                    potential[s1] += 1
                    potential[s2] += 1
            if not suitable(edges, potential):
                return None
            stubs = [node for node, count in potential.items() for _ in range(count)]
        return edges

    edges = attempt() if d > 0 else set()
    while edges is None:
        edges = attempt()
    return edges
