"""Concept graphs stored as an (N, K) neighbour table, with shortest paths for reference solutions.

Shortest paths are computed a few source rows at a time, so memory stays bounded (no N x N
matrix) at N = 100,000 concepts and beyond. Distances and components of undirected graphs come
from a breadth-first search in numpy; scipy (reference paths, directed graphs) and networkx are
imported only where used, so that a training process stays small.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from conceptweb.errors import ConceptwebError
from conceptweb.model.shuffle import PythonShuffle

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
        advances all sources together (`_bfs_levels`)."""
        dist = np.full((self.N, sources.size), np.inf)
        for d, frontier in enumerate(self._bfs_levels(sources)):
            dist[frontier] = d
        return np.ascontiguousarray(dist.T)

    def _bfs_levels(self, sources: np.ndarray) -> Iterator[np.ndarray]:
        """The breadth-first search's frontiers, level by level, of an undirected graph: (N,
        len(sources)) bool, True where the node is exactly that many steps from the source.

        All sources advance together by the pull form (a node is reached if one of its
        neighbours is on the frontier), which needs the symmetry. The state is node-major so
        that pulling from the neighbours gathers whole rows (several times faster).
        """
        nb = self.neighbors
        frontier = np.zeros((self.N, sources.size), dtype=bool)
        frontier[sources, np.arange(sources.size)] = True
        seen = frontier.copy()
        while frontier.any():
            yield frontier
            nxt = frontier[nb[:, 0]]
            for k in range(1, self.K):
                nxt |= frontier[nb[:, k]]
            nxt &= ~seen
            seen |= nxt
            frontier = nxt

    def within(self, sources: np.ndarray, radius: int) -> np.ndarray:
        """(len(sources), N) bool: the nodes at most `radius` steps from each source.

        Undirected graphs search only `radius` levels (cheap for a small radius, where a full
        search would visit the whole graph); directed ones compare distances.
        """
        sources = np.asarray(sources, dtype=np.int64)
        if not self.symmetric:
            return self.distances(sources) <= radius
        near = np.zeros((self.N, sources.size), dtype=bool)
        if radius >= 0:
            for d, frontier in enumerate(self._bfs_levels(sources)):
                near |= frontier
                if d == radius:
                    break
        return np.ascontiguousarray(near.T)

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
    lo, hi = np.divmod(_random_regular_edges(N, K, PythonShuffle(int(seed))), N)
    src, dst = np.concatenate([lo, hi]), np.concatenate([hi, lo])
    both = np.sort(src * N + dst)  # every node's K neighbours, node by node, sorted
    table = (both % N).astype(np.int32).reshape(N, K)
    return ConceptGraph(table, _symmetric=True)  # both directions of every edge


def _random_regular_edges(
    n: int, d: int, shuffle: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """The edges of networkx's `random_regular_graph(d, n, seed)` as sorted keys lo * n + hi
    (lo < hi), draw for draw, so graphs stay the same for a seed without importing networkx;
    tests compare the two.

    networkx 3's Steger-Wormald pairing (BSD licence) in arrays: shuffle the stubs (d per
    node), pair them off in order; a pair that is a loop or an edge already (made earlier, or
    by an earlier pair of this round) returns both its stubs to the next round, in the order in
    which its nodes first came back; an attempt is dropped when no two returned nodes can still
    be joined. Only the shuffles draw random numbers: `shuffle` is networkx's
    `random.Random(seed).shuffle` (`PythonShuffle`).
    """
    while True:
        edges = _pairing_attempt(n, d, shuffle)
        if edges is not None:
            return edges


def _pairing_attempt(
    n: int, d: int, shuffle: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray | None:
    """One attempt of the pairing (see _random_regular_edges): its edges, or None if stuck."""
    edges = np.zeros(0, dtype=np.int64)
    stubs = np.tile(np.arange(n, dtype=np.int64), d)
    while stubs.size:
        pairs = shuffle(stubs)[: stubs.size // 2 * 2].reshape(-1, 2)
        lo, hi = pairs.min(axis=1), pairs.max(axis=1)
        key = lo * n + hi
        fresh = np.flatnonzero((lo != hi) & ~_sorted_contains(edges, key))
        new, first = np.unique(key[fresh], return_index=True)  # a key's first pair is its edge
        made = np.zeros(key.size, dtype=bool)
        made[fresh[first]] = True
        edges = np.sort(np.concatenate([edges, new]))
        back = np.stack([lo[~made], hi[~made]], axis=1).ravel()  # returned stubs, in order
        nodes, seen_at, counts = np.unique(back, return_index=True, return_counts=True)
        by_return = np.argsort(seen_at)
        nodes, counts = nodes[by_return], counts[by_return]
        if nodes.size and not _joinable(edges, nodes, n):
            return None
        stubs = np.repeat(nodes, counts)
    return edges


def _sorted_contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of `keys` is in the sorted array `sorted_keys`."""
    if not sorted_keys.size:
        return np.zeros(keys.shape, dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[at] == keys


def _joinable(edges: np.ndarray, nodes: np.ndarray, n: int) -> bool:
    """networkx's test whether the returned `nodes` (in the order they came back) can still be
    paired, quirk included: the first node of a pair becomes the smaller of the two, and the
    search goes on from it. Usually the first pair it looks at is free."""
    keys = nodes.tolist()
    for a in keys:
        s1 = a
        for s2 in keys:
            if s1 == s2:
                break
            lo, hi = min(s1, s2), max(s1, s2)
            at = int(np.searchsorted(edges, lo * n + hi))
            if at == edges.size or edges[at] != lo * n + hi:
                return True
            s1 = lo
    return False
