"""The compiled (numba) engine against the numpy engine, side by side in one run: a table.

    python benchmarks/bench_engines.py                    # sparse runs and scaling exponents
    python benchmarks/bench_engines.py --scale            # also N=100k, Q=10k, L=200 (long)
    python benchmarks/bench_engines.py --pairs 1 --no-scaling --scale --scale-steps 20
    python benchmarks/bench_engines.py --no-scaling --baseline ae13b47   # and an older numpy

(ae13b47 is main as it was when the compiled-engine issue was filed.)

Every figure is the CPU time (user + system) of a fresh child process, read from the kernel's
accounting of that child (`os.wait4`), with its peak resident memory; CPU time, unlike wall
time, is inflated little by other load on a shared machine. "command" is the whole
`conceptweb train` command as a user runs it (evaluation off, checkpoints only at the start and
the end); "loop" is the training loop alone (600 steps, no imports or set-up). Engines alternate
(numpy, numba, numpy, ...) and the median of the pairs is shown. The compiled kernels are built
into their cache once before timing. The scaling rows time a few steps from the uniform policy
(most walks run all L steps) while one size grows, and fit the exponent of a power law. The
machine's load average is printed with the table. The package's modules are byte-compiled first,
as an installation leaves them (an interpreter run with PYTHONDONTWRITEBYTECODE would otherwise
compile conceptweb's sources in every child, about 0.5 CPU-seconds).
`--baseline REF` adds a third column: the numpy engine of an older commit of this repository
(its `src/` exported with `git archive` and run on this interpreter, in turn with the others),
against which both of today's engines are compared too.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import conceptweb

LOOP = """
import json, resource, sys, time
from conceptweb.algorithms.trainer import Trainer
from conceptweb.config import resolve_config
cfg = resolve_config(sys.argv[1] or None, None, json.loads(sys.argv[2]))
trainer = Trainer(cfg, None)
trainer.start()
trainer.train_step()  # the first step outside the timing (it loads the kernels)
t0, w0 = time.process_time(), time.perf_counter()
while trainer.step < cfg.steps:
    row = trainer.train_step()
print(json.dumps({
    "loop_cpu": time.process_time() - t0,
    "loop_wall": time.perf_counter() - w0,
    "steps": trainer.step - 1,
    "reward": row["reward_mean"],
}))
"""
SPARSE_OFF = ["eval.every=0", "checkpoint.every=1000000"]


def child(argv: list[str], src: str | None = None) -> tuple[dict[str, float], str]:
    """Run argv (on the sources in `src` if given); its CPU seconds, wall seconds and peak
    memory (MiB), and its stdout."""
    env = None if src is None else {**os.environ, "PYTHONPATH": src}
    with tempfile.TemporaryFile("w+") as out:
        w0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - w0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"error: {' '.join(argv)} failed ({proc.returncode})")
        out.seek(0)
        text = out.read()
    cost = {"cpu": usage.ru_utime + usage.ru_stime, "wall": wall, "peak": usage.ru_maxrss / 1024}
    return cost, text


def train_command(engine: str | None, out: str, sets: list[str]) -> list[str]:
    """`conceptweb train --preset sparse` with evaluation and checkpoints off (engine None:
    no engine setting, for sources older than the setting)."""
    argv = [sys.executable, "-m", "conceptweb.interfaces.cli", "train", "--preset", "sparse"]
    for s in [*SPARSE_OFF, *([f"model.engine={engine}"] if engine else []), *sets]:
        argv += ["--set", s]
    return [*argv, "--out", out]


def loop_child(
    preset: str, sets: list[str], src: str | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """The training loop in a fresh interpreter: its own timing and the process's cost."""
    cost, text = child([sys.executable, "-c", LOOP, preset, json.dumps(sets)], src)
    return json.loads(text.strip().splitlines()[-1]), cost


