"""Cost of one detector decision on a sparsely sampled LLM-scale run: dense history vs events.

A run over Q problems sampling B per step (G = 8): after S steps, how long one decision takes
and how much memory the trigger's history holds, for the old dense (steps x problems float64)
accuracy history and for the per-observation EventTracker. Prints a table.

    python benchmarks/bench_detector.py [--problems 40000] [--steps 400] [--batch 128]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from conceptweb.analysis.detector import FrustrationDetector
from conceptweb.analysis.events import ObservationHistory


class DenseHistory:
    """The old trigger history: a (steps x problems) accuracy array, NaN where not sampled."""

    def __init__(self, acc: np.ndarray) -> None:
        self.accuracy = acc
        self.steps = np.arange(1, len(acc) + 1)
        self.reward = np.zeros(len(acc))
        self.len_correct = np.ones(len(acc))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=40_000)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    det = FrustrationDetector()
    dense = np.full((a.steps, a.problems), np.nan)
    sparse = ObservationHistory(a.problems)
    for s in range(1, a.steps + 1):
        q = np.unique(rng.integers(0, a.problems, a.batch))
        k = rng.binomial(8, 0.7, q.size)
        dense[s - 1, q] = k / 8
        sparse.observe(s, q, np.full(q.size, 8), k)
        sparse.append(s, 0.0, 1.0)
    rows = []
    for name, hist, mem in [
        ("dense (before)", DenseHistory(dense), dense.nbytes),
        ("events (now)", sparse, _tracker_bytes(sparse)),
    ]:
        det.decide(hist)  # warm-up (lazy imports)
        t0 = time.perf_counter()
        for _ in range(3):
            det.decide(hist)
        rows.append((name, (time.perf_counter() - t0) / 3, mem))
    print(f"Q={a.problems}, {a.steps} steps, {a.batch} sampled per step, G=8")
    print("| history | one decision | history memory |")
    print("|---|---|---|")
    for name, t, mem in rows:
        print(f"| {name} | {t * 1000:.1f} ms | {mem / 2**20:.1f} MiB |")


def _tracker_bytes(h: ObservationHistory) -> int:
    t = h.tracker
    arrays = (t.state, t.state_step, t._recent_n, t._recent_c, t._n_obs)
    return sum(x.nbytes for x in arrays) + 64 * (len(t.counts) + len(t._f_delta))


if __name__ == "__main__":
    main()
