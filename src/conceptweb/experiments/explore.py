"""The map: a grid of CoNet settings (estimator x graph family x problem structure x load x ...)
run over seeds, with the phenomena each cell shows, as counts with intervals.

Axes are given as NAME=v1,v2,...; named axes translate to config overrides:
`graph` (a family, `-directed` for the directed variant), `structure` (random, distinct,
answers:M, starts:M), `estimator` (grpo.estimator); any other NAME is a dotted config key
(e.g. problems.Q=128,512). Every (cell, seed) run is analysed and judged by the per-run
criteria of PHENOMENA (docs/analysis.md, "The map"). Finished runs are never redone.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from conceptweb.analysis.stats import holm, mean_ci, paired_comparison
from conceptweb.config import config_to_dict, parse_set, resolve_config, validate_config
from conceptweb.errors import ConceptwebError
from conceptweb.experiments.executor import Backend, execute
from conceptweb.experiments.runs import train_run
from conceptweb.experiments.suitedir import SuiteDir
from conceptweb.rundir import atomic_write_table

__all__ = [
    "PHENOMENA",
    "ExploreConfig",
    "Explore",
    "axis_sets",
    "judge_run",
    "cell_table",
    "axis_margins",
    "paired_to_first",
]

# phenomenon -> its per-run criterion, in words (the code is judge_run)
PHENOMENA = {
    "two_stage": "two-stage learning curve (SPEC 3: piecewise fit wins by BIC, early slope >= 5x late)",
    "v_shape": "V of correct length (SPEC 3: minimum inside the middle 80%, falls and rises >= 15%)",
    "forgetting": "frustration-induced forgetting: >= 0.5 forgetting events per training problem",
    "islands_then_web": "islands then one web: >= 3 islands at a checkpoint in the first half, "
    "then at the end the largest component holds >= 50% of web nodes and islands fell >= 50%",
    "collapse": "policy collapse: distinct correct paths per problem end >= 20% below their peak",
    "inverse_trees": "inverse trees: final directed web >= 90% tree-like, >= 1 tree reached by "
    "2+ starts, >= 25% of problems' greedy paths merge",
    "phases_ordered": "nucleation ends before freezing starts (half of the final web frozen)",
}
MEASURES = [
    "final_reward",
    "final_len_correct",
    "forgetting_per_problem",
    "final_avg_degree",
    "tree_fraction",
    "frozen_frac",
]
_NAME_OK = re.compile(r"[^A-Za-z0-9_.:=+-]+")


def axis_sets(name: str, value: str) -> list[str]:
    """The --set overrides of one axis value."""
    if name == "graph":
        family, _, suffix = value.partition("-")
        if suffix not in ("", "directed"):
            raise ConceptwebError(f"graph axis value {value!r}: use FAMILY or FAMILY-directed")
        return [f"model.graph={family}", f"model.directed={str(bool(suffix)).lower()}"]
    if name == "structure":
        kind, _, arg = value.partition(":")
        if kind == "random" and not arg:
            return []
        if kind == "distinct" and not arg:
            return ["problems.distinct=true"]
        if kind in ("answers", "starts") and arg.isdigit():
            return [f"problems.n_{kind}={arg}"]
        raise ConceptwebError(
            f"structure axis value {value!r}: use random, distinct, answers:M or starts:M"
        )
    if name == "estimator":
        return [f"grpo.estimator={value}"]
    return [f"{name}={value}"]


def parse_axis(spec: str) -> tuple[str, list[str]]:
    """'graph=a,b' -> ('graph', ['a', 'b'])."""
    name, sep, values = spec.partition("=")
    vals = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name.strip() or not vals:
        raise ConceptwebError(f"--axis expects NAME=v1,v2,..., got {spec!r}")
    return name.strip(), vals


def check_axes(axes: list[str]) -> list[str]:
    """NAME=v1,v2,... axes, each parsable and named once (ValueError otherwise)."""
    names = [parse_axis(a)[0] for a in axes]
    if len(set(names)) != len(names):
        raise ValueError("axes must have distinct names")
    return axes


def axis_grid(axes: list[str]) -> list[dict[str, str]]:
    """Every combination of the axes' values, as {axis name: value}."""
    parsed = [parse_axis(a) for a in axes]
    combos = itertools.product(*[vals for _, vals in parsed])
    return [dict(zip([n for n, _ in parsed], c, strict=True)) for c in combos]


