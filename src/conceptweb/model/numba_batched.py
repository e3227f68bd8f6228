"""The walks of many replicas (independent runs of the same sizes) in one compiled call.

`walks_replicas` runs `numba_kernels._walk_range` over chunks of every replica's walks in
parallel (numba.prange: every core works), each replica on its own stacked policy table,
graph, problems and seed. A walk's random draws depend only on (seed, walk index, t), so
replica r gets exactly the walks that `numba_kernels.walks` gives it alone. JIT-compiled (the
ahead-of-time module holds no parallel kernels); importing this module imports numba.
"""

from __future__ import annotations

import numba

from conceptweb.model.numba_kernels import _walk_range

CHUNK = 512  # walks per parallel task: small enough that 2 cores share a few replicas evenly


@numba.njit(cache=True, nogil=True, parallel=True)
def walks_replicas(cdf, neighbors, sources, targets, G, L, seeds, nodes, actions, lengths, success):
    """Replica r's walks from cdf[r] (N, K), neighbors[r], sources[r], targets[r] (P,) and
    seeds[r], written into nodes[r], actions[r] (P*G, L), lengths[r] and success[r]."""
    R = cdf.shape[0]
    M = sources.shape[1] * G
    per = (M + CHUNK - 1) // CHUNK
    for task in numba.prange(R * per):
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
