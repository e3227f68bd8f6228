"""Chained arithmetic written as sentences: does `llm graph` recover the known step concepts?

A model built locally learns `synthetic-chain` by SFT then GRPO (recording completions); `llm
graph` segments its completions into sentences, represents them by hidden states (`--layer
auto`), clusters them into 6 concepts and links them; each sentence's true concept is the
operation it performs (start, add, subtract, double, square, answer). Prints purity, edge-set F1
and <k> against the true concepts' web per checkpoint and seed, and the mean and minimum.

    nice -n 10 python benchmarks/chain_text.py --out runs/chain-text --seeds 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from conceptweb.experiments.chain_text import ChainConfig, run_chain
from conceptweb.llm.truth import per_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/chain-text")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], help="ChainConfig field=value")
    args = ap.parse_args()
    over = dict(kv.split("=", 1) for kv in args.set)
    cfg = ChainConfig.model_validate(over)
    frames = []
    for seed in range(args.seeds):
        frames.append(run_chain(cfg, Path(args.out) / f"seed{seed}", seed, echo=print))
    table = pd.concat(frames, ignore_index=True)
    pd.set_option("display.width", 200)
    cols = ["seed", "step", "reward", "n_steps", "purity", "edge_f1", "k_extracted", "k_true"]
    print(
        table[[*cols, "n_true_edges", "layer"]].to_string(index=False, float_format="{:.3f}".format)
    )
    per_ck = per_checkpoint(table, ["step"])
    per_ck.insert(0, "reward", table.groupby("step")["reward"].mean())
    print(per_ck.to_string(float_format="{:.3f}".format))
    table.to_csv(Path(args.out) / "chain_text.csv", index=False)


if __name__ == "__main__":
    main()
