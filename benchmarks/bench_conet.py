"""Speed of the CoNet core: rollouts, GRPO steps and whole runs, printed as a table.

    python benchmarks/bench_conet.py            # rollouts and training steps (about a minute)
    python benchmarks/bench_conet.py --runs     # also whole preset runs with their peak memory

Targets (2 CPU cores, one process): a `sparse` run (600 steps) in under 20 s, a `paper` run
(800 steps, K=40) in under 30 s, so that the 16-seed ablation and the phase diagram stay
within an hour. Each figure is the median of several repeats.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from conceptweb.algorithms.grpo import grpo_update
from conceptweb.algorithms.optim import Adam
from conceptweb.config import GRPOConfig
from conceptweb.model.graph import random_regular_graph
from conceptweb.model.policy import softmax
from conceptweb.model.rollouts import sample_rollouts


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_rollouts(repeats: int) -> list[tuple[str, ...]]:
    rows = []
    for K in (4, 8, 40):
        g = random_regular_graph(800, K, seed=0)
        rng = np.random.default_rng(0)
        probs = softmax(rng.normal(0, 1.5, (800, K)))
        src = rng.integers(0, 800, 128)
        tgt = (src + 1 + rng.integers(0, 798, 128)) % 800
        holder = {}

        def run(holder=holder, g=g, probs=probs, src=src, tgt=tgt):
            holder["ro"] = sample_rollouts(
                g.neighbors, probs, src, tgt, 16, 100, np.random.default_rng(1)
            )

        t = _median_time(run, repeats)
        walker_steps = int(holder["ro"].lengths.sum())
        logits = np.log(probs)
        opt = Adam(logits.shape, 0.1)
        tg = _median_time(
            lambda ro=holder["ro"], lg=logits, o=opt: grpo_update(lg, 1.0, ro, GRPOConfig(), o),
            repeats,
        )
        rows.append(
            (
                f"rollouts N=800 K={K} (128x16 walks, L=100)",
                f"{t * 1e3:.1f} ms",
                f"{walker_steps / t / 1e6:.2f} M walker-steps/s",
                f"GRPO update {tg * 1e3:.1f} ms",
            )
        )
    return rows


def bench_runs(presets: list[str]) -> list[tuple[str, ...]]:
    rows = []
    for preset in presets:
        with tempfile.TemporaryDirectory() as d:
            code = (
                "import resource,time; from conceptweb.config import resolve_config; "
                "from conceptweb.experiments.runs import train_run; t=time.perf_counter(); "
                f"train_run(resolve_config({preset!r}), {d + '/run'!r}); "
                "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
            )
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            )
            secs, rss_kb = out.stdout.split()
            rows.append(
                (
                    f"whole run: preset {preset}",
                    f"{float(secs):.1f} s",
                    f"peak RSS {int(rss_kb) / 1024:.0f} MiB",
                    "",
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--runs", action="store_true", help="also time whole preset runs")
    parser.add_argument("--presets", default="sparse,paper,frustrated")
    args = parser.parse_args()
    rows = bench_rollouts(args.repeats)
    if args.runs:
        rows += bench_runs(args.presets.split(","))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(
        "| "
        + " | ".join(
            h.ljust(w)
            for h, w in zip(("what", "time", "throughput / memory", "also"), widths, strict=True)
        )
        + " |"
    )
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    print(
        f"(python {sys.version.split()[0]}, numpy {np.__version__}, "
        f"this process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
