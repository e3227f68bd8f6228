"""Concept graphs stored as an (N, K) neighbour table, with shortest paths for reference solutions."""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path

from conceptweb.errors import ConceptwebError


@dataclass(frozen=True)
class ConceptGraph:
    """A directed walk graph: node i steps to neighbors[i, k] with action k (rows sorted)."""

    neighbors: np.ndarray  # (N, K) int32
    _csr: csr_matrix | None = field(default=None, repr=False, compare=False)

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

    def adjacency(self) -> csr_matrix:
        """Sparse (N, N) adjacency of the walk graph (1 where j is a neighbour of i)."""
        if self._csr is None:
            rows = np.repeat(np.arange(self.N), self.K)
            data = np.ones(rows.size, dtype=np.float64)
            csr = csr_matrix((data, (rows, self.neighbors.ravel())), shape=(self.N, self.N))
            object.__setattr__(self, "_csr", csr)
        return self._csr  # type: ignore[return-value]

    def distances(self, sources: np.ndarray | None = None) -> np.ndarray:
        """Unweighted shortest-path lengths from `sources` (all nodes if None); inf if unreachable."""
        return shortest_path(self.adjacency(), method="D", unweighted=True, indices=sources)

    def shortest_paths(self, sources: np.ndarray, targets: np.ndarray) -> list[np.ndarray]:
        """One shortest path (node sequence from s to t inclusive) per (s, t) pair."""
        sources = np.asarray(sources, dtype=np.int64)
        targets = np.asarray(targets, dtype=np.int64)
        uniq, inverse = np.unique(sources, return_inverse=True)
        dist, pred = shortest_path(
            self.adjacency(), method="D", unweighted=True, indices=uniq, return_predecessors=True
        )
        paths = []
        for row, t in zip(inverse, targets, strict=True):
            if not np.isfinite(dist[row, t]):
                raise ConceptwebError(f"node {t} is unreachable from {uniq[row]}")
            path = [int(t)]
            while path[-1] != uniq[row]:
                path.append(int(pred[row, path[-1]]))
            paths.append(np.array(path[::-1], dtype=np.int32))
        return paths

    def action_index(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """The action k with neighbors[src, k] == dst, for arrays of edges; error if not an edge."""
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        match = self.neighbors[src] == dst[:, None]
        if not match.any(axis=1).all():
            bad = int(np.flatnonzero(~match.any(axis=1))[0])
            raise ConceptwebError(f"{src[bad]} -> {dst[bad]} is not an edge of the graph")
        return match.argmax(axis=1)

    def to_networkx(self) -> nx.Graph:
        """The undirected simple graph underlying the walk graph."""
        g = nx.Graph()
        g.add_nodes_from(range(self.N))
        rows = np.repeat(np.arange(self.N), self.K)
        g.add_edges_from(zip(rows.tolist(), self.neighbors.ravel().tolist(), strict=True))
        return g


def random_regular_graph(N: int, K: int, seed: int) -> ConceptGraph:
    """A uniformly random simple K-regular graph on N nodes (both edge directions walkable)."""
    if N < 2:
        raise ConceptwebError(f"a graph needs at least 2 nodes, got N={N}")
    if K < 1 or K >= N:
        raise ConceptwebError(f"K must satisfy 1 <= K < N, got K={K}, N={N}")
    if (N * K) % 2:
        raise ConceptwebError(f"N*K must be even for a K-regular graph (N={N}, K={K})")
    g = nx.random_regular_graph(K, N, seed=int(seed))
    neighbors = np.array([sorted(g.adj[i]) for i in range(N)], dtype=np.int32)
    return ConceptGraph(neighbors)
