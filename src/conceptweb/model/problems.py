"""Question-answer pairs (s, t) on a concept graph: training, held-out and new problem sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conceptweb.errors import ConceptwebError
from conceptweb.model.graph import ConceptGraph


@dataclass(frozen=True)
class ProblemSet:
    """Start and answer nodes of a list of problems; problem q asks to walk from sources[q] to targets[q]."""

    sources: np.ndarray  # (P,) int32
    targets: np.ndarray  # (P,) int32

    def __post_init__(self) -> None:
        s = np.asarray(self.sources, dtype=np.int32)
        t = np.asarray(self.targets, dtype=np.int32)
        if s.shape != t.shape or s.ndim != 1:
            raise ConceptwebError("sources and targets must be 1-d arrays of equal length")
        if np.any(s == t):
            raise ConceptwebError("a problem's start and answer must differ")
        object.__setattr__(self, "sources", s)
        object.__setattr__(self, "targets", t)

    @classmethod
    def empty(cls) -> ProblemSet:
        return cls(np.zeros(0, np.int32), np.zeros(0, np.int32))

    def __len__(self) -> int:
        return int(self.sources.size)

    def pairs(self) -> set[tuple[int, int]]:
        return set(zip(self.sources.tolist(), self.targets.tolist(), strict=True))

    def concat(self, other: ProblemSet) -> ProblemSet:
        return ProblemSet(
            np.concatenate([self.sources, other.sources]),
            np.concatenate([self.targets, other.targets]),
        )

    def subset(self, index: np.ndarray) -> ProblemSet:
        return ProblemSet(self.sources[index], self.targets[index])


def _sample_pairs(
    graph: ConceptGraph,
    n: int,
    rng: np.random.Generator,
    exclude: set[tuple[int, int]],
    min_dist: int,
    starts: np.ndarray | None = None,
) -> ProblemSet:
    """Sample n distinct ordered pairs (s, t), reachable with distance >= min_dist, not in exclude."""
    if n == 0:
        return ProblemSet.empty()
    candidates_s = np.arange(graph.N) if starts is None else np.asarray(starts)
    dist = graph.distances(candidates_s)
    rows, cols = np.nonzero(np.isfinite(dist) & (dist >= min_dist))
    chosen: list[tuple[int, int]] = []
    seen = set(exclude)
    for idx in rng.permutation(rows.size):
        pair = (int(candidates_s[rows[idx]]), int(cols[idx]))
        if pair in seen:
            continue
        seen.add(pair)
        chosen.append(pair)
        if len(chosen) == n:
            break
    if len(chosen) < n:
        raise ConceptwebError(
            f"cannot sample {n} problems: only {len(chosen)} unused reachable pairs "
            f"with distance >= {min_dist}"
        )
    s, t = zip(*chosen, strict=True)
    return ProblemSet(np.array(s, np.int32), np.array(t, np.int32))


def sample_problems(
    graph: ConceptGraph,
    Q: int,
    held_out: int,
    rng: np.random.Generator,
    *,
    n_starts: int | None = None,
    min_dist: int = 1,
) -> tuple[ProblemSet, ProblemSet]:
    """Q training problems and a disjoint set of held-out problems."""
    starts = None
    if n_starts is not None:
        if n_starts > graph.N:
            raise ConceptwebError(f"n_starts={n_starts} exceeds the number of nodes N={graph.N}")
        starts = np.sort(rng.choice(graph.N, size=n_starts, replace=False))
    train = _sample_pairs(graph, Q, rng, set(), min_dist, starts)
    held = _sample_pairs(graph, held_out, rng, train.pairs(), min_dist)
    return train, held


def sample_new_problems(
    graph: ConceptGraph,
    n: int,
    rng: np.random.Generator,
    exclude: set[tuple[int, int]],
    min_dist: int = 1,
) -> ProblemSet:
    """n problems disjoint from `exclude` (e.g. the training and held-out pairs)."""
    return _sample_pairs(graph, n, rng, exclude, min_dist)
