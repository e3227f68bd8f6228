"""`llm graph` on one process against two (torchrun, CPU, gloo): wall and CPU time, same graph?

Builds an LLM run of recorded CoNet walks written as text with a scratch model saved at three
checkpoints, then times `python -m conceptweb llm graph RUN` on one process (one thread, then
two threads) and under torchrun with two processes of one thread each; each on its own copy of
the run (nothing cached). Prints the seconds until every step is represented (start-up included;
the part split across processes), the wall and CPU seconds of the whole command (all
processes), and whether each graph equals the one-process one (steps, concepts, edges).

    nice -n 10 python benchmarks/graph_processes.py --out runs/graph-processes
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def make_run(path: Path, walks: int, length: int, hidden: int, layers: int, seed: int) -> None:
    """A run with a scratch model at steps 0, 4, 8 and `walks` recorded walks of `length` steps."""
    import torch

    from conceptweb.llm.config import ScratchModelConfig
    from conceptweb.llm.models import build_scratch_model, build_wordlevel_tokenizer, save_model
    from conceptweb.llm.recorder import completions_frame
    from conceptweb.rundir import RunDir

    n = 50
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    nb = rng.integers(0, n, size=(n, 3))
    tok = build_wordlevel_tokenizer([], ["from", "to", ":", *(f"n{i}" for i in range(n))])
    cfg = ScratchModelConfig(
        hidden_size=hidden,
        num_layers=layers,
        num_heads=4,
        intermediate_size=4 * hidden,
        max_position_embeddings=2 * length + 16,
    )
    model = build_scratch_model(cfg, tok)
    run = RunDir.create(path, {"model": {"scratch": {}}, "task": {"kind": "conet_walk"}}, "llm")
    save_model(model, tok, run.path / "init")
    for step in (4, 8):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        save_model(model, tok, run.path / "checkpoints" / f"checkpoint-{step}")
    run.update_meta(last_step=8, status="finished")
    rows = []
    for i in range(walks):
        s, t = rng.choice(n, 2, replace=False)
        pos, walk = int(s), []
        for _ in range(length):
            pos = int(nb[pos, rng.integers(3)])
            walk.append(f"n{pos}")
        text = " " + " ".join(walk)
        rows.append(
            {
                "step": 1 + i % 9,
                "problem": i % 16,
                "sample": i,
                "prompt": f"from n{s} to n{t} :",
                "text": text,
                "n_tokens": length,
                "correct": True,
                "truncated": False,
            }
        )
    run.write_table("completions", completions_frame(rows))


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(seconds until every step is represented, wall seconds, CPU seconds of the command and
    all its processes); the first from the main process's progress lines."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    represented, tail = float("nan"), []
    assert proc.stderr is not None
    for raw in proc.stderr:
        line = raw.decode(errors="replace")
        tail = [*tail[-40:], line]
        if line.startswith("representing steps: ") and line.split(": ")[1].strip() == "3/3":
            represented = time.perf_counter() - t
    if proc.wait() != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{''.join(tail)}")
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return represented, wall, cpu


def same_graph(a: Path, b: Path) -> bool:
    return all(
        pd.read_parquet(a / "graph" / f).equals(pd.read_parquet(b / "graph" / f))
        for f in ("steps.parquet", "edges.parquet")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--walks", type=int, default=1500)
    ap.add_argument("--length", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--concepts", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    base = args.out / "base"
    make_run(base, args.walks, args.length, args.hidden, args.layers, seed=0)
    k = str(args.concepts)
    graph = ["llm", "graph", "--segment", "token", "--concepts", k, "--sweep", k]  # no sweep
    graph += ["--batch-size", str(args.batch_size)]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "TOKENIZERS_PARALLELISM": "false"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cases = {
        "1 process, 1 thread": ([sys.executable, "-m", "conceptweb"], {"OMP_NUM_THREADS": "1"}),
        "1 process, 2 threads": ([sys.executable, "-m", "conceptweb"], {"OMP_NUM_THREADS": "2"}),
        "2 processes (torchrun), 1 thread each": (
            [*torchrun, "--nproc_per_node", "2", "-m", "conceptweb"],
            {"OMP_NUM_THREADS": "1"},
        ),
    }
    rows, first = [], None
    for i, (name, (prefix, extra)) in enumerate(cases.items()):
        run = args.out / f"case{i}"
        shutil.copytree(base, run)
        represented, wall, cpu = timed([*prefix, *graph, str(run)], {**env, **extra})
        first = first or run
        same = same_graph(first, run)
        rows.append(
            {"case": name, "represented_s": represented, "wall_s": wall, "cpu_s": cpu, "same": same}
        )
    steps = len(pd.read_parquet(first / "graph" / "steps.parquet"))
    print(
        f"{args.walks} walks x {args.length} steps ({steps} steps over 3 checkpoints), "
        f"scratch model hidden {args.hidden} x {args.layers} layers, {os.cpu_count()} CPUs"
    )
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.1f}"))


if __name__ == "__main__":
    main()
