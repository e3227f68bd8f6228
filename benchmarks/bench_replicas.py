"""Batched replicas: R seeds of `--preset sparse` trained in one process against one seed alone.

    python benchmarks/bench_replicas.py                   # 16 seeds batched vs 1 seed alone
    python benchmarks/bench_replicas.py --replicas 8 --pairs 3 --sequential
    python benchmarks/bench_replicas.py --processes 2     # also 16 seeds as 2 batches of 8 at once

Each figure comes from a fresh child process (as in bench_engines.py): its wall time, its CPU
time (user + system, from the kernel's accounting of the child), and its peak resident memory;
inside the child, "loop" is the training alone (every replica's steps 2 to 600; the set-up and
the first step, which loads the compiled kernels, come before it).
Evaluation and checkpoints are off, nothing is written (no run directory), the numba engine.
"1 seed" is the same child with one replica (a batch of one is the ordinary trainer); "R seeds
batched" advances R trainers together (`BatchedTrainer`), and `--sequential` adds R seeds
trained one after another in one process, the work batching saves. `--processes P` adds the R
seeds split into P batches trained at the same time in P children (as `conceptweb sweep --batch
R/P --workers P` runs them; every core busy with the whole step, not only the walks): its wall
time runs from the start of the first child to the end of the last, its CPU time and memory are
the children's sums. Children alternate (one, batched, [sequential], [P batches], one, ...) and
the median of the pairs is shown, with the load average.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack

import numpy as np
from bench_engines import SPARSE_OFF, child, median_of, print_table

import conceptweb

REPLICAS = """
import json, sys, time
from conceptweb.algorithms.replicas import BatchedTrainer
from conceptweb.algorithms.trainer import Trainer
from conceptweb.config import resolve_config
sets, R, mode, first = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
t0, w0 = time.process_time(), time.perf_counter()
seeds = range(first, first + R)
trainers = [Trainer(resolve_config("sparse", None, [*sets, f"seed={s}"]), None) for s in seeds]
for t in trainers:
    t.start()
batch = BatchedTrainer(trainers)
batch.step()  # the first step outside the timing (it loads the kernels)
t1, w1 = time.process_time(), time.perf_counter()
if mode == "batched":
    batch.run()
else:
    for t in trainers:
        t.run()
print(json.dumps({
    "setup_cpu": t1 - t0,
    "loop_cpu": time.process_time() - t1,
    "loop_wall": time.perf_counter() - w1,
    "reward": sum(t.recorder.metrics[-1]["reward_mean"] for t in trainers) / R,
}))
"""


def replicas_argv(R: int, mode: str, first: int = 0) -> list[str]:
    sets = [*SPARSE_OFF, "model.engine=numba"]
    return [sys.executable, "-c", REPLICAS, json.dumps(sets), str(R), mode, str(first)]


def replicas_child(R: int, mode: str) -> dict[str, float]:
    """R sparse seeds in a fresh interpreter, batched or one after another: cost and timing."""
    cost, text = child(replicas_argv(R, mode))
    return {**cost, **json.loads(text.strip().splitlines()[-1])}


def split_children(R: int, P: int) -> dict[str, float]:
    """R seeds as P batches in P children started together: wall of the group, summed costs."""
    sizes = [R // P + (i < R % P) for i in range(P)]
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
    with ExitStack() as stack:
        outs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in range(P)]
        w0 = time.perf_counter()
        procs = [
            subprocess.Popen(replicas_argv(n, "batched", f), stdout=o, stderr=subprocess.DEVNULL)
            for n, f, o in zip(sizes, firsts, outs, strict=True)
        ]
        usages = []
        for proc in procs:
            _, status, usage = os.wait4(proc.pid, 0)
            if os.waitstatus_to_exitcode(status):
                raise SystemExit(f"error: a batch of {R} // {P} replicas failed")
            usages.append(usage)
        wall = time.perf_counter() - w0
        for o in outs:
            o.seek(0)
        inner = [json.loads(o.read().strip().splitlines()[-1]) for o in outs]
    return {
        "cpu": sum(u.ru_utime + u.ru_stime for u in usages),
        "wall": wall,
        "peak": sum(u.ru_maxrss for u in usages) / 1024,
        "loop_cpu": sum(i["loop_cpu"] for i in inner),
        "loop_wall": max(i["loop_wall"] for i in inner),
        "reward": sum(i["reward"] * n for i, n in zip(inner, sizes, strict=True)) / R,
    }


def rows_of(R: int, pairs: int, sequential: bool, processes: int) -> list[tuple[str, ...]]:
    """The table: one seed, R seeds batched (one after another, P batches at once), ratios."""
    replicas_child(1, "batched")  # the kernels compiled and cached before timing
    modes = {"1 seed": (1, "batched"), f"{R} seeds batched": (R, "batched")}
    if sequential:
        modes[f"{R} seeds one after another"] = (R, "sequential")
    if processes > 1:
        modes[f"{R} seeds as {processes} batches at once"] = (R, f"split{processes}")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in modes}
    for _ in range(pairs):
        for name, (n, mode) in modes.items():
            if mode.startswith("split"):
                runs[name].append(split_children(n, processes))
            else:
                runs[name].append(replicas_child(n, mode))
    med = {name: median_of(v) for name, v in runs.items()}
    rows = [
        (
            f"sparse, {name}",
            f"process {m['cpu']:.1f} s, loop {m['loop_cpu']:.1f} s",
            f"peak {m['peak']:.0f} MiB",
            f"wall: process {m['wall']:.1f} s, loop {m['loop_wall']:.1f} s; "
            f"mean final reward {m['reward']:.3f}",
        )
        for name, m in med.items()
    ]
    one = med["1 seed"]
    for name in list(modes)[1:]:
        m = med[name]
        rows.append(
            (
                f"ratio {name} / 1 seed",
                f"process {m['cpu'] / one['cpu']:.1f}x, loop {m['loop_cpu'] / one['loop_cpu']:.1f}x",
                f"memory {m['peak'] / one['peak']:.1f}x",
                f"wall: process {m['wall'] / one['wall']:.1f}x, "
                f"loop {m['loop_wall'] / one['loop_wall']:.1f}x",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", type=int, default=16, help="seeds in the batch")
    parser.add_argument("--pairs", type=int, default=1, help="alternating rounds (median)")
    parser.add_argument(
        "--sequential", action="store_true", help="also the seeds one after another"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="also the seeds as this many batches at once"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    compileall.compile_dir(os.path.dirname(conceptweb.__file__), quiet=1)
    print_table(rows_of(args.replicas, args.pairs, args.sequential, args.processes))
    print(
        f"(load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}, "
        f"on {os.cpu_count()} CPUs; python {sys.version.split()[0]}, numpy {np.__version__})"
    )


if __name__ == "__main__":
    main()
