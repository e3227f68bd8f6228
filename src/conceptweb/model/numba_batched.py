"""The walks of many replicas (independent runs of the same sizes) in one compiled kernel.

`walks_replicas` runs `numba_kernels._walk_range` over a range of tasks, a task being a chunk
of one replica's walks, each replica on its own stacked policy table, graph, problems and seed.
A walk's random draws depend only on (seed, walk index, t), so replica r gets exactly the walks
that `numba_kernels.walks` gives it alone, whichever task or thread computes them. The kernel
releases the GIL, so `conceptweb.model.replicas` runs ranges of tasks on several threads
(plain Python threads: unlike numba's OpenMP layer they let a process fork safely afterwards,
as a process pool does). JIT-compiled; importing this module imports numba.
"""

from __future__ import annotations

import numba

from conceptweb.model.numba_kernels import _walk_range

CHUNK = 512  # walks per task: small enough that the threads share a few replicas evenly


@numba.njit(cache=True, nogil=True)
def walks_replicas(
    cdf, neighbors, sources, targets, G, L, seeds, nodes, actions, lengths, success, first, stop
):
    """Tasks first .. stop-1 of n_tasks(...): replica r's walks from cdf[r] (N, K),
    neighbors[r], sources[r], targets[r] (P,) and seeds[r], written into nodes[r], actions[r]
    (P*G, L), lengths[r] and success[r]."""
    M = sources.shape[1] * G
    per = (M + CHUNK - 1) // CHUNK
    for task in range(first, stop):
        r = task // per
        lo = (task % per) * CHUNK
        hi = min(M, lo + CHUNK)
        _walk_range(
            cdf[r],
            neighbors[r],
            sources[r],
            targets[r],
            G,
            L,
            seeds[r],
            nodes[r],
            actions[r],
            lengths[r],
            success[r],
            lo,
            hi,
        )


def n_tasks(n_replicas: int, n_walks: int) -> int:
    """How many tasks `walks_replicas` splits n_replicas x n_walks walks into."""
    return n_replicas * ((n_walks + CHUNK - 1) // CHUNK)
