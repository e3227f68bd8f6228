"""Regenerate the format-1 run directories kept here as test data (tests/test_runformat.py).

They were written by conceptweb at commit ae13b47 (run format 1, before the run-format
module), with `PYTHONPATH=<that checkout>/src python make.py` run from this directory. The tests
retrain the same configs with today's code and compare the records, and resume and analyse these
directories; regenerating them with newer code would defeat that purpose.
"""

from __future__ import annotations

from conceptweb.config import resolve_config
from conceptweb.experiments.runs import train_run

BASE = [
    "steps=20",
    "model.N=40",
    "model.K=4",
    "model.L=16",
    "problems.Q=8",
    "problems.held_out=4",
    "grpo.G=4",
    "eval.every=5",
    "eval.G=8",
    "checkpoint.every=4",
]
HEAT = ["anneal.mode=at", "anneal.at_step=5", "anneal.heat.steps=5", "anneal.heat.threshold=0.5"]
RUNS = {
    "plain": BASE,
    "heat-sft": [*BASE, *HEAT],
    "heat-reset": [*BASE, *HEAT, "anneal.heat.operator=reset", "seed=1"],
    "sft": [*BASE, "steps=8", "sft.steps=4", "sft.problems=new:2", "init_from=plain"],
}

if __name__ == "__main__":
    for name, sets in RUNS.items():
        train_run(resolve_config(None, None, sets), name)
