"""Compiled CoNet kernels (numba): walks, per-problem statistics and scatter-add gradients.

Each kernel is the plain loop that the numpy engine vectorises; read them side by side with
`conceptweb.model.rollouts` and `conceptweb.algorithms.grads`. Random numbers come from a
counter-based generator (SplitMix64) seeded per walk, so a walk's draws depend only on the
seed and the walk's index: results do not depend on the order in which walks run.
Importing this module imports numba; `conceptweb.model.engines` imports it only on demand.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 1.0 / 2.0**53
_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)  # as in Rollouts.path_hashes

jit = numba.njit(cache=True, nogil=True)


@jit
def _mix(z: np.uint64) -> np.uint64:
    """The SplitMix64 output function: a well-scrambled 64-bit value."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@intrinsic
def _prefetch(typingctx, table, row):
    """Ask the processor to start loading table[row, 0]'s cache line (no result, no fault).

    On large graphs the next node's policy row is rarely in cache; fetching it while the other
    walks of the block take their step hides most of the wait (5x faster walks at N=100k).
    """
    sig = types.void(table, row)

    def codegen(context, builder, signature, args):
        table_type, row_type = signature.args
        array = context.make_array(table_type)(context, builder, args[0])
        index = context.cast(builder, args[1], row_type, types.intp)
        zero = context.get_constant(types.intp, 0)
        ptr = cgutils.get_item_pointer(context, builder, table_type, array, [index, zero])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # read access, highest temporal locality, data cache
        args_ = [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3)]
        builder.call(fn, [*args_, ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


# Walks advanced together, so that their memory reads overlap. Each walk has two rows in flight
# (its next node's cdf and neighbours), and a core tracks only about two dozen outstanding
# misses: with more walks the prefetches queue behind each other. 12 instead of 32 took 1.3x to
# 2.5x less time per walker-step at N=100k and 1M, the same at N=800 (benchmarks/bench_walks.py).
_BLOCK = 12


@jit
def walks(cdf, neighbors, sources, targets, G, L, seed, nodes, actions, lengths, success):
    """G walks per problem, written into the (M, L) arrays nodes/actions (-1 past a walk's end).

    See _walk_range, which this runs over all M = len(sources) * G walks.
    """
    M = sources.size * G
    _walk_range(
        cdf, neighbors, sources, targets, G, L, seed, nodes, actions, lengths, success, 0, M
    )


_CHUNK = 4096  # walks per task of the parallel version


@numba.njit(cache=True, nogil=True, parallel=True)
def walks_parallel(cdf, neighbors, sources, targets, G, L, seed, nodes, actions, lengths, success):
    """`walks` on every core: chunks of walks in parallel, the same numbers as one core gives."""
    M = sources.size * G
    for c in numba.prange((M + _CHUNK - 1) // _CHUNK):
        lo, hi = c * _CHUNK, min(M, (c + 1) * _CHUNK)
        _walk_range(
            cdf, neighbors, sources, targets, G, L, seed, nodes, actions, lengths, success, lo, hi
        )


@jit
def _walk_range(
    cdf, neighbors, sources, targets, G, L, seed, nodes, actions, lengths, success, first, stop
):
    """Walks first .. stop-1, written into the (M, L) arrays nodes/actions (-1 past the end).

    Step t of walk m draws u in [0, 1) and takes the first action whose cumulative probability
    exceeds u, exactly the rule of the numpy engine: cdf's last column must be 1 (cumsum_rows
    writes it so; u < 1, so the count of entries <= u never reaches K). Walks advance in blocks
    of _BLOCK, one step of each in turn: each walk's draws depend only on (seed, m, t), so the
    order changes nothing but speed (on large graphs a walk's next node is rarely in cache: each
    walk prefetches its next node's rows, which arrive while the block's other walks take their
    step). Nodes and block slots are held unsigned: their indexing needs no negative-index check.
    """
    K = cdf.shape[1]
    here = np.empty(_BLOCK, dtype=np.uint64)
    goal = np.empty(_BLOCK, dtype=np.uint64)  # each walk's target, read once
    state = np.empty(_BLOCK, dtype=np.uint64)
    live = np.empty(_BLOCK, dtype=np.uint64)  # block slots of the walks still going
    for m0 in range(first, stop, _BLOCK):
        B = min(_BLOCK, stop - m0)
        for j in range(B):
            here[j] = sources[(m0 + j) // G]
            goal[j] = targets[(m0 + j) // G]
            _prefetch(cdf, here[j])
            _prefetch(neighbors, here[j])
            state[j] = _mix(np.uint64(seed) ^ _mix(np.uint64(m0 + j) * _GAMMA + _GAMMA))
            live[j] = j
            lengths[m0 + j] = L
            success[m0 + j] = False
        n_live = B
        for t in range(L):
            i = 0
            while i < n_live:
                j = live[i]
                m = m0 + np.int64(j)
                s = state[j] + _GAMMA
                state[j] = s
                u = np.int64(_mix(s) >> _S11) * _TO_UNIT  # 53 bits: exact as a signed integer
                h = here[j]
                a = 0
                for k in range(K):  # the first action whose cumulative probability > u
                    a += cdf[h, k] <= u
                nodes[m, t] = h
                actions[m, t] = a
                nxt = np.uint64(neighbors[h, a])
                here[j] = nxt
                _prefetch(cdf, nxt)
                _prefetch(neighbors, nxt)
                if nxt == goal[j]:
                    lengths[m] = t + 1
                    success[m] = True
                    n_live -= 1
                    live[i] = live[n_live]
                else:
                    i += 1
            if n_live == 0:
                break
        for m in range(m0, m0 + B):
            nodes[m, lengths[m] :] = -1
            actions[m, lengths[m] :] = -1


@jit
def path_hash(actions, lengths, m, powers):
    """A 64-bit fingerprint of walk m's action sequence, equal to Rollouts.path_hashes()[m]:
    the sum of (action + 1) * powers[t], powers[t] = _HASH_BASE ** (t + 1) (modulo 2 ** 64, so
    the order of the terms does not matter and they are independent)."""
    h = np.uint64(0)
    for t in range(lengths[m]):
        h += np.uint64(actions[m, t] + 1) * powers[t]
    return h ^ np.uint64(lengths[m])


@jit
def _hash_powers(L):
    """_HASH_BASE ** (t + 1) modulo 2 ** 64 for t < L."""
    powers = np.empty(L, dtype=np.uint64)
    power = np.uint64(1)
    for t in range(L):
        power *= _HASH_BASE
        powers[t] = power
    return powers


@jit
def problem_stats(
    actions,
    lengths,
    success,
    G,
    n_correct,
    len_mean,
    len_correct,
    n_distinct,
    path_entropy,
    shortest,
):
    """Per-problem correct count, mean length, mean correct length, distinct correct paths,
    entropy of the correct-path distribution, and the shortest successful walk (first of equal
    length; -1 if none), written into the outputs (walks of problem q are q*G .. q*G+G-1)."""
    P = lengths.size // G
    ok_hashes = np.empty(G, dtype=np.uint64)
    powers = _hash_powers(actions.shape[1])
    for q in range(P):
        n, total, total_ok, best = 0, 0.0, 0.0, -1
        for m in range(q * G, q * G + G):
            total += lengths[m]
            if success[m]:
                ok_hashes[n] = path_hash(actions, lengths, m, powers)
                total_ok += lengths[m]
                n += 1
                if best < 0 or lengths[m] < lengths[best]:
                    best = m
        n_correct[q] = n
        len_mean[q] = total / G
        shortest[q] = best
        n_distinct[q] = 0.0
        len_correct[q] = np.nan
        path_entropy[q] = np.nan
        if n == 0:
            continue
        len_correct[q] = total_ok / n
        sorted_hashes = ok_hashes[:n]
        sorted_hashes.sort()
        ent, run = 0.0, 1
        for i in range(1, n + 1):
            if i < n and sorted_hashes[i] == sorted_hashes[i - 1]:
                run += 1
                continue
            p = run / n
            ent -= p * np.log(p)
            n_distinct[q] += 1
            run = 1
        path_entropy[q] = ent + 0.0


@jit
def visit_counts(nodes, lengths, n_walks, counts):
    """counts[i] += number of steps taken from node i by walks 0 .. n_walks-1."""
    for m in range(n_walks):
        for t in range(lengths[m]):
            counts[np.uint64(nodes[m, t])] += 1  # unsigned: no negative-index check


@jit
def logprob_grad(nodes, actions, weights, probs, temperature):
    """Gradient w.r.t. the logits of sum_t weights[t] * log pi(actions[t] | nodes[t])."""
    N, K = probs.shape
    grad = np.zeros((N, K))
    node_w = np.zeros(N)
    for i in range(nodes.size):
        grad[nodes[i], actions[i]] += weights[i]
        node_w[nodes[i]] += weights[i]
    for n in range(N):
        if node_w[n] != 0.0:
            for k in range(K):
                grad[n, k] -= node_w[n] * probs[n, k]
    return grad / temperature


@jit
def weighted_logprob(walk, nodes, actions, walk_weight, logits, temperature):
    """sum_t w_t * log pi(actions[t] | nodes[t]) with w_t = walk_weight[walk[t]], and its
    gradient w.r.t. the logits: a scatter-add over the tokens, then one pass over visited nodes.
    """
    N, K = logits.shape
    grad = np.zeros((N, K))
    node_w = np.zeros(N)
    visited = np.zeros(N, dtype=np.bool_)
    for i in range(nodes.size):
        w = walk_weight[walk[i]]
        n, a = np.uint64(nodes[i]), np.uint64(actions[i])  # unsigned: no negative-index check
        grad[n, a] += w
        node_w[n] += w
        visited[n] = True
    return _logprob_and_grad(grad, node_w, visited, logits, temperature), grad


@jit
def walk_logprob(nodes, actions, lengths, walk_weight, logits, temperature, grad):
    """sum over the steps t < lengths[m] of every walk m of walk_weight[m] * log pi(a | node),
    with its logits gradient written into `grad`; walks of weight 0 are skipped, so a batch
    whose groups all succeed or all fail costs nothing."""
    N, K = logits.shape
    grad[:] = 0.0
    node_w = np.zeros(N)
    visited = np.zeros(N, dtype=np.bool_)
    for m in range(lengths.size):
        w = walk_weight[m]
        if w == 0.0:
            continue
        for t in range(lengths[m]):
            # unsigned indices: no negative-index checks (twice as fast)
            n, a = np.uint64(nodes[m, t]), np.uint64(actions[m, t])
            grad[n, a] += w
            node_w[n] += w
            visited[n] = True
    return _logprob_and_grad(grad, node_w, visited, logits, temperature)


@jit
def _logprob_and_grad(pair_w, node_w, visited, logits, temperature):
    """Given the summed weights of each (node, action) and node, the weighted log-likelihood;
    pair_w becomes its gradient (rows of unvisited nodes stay 0)."""
    K = logits.shape[1]
    scaled = temperature != 1.0  # x / 1.0 is x: at T = 1 the divisions are skipped
    total = 0.0
    p = np.empty(K)
    d = np.empty(K)  # (logits - max) / temperature
    for n in range(logits.shape[0]):
        if not visited[n]:
            continue
        top = logits[n].max()
        for k in range(K):
            d[k] = (logits[n, k] - top) / temperature if scaled else logits[n, k] - top
            p[k] = np.exp(d[k])
        z = p.sum()
        log_z = np.log(z)
        for k in range(K):
            total += pair_w[n, k] * (d[k] - log_z)
            g = pair_w[n, k] - node_w[n] * p[k] / z
            pair_w[n, k] = g / temperature if scaled else g
    return total


# -- the policy's tables, bit for bit what the numpy functions of conceptweb.model.policy give --
PAIRWISE_BLOCK = 128  # rows up to this long are summed in numpy's order (the engine checks)


@jit
def _row_sum(a):
    """The sum of a row of at most PAIRWISE_BLOCK values, added in numpy's order (pairwise
    summation: 8 running sums, then the rest), so that it equals numpy's `.sum(axis=-1)`."""
    n = a.size
    if n < 8:
        total = -0.0
        for i in range(n):
            total += a[i]
        return total
    r0, r1, r2, r3, r4, r5, r6, r7 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
    for i in range(8, n - n % 8, 8):
        r0, r1, r2, r3 = r0 + a[i], r1 + a[i + 1], r2 + a[i + 2], r3 + a[i + 3]
        r4, r5, r6, r7 = r4 + a[i + 4], r5 + a[i + 5], r6 + a[i + 6], r7 + a[i + 7]
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(n - n % 8, n):
        total += a[i]
    return total


@jit
def softmax(logits, temperature, probs):
    """probs[n] = softmax(logits[n] / temperature), written into probs (N, K <= PAIRWISE_BLOCK)."""
    N, K = logits.shape
    for n in range(N):
        z = probs[n]
        for k in range(K):
            z[k] = logits[n, k] if temperature == 1.0 else logits[n, k] / temperature
        top = z.max()
        for k in range(K):
            z[k] = np.exp(z[k] - top)
        total = _row_sum(z)
        for k in range(K):
            z[k] /= total


@jit
def entropy(probs, out):
    """out[n] = the entropy (nats) of row n of probs (K <= PAIRWISE_BLOCK; p = 0 counts 0)."""
    N, K = probs.shape
    terms = np.empty(K)
    for n in range(N):
        for k in range(K):
            p = probs[n, k]
            terms[k] = p * np.log(p) if p > 0 else 0.0
        out[n] = -_row_sum(terms)


@jit
def cumsum_rows(probs, cdf):
    """cdf[n, k] = probs[n, 0] + ... + probs[n, k], added left to right (numpy's cumsum), with
    the last column 1: the table the walks draw from (they treat the last entry as 1)."""
    N, K = probs.shape
    for n in range(N):
        total = probs[n, 0]
        cdf[n, 0] = total
        for k in range(1, K):
            total += probs[n, k]
            cdf[n, k] = total
        cdf[n, K - 1] = 1.0


@jit
def pairwise_sum(a):
    """The sum of a contiguous float64 array added in numpy's order (`np.add.reduce`): blocks of
    up to PAIRWISE_BLOCK values as _row_sum adds them, halves (a multiple of 8 long) added
    recursively."""
    n = a.size
    if n <= PAIRWISE_BLOCK:
        return _row_sum(a)
    half = n // 2
    half -= half % 8
    return pairwise_sum(a[:half]) + pairwise_sum(a[half:])


@jit
def entropy_visits(probs, nodes, lengths, n_walks, entropies, counts, sums):
    """The policy's entropies and where walks 0 .. n_walks-1 stepped from, summarised as the
    metrics row needs them (K <= PAIRWISE_BLOCK): entropies[n] of row n, counts[n] += steps taken
    from node n, sums[0] = entropies' sum and sums[1] = sum of counts * entropies (each added in
    numpy's order); returns the number of steps counted."""
    entropy(probs, entropies)
    visit_counts(nodes, lengths, n_walks, counts)
    weighted = np.empty(counts.size)
    steps = 0
    for n in range(counts.size):
        weighted[n] = counts[n] * entropies[n]
        steps += counts[n]
    sums[0] = pairwise_sum(entropies)
    sums[1] = pairwise_sum(weighted)
    return steps


@jit
def keep_walks(nodes, lengths, walk_of_row, last_nodes, out):
    """out[r] = the nodes of walk walk_of_row[r], then last_nodes[r], then -1 (rows whose walk
    index is negative are left alone): each problem's latest successful walk, closed by its
    answer."""
    L = nodes.shape[1]
    for r in range(walk_of_row.size):
        m = walk_of_row[r]
        if m < 0:
            continue
        for t in range(L):
            out[r, t] = nodes[m, t]
        for t in range(L, out.shape[1]):
            out[r, t] = -1
        out[r, lengths[m]] = last_nodes[r]


@jit
def adam_step(params, grad, m, v, lr, beta1, beta2, eps, c1, c2):
    """One Adam step in place, each operation as the numpy engine's `adam_step` does it (same
    roundings: no fused multiply-add), over every parameter; c1 and c2 are the bias corrections
    1 - beta ** t, computed by the caller (Python's power, not the compiler's)."""
    one_b1, one_b2 = 1 - beta1, 1 - beta2
    p, g, m1, v1 = params.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1)
    # flat, and np.divide (no zero-division check): the compiler runs 4 parameters at a time
    for i in range(p.size):
        m1[i] = m1[i] * beta1 + g[i] * one_b1
        v1[i] = v1[i] * beta2 + g[i] * one_b2 * g[i]
        p[i] -= np.divide(np.divide(m1[i], c1) * lr, np.sqrt(np.divide(v1[i], c2)) + eps)


# -- batched replicas (conceptweb.model.replicas) ---------------------------------------------
# Many runs of the same sizes: a task is a chunk of one replica's walks, each replica on its own
# stacked policy, graph, problems and seed, so replica r gets the walks `walks` gives it alone.
# The kernel releases the GIL: the caller runs ranges of tasks on plain threads (numba's
# OpenMP layer would make a later fork of the process abort). It lives here so that its
# on-disk cache is renewed whenever _walk_range changes.
_REPLICA_CHUNK = 512  # walks per task: small enough that the threads share a few replicas evenly


@jit
def walks_replicas(
    cdf, neighbors, sources, targets, G, L, seeds, nodes, actions, lengths, success, first, stop
):
    """Tasks first .. stop-1 of n_tasks(R, M): replica r's walks from cdf[r] (N, K),
    neighbors[r], sources[r], targets[r] (P,) and seeds[r], written into nodes[r], actions[r]
    (P*G, L), lengths[r] and success[r]."""
    M = sources.shape[1] * G
    per = (M + _REPLICA_CHUNK - 1) // _REPLICA_CHUNK
    for task in range(first, stop):
        r = task // per
        lo = (task % per) * _REPLICA_CHUNK
        hi = min(M, lo + _REPLICA_CHUNK)
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
    return n_replicas * ((n_walks + _REPLICA_CHUNK - 1) // _REPLICA_CHUNK)


@jit
def fisher_yates(x, draws, state, python_rule):
    """Shuffle x in place from 32-bit random draws as Python's `random.shuffle` (python_rule)
    or numpy's `Generator.shuffle` does: for i = n-1 down to 1, swap x[i] and x[j], j uniform
    in [0, i] by rejection. Python: j = the draw's top b bits, b the bit length of i + 1, kept
    if j <= i; numpy: j = the draw's low b bits, b the bit length of i, kept if j <= i.

    Resumable: `state` is [i, next draw]. When the draws run out, it says where to go on (a draw
    that was not kept is not counted) and the caller passes more draws after the same ones.
    """
    i = state[0]
    pos = state[1]
    end = draws.size
    b = 0
    if i >= 1:
        v = i + 1 if python_rule else i
        while v >> b:
            b += 1
    while i >= 1:
        v = i + 1 if python_rule else i
        if v < (1 << (b - 1)):  # v falls by one a step: its bit length by at most one
            b -= 1
        start = pos
        while True:
            if pos == end:
                state[0] = i
                state[1] = start
                return
            r = np.int64(draws[pos])
            pos += 1
            j = r >> (32 - b) if python_rule else r & ((1 << b) - 1)
            if j <= i:
                break
        x[i], x[j] = x[j], x[i]
        i -= 1
    state[0] = i
    state[1] = pos
