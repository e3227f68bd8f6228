"""Cost of flushing an LLM run's per-problem records: appended parts vs rewriting the table.

A run over Q problems samples B per step and re-evaluates a sentinel set of S problems every
E steps (G = 8); the monitor flushes every step. Measured: the time of the flush at the last
step (RecordBook.write, which appends a part) against rewriting the whole problems table as
the records were written before, the rows each writes, and reading the table back (all parts).

    python benchmarks/bench_records.py [--problems 100000] [--steps 400] [--batch 128]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from conceptweb.llm.monitor import Completion, RecordBook
from conceptweb.rundir import RunDir


def step_completions(rng: np.random.Generator, problems: np.ndarray, G: int) -> list[Completion]:
    ok = rng.random((problems.size, G)) < 0.5
    return [
        Completion(int(q), float(c), bool(c), 100, str(j))
        for q, row in zip(problems, ok, strict=True)
        for j, c in enumerate(row)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--sentinels", type=int, default=512)
    ap.add_argument("--every", type=int, default=5)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    sentinels = rng.choice(a.problems, a.sentinels, replace=False)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.create(f"{tmp}/run", {"bench": True}, kind="llm")
        book = RecordBook(a.problems)
        for step in range(1, a.steps + 1):
            batch = rng.choice(a.problems, a.batch, replace=False)
            sent = step_completions(rng, sentinels, 8) if step % a.every == 0 else None
            book.add_rl_step(step, step_completions(rng, batch, 8), sent)
            pending = sum(len(f) for f in book.problem_frames)
            t0 = time.perf_counter()
            book.write(run)
            t_append = time.perf_counter() - t0
        t0 = time.perf_counter()
        table = run.read_problems()
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        run.write_table("problems_rewritten", table)  # what each flush cost before
        t_rewrite = time.perf_counter() - t0
        print(
            f"{a.problems} problems, {a.steps} steps, {a.batch} sampled per step, "
            f"{a.sentinels} sentinels every {a.every} steps; flush every step"
        )
        print("| flush at the last step | rows written | seconds |")
        print("|---|---:|---:|")
        print(f"| append a part (now) | {pending} | {t_append:.4f} |")
        print(f"| rewrite the table (before) | {len(table)} | {t_rewrite:.4f} |")
        print(
            f"| read the table back ({len(run.table_parts('problems'))} parts) | {len(table)} | {t_read:.3f} |"
        )


if __name__ == "__main__":
    main()
