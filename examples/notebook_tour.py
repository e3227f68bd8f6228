"""A tour of the notebook API: train a small CoNet run, then explore it from Python.

    python examples/notebook_tour.py [OUT_DIR]

Run it as a script, or paste it cell by cell into a notebook. It takes a few seconds.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import conceptweb
from conceptweb.config import resolve_config
from conceptweb.experiments.runs import train_run


def main(out: Path) -> None:
    # 1. a small run (any run directory works: `conceptweb train ... --out DIR`)
    sets = ["steps=40", "model.N=60", "model.K=4", "model.L=30", "problems.Q=12"]
    sets += ["problems.held_out=6", "grpo.G=8", "eval.G=16"]
    train_run(resolve_config("tiny", None, sets), out / "run")

    # 2. open it: config, per-step metrics, per-problem records, evaluations
    run = conceptweb.open_run(out / "run")
    print(run)
    print("K =", run.config["model"]["K"], "| steps recorded:", len(run.metrics))
    print(run.metrics[["step", "reward_mean", "len_correct_mean"]].tail(3).to_string(index=False))
    acc = run.accuracy()  # steps x problems
    print("problems solved at the last step:", int((acc.iloc[-1] >= 0.5).sum()), "of", acc.shape[1])
    print("evaluation rows:", len(run.evaluations))

    # 3. the concept web at a checkpoint, as a networkx graph with annotations
    step = run.checkpoint_steps[-1]
    web = run.web(step)
    bridges = [(a, b) for a, b, d in web.edges(data=True) if d["bridge"]]
    busiest = max(web.nodes, key=lambda n: len(web.nodes[n]["problems"]), default=None)
    print(f"web at step {step}: {web.number_of_nodes()} nodes, {web.number_of_edges()} edges,")
    print(f"  <k> = {run.topology(step)['avg_degree']:.2f}, {len(bridges)} bridges,")
    if busiest is not None:
        print(f"  node {busiest} is crossed by problems {web.nodes[busiest]['problems']}")

    # 4. the diagnostics (computed here; `conceptweb analyze` writes the same to summary.json)
    s = run.summary()
    print("two-stage:", s["two_stage"]["is_two_stage"], "| V:", s["v_shape"]["is_v"])
    print("forgetting events:", s["frustration"]["n_forgetting_events"])


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