class ExploreConfig(BaseModel):
    """What the map runs: a base config, axes, seeds."""

    model_config = ConfigDict(extra="forbid")

    preset: str | None = "sparse"
    config_file: str | None = None
    sets: list[str] = Field(default_factory=list)
    axes: list[str] = Field(default_factory=list, description="NAME=v1,v2,... per axis")
    seeds: int = Field(5, ge=1)
    first_seed: int = Field(0, ge=0)

    @field_validator("axes")
    @classmethod
    def _axes_parse(cls, axes: list[str]) -> list[str]:
        return check_axes(axes)

    def cells(self) -> list[dict[str, str]]:
        """Every combination of axis values, as {axis name: value}."""
        return axis_grid(self.axes)

    def cell_config(self, cell: dict[str, str], seed: int) -> dict[str, Any]:
        sets = [*self.sets, *[s for n, v in cell.items() for s in axis_sets(n, v)], f"seed={seed}"]
        return config_to_dict(resolve_config(self.preset, self.config_file, sets))


def cell_name(cell: dict[str, str]) -> str:
    """A readable, path-safe name of a cell."""
    return _NAME_OK.sub("_", "+".join(f"{k}={v}" for k, v in cell.items())) or "base"


def judge_run(summary: dict[str, Any], metrics: pd.DataFrame, n_problems: int) -> dict[str, Any]:
    """The phenomena (bool or None when unmeasurable) and MEASURES of one analysed run."""
    two, v, web = summary.get("two_stage"), summary.get("v_shape"), summary.get("web")
    fr, col, tr, fz = (summary.get(k) for k in ("frustration", "collapse", "trees", "freezing"))
    tail = metrics["reward_mean"].to_numpy(float)
    tail = tail[-max(1, len(tail) // 10) :]
    lens = metrics["len_correct_mean"].to_numpy(float)[-max(1, len(metrics) // 10) :]
    fpp = fr["n_forgetting_events"] / n_problems if fr else None
    out: dict[str, Any] = {
        "final_reward": float(np.nanmean(tail)),
        "final_len_correct": float(np.nanmean(lens)) if np.isfinite(lens).any() else math.nan,
        "forgetting_per_problem": math.nan if fpp is None else fpp,
        "final_avg_degree": web["final_avg_degree"] if web else math.nan,
        "tree_fraction": tr["tree_fraction"] if tr else math.nan,
        "frozen_frac": fz["frozen_frac"] if fz and fz["frozen_frac"] is not None else math.nan,
        "two_stage": bool(two["is_two_stage"]) if two else None,
        "v_shape": bool(v["is_v"]) if v else None,
        "forgetting": None if fpp is None else bool(fpp >= 0.5),
        "collapse": None,
        "islands_then_web": None,
        "inverse_trees": None,
        "phases_ordered": fz["phases_ordered"] if fz else None,
    }
    if col and col.get("diversity_peak") and col.get("diversity_end") is not None:
        out["collapse"] = bool(col["diversity_end"] <= 0.8 * col["diversity_peak"])
    if web and summary.get("_islands") is not None:
        out["islands_then_web"] = bool(summary["_islands"])
    if tr:
        out["inverse_trees"] = bool(
            tr["tree_fraction"] >= 0.9
            and tr["n_multi_input_trees"] >= 1
            and tr["merged_problems_frac"] >= 0.25
        )
    return out


def islands_then_web(topology: pd.DataFrame) -> bool | None:
    """>= 3 islands at a checkpoint in the first half; at the end the largest component holds
    >= 50% of web nodes and the island count fell by >= 50% from its peak."""
    if topology.empty:
        return None
    steps = topology["step"].to_numpy(float)
    comps = topology["n_components"].to_numpy(float)
    first = steps <= steps[0] + 0.5 * (steps[-1] - steps[0])
    peak = comps[first].max()
    return bool(
        peak >= 3
        and topology["giant_fraction"].to_numpy(float)[-1] >= 0.5
        and comps[-1] <= 0.5 * peak
    )


def _job(args: tuple[dict[str, Any], str]) -> dict[str, Any]:
    """Train (or resume) one run, analyse it and judge it. Runs in a worker process."""
    from conceptweb.analysis.summary import analyze

    cfg_dict, out = args
    cfg = validate_config(cfg_dict)
    path = Path(out)
    resume = (path / "run.json").is_file()
    run = train_run(None if resume else cfg, path, resume=resume)
    ana = analyze(run)
    summary = dict(ana.summary)
    summary["_islands"] = islands_then_web(ana.topology)
    return judge_run(summary, ana.metrics, cfg.problems.Q)


class Explore(SuiteDir):
    """A map directory: explore.json, runs/CELL/seedN/, results.parquet, cells.csv, report."""

    FILE, WHAT, CONFIG = "explore.json", "a map", ExploreConfig
    cfg: ExploreConfig

    @staticmethod
    def check(cfg: ExploreConfig) -> None:
        for cell in cfg.cells():  # every cell
            validate_config(cfg.cell_config(cell, cfg.first_seed))

    def pending(self) -> list[tuple[dict[str, str], int]]:
        done = self.read_results()
        have = set(zip(done["cell"], done["seed"], strict=True)) if len(done) else set()
        seeds = range(self.cfg.first_seed, self.cfg.first_seed + self.cfg.seeds)
        return [(c, s) for c in self.cfg.cells() for s in seeds if (cell_name(c), s) not in have]

    def run(
        self,
        workers: int | None = None,
        on_done: Callable[[str, int, int, int], None] | None = None,
        backend: Backend | None = None,
    ) -> pd.DataFrame:
        """Run every pending (cell, seed) on `backend` (default: a process pool); results are
        saved as they arrive."""
        todo = self.pending()
        jobs = {
            (cell_name(c), s): (
                (self.cfg.cell_config(c, s), str(self.out / "runs" / cell_name(c) / f"seed{s}")),
                c,
            )
            for c, s in todo
        }
        rows = self.read_results().to_dict("records")

        def record(key: Any, result: dict[str, Any]) -> None:
            rows.append({"cell": key[0], "seed": key[1], **jobs[key][1], **result})
            df = pd.DataFrame(rows).sort_values(["cell", "seed"], kind="stable")
            atomic_write_table(self.results_path, df.reset_index(drop=True))
            if on_done:
                on_done(key[0], key[1], len(rows), len(jobs))

        execute(
            _job,
            {key: job for key, (job, _) in jobs.items()},
            workers,
            record,
            lambda key: self.out / "runs" / key[0] / f"seed{key[1]}",
            backend,
        )
        return self.read_results()


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson 95% interval of a proportion k/n."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def _counts(sub: pd.DataFrame) -> dict[str, Any]:
    """Each phenomenon's k of n measured runs in `sub`, with a Wilson interval."""
    row: dict[str, Any] = {}
    for ph in PHENOMENA:
        vals = [bool(x) for x in sub.get(ph, pd.Series(dtype=object)) if x is not None and x == x]
        k, n = sum(vals), len(vals)
        lo, hi = wilson(k, n)
        row.update({f"{ph}_k": k, f"{ph}_n": n, f"{ph}_lo": lo, f"{ph}_hi": hi})
    return row


def cell_table(results: pd.DataFrame, cells: list[dict[str, str]]) -> pd.DataFrame:
    """Per cell: seeds, each phenomenon's count k of n measured with a Wilson interval, and
    each measure's mean with a 95% t-interval."""
    rows = []
    for cell in cells:
        sub = results[results["cell"] == cell_name(cell)] if len(results) else results
        row: dict[str, Any] = {"cell": cell_name(cell), **cell, "n_seeds": int(len(sub))}
        row.update(_counts(sub))
        for m in MEASURES:
            mean, lo, hi = mean_ci(sub[m].to_numpy(float)) if len(sub) else (math.nan,) * 3
            row.update({m: mean, f"{m}_lo": lo, f"{m}_hi": hi})
        rows.append(row)
    return pd.DataFrame(rows)


def _varied(axes: list[str]) -> list[tuple[str, list[str]]]:
    return [(n, vals) for n, vals in (parse_axis(a) for a in axes) if len(vals) >= 2]


def axis_margins(results: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Per value of every axis with 2+ values: runs, and each phenomenon's k/n with a Wilson
    interval, pooled over all other axes and seeds.

    >>> r = pd.DataFrame({"e": ["a", "a", "b"], "seed": [0, 1, 0], "v_shape": [True, False, None]})
    >>> axis_margins(r, ["e=a,b"])[["axis", "value", "runs", "v_shape_k", "v_shape_n"]].values.tolist()
    [['e', 'a', 2, 1, 2], ['e', 'b', 1, 0, 0]]
    """
    rows = []
    for name, vals in _varied(axes):
        for v in vals:
            sub = results[results[name].astype(str) == v] if len(results) else results
            rows.append({"axis": name, "value": v, "runs": int(len(sub)), **_counts(sub)})
    return pd.DataFrame(rows)


def paired_to_first(
    results: pd.DataFrame, axes: list[str], measures: list[str] = MEASURES
) -> pd.DataFrame:
    """Per axis with 2+ values, each other value vs the axis's first value on every measure:
    paired differences (runs paired by seed and every other axis value), mean with a 95%
    t-interval, paired t-test p, and p Holm-corrected over the axis's other values.

    >>> r = pd.DataFrame({"e": ["a", "b"] * 3, "seed": [0, 0, 1, 1, 2, 2],
    ...                   "final_reward": [0.5, 0.6, 0.4, 0.6, 0.5, 0.65]})
    >>> d = paired_to_first(r, ["e=a,b"], ["final_reward"]).iloc[0]
    >>> d["value"], int(d["n"]), round(float(d["mean_diff"]), 3)
    ('b', 3, 0.15)
    """
    rows = []
    for name, vals in _varied(axes):
        key = [n for n, _ in (parse_axis(a) for a in axes) if n != name] + ["seed"]
        by = {v: results[results[name].astype(str) == v].set_index(key) for v in vals}
        for m in measures:
            part = []
            for v in vals[1:]:
                a, b = by[v][m].align(by[vals[0]][m], join="inner")
                c = paired_comparison(a.to_numpy(float), b.to_numpy(float))
                part.append({"axis": name, "value": v, "reference": vals[0], "measure": m, **c})
            adj = holm(np.array([r["p_t"] for r in part]))
            rows += [{**r, "p_holm": float(h)} for r, h in zip(part, adj, strict=True)]
    return pd.DataFrame(rows)


def explore_config_from_options(
    preset: str | None, config_file: str | None, sets: list[str], axes: list[str], **kwargs: Any
) -> ExploreConfig:
    """Build and validate an ExploreConfig from CLI options (None options keep defaults)."""
    from pydantic import ValidationError

    from conceptweb.config import format_validation_error

    for item in sets:
        parse_set(item)
    for a in axes:
        parse_axis(a)
    data = {k: v for k, v in kwargs.items() if v is not None}
    try:
        return ExploreConfig(
            preset=preset if preset or config_file else "sparse",
            config_file=config_file,
            sets=sets,
            axes=axes,
            **data,
        )
    except ValidationError as exc:
        raise ConceptwebError(f"invalid map: {format_validation_error(exc)}") from None
