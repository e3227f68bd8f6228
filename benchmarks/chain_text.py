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

import numpy as np
import pandas as pd

from conceptweb.experiments.chain_text import ChainConfig, run_chain
from conceptweb.llm.truth import per_checkpoint


def worked_solution_purity(model_dir: Path, ks: list[int], n: int = 400) -> pd.DataFrame:
    """Purity of the concepts of clean worked solutions (not the model's own text), represented
    by `model_dir`'s hidden states at each candidate layer, for several numbers of concepts."""
    from conceptweb.llm.data import synthetic_chain
    from conceptweb.llm.graph import (
        PATTERNS,
        auto_layers,
        fit_codebook,
        hidden_step_vectors,
        load_checkpoint_model,
        model_depth,
        prepare_matrix,
        segment,
    )
    from conceptweb.llm.truth import chain_concepts, purity

    model, tok = load_checkpoint_model(model_dir)
    layers = auto_layers(model_depth(model_dir))
    items, texts = [], []
    for r in synthetic_chain(n, seed=7):
        sol = " " + r["solution"]
        spans = segment(sol, PATTERNS["sentence"])
        items.append((r["problem"], sol, spans))
        texts += [sol[a:b] for a, b in spans]
    V = np.concatenate(hidden_step_vectors(model, tok, items, layers, 64))
    y = chain_concepts(pd.Series(texts))
    rows = []
    for i, layer in enumerate(layers):
        X = prepare_matrix(V[:, i], True)
        for k in ks:
            c = fit_codebook(X, k, 0, len(X)).predict(X)
            rows.append({"layer": layer, "K": k, "purity": purity(c, y)[0], "steps": len(y)})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/chain-text")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], help="ChainConfig field=value")
    ap.add_argument(
        "--worked",
        action="store_true",
        help="also: purity on clean worked solutions represented by each seed's SFT model",
    )
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
    if args.worked:
        for seed in range(args.seeds):
            clean = worked_solution_purity(Path(args.out) / f"seed{seed}" / "sft", [6, 12, 24, 48])
            print(f"seed {seed}, worked solutions by the SFT model:")
            print(clean.to_string(index=False, float_format="{:.3f}".format))


if __name__ == "__main__":
    main()
