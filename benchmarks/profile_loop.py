"""Where the compiled engine's training loop spends its CPU time: each kernel, and the rest.

    python benchmarks/profile_loop.py                     # the sparse preset, 600 steps
    python benchmarks/profile_loop.py --set model.N=3200  # any --set of `conceptweb train`

Runs the loop of `conceptweb train --preset sparse` (evaluation and checkpoints off, numba
engine, nothing written) in this process, with every kernel call of the engine timed (CPU time
of this process, summed over the steps after the first); prints a table of each kernel's share
and of everything else (Python, small numpy calls, the engine's wrappers). The timers add a
little to the total, so compare shares, and time the loop itself with bench_engines.py.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from conceptweb.algorithms.trainer import Trainer
from conceptweb.config import resolve_config


def timed(name: str, f: Callable[..., Any], spent: Counter) -> Callable[..., Any]:
    """f, adding the CPU time of each call to spent[name]."""

    def call(*args: Any) -> Any:
        t0 = time.process_time()
        out = f(*args)
        spent[name] += time.process_time() - t0
        return out

    return call


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="sparse")
    parser.add_argument("--set", action="append", default=[], dest="sets")
    args = parser.parse_args()
    sets = ["eval.every=0", "checkpoint.every=1000000", "model.engine=numba", *args.sets]
    cfg = resolve_config(args.preset, None, sets)
    trainer = Trainer(cfg, None)
    trainer.start()
    trainer.train_step()  # loads the kernels
    spent: Counter = Counter()
    kernels = trainer.engine.k  # type: ignore[attr-defined]
    names = [n for n in dir(kernels) if not n.startswith("_") and callable(getattr(kernels, n))]
    trainer.engine.k = SimpleNamespace(  # type: ignore[attr-defined]
        **{n: timed(n, getattr(kernels, n), spent) for n in names}
    )
    t0 = time.process_time()
    while trainer.step < cfg.steps:
        trainer.train_step()
    total = time.process_time() - t0
    rows = [(name, t) for name, t in spent.most_common() if t > 0]
    rows.append(("everything else", total - sum(spent.values())))
    print(f"| part ({trainer.step - 1} steps) | CPU s | share |")
    print("|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.3f} | {100 * t / total:.0f}% |")
    print(f"| loop | {total:.3f} | 100% |")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
