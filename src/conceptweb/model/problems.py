"""Question-answer pairs (s, t) on a concept graph: training, held-out and new problem sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conceptweb.errors import ConceptwebError
from conceptweb.model.graph import ConceptGraph
from conceptweb.model.shuffle import generator_shuffle


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


EXHAUSTIVE_PAIRS = 2**22  # up to this many (start, node) pairs, list every valid pair
MASK_BUDGET = 2**17  # distances computed at once while listing them (1 MiB)


def _sample_pairs(
    graph: ConceptGraph,
    n: int,
    rng: np.random.Generator,
    exclude: set[tuple[int, int]],
    min_dist: int,
    starts: np.ndarray | None = None,
    answers: np.ndarray | None = None,
    distinct: bool = False,
) -> ProblemSet:
    """Sample n distinct ordered pairs (s, t), reachable with distance >= min_dist, not in exclude.

    `starts` / `answers` restrict the start / answer nodes; `distinct` makes every start and
    every answer appear once, and no node be both a start and an answer.
    Uniform over the valid pairs. Small graphs list every valid pair and shuffle (the draws of
    earlier versions, kept so a seed's problems do not change); large ones draw pairs at random
    and reject invalid ones, which needs memory proportional to n, not to N squared.
    """
    if n == 0:
        return ProblemSet.empty()
    candidates = np.arange(graph.N) if starts is None else np.asarray(starts, dtype=np.int64)
    if candidates.size * graph.N <= EXHAUSTIVE_PAIRS:
        chosen = _listed_pairs(graph, n, rng, exclude, min_dist, candidates, answers, distinct)
    else:
        chosen = _rejected_pairs(graph, n, rng, exclude, min_dist, candidates, answers, distinct)
    if len(chosen) < n:
        raise ConceptwebError(
            f"cannot sample {n} problems: only {len(chosen)} unused reachable pairs "
            f"with distance >= {min_dist}"
        )
    s, t = zip(*chosen, strict=True)
    return ProblemSet(np.array(s, np.int32), np.array(t, np.int32))


def _listed_pairs(
    graph: ConceptGraph,
    n: int,
    rng: np.random.Generator,
    exclude: set[tuple[int, int]],
    min_dist: int,
    candidates: np.ndarray,
    answers: np.ndarray | None = None,
    distinct: bool = False,
) -> list[tuple[int, int]]:
    """Every valid pair listed, then taken in a random order.

    The valid pairs are the True entries of a (candidates, N) mask, in row-major order; the
    k-th of them is found by a binary search in the mask's running count instead of listing
    their rows and columns (two int64 arrays, 10 MiB at N=800). The shuffled order draws the
    same numbers as `rng.permutation` (which shuffles an arange) in an int32 array, compiled
    where the kernels are at hand (`generator_shuffle`).
    """
    ok = _valid_mask(graph, min_dist, candidates, answers).ravel()
    running = ok.astype(np.int32)
    np.cumsum(running, out=running)  # (a cast inside cumsum is ten times slower)
    order = np.arange(int(running[-1]) if running.size else 0, dtype=np.int32)
    generator_shuffle(rng, order)
    chosen = _Chosen(exclude, distinct)
    batch = max(64, 2 * n)
    for lo in range(0, order.size, batch):
        flat = np.searchsorted(running, order[lo : lo + batch] + 1)
        rows, cols = np.divmod(flat, graph.N)
        for r, t in zip(rows.tolist(), cols.tolist(), strict=True):
            s = int(candidates[r])
            if chosen.free(s, t) and chosen.take(s, t) == n:
                return chosen.pairs
    return chosen.pairs


def _valid_mask(
    graph: ConceptGraph, min_dist: int, candidates: np.ndarray, answers: np.ndarray | None
) -> np.ndarray:
    """(candidates, N): t is reachable from the candidate in at least min_dist steps (and is an
    allowed answer).

    Undirected graphs: t is in the candidate's component and outside its ball of radius
    min_dist - 1 (a search of that many levels, not of the whole graph); directed graphs: from
    the distances. Either is computed a block of rows at a time.
    """
    ok = np.empty((candidates.size, graph.N), dtype=bool)
    if graph.symmetric:
        labels = graph.components()
        step = max(1, MASK_BUDGET // graph.N)
        np.equal(labels[candidates][:, None], labels[None, :], out=ok)
        for lo in range(0, candidates.size, step):
            ok[lo : lo + step] &= ~graph.within(candidates[lo : lo + step], min_dist - 1)
    else:
        lo = 0
        for chunk, dist, _ in graph.distance_rows(candidates, budget=MASK_BUDGET):
            block = ok[lo : lo + chunk.size]
            np.isfinite(dist, out=block)
            block &= dist >= min_dist
            lo += chunk.size
    if answers is not None:
        allowed = np.zeros(graph.N, dtype=bool)
        allowed[np.asarray(answers)] = True
        ok &= allowed[None, :]
    return ok


def _rejected_pairs(
    graph: ConceptGraph,
    n: int,
    rng: np.random.Generator,
    exclude: set[tuple[int, int]],
    min_dist: int,
    candidates: np.ndarray,
    answers: np.ndarray | None = None,
    distinct: bool = False,
) -> list[tuple[int, int]]:
    """Uniform (start, node) draws, kept when valid and unused; gives up after many rejections."""
    labels = graph.components()
    chosen = _Chosen(exclude, distinct)
    targets = np.arange(graph.N) if answers is None else np.asarray(answers, dtype=np.int64)
    rejected, budget = 0, 100 * n + 1000
    while len(chosen.pairs) < n and rejected < budget:
        s_draw = candidates[rng.integers(candidates.size, size=n)]
        t_draw = targets[rng.integers(targets.size, size=n)]
        for s, t in zip(s_draw.tolist(), t_draw.tolist(), strict=True):
            if not chosen.free(s, t) or not _far_enough(graph, labels, s, t, min_dist):
                rejected += 1
                continue
            if chosen.take(s, t) == n:
                break
    return chosen.pairs


class _Chosen:
    """The pairs taken so far: never a pair twice nor an excluded one; with `distinct`, never
    a node twice."""

    def __init__(self, exclude: set[tuple[int, int]], distinct: bool) -> None:
        self.pairs: list[tuple[int, int]] = []
        self.seen = set(exclude)
        self.used: set[int] = set()
        self.distinct = distinct

    def free(self, s: int, t: int) -> bool:
        """(s, t) may be taken."""
        clash = self.distinct and (s in self.used or t in self.used)
        return (s, t) not in self.seen and not clash

    def take(self, s: int, t: int) -> int:
        """Take (s, t); returns how many pairs are taken."""
        self.seen.add((s, t))
        self.used.update((s, t))
        self.pairs.append((s, t))
        return len(self.pairs)


def _far_enough(graph: ConceptGraph, labels: np.ndarray, s: int, t: int, min_dist: int) -> bool:
    """t is reachable from s in at least min_dist steps."""
    if s == t:
        return False
    if labels[s] != labels[t]:  # maybe reachable one way (directed graphs): search from s
        d = graph.distances(np.array([s]))[0, t]
        return bool(np.isfinite(d) and d >= min_dist)
    ball = np.array([s])
    for _ in range(min_dist - 1):  # the nodes fewer than min_dist steps from s
        ball = np.union1d(ball, graph.neighbors[ball].ravel())
        if np.any(ball == t):
            return False
    return True


def sample_problems(
    graph: ConceptGraph,
    Q: int,
    held_out: int,
    rng: np.random.Generator,
    *,
    n_starts: int | None = None,
    min_dist: int = 1,
    n_answers: int | None = None,
    distinct: bool = False,
) -> tuple[ProblemSet, ProblemSet]:
    """Q training problems and a disjoint set of held-out problems.

    Problem structure: random pairs (default); `n_starts` / `n_answers`: the training
    problems share that many start / answer nodes (held-out problems keep the answer
    nodes, with any start); `distinct`: all starts and answers differ (in each set).
    """
    starts = None
    if n_starts is not None:
        if n_starts > graph.N:
            raise ConceptwebError(f"n_starts={n_starts} exceeds the number of nodes N={graph.N}")
        starts = np.sort(rng.choice(graph.N, size=n_starts, replace=False))
    answers = None
    if n_answers is not None:
        if n_answers > graph.N:
            raise ConceptwebError(f"n_answers={n_answers} exceeds the number of nodes N={graph.N}")
        answers = np.sort(rng.choice(graph.N, size=n_answers, replace=False))
    train = _sample_pairs(graph, Q, rng, set(), min_dist, starts, answers, distinct)
    held = _sample_pairs(graph, held_out, rng, train.pairs(), min_dist, None, answers, distinct)
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
