"""Writing and loading a checkpoint at scale: today's writer against numpy's savez_compressed.

    python benchmarks/bench_checkpoints.py                 # N = 100,000 and 1,000,000, K = 8
    python benchmarks/bench_checkpoints.py --n 100000 --reps 5

The arrays are those of a checkpoint of `conceptweb train --set model.K=8 --set
problems.Q=10000 --set model.L=200` at the given N, filled as late in training: every row of the
logits and of Adam's two moments trained (normal values), a random graph, and each problem's
kept walk padded with -1. "today" is `conceptweb.rundir.atomic_savez` (each array deflated only
if a sample of it shrinks); "savez_compressed" deflates every array, as checkpoints were written
before. Each figure is the median CPU time (`time.process_time`; wall time beside it) over the
repetitions, writing to and reading from a temporary directory; loading reads every array back.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bench_engines import median_of, print_table

from conceptweb.rundir import atomic_savez


def checkpoint_arrays(N: int, K: int = 8, Q: int = 10_000, L: int = 200) -> dict[str, np.ndarray]:
    """The large arrays of a late checkpoint of these sizes (the small ones cost nothing)."""
    rng = np.random.default_rng(0)
    walks = np.full((Q, L + 1), -1, dtype=np.int32)
    lengths = rng.integers(2, 20, Q)
    for q in range(Q):
        walks[q, : lengths[q]] = rng.integers(0, N, lengths[q])
    return {
        "neighbors": rng.integers(0, N, (N, K), dtype=np.int32),
        "logits": rng.normal(0, 2, (N, K)),
        "rl_adam_m": rng.normal(0, 1e-3, (N, K)),
        "rl_adam_v": rng.gamma(1.0, 1e-6, (N, K)),
        "own_paths": walks,
        "step": np.array(100),
    }


def savez_compressed(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """How checkpoints were written before: every array deflated (numpy's default level)."""
    np.savez_compressed(path, **arrays)


def timed(f: Callable[[], object], reps: int) -> tuple[float, float]:
    """The median CPU and wall seconds of f() over reps calls."""
    runs = []
    for _ in range(reps):
        t0, w0 = time.process_time(), time.perf_counter()
        f()
        runs.append({"cpu": time.process_time() - t0, "wall": time.perf_counter() - w0})
    median = median_of(runs)
    return median["cpu"], median["wall"]


def load_all(path: Path) -> None:
    with np.load(path, allow_pickle=False) as data:
        for name in data.files:
            data[name]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, action="append", help="concepts (repeatable)")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for N in args.n or [100_000, 1_000_000]:
        arrays = checkpoint_arrays(N)
        with tempfile.TemporaryDirectory() as tmp:
            figures = {}
            for name, write in (("today", atomic_savez), ("savez_compressed", savez_compressed)):
                path = Path(tmp) / f"{name}.npz"
                (w, w_wall) = timed(lambda: write(path, arrays), args.reps)  # noqa: B023
                (r, r_wall) = timed(lambda: load_all(path), args.reps)  # noqa: B023
                figures[name] = (w, r, os.path.getsize(path) / 1e6)
                rows.append(
                    (
                        f"N={N:,}, {name}",
                        f"write {w:.2f} s, load {r:.2f} s",
                        f"{figures[name][2]:.1f} MB",
                        f"wall: write {w_wall:.2f} s, load {r_wall:.2f} s",
                    )
                )
            (wt, rt, st), (wo, ro, so) = figures["today"], figures["savez_compressed"]
            rows.append(
                (
                    f"N={N:,}, ratio savez_compressed / today",
                    f"write {wo / wt:.1f}x, load {ro / rt:.1f}x",
                    f"size {so / st:.2f}x",
                    "",
                )
            )
    print_table(rows)
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
