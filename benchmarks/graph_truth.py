"""Does `conceptweb llm graph` recover a known web? CoNet walks written as text, over seeds.

Trains the `llm conet-demo` transformer (pre-training on random walks, then GRPO; reduced
sizes, transformer only), records its completions, builds the concept graph of every
checkpoint with token segmentation and hidden-state representation (the extractor never reads
the node names), and compares with the web of the same completions' true node sequences:
cluster purity, edge-set F1 (concepts mapped to their majority node) and |<k> - true <k>|.
The demo records an extra sample of the pre-trained model (`record_initial`), so checkpoint 0's
web is estimated from as many completions as the later checkpoints'.
Prints one table per setting and a summary over seeds (mean and 95% t-interval).

    nice -n 10 python benchmarks/graph_truth.py --out runs/graph-truth --seeds 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from conceptweb.analysis.reasoning import load_graph
from conceptweb.analysis.stats import mean_ci
from conceptweb.experiments.conet_demo import DemoConfig, run_demo
from conceptweb.llm.graph import GraphSettings, build_graph
from conceptweb.llm.truth import per_checkpoint, score_token_graph, split_information
from conceptweb.rundir import RunDir

SIZES = [
    "N=40",
    "K=4",
    "Q=12",
    "held_out=0",
    "L=12",
    "steps=40",
    "hidden=64",
    "pretrain_walks=3000",
    "anneal=false",
    "checkpoints=4",
    "record=64",
    "eval_k=4",
]


FIT_ALL = 10**9  # fit the codebook on every step (about 36000), not a sample of 20000


def measure(run: Path, n_nodes: int, tau: float, seed: int, tau_low: float) -> list[pd.DataFrame]:
    """Score the extractor on one transformer run at several settings (one codebook each).

    K = N + 1 concepts: the true classes of the scorer, N nodes and one class for the non-node
    tokens the model writes ("to", "from", ":"); K = N for comparison (a k-means centre spent on
    those tokens then merges two nodes). Two layer choices: the default (round(0.9 x depth))
    and `--layer auto` (silhouette). The last setting (auto, K = N + 1) is also scored at
    `tau_low`, where the pre-trained walk's web has edges, and gives the split-state analysis
    (its K = 2N sweep).
    """
    frames = []
    base = {"segment": "token", "include": "all", "seed": seed, "fit_max": FIT_ALL}
    settings = [
        ("layer 0.9 depth", GraphSettings(**base, n_concepts=n_nodes + 1, sweep=[])),
        ("layer auto", GraphSettings(**base, n_concepts=n_nodes, sweep=[], layer="auto")),
        (
            "layer auto",
            GraphSettings(**base, n_concepts=n_nodes + 1, sweep=[2 * n_nodes], layer="auto"),
        ),
    ]
    for name, s in settings:
        build_graph(run, s)
        steps, edges, meta = load_graph(RunDir.open(run))
        frame = score_token_graph(steps, edges, tau)
        frame.insert(0, "setting", f"{name}={meta['layer']}, K={meta['n_concepts']}")
        frames.append(frame)
    low = score_token_graph(steps, edges, tau_low)
    low.insert(0, "setting", f"layer auto={meta['layer']}, K={meta['n_concepts']}, tau={tau_low}")
    frames.append(low)
    col = f"concept_k{2 * n_nodes}"
    rows = []
    for step, g in steps.groupby("step"):
        sc = score_token_graph(g, edges[edges["step"] == step], tau, col).iloc[0].to_dict()
        sc.update(split_information(g, col, seed))
        rows.append(sc)
    frames.append(pd.DataFrame(rows).assign(setting=f"layer {meta['layer']}, K=2N={2 * n_nodes}"))
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/graph-truth")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tau", type=float, default=0.5)
    ap.add_argument(
        "--tau-low", type=float, default=0.2, help="also score the main setting at this tau"
    )
    ap.add_argument("--set", action="append", default=[], help="demo config overrides")
    ap.add_argument("--only-seed", type=int, default=None, help="measure one trained seed")
    args = ap.parse_args()
    dc = DemoConfig.preset(quick=True, seeds=args.seeds, sets=[*SIZES, *args.set])
    seeds = list(range(dc.first_seed, dc.first_seed + dc.seeds))
    if args.only_seed is None:
        run_demo(dc, args.out, echo=lambda m: print(m, flush=True))
    else:
        seeds = [args.only_seed]
    frames = []
    for seed in seeds:
        run = Path(args.out) / f"seed{seed}" / "transformer"
        for frame in measure(run, dc.N, args.tau, seed, args.tau_low):
            frames.append(frame.assign(seed=seed))
    table = pd.concat(frames, ignore_index=True)
    table["abs_k_diff"] = table["k_diff"].abs()
    pd.set_option("display.width", 200)
    cols = [
        "setting",
        "seed",
        "step",
        "n_steps",
        "purity",
        "edge_f1",
        "k_extracted",
        "k_true",
        "abs_k_diff",
        "nodes_split",
        "n_true_edges",
    ]
    print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    extra = ["H_concept_given_node", "I_concept_problem_given_node", "I_chance"]
    split = table[table["setting"].str.contains("K=2N")]
    print(split[["seed", "step", *extra]].to_string(index=False, float_format="{:.3f}".format))
    per_ck = per_checkpoint(table, ["setting", "step"])
    print(per_ck.to_string(float_format=lambda x: f"{x:.3f}"))
    summary = []
    for setting, g in table.groupby("setting", sort=False):
        worst = g.groupby("seed").agg(
            purity=("purity", "min"), edge_f1=("edge_f1", "min"), abs_k_diff=("abs_k_diff", "max")
        )
        row = {"setting": setting, "seeds": len(worst)}
        for c in worst.columns:
            m, lo, hi = mean_ci(worst[c].to_numpy())
            row[f"worst {c} over checkpoints"] = f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
        summary.append(row)
    print(pd.DataFrame(summary).to_string(index=False))
    tag = "" if args.only_seed is None else f"-seed{args.only_seed}"
    table.to_csv(Path(args.out) / f"graph_truth{tag}.csv", index=False)
    (Path(args.out) / f"graph_truth{tag}.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
