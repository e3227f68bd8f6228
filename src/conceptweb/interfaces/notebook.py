"""The notebook API: open a run, an ablation or a reproduction suite and explore it from Python.

    >>> import conceptweb
    >>> run = conceptweb.open_run("runs/sparse-0")          # doctest: +SKIP
    >>> run.metrics[["step", "reward_mean"]].tail()        # doctest: +SKIP
    >>> g = run.web(200)                                   # a networkx.DiGraph  # doctest: +SKIP
    >>> run.summary()["two_stage"]["knee_step"]            # doctest: +SKIP

Everything is read lazily from the directory (the run directory stays the record) and cached
on the object; nothing is written unless a method says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd

from conceptweb.errors import ConceptwebError
from conceptweb.rundir import RunDir

__all__ = [
    "Ablation",
    "Run",
    "Suite",
    "annotated_web",
    "open_ablation",
    "open_run",
    "open_suite",
    "path_crossings",
]


class Run:
    """One run directory (CoNet or LLM): its config, records, evaluations, webs and summary.

    Attributes are read on first use and cached: `config` (dict), `meta` (run.json),
    `metrics` (one row per step), `problems` (one row per step and problem), `evaluations`
    (one row per evaluation step, split and problem; empty if the run has none).
    """

    def __init__(self, path: str | Path) -> None:
        self.rundir = RunDir.open(path)
        self.path = self.rundir.path

    def __repr__(self) -> str:
        meta = self.meta
        return (
            f"Run({str(self.path)!r}, kind={meta.get('kind')!r}, status={meta.get('status')!r}, "
            f"last_step={meta.get('last_step')})"
        )

    @cached_property
    def meta(self) -> dict[str, Any]:
        return self.rundir.read_meta()

    @property
    def kind(self) -> str:
        """`conet` or `llm`."""
        return str(self.meta.get("kind", "conet"))

    @cached_property
    def config(self) -> dict[str, Any]:
        return self.rundir.read_config()

    @cached_property
    def metrics(self) -> pd.DataFrame:
        return self.rundir.read_metrics()

    @cached_property
    def problems(self) -> pd.DataFrame:
        return self.rundir.read_problems()

    @cached_property
    def evaluations(self) -> pd.DataFrame:
        return self.rundir.read_eval()

    @property
    def checkpoint_steps(self) -> list[int]:
        """Steps with a saved policy (where `web(step)` is defined); empty for LLM runs."""
        return self.rundir.checkpoint_steps()

    def accuracy(self, split: str = "train") -> pd.DataFrame:
        """Per-problem accuracy as a (steps x problems) table of one split of the records."""
        df = self.problems
        if "split" in df.columns:
            df = df[df["split"] == split]
        return df.pivot_table(index="step", columns="problem", values="accuracy", aggfunc="last")

    def web(self, step: int | None = None, tau: float = 0.5) -> nx.DiGraph:
        """The concept web at checkpoint `step` (the latest if None): edges i -> j with pi(j|i) >= tau.

        Edges carry `pi` (pi(j|i)), `bridge` (a bridge of the undirected projection) and
        `problems`; nodes carry `entropy` (of pi there), `leaf`, `component` (island index,
        0 = the giant) and `problems`: the training problems whose modal correct path at that
        step crosses the node or edge. Raises ConceptwebError if the run has no checkpoint at
        that step (LLM runs have none).
        """
        return annotated_web(self.web_analysis(step, tau))

    def web_analysis(self, step: int | None = None, tau: float = 0.5) -> Any:
        """The full CheckpointWeb at `step`: the web, its topology and the sampled correct paths."""
        from conceptweb.analysis.topology import web_at_step

        key = (step, tau)
        cache = self.__dict__.setdefault("_webs", {})
        if key not in cache:
            cache[key] = web_at_step(self.rundir, step, tau)
        return cache[key]

    def topology(self, step: int | None = None, tau: float = 0.5) -> dict[str, Any]:
        """The topology of the web at `step`: <k>, islands, giant fraction, bridges, leaves..."""
        return self.web_analysis(step, tau).topology.to_dict()

    def summary(self, recompute: bool = False) -> dict[str, Any]:
        """The run's summary.json (as `conceptweb analyze` writes it).

        Read from the directory when present; computed (and not written) when it is missing or
        `recompute` is true.
        """
        path = self.rundir.summary_path
        if path.is_file() and not recompute:
            return json.loads(path.read_text())
        from conceptweb.analysis.summary import analyze_run
        from conceptweb.jsonable import to_jsonable

        return to_jsonable(analyze_run(self.rundir))


def path_crossings(
    paths: list[Any],
) -> tuple[dict[int, list[int]], dict[tuple[int, int], list[int]]]:
    """For each node and directed edge, the problems (indices into `paths`) whose path crosses it."""
    nodes: dict[int, list[int]] = {}
    edges: dict[tuple[int, int], list[int]] = {}
    for q, path in enumerate(paths):
        if path is None:
            continue
        seq = [int(x) for x in path]
        for n in dict.fromkeys(seq):
            nodes.setdefault(n, []).append(q)
        for e in dict.fromkeys(zip(seq[:-1], seq[1:], strict=True)):
            edges.setdefault(e, []).append(q)
    return nodes, edges


def annotated_web(cw: Any) -> nx.DiGraph:
    """A copy of a CheckpointWeb's web with islands, bridges, leaves, entropy and path crossings."""
    web = cw.web.copy()
    topo = cw.topology
    bridges = {tuple(b) for b in topo.bridges}
    leaves = set(topo.leaves)
    und = nx.Graph(web.to_undirected())
    comps = sorted(nx.connected_components(und), key=lambda c: (-len(c), min(c)))
    comp_of = {n: i for i, c in enumerate(comps) for n in c}
    node_q, edge_q = path_crossings(cw.sample.paths)
    for n, attrs in web.nodes(data=True):
        attrs["entropy"] = float(cw.node_entropy[n])
        attrs["leaf"] = n in leaves
        attrs["component"] = comp_of.get(n, -1)
        attrs["problems"] = node_q.get(n, [])
    for a, b, attrs in web.edges(data=True):
        attrs["bridge"] = (min(a, b), max(a, b)) in bridges
        attrs["problems"] = edge_q.get((a, b), [])
    return web