def median_of(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def export_sources(ref: str, into: str) -> str:
    """`src/` of commit `ref` of this repository, exported into `into`, byte-compiled."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    archive = subprocess.run(
        ["git", "-C", repo, "archive", ref, "src"], capture_output=True, check=False
    )
    if archive.returncode:
        message = archive.stderr.decode(errors="replace").strip().splitlines()
        raise SystemExit(f"error: cannot export {ref}: {message[-1] if message else 'git failed'}")
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    compileall.compile_dir(f"{into}/src", quiet=1)
    return f"{into}/src"


def sparse_rows(pairs: int, baseline: str | None = None) -> list[tuple[str, ...]]:
    """The sparse preset, 600 steps, per engine: the whole command and the loop alone
    (and the numpy engine of commit `baseline`, if given)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = {"numpy": None, "numba": None}
        if baseline:
            src[f"numpy at {baseline}"] = export_sources(baseline, tmp)
        child(train_command("numba", f"{tmp}/warm", ["steps=2"]))  # build the kernel cache
        cmd: dict[str, list[dict[str, float]]] = {e: [] for e in src}
        loop: dict[str, list[dict[str, float]]] = {e: [] for e in src}
        for i in range(pairs):
            for n, (label, where) in enumerate(src.items()):
                engine = None if where else label
                argv = train_command(engine, f"{tmp}/run{i}-{n}", [])
                cmd[label].append(child(argv, where)[0])
                sets = [*SPARSE_OFF, *([f"model.engine={engine}"] if engine else [])]
                loop[label].append(loop_child("sparse", sets, where)[0])
    c = {e: median_of(v) for e, v in cmd.items()}
    lp = {e: median_of(v) for e, v in loop.items()}
    rows = [
        (
            f"`train --preset sparse`, {e}",
            f"command {c[e]['cpu']:.2f} s, loop {lp[e]['loop_cpu']:.2f} s",
            f"peak {c[e]['peak']:.0f} MiB",
            f"wall {c[e]['wall']:.1f} s, final reward {lp[e]['reward']:.3f}",
        )
        for e in src
    ]
    for a in [e for e in src if e != "numba"]:
        b = "numba"
        rows.append(
            (
                f"ratio {a} / numba",
                f"command {c[a]['cpu'] / c[b]['cpu']:.1f}x, "
                f"loop {lp[a]['loop_cpu'] / lp[b]['loop_cpu']:.1f}x",
                f"memory {c[b]['peak'] / c[a]['peak']:.2f}x",
                "",
            )
        )
    return rows


BASE = {"model.N": 800, "model.K": 8, "problems.Q": 128, "grpo.G": 16, "model.L": 100}
GRIDS = {
    "model.N": [800, 3200, 12800, 51200, 204800],
    "problems.Q": [128, 512, 2048, 8192],
    "grpo.G": [8, 16, 32, 64],
    "model.L": [50, 100, 200, 400],
}


def scaling_rows(steps: int, engines: list[str]) -> list[tuple[str, ...]]:
    """CPU seconds per training step (uniform initial policy) as one size grows."""
    rows = []
    for key, values in GRIDS.items():
        for engine in engines:
            per_step = []
            for v in values:
                sizes = {**BASE, key: v}
                sets = [f"{k}={x}" for k, x in sizes.items()]
                sets += ["eval.every=0", f"steps={steps + 1}", f"model.engine={engine}"]
                sets += ["problems.held_out=0"]
                timing, _ = loop_child("", sets)
                per_step.append(timing["loop_cpu"] / timing["steps"])
            slope = np.polyfit(np.log(values), np.log(per_step), 1)[0]
            rows.append(
                (
                    f"CPU per step vs {key.split('.')[1]} in {values}, {engine}",
                    " ".join(f"{1e3 * t:.3g}" for t in per_step) + " ms",
                    f"exponent {slope:.2f}",
                    "",
                )
            )
    return rows


def scale_rows(steps: int) -> list[tuple[str, ...]]:
    """N=100,000, K=8, Q=10,000, G=16, L=200 with the compiled engine."""
    sets = [
        "model.N=100000",
        "model.K=8",
        "problems.Q=10000",
        "problems.held_out=0",
        "grpo.G=16",
        "model.L=200",
        f"steps={steps}",
        "eval.every=0",
        "model.engine=numba",
    ]
    timing, cost = loop_child("", sets)
    per_step = timing["loop_cpu"] / timing["steps"]
    return [
        (
            f"N=100k K=8 Q=10k G=16 L=200, {steps} steps, numba",
            f"process {cost['cpu']:.0f} s ({per_step:.2f} s per step)",
            f"peak {cost['peak']:.0f} MiB",
            f"wall {cost['wall'] / 60:.1f} min, final reward {timing['reward']:.4f}",
        )
    ]


def print_table(rows: list[tuple[str, ...]]) -> None:
    """A markdown table of the rows."""
    head = ("what", "CPU time", "memory / ratio", "also")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=3, help="alternating numpy/numba pairs")
    parser.add_argument("--scaling-steps", type=int, default=5, help="steps per scaling point")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling exponents")
    parser.add_argument("--scale", action="store_true", help="also the N=100k run (long)")
    parser.add_argument("--scale-steps", type=int, default=200)
    parser.add_argument(
        "--baseline", metavar="REF", help="also the numpy engine of this git commit (older code)"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    compileall.compile_dir(os.path.dirname(conceptweb.__file__), quiet=1)
    rows = sparse_rows(args.pairs, args.baseline)
    print_table(rows)  # each part as soon as it is measured, then all together at the end
    if not args.no_scaling:
        rows += scaling_rows(args.scaling_steps, ["numba"])
        print_table(rows)
    if args.scale:
        rows += scale_rows(args.scale_steps)
        print_table(rows)
    print(
        f"(load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}, "
        f"on {os.cpu_count()} CPUs; python {sys.version.split()[0]}, numpy {np.__version__})"
    )


if __name__ == "__main__":
    main()
