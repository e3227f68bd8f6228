"""The compiled walk kernel alone, per walker-step, as the graph grows and the block size changes.

    python benchmarks/bench_walks.py                          # N = 800, 100k and 1M; blocks 12, 32
    python benchmarks/bench_walks.py --n 100000 --block 8 --block 12 --block 16 --reps 7

For each N the sparse preset's sizes (K=8, L=200 here, Q problems, G=16 walks each) build the
world as `conceptweb train --set model.N=...` does; the walks are sampled from the uniform policy
(the first step of a run, when most walks go on for all L steps and spread over the graph). The
kernel (`_walk_range` of `conceptweb.model.numba_kernels`, one core) is compiled once per block
size, the number of walks it advances together (the package uses `_BLOCK`); blocks give the same
walks bit for bit, which is checked. Each figure is the least CPU time (`time.process_time`) of
--reps calls (the block sizes in turn) divided by the walker-steps taken. Needs numba (the `fast` extra).
"""

from __future__ import annotations

import argparse
import os
import time
import types

import numba
import numpy as np
from bench_engines import print_table

from conceptweb.algorithms.world import build_world
from conceptweb.config import resolve_config
from conceptweb.model import numba_kernels as nk
from conceptweb.model.policy import softmax


def kernel_with_block(block: int):
    """`_walk_range` compiled with `block` walks advanced together."""
    f = nk._walk_range.py_func
    g = types.FunctionType(f.__code__, {**f.__globals__, "_BLOCK": block}, f.__name__)
    return numba.njit(nogil=True)(g)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, action="append", help="concepts (repeatable)")
    parser.add_argument("--block", type=int, action="append", help="walks per block (repeatable)")
    parser.add_argument("--q", type=int, default=2000, help="problems")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    blocks = args.block or [nk._BLOCK, 32]
    kernels = {b: kernel_with_block(b) for b in blocks}
    rows = []
    for N in args.n or [800, 100_000, 1_000_000]:
        sets = [f"model.N={N}", "model.K=8", "model.L=200", f"problems.Q={args.q}"]
        cfg = resolve_config("sparse", None, [*sets, "problems.held_out=0"])
        world, logits, _ = build_world(cfg)
        cdf = np.empty(logits.shape)
        nk.cumsum_rows(softmax(logits, 1.0), cdf)  # the table the engine hands the kernel
        neighbors = np.ascontiguousarray(world.graph.neighbors, dtype=np.int32)
        sources = np.asarray(world.train.sources, dtype=np.int64)
        targets = np.asarray(world.train.targets, dtype=np.int64)
        G, L = cfg.grpo.G, cfg.model.L
        M = sources.size * G
        outputs, calls = {}, {}
        for b, kernel in kernels.items():
            outputs[b] = (
                np.empty((M, L), np.int32),
                np.empty((M, L), np.int16),
                np.empty(M, np.int32),
                np.empty(M, np.bool_),
            )
            calls[b] = (cdf, neighbors, sources, targets, G, L, 12345, *outputs[b], 0, M)
            kernel(*calls[b])  # compiles
        best = dict.fromkeys(kernels, float("inf"))
        for _ in range(args.reps):  # the blocks in turn, so that drifts hit them alike
            for b, kernel in kernels.items():
                t0 = time.process_time()
                kernel(*calls[b])
                best[b] = min(best[b], time.process_time() - t0)
        for b in kernels:
            steps = int(outputs[b][2].sum())
            rows.append(
                (
                    f"N={N:,}, block {b}",
                    f"{best[b] / steps * 1e9:.1f} ns per walker-step",
                    f"{steps / 1e6:.1f} M walker-steps",
                    f"least of {args.reps}: {best[b] * 1e3:.0f} ms",
                )
            )
        first = outputs[blocks[0]]
        if not all(
            np.array_equal(a, b)
            for out in outputs.values()
            for a, b in zip(first, out, strict=True)
        ):
            raise SystemExit(f"error: blocks gave different walks at N={N}")
    print_table(rows)
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; the same walks)")


if __name__ == "__main__":
    main()
