"""analyze_run: every diagnostic of one run directory (CoNet or LLM) into the stable summary.json.

Sections and their keys (stable; users and scripts read them): two_stage, v_shape, web,
frustration, collapse, forgetting. A section is null where it does not apply (web without
checkpoints, e.g. LLM runs; two_stage and v_shape for SFT runs, whose records start from a
trained policy; forgetting for runs without an SFT phase); notes says why. Extra top-level keys:
run, analysis, frustration_candidates, transitions, notes. Analysing twice gives identical JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conceptweb.analysis.dynamics import (
    DEFAULT_EVENT_WINDOW,
    SOLVED_THRESHOLD,
    accuracy_matrix,
    default_frustration_window,
    detect_v_shape,
    edge_means,
    fit_two_stage,
    frustration_analysis,
    frustration_candidates,
    transition_fits,
)
from conceptweb.analysis.forgetting import sft_forgetting, sft_steps_of
from conceptweb.analysis.topology import (
    DEFAULT_ANALYSIS_G,
    DEFAULT_TAU,
    TOPOLOGY_COLUMNS,
    topology_over_training,
)
from conceptweb.errors import ConceptwebError
from conceptweb.jsonable import to_jsonable
from conceptweb.rundir import RunDir

SUMMARY_VERSION = 1
SECTION_KEYS: dict[str, list[str]] = {
    "two_stage": [
        "knee_step",
        "slope_early",
        "slope_late",
        "slope_ratio",
        "bic_piecewise",
        "bic_saturating",
        "is_two_stage",
    ],
    "v_shape": ["min_step", "start_len", "min_len", "end_len", "drop_frac", "rise_frac", "is_v"],
    "web": [
        "final_avg_degree",
        "final_n_components",
        "final_giant_fraction",
        "n_bridges",
        "peak_islands_step",
    ],
    "frustration": ["peak_step", "n_forgetting_events", "n_learning_events"],
    "collapse": ["diversity_start", "diversity_end", "leaf_entropy_start", "leaf_entropy_end"],
    "forgetting": [
        "solved_before",
        "solved_after_sft",
        "lost_frac",
        "lost_downstream_of_cut_bridges_frac",
        "recovery_steps",
    ],
}
REQUIRED_METRICS = ("step", "reward_mean")
REQUIRED_PROBLEMS = ("step", "problem", "accuracy")

Progress = Callable[[str, int, int], None]


@dataclass
class RunAnalysis:
    """Everything analyze() measured on a run: the summary and the data behind the figures."""

    run: RunDir
    kind: str
    sft_steps: int
    metrics: pd.DataFrame = field(repr=False)
    accuracy: pd.DataFrame = field(repr=False)  # (steps x problems), training problems
    topology: pd.DataFrame = field(repr=False)
    two_stage: dict[str, Any] | None = field(repr=False)
    v_shape: dict[str, Any] | None = field(repr=False)
    frustration: dict[str, Any] | None = field(repr=False)
    transitions: pd.DataFrame = field(repr=False)
    forgetting: dict[str, Any] | None = field(repr=False)
    summary: dict[str, Any] = field(repr=False)
    tau: float = DEFAULT_TAU

    def snapshot_steps(self) -> dict[str, int]:
        """Checkpoint steps of three web snapshots: islands (most components), the maximally
        frustrated state (the checkpoint nearest the forgetting peak, else the V bottom, else
        the knee), and the final web; for SFT runs: before SFT, after SFT, final. Empty without
        checkpoints."""
        topo = self.topology
        if topo.empty:
            return {}
        steps = topo["step"].to_numpy()
        out: dict[str, int] = {}
        if self.sft_steps > 0:
            out["before SFT"] = int(steps[0])
            after = steps[steps <= self.sft_steps]
            out["after SFT"] = int(after[-1])
            out["final"] = int(steps[-1])
            return out
        comps = topo["n_components"].to_numpy()
        if comps.max() > 0:
            out["islands"] = int(steps[int(np.argmax(comps))])
        cand = self.summary.get("frustration_candidates") or {}
        for key in ("forgetting_peak_step", "v_bottom_step", "knee_step"):
            v = cand.get(key)
            if v is not None and math.isfinite(v):
                out["frustrated"] = int(steps[int(np.argmin(np.abs(steps - v)))])
                break
        out["final"] = int(steps[-1])
        return out


def _open(run: RunDir | str | Path) -> RunDir:
    return run if isinstance(run, RunDir) else RunDir.open(run)


def _require(df: pd.DataFrame, cols: tuple[str, ...], name: str, run: RunDir) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ConceptwebError(
            f"{run.path / name} lacks column(s) {', '.join(missing)} (older or foreign format?)"
        )
    if df.empty:
        raise ConceptwebError(f"{run.path} is incomplete: {name} has no rows (no steps recorded)")


def _step(x: Any) -> Any:
    """A step as an int when it is integral, else a float rounded to 0.01 (None if not finite)."""
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x):
        return None
    return int(x) if x.is_integer() else round(x, 2)


def _first_last_finite(values: np.ndarray) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return (float(v[0]), float(v[-1])) if v.size else (float("nan"), float("nan"))


def analyze(
    run: RunDir | str | Path,
    tau: float = DEFAULT_TAU,
    *,
    G: int = DEFAULT_ANALYSIS_G,
    seed: int = 0,
    event_window: int = DEFAULT_EVENT_WINDOW,
    frustration_window: int | None = None,
    smooth: int | None = None,
    with_topology: bool = True,
    on_progress: Progress | None = None,
) -> RunAnalysis:
    """Measure everything on a run directory; see analyze_run for the summary it carries."""
    run = _open(run)
    meta = run.read_meta()
    kind = str(meta.get("kind", "conet"))
    config = run.read_config()
    metrics = run.read_metrics()
    _require(metrics, REQUIRED_METRICS, "metrics.parquet", run)
    problems = run.read_problems()
    _require(problems, REQUIRED_PROBLEMS, "problems.parquet", run)
    metrics = metrics.sort_values("step", kind="stable").drop_duplicates("step", keep="last")
    metrics = metrics.reset_index(drop=True)
    S = sft_steps_of(run)
    notes: dict[str, str] = {}
    steps = metrics["step"].to_numpy()

    # learning curve and lengths (not for SFT runs: their records start from a trained policy)
    two = v = None
    if S > 0:
        notes["two_stage"] = notes["v_shape"] = "not applicable: SFT run (starts trained)"
    else:
        two = fit_two_stage(steps, metrics["reward_mean"].to_numpy())
        if "len_correct_mean" in metrics.columns:
            v = detect_v_shape(steps, metrics["len_correct_mean"].to_numpy(), smooth=smooth)
        else:
            notes["v_shape"] = "metrics.parquet has no len_correct_mean"

    # per-problem events and frustration
    acc = accuracy_matrix(problems, "train")
    fr = None
    if acc.shape[0] >= 2:
        fw = frustration_window or default_frustration_window(acc.shape[0])
        fr = frustration_analysis(
            acc.index.to_numpy(), acc.to_numpy(), SOLVED_THRESHOLD, event_window, fw
        )
    else:
        notes["frustration"] = "fewer than 2 steps of per-problem records"
    if on_progress is not None:
        on_progress("dynamics", 1, 1)

    # web topology over checkpoints
    n_ck = len(run.checkpoint_steps())
    if with_topology and n_ck:

        def topo_progress(done: int, total: int) -> None:
            if on_progress is not None:
                on_progress("web topology", done, total)

        topo = topology_over_training(run, tau, G=G, seed=seed, on_progress=topo_progress)
    else:
        topo = pd.DataFrame(columns=TOPOLOGY_COLUMNS)
        if n_ck:
            notes["web"] = "web topology not requested"
        else:
            notes["web"] = f"no checkpoints (run kind {kind!r}): the web needs a policy's logits"

    # transitions
    trans = (
        transition_fits(acc.index.to_numpy(), acc.to_numpy(), list(acc.columns))
        if acc.shape[0] >= 2
        else transition_fits([], np.zeros((0, 0)))
    )
    if on_progress is not None:
        on_progress("transitions", 1, 1)

    forg = None
    if S > 0:
        forg = sft_forgetting(run, tau, SOLVED_THRESHOLD, event_window, G=G, seed=seed)
    else:
        notes["forgetting"] = "not an SFT run"

    summary = _build_summary(
        run, meta, config, kind, S, metrics, acc, topo, two, v, fr, trans, forg, notes
    )
    summary["analysis"] = {
        "summary_version": SUMMARY_VERSION,
        "tau": float(tau),
        "solved_threshold": SOLVED_THRESHOLD,
        "event_window": int(event_window),
        "frustration_window": fr["window"] if fr else None,
        "length_smooth_window": v["smooth_window"] if v else None,
        "web_rollouts_per_problem": int(G),
        "seed": int(seed),
    }
    summary = to_jsonable(summary)
    return RunAnalysis(
        run, kind, S, metrics, acc, topo, two, v, fr, trans, forg, summary, float(tau)
    )


def _build_summary(
    run: RunDir,
    meta: dict[str, Any],
    config: dict[str, Any],
    kind: str,
    S: int,
    metrics: pd.DataFrame,
    acc: pd.DataFrame,
    topo: pd.DataFrame,
    two: dict[str, Any] | None,
    v: dict[str, Any] | None,
    fr: dict[str, Any] | None,
    trans: pd.DataFrame,
    forg: dict[str, Any] | None,
    notes: dict[str, str],
) -> dict[str, Any]:
    steps = metrics["step"].to_numpy()
    out: dict[str, Any] = {
        "run": {
            "kind": kind,
            "preset": config.get("preset"),
            "status": meta.get("status"),
            "first_step": int(steps[0]),
            "last_step": int(steps[-1]),
            "n_steps": int(steps.size),
            "n_problems": int(acc.shape[1]),
            "n_checkpoints": int(len(topo)),
            "sft_steps": int(S),
            "phases": sorted(str(p) for p in metrics["phase"].unique())
            if "phase" in metrics.columns
            else [],
        }
    }
    if two is not None:
        sec = {k: two[k] for k in SECTION_KEYS["two_stage"]}
        sec["knee_step"] = _step(two["knee_step"])
        sec["reason"] = two["reason"]
        out["two_stage"] = sec
    else:
        out["two_stage"] = None
    if v is not None:
        sec = {k: v[k] for k in SECTION_KEYS["v_shape"]}
        sec["min_step"] = _step(v["min_step"])
        sec["reason"] = v["reason"]
        out["v_shape"] = sec
    else:
        out["v_shape"] = None
    if len(topo):
        last = topo.iloc[-1]
        tsteps = topo["step"].to_numpy()
        out["web"] = {
            "final_avg_degree": float(last["avg_degree"]),
            "final_n_components": int(last["n_components"]),
            "final_giant_fraction": float(last["giant_fraction"]),
            "n_bridges": int(last["n_bridges"]),
            "peak_islands_step": (
                int(tsteps[int(np.argmax(topo["n_components"].to_numpy()))])
                if topo["n_components"].max() > 0
                else None
            ),
            "final_step": int(last["step"]),
            "final_n_nodes": int(last["n_nodes"]),
            "final_n_edges": int(last["n_edges"]),
            "final_n_leaves": int(last["n_leaves"]),
            "final_n_trunk_bridges": int(last["n_trunk_bridges"]),
            "final_mean_geodesic": float(last["mean_geodesic"]),
            "peak_n_components": int(topo["n_components"].max()),
        }
    else:
        out["web"] = None
    if fr is not None:
        out["frustration"] = {
            "peak_step": _step(fr["peak_step"]),
            "n_forgetting_events": fr["n_forgetting_events"],
            "n_learning_events": fr["n_learning_events"],
            "peak_value": fr["peak_value"],
            "learning_peak_step": _step(fr["learning_peak_step"]),
            "reason": fr["reason"],
        }
    else:
        out["frustration"] = None
    out["collapse"] = _collapse(metrics, acc, topo, S)
    if forg is not None:
        sec = {k: forg[k] for k in SECTION_KEYS["forgetting"]}
        sec.update({k: val for k, val in forg.items() if k not in sec})
        out["forgetting"] = sec
    else:
        out["forgetting"] = None
    cand = frustration_candidates(
        fr["peak_step"] if fr else float("nan"),
        v["min_step"] if v else float("nan"),
        two["knee_step"] if two else float("nan"),
    )
    out["frustration_candidates"] = {k: _step(x) if k != "spread" else x for k, x in cand.items()}
    tr = trans[trans["ok"] & trans["is_transition"]] if len(trans) else trans
    widths = tr["width"].to_numpy(dtype=float) if len(tr) else np.zeros(0)
    out["transitions"] = {
        "n_fitted": int(trans["ok"].sum()) if len(trans) else 0,
        "n_transitions": int(len(tr)),
        "median_width": float(np.median(widths)) if widths.size else None,
        "width_q25": float(np.quantile(widths, 0.25)) if widths.size else None,
        "width_q75": float(np.quantile(widths, 0.75)) if widths.size else None,
        "median_r2": float(np.median(tr["r2"])) if len(tr) else None,
    }
    out["notes"] = dict(sorted(notes.items()))
    return out


def _collapse(
    metrics: pd.DataFrame, acc: pd.DataFrame, topo: pd.DataFrame, S: int
) -> dict[str, Any] | None:
    steps = metrics["step"].to_numpy()
    sec: dict[str, Any] = {}
    if "n_distinct_correct_mean" in metrics.columns:
        div = metrics["n_distinct_correct_mean"].to_numpy(dtype=float)
        sec["diversity_start"], sec["diversity_end"] = edge_means(steps, div)
        if np.isfinite(div).any():
            i = int(np.nanargmax(div))
            sec["diversity_peak"] = float(div[i])
            sec["diversity_peak_step"] = int(steps[i])
    else:
        sec["diversity_start"] = sec["diversity_end"] = None
    if len(topo):
        sec["leaf_entropy_start"], sec["leaf_entropy_end"] = _first_last_finite(
            topo["leaf_entropy"].to_numpy()
        )
        sec["trunk_entropy_start"], sec["trunk_entropy_end"] = _first_last_finite(
            topo["trunk_entropy"].to_numpy()
        )
    else:
        sec["leaf_entropy_start"] = sec["leaf_entropy_end"] = None
    if "path_entropy_mean" in metrics.columns:
        pe = metrics["path_entropy_mean"].to_numpy(dtype=float)
        sec["path_entropy_start"], sec["path_entropy_end"] = edge_means(steps, pe)
    if all(sec.get(k) is None for k in SECTION_KEYS["collapse"]):
        return None
    ordered = {k: sec.get(k) for k in SECTION_KEYS["collapse"]}
    ordered.update({k: val for k, val in sec.items() if k not in ordered})
    return ordered


def analyze_run(
    run: RunDir | str | Path,
    tau: float = DEFAULT_TAU,
    *,
    on_progress: Progress | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """The summary.json dict of a run directory (not written; see write_summary).

    Stable sections: two_stage, v_shape, web, frustration, collapse, forgetting (null where not
    applicable). Errors on directories that are not runs, are incomplete or of an old format
    raise ConceptwebError with a one-line message.
    """
    return analyze(run, tau, on_progress=on_progress, **kwargs).summary


def write_summary(run: RunDir | str | Path, summary: dict[str, Any]) -> Path:
    """Write summary.json into the run directory (atomically) and return its path."""
    run = _open(run)
    run.write_summary(to_jsonable(summary))
    return run.summary_path