class Ablation:
    """An ablation directory from `conceptweb ablate`: its config, results and paired comparisons."""

    def __init__(self, path: str | Path) -> None:
        from conceptweb.experiments.ablation import Ablation as _Ablation

        self.path = Path(path)
        if not (self.path / "ablation.json").is_file():
            raise ConceptwebError(f"{self.path} is not an ablation directory (no ablation.json)")
        self._abl = _Ablation.open_or_create(self.path, None)

    def __repr__(self) -> str:
        return f"Ablation({str(self.path)!r}, arms={self.arms}, seeds={self.seeds})"

    @property
    def config(self) -> dict[str, Any]:
        return self._abl.cfg.model_dump(mode="json")

    @property
    def arms(self) -> list[str]:
        return list(self._abl.cfg.arms)

    @property
    def seeds(self) -> list[int]:
        return self._abl.seeds()

    @property
    def results(self) -> pd.DataFrame:
        """One row per finished (arm, seed): final accuracy, best@k, held-out accuracy, ..."""
        return self._abl.read_results()

    def comparisons(self, reference: str = "plain") -> pd.DataFrame:
        """Paired differences (arm - reference) over seeds for every metric, with 95% CIs."""
        return self._abl.comparisons(reference)

    def run(self, arm: str, seed: int) -> Run:
        """The run of one arm and seed."""
        if arm not in self.arms:
            raise ConceptwebError(f"unknown arm {arm!r}; arms: {', '.join(self.arms)}")
        return Run(self._abl.run_path(arm, seed))

    def runs(self) -> Iterator[tuple[str, int, Run]]:
        """(arm, seed, run) for every run that exists on disk."""
        for arm in self.arms:
            for seed in self.seeds:
                path = self._abl.run_path(arm, seed)
                if (path / "run.json").is_file():
                    yield arm, seed, Run(path)


class Suite:
    """A reproduction directory from `conceptweb reproduce`: its runs, table and ablations."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not (self.path / "suite.json").is_file():
            raise ConceptwebError(f"{self.path} is not a reproduction directory (no suite.json)")

    def __repr__(self) -> str:
        return f"Suite({str(self.path)!r}, runs={len(self.run_paths())})"

    @cached_property
    def config(self) -> dict[str, Any]:
        return json.loads((self.path / "suite.json").read_text())

    @property
    def table(self) -> pd.DataFrame:
        """runs.parquet: one row per run with its flattened summary (empty before the suite ran)."""
        path = self.path / "runs.parquet"
        return pd.read_parquet(path) if path.is_file() else pd.DataFrame()

    def run_paths(self) -> list[str]:
        """Relative paths of the suite's run directories (ablation runs excluded), sorted."""
        found = []
        for sub in ("runs", "phase"):
            root = self.path / sub
            if root.is_dir():
                found += [p.parent for p in root.glob("*/*/run.json")]
        return sorted(str(p.relative_to(self.path)) for p in found)

    def run(self, label: str, seed: int) -> Run:
        """A run by label (a preset such as `sparse`, `sft`, or a phase cell such as `K8_Q128`)."""
        for sub in ("runs", "phase"):
            path = self.path / sub / label / f"seed{seed}"
            if (path / "run.json").is_file():
                return Run(path)
        raise ConceptwebError(f"{self.path} has no run {label!r} seed {seed}")

    def ablation(self, preset: str) -> Ablation:
        """The suite's ablation on a preset (`sparse` or `frustrated`)."""
        return Ablation(self.path / "ablation" / preset)


def open_run(path: str | Path) -> Run:
    """Open a run directory (CoNet or LLM) for exploration; see `Run`."""
    return Run(path)


def open_ablation(path: str | Path) -> Ablation:
    """Open an ablation directory written by `conceptweb ablate`; see `Ablation`."""
    return Ablation(path)


def open_suite(path: str | Path) -> Suite:
    """Open a reproduction directory written by `conceptweb reproduce`; see `Suite`."""
    return Suite(path)
