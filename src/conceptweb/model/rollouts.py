"""Vectorised rollouts: all walkers of all problems advance together until their target or L steps."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)
_SMALL_K = 12  # up to this many neighbours, counting column by column is faster


@dataclass
class Rollouts:
    """G walks per problem; walk m belongs to problem[m] and took lengths[m] steps."""

    problem: np.ndarray  # (M,) int64, problem index of each walk
    nodes: np.ndarray  # (M, L) int32, node before step t, -1 past the end
    actions: np.ndarray  # (M, L) int16, action taken at step t, -1 past the end
    lengths: np.ndarray  # (M,) int32, steps taken (L for a walk that never arrived)
    success: np.ndarray  # (M,) bool, reached the target
    n_problems: int
    G: int
    _tokens: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def rewards(self) -> np.ndarray:
        return self.success.astype(np.float64)

    @property
    def mask(self) -> np.ndarray:
        return self.actions >= 0

    def tokens(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(walk index, node, action) of every step actually taken, flattened (computed once)."""
        if self._tokens is None:
            walk, t = np.nonzero(self.mask)
            self._tokens = (
                walk,
                self.nodes[walk, t].astype(np.int64),
                self.actions[walk, t].astype(np.int64),
            )
        return self._tokens

    def path_hashes(self, walks: np.ndarray | None = None) -> np.ndarray:
        """A 64-bit fingerprint of each walk's action sequence (walks of a problem share a start);
        of the walks indexed by `walks` only, when given (callers hash just the successes)."""
        actions = self.actions if walks is None else self.actions[walks]
        lengths = self.lengths if walks is None else self.lengths[walks]
        L = actions.shape[1]
        powers = np.cumprod(np.full(L, _HASH_BASE, dtype=np.uint64), dtype=np.uint64)
        symbols = (actions.astype(np.int64) + 1).astype(np.uint64)
        with np.errstate(over="ignore"):
            h = (symbols * powers[None, :]).sum(axis=1, dtype=np.uint64)
        return h ^ lengths.astype(np.uint64)

    def paths(self, index: int) -> np.ndarray:
        """The node sequence of walk `index`, from its start to where it stopped (inclusive)."""
        n = int(self.lengths[index])
        return self.nodes[index, :n]


def problem_of_walks(P: int, G: int) -> np.ndarray:
    """The problem index of each walk: G consecutive walks per problem, as every engine lays
    them out."""
    return np.repeat(np.arange(P, dtype=np.int64), G)


def sample_rollouts(
    neighbors: np.ndarray,
    probs: np.ndarray,
    sources: np.ndarray,
    targets: np.ndarray,
    G: int,
    L: int,
    rng: np.random.Generator,
) -> Rollouts:
    """G walks per (source, target) under transition table probs (N, K), at most L steps each.

    Sampling inverts each row's cumulative distribution by counting the entries below a
    uniform draw (column by column for small K, which avoids a walkers x K temporary).
    """
    K = probs.shape[1]
    P = int(len(sources))
    M = P * G
    problem = problem_of_walks(P, G)
    cdf = np.cumsum(probs, axis=1)
    cdf[:, -1] = np.inf  # a uniform draw in [0, 1) always lands on some action
    by_column = K <= _SMALL_K
    cdf_cols = np.ascontiguousarray(cdf[:, :-1].T)
    flat_nb = np.asarray(neighbors, dtype=np.int64).ravel()
    walkers = np.arange(M)
    here = np.asarray(sources, dtype=np.int64)[problem]
    goal = np.asarray(targets, dtype=np.int64)[problem]
    lengths = np.full(M, L, dtype=np.int32)
    success = np.zeros(M, dtype=bool)
    steps_w, steps_n, steps_a = [], [], []
    for t in range(L):
        if walkers.size == 0:
            break
        u = rng.random(walkers.size)
        if by_column:
            action = np.zeros(walkers.size, dtype=np.int64)
            for col in cdf_cols:
                action += col[here] <= u
        else:
            action = (cdf[here] <= u[:, None]).sum(axis=1)
        flat = here * K + action
        steps_w.append(walkers)
        steps_n.append(here)
        steps_a.append(action)
        nxt = flat_nb[flat]
        hit = nxt == goal
        if hit.any():
            arrived = walkers[hit]
            lengths[arrived] = t + 1
            success[arrived] = True
            keep = ~hit
            walkers, here, goal = walkers[keep], nxt[keep], goal[keep]
        else:
            here = nxt
    nodes = np.full((M, L), -1, dtype=np.int32)
    actions = np.full((M, L), -1, dtype=np.int16)
    if steps_w:
        w = np.concatenate(steps_w)
        t_idx = np.repeat(np.arange(len(steps_w)), [x.size for x in steps_w])
        nodes[w, t_idx] = np.concatenate(steps_n)
        actions[w, t_idx] = np.concatenate(steps_a)
    return Rollouts(problem, nodes, actions, lengths, success, P, G)


def shortest_successes(rollouts: Rollouts) -> np.ndarray:
    """Per problem, its shortest successful walk (the first of equal length), -1 if none."""
    ro = rollouts
    best = np.full(ro.n_problems, -1, dtype=np.int64)
    ok = np.flatnonzero(ro.success)
    if ok.size:
        order = ok[np.lexsort((ro.lengths[ok], ro.problem[ok]))]
        first = order[np.unique(ro.problem[order], return_index=True)[1]]
        best[ro.problem[first]] = first
    return best


def problem_stats(rollouts: Rollouts) -> dict[str, np.ndarray]:
    """Per-problem accuracy, lengths and diversity of correct paths, each an array of length P,
    and the index of each problem's shortest successful walk (`shortest_success`, -1: none)."""
    P, G = rollouts.n_problems, rollouts.G
    prob = rollouts.problem
    ok = rollouts.success
    n_correct = np.bincount(prob, weights=ok, minlength=P)
    len_all = np.bincount(prob, weights=rollouts.lengths, minlength=P) / G
    len_correct_sum = np.bincount(prob, weights=rollouts.lengths * ok, minlength=P)
    with np.errstate(invalid="ignore", divide="ignore"):
        len_correct = np.where(n_correct > 0, len_correct_sum / n_correct, np.nan)
    # distinct correct paths and the entropy of the correct-path distribution
    hashes = rollouts.path_hashes(ok)
    cprob = prob[ok]
    if hashes.size:
        keys = np.stack([cprob.astype(np.uint64), hashes], axis=1)
        uniq, counts = np.unique(keys, axis=0, return_counts=True)
        uprob = uniq[:, 0].astype(np.int64)
        n_distinct = np.bincount(uprob, minlength=P).astype(np.float64)
        p = counts / n_correct[uprob]
        path_entropy = -np.bincount(uprob, weights=p * np.log(p), minlength=P)
    else:
        n_distinct = np.zeros(P)
        path_entropy = np.zeros(P)
    return {
        "accuracy": n_correct / G,
        "shortest_success": shortest_successes(rollouts),
        "len_mean": len_all,
        "len_correct_mean": len_correct,
        "n_correct": n_correct,
        "n_distinct_correct": n_distinct,
        "path_entropy": np.where(n_correct > 0, path_entropy + 0.0, np.nan),
    }
