"""Walks of many replicas at once: one compiled call for every replica of the same sizes.

A `WalkRequest` is what one replica's `engine.sample(...)` would be called with. On the numba
engine, `ReplicaSampler.sample` draws each replica's walk seed from its own generator (exactly
as `NumbaEngine.sample` does), stacks the policies of the replicas that share their sizes and
samples all of them in one kernel (`numba_kernels.walks_replicas`, on several threads):
replica r gets the walks it would get alone, bit for bit. Requests on any other engine are sampled one after
another by that engine (`batched_engine` says whether an engine is batched).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from conceptweb.model.engines import RolloutEngine
from conceptweb.model.rollouts import Rollouts, problem_of_walks

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

BATCHED_ENGINES = ("numba",)  # engines whose replicas share one compiled call


def batched_engine(engine: RolloutEngine) -> bool:
    """Whether replicas on `engine` are sampled together (else one after another)."""
    return engine.name in BATCHED_ENGINES


@dataclass(frozen=True)
class WalkRequest:
    """One replica's walks to sample: the arguments of `RolloutEngine.sample`."""

    engine: RolloutEngine
    neighbors: np.ndarray  # (N, K)
    probs: np.ndarray  # (N, K)
    sources: np.ndarray  # (P,)
    targets: np.ndarray  # (P,)
    G: int
    L: int
    rng: np.random.Generator

    def shape(self) -> tuple[int, ...]:
        """Requests of equal shape are stacked into one kernel call."""
        return (*self.probs.shape, len(self.sources), self.G, self.L)

    def alone(self) -> Rollouts:
        """The walks sampled by the engine on its own."""
        return self.engine.sample(
            self.neighbors, self.probs, self.sources, self.targets, self.G, self.L, self.rng
        )


class ReplicaSampler:
    """Samples the walks of many replicas per call (on `threads` threads, default one per
    core); keeps the stacked graphs between calls."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = max(1, threads or os.cpu_count() or 1)  # threads that sample walks
        self._stacked: dict[tuple[int, ...], tuple[list[np.ndarray], np.ndarray]] = {}  # by shape

    def sample(self, requests: list[WalkRequest]) -> list[Rollouts]:
        """Each request's walks, in order: what `request.alone()` returns, bit for bit."""
        out: list[Rollouts | None] = [None] * len(requests)
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            if batched_engine(req.engine):
                groups[req.shape()].append(i)
            else:
                out[i] = req.alone()
        for members in groups.values():
            if len(members) == 1:
                out[members[0]] = requests[members[0]].alone()
                continue
            walks = self._sample_stacked([requests[i] for i in members])
            for i, w in zip(members, walks, strict=True):
                out[i] = w
        return [w for w in out if w is not None]

    def _sample_stacked(self, reqs: list[WalkRequest]) -> list[Rollouts]:
        """One kernel call for replicas of the same shape (seeds drawn in request order)."""
        from conceptweb.model import numba_kernels

        R = len(reqs)
        N, K, P, G, L = reqs[0].shape()
        M = P * G
        cdf = np.empty((R, N, K))
        for r, req in enumerate(reqs):
            numba_kernels.cumsum_rows(np.ascontiguousarray(req.probs, dtype=np.float64), cdf[r])
        seeds = np.array([int(req.rng.integers(0, 2**63)) for req in reqs], dtype=np.int64)
        nodes = np.empty((R, M, L), dtype=np.int32)
        actions = np.empty((R, M, L), dtype=np.int16)
        lengths = np.empty((R, M), dtype=np.int32)
        success = np.empty((R, M), dtype=bool)
        args = (
            cdf,
            self._neighbors(reqs),
            np.stack([np.asarray(r.sources, dtype=np.int64) for r in reqs]),
            np.stack([np.asarray(r.targets, dtype=np.int64) for r in reqs]),
            G,
            L,
            seeds,
            nodes,
            actions,
            lengths,
            success,
        )
        tasks = numba_kernels.n_tasks(R, M)
        threads = min(self.threads, tasks)
        cuts = [tasks * i // threads for i in range(threads + 1)]
        ranges = list(zip(cuts[:-1], cuts[1:], strict=True))
        if threads == 1:
            numba_kernels.walks_replicas(*args, 0, tasks)
        else:  # the kernel releases the GIL: the threads walk at once
            pool = _thread_pool(threads)
            for f in [pool.submit(numba_kernels.walks_replicas, *args, a, b) for a, b in ranges]:
                f.result()
        return [
            Rollouts(problem_of_walks(P, G), nodes[r], actions[r], lengths[r], success[r], P, G)
            for r in range(R)
        ]

    def _neighbors(self, reqs: list[WalkRequest]) -> np.ndarray:
        """The replicas' graphs stacked (R, N, K), reused while they are the same arrays."""
        key = reqs[0].shape()
        held = self._stacked.get(key)
        if (
            held is None
            or len(held[0]) != len(reqs)
            or any(a is not r.neighbors for a, r in zip(held[0], reqs, strict=True))
        ):
            stacked = np.stack([np.asarray(r.neighbors, dtype=np.int32) for r in reqs])
            held = ([r.neighbors for r in reqs], stacked)
            self._stacked[key] = held
        return held[1]


_POOL: dict[tuple[int, int], ThreadPoolExecutor] = {}  # (process id, threads) -> its threads


def _thread_pool(threads: int) -> ThreadPoolExecutor:
    """This process's pool of `threads` threads (a forked child makes its own: threads do not
    survive a fork)."""
    from concurrent.futures import ThreadPoolExecutor  # a run alone never needs it

    key = (os.getpid(), threads)
    if key not in _POOL:
        _POOL[key] = ThreadPoolExecutor(threads, thread_name_prefix="conceptweb-walks")
    return _POOL[key]
