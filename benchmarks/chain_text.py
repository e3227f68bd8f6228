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


ALTERNATIVES: dict[str, dict[str, object]] = {
    "hidden, layer auto (default)": {"layer": "auto"},
    "hidden, layer 1": {"layer": 1},
    "hidden, layer 2": {"layer": 2},
    "hidden, auto, not normalised": {"layer": "auto", "normalize": False},
    "hidden, auto, 12 concepts": {"layer": "auto", "n_concepts": 12},
    "text (TF-IDF)": {"represent": "text"},
}


def compare_representations(seed_dir: Path, seed: int, tau: float) -> pd.DataFrame:
    """The same completions' graph under other `llm graph` settings, scored as the default; each
    on a copy of the run (its hidden-state cache included), so the run itself is left as is."""
    import shutil

    from conceptweb.analysis.reasoning import load_graph
    from conceptweb.experiments.chain_text import digit_purity
    from conceptweb.llm.data import CHAIN_CONCEPTS
    from conceptweb.llm.graph import GraphSettings, build_graph
    from conceptweb.llm.truth import chain_concepts, score_token_graph
    from conceptweb.rundir import RunDir

    frames = []
    for i, (name, kw) in enumerate(ALTERNATIVES.items()):
        dst = seed_dir / "compare" / str(i)
        if not (dst / "graph" / "meta.json").is_file():
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(seed_dir / "run", dst)
            base = {"segment": "sentence", "include": "all", "n_concepts": len(CHAIN_CONCEPTS)}
            build_graph(dst, GraphSettings(**{**base, "seed": seed, **kw}))  # type: ignore[arg-type]
        steps, edges, _ = load_graph(RunDir.open(dst))
        frame = score_token_graph(steps, edges, tau, labeler=chain_concepts)
        frame["purity_digit"] = digit_purity(steps)
        frame.insert(0, "setting", name)
        frame.insert(0, "seed", seed)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def per_setting(alt: pd.DataFrame) -> pd.DataFrame:
    """Mean and minimum over seeds and checkpoints of each setting's scores."""
    out = per_checkpoint(alt, ["setting"])
    out["purity_digit"] = alt.groupby("setting", sort=False)["purity_digit"].mean()
    return out


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
    ap.add_argument(
        "--compare",
        action="store_true",
        help="also: the same completions under other representations (layer, normalisation, K, "
        "TF-IDF text), scored against the operations and against the digits",
    )
    args = ap.parse_args()
    over = dict(kv.split("=", 1) for kv in args.set)
    cfg = ChainConfig.model_validate(over)
    frames = []
    for seed in range(args.seeds):
        frames.append(run_chain(cfg, Path(args.out) / f"seed{seed}", seed, echo=print))
    table = pd.concat(frames, ignore_index=True)
    pd.set_option("display.width", 200)
    cols = ["seed", "step", "reward", "n_steps", "purity", "purity_digit", "edge_f1"]
    cols += ["k_extracted", "k_true"]
    print(
        table[[*cols, "n_true_edges", "layer"]].to_string(index=False, float_format="{:.3f}".format)
    )
    per_ck = per_checkpoint(table, ["step"])
    per_ck.insert(0, "reward_min", table.groupby("step")["reward"].min())
    per_ck.insert(0, "reward", table.groupby("step")["reward"].mean())
    per_ck["purity_digit"] = table.groupby("step")["purity_digit"].mean()
    print(per_ck.to_string(float_format="{:.3f}".format))
    table.to_csv(Path(args.out) / "chain_text.csv", index=False)
    if args.compare:
        alt = pd.concat(
            [
                compare_representations(Path(args.out) / f"seed{s}", s, cfg.tau)
                for s in range(args.seeds)
            ]
        )
        alt.to_csv(Path(args.out) / "chain_text_compare.csv", index=False)
        print("other representations, over seeds and checkpoints:")
        print(per_setting(alt).to_string(float_format="{:.3f}".format))
    if args.worked:
        for seed in range(args.seeds):
            clean = worked_solution_purity(Path(args.out) / f"seed{seed}" / "sft", [6, 12, 24, 48])
            print(f"seed {seed}, worked solutions by the SFT model:")
            print(clean.to_string(index=False, float_format="{:.3f}".format))


if __name__ == "__main__":
    main()
