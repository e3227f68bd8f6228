"""What a sparse run does besides its loop: building the world and writing its records, a table.

    python benchmarks/bench_setup.py                       # today's sources, 7 processes each
    python benchmarks/bench_setup.py --baseline 6654554    # and an older commit, alternated
    python benchmarks/bench_setup.py --scale               # also the N=100k world (Q=10k)

Each figure is the median CPU time (`time.process_time`) of one piece, measured inside a fresh
process (so it pays what a command pays: first use of the arrays' memory, no warm caches):
`build_world` of the sparse preset, once with the compiled kernels loaded as the numba engine
loads them before it builds the world (its shuffles then run compiled) and once without (the
numpy engine); then, after training the run in that process, the end-of-run flush of the 600
steps' records (metrics.parquet, problems.parquet) and one checkpoint. The numpy module's
random generators are imported before the timing (every run pays that anyway). `--baseline
REF` times the `src/` of an older commit of this repository (exported with `git archive`) in
turn with today's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np
from bench_engines import child, export_sources, median_of

CHILD = """
import json, sys, time
T = time.process_time
kernels, sets, records = sys.argv[1] == "1", json.loads(sys.argv[2]), sys.argv[3] == "1"
if kernels:
    from conceptweb.model import numba_aot
    numba_aot.load()
import numpy as np
np.random.default_rng(0)
from conceptweb.algorithms.world import build_world
from conceptweb.config import resolve_config
cfg = resolve_config("sparse", None, ["eval.every=0", "checkpoint.every=1000000", *sets])
t = T(); build_world(cfg); out = {"world": T() - t}
if records:
    import tempfile
    from conceptweb.algorithms.trainer import Trainer
    from conceptweb.rundir import RunDir
    trainer = Trainer(cfg, None)
    trainer.start()
    trainer.run()
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.create(tmp + "/r", {"model": {"L": cfg.model.L}})
        t = T(); trainer.recorder.flush(run); out["flush"] = T() - t
        ck = trainer.state.to_checkpoint(trainer.world, cfg)
        t = T(); run.save_checkpoint(cfg.steps, ck); out["checkpoint"] = T() - t
print(json.dumps(out))
"""
BIG = ["model.N=100000", "model.K=8", "problems.Q=10000", "problems.held_out=0"]


def measure(src: str | None, kernels: bool, sets: list[str], records: bool) -> dict[str, float]:
    """One fresh process's timings (on the sources in `src`, or today's)."""
    argv = [sys.executable, "-c", CHILD, str(int(kernels)), json.dumps(sets), str(int(records))]
    return json.loads(child(argv, src)[1].strip().splitlines()[-1])


def rows_for(sources: dict[str, str | None], reps: int, scale: bool) -> list[tuple[str, ...]]:
    """Medians of `reps` processes per piece and source, the sources in turn."""
    cases = [("sparse world, kernels loaded + records", True, [], True)]
    cases.append(("sparse world, numpy engine", False, [], False))
    if scale:
        cases += [("N=100k world, kernels loaded", True, BIG, False)]
        cases += [("N=100k world, numpy engine", False, BIG, False)]
    got: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(reps):
        for name, kernels, sets, records in cases:
            for label, src in sources.items():
                got.setdefault((name, label), []).append(measure(src, kernels, sets, records))
    rows = []
    for name, *_ in cases:
        for piece in got[(name, next(iter(sources)))][0]:
            what = name.split(" + ")[0] if piece == "world" else f"{piece} (sparse, 600 steps)"
            cells = [f"{median_of(got[(name, s)])[piece]:.3f} s" for s in sources]
            rows.append((what, *cells))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=7, help="fresh processes per figure")
    parser.add_argument("--baseline", metavar="REF", help="also the sources of this git commit")
    parser.add_argument("--scale", action="store_true", help="also the N=100k world")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        sources: dict[str, str | None] = {"today": None}
        if args.baseline:
            sources[args.baseline] = export_sources(args.baseline, tmp)
        for src in sources.values():  # build the kernel caches outside the timing
            measure(src, True, ["steps=2"], True)
        rows = rows_for(sources, args.reps, args.scale)
    print_table(("what", *[f"CPU, {s}" for s in sources]), rows)
    print(
        f"(medians of {args.reps} processes; load average before {load_before[0]:.1f}, after "
        f"{os.getloadavg()[0]:.1f}, on {os.cpu_count()} CPUs; numpy {np.__version__})"
    )


def print_table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A markdown table."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
