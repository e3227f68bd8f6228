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

from conceptweb.analysis.chains import chains_section, collapse_timing_section
from conceptweb.analysis.dynamics import (
    DEFAULT_EVENT_WINDOW,
    SOLVED_THRESHOLD,
    Frustration,
    FrustrationCandidates,
    TwoStageFit,
    VShape,
    accuracy_matrix,
    default_frustration_window,
    detect_v_shape,
    edge_means,
    fit_two_stage,
    frustration_analysis,
    frustration_candidates,
    transition_fits,
)
from conceptweb.analysis.events import DEFAULT_CONFIDENCE, observation_frustration
from conceptweb.analysis.forgetting import SFTForgetting, sft_forgetting, sft_steps_of
from conceptweb.analysis.passk import pass_at_k_section
from conceptweb.analysis.reasoning import extracted_web, has_graph
from conceptweb.analysis.results import Result, optional
from conceptweb.analysis.topology import (
    DEFAULT_ANALYSIS_G,
    DEFAULT_TAU,
    TOPOLOGY_COLUMNS,
    topology_over_training,
)
from conceptweb.analysis.trees import (
    FREEZING_KEYS,
    TREE_COLUMNS,
    TreeSeries,
    trees_over_training,
    trees_sections,
)
from conceptweb.errors import ConceptwebError
from conceptweb.jsonable import to_jsonable
from conceptweb.rundir import RunDir

__all__ = [
    "SUMMARY_VERSION",
    "SECTION_KEYS",
    "V3_SECTION_KEYS",
    "v3_sections",
    "REQUIRED_METRICS",
    "REQUIRED_PROBLEMS",
    "Progress",
    "RunRecords",
    "load_run_records",
    "RunInfo",
    "WebSummary",
    "Collapse",
    "TransitionSummary",
    "AnalysisParams",
    "Summary",
    "compute_run_info",
    "compute_web_summary",
    "compute_collapse",
    "compute_transition_summary",
    "compute_curves",
    "compute_frustration",
    "compute_summary",
    "RunAnalysis",
    "analyze",
    "analyze_run",
    "write_summary",
]

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
V3_SECTION_KEYS = {"trees": list(TREE_COLUMNS), "freezing": list(FREEZING_KEYS)}  # see v3_sections
REQUIRED_METRICS = ("step", "reward_mean")
REQUIRED_PROBLEMS = ("step", "problem", "accuracy")

Progress = Callable[[str, int, int], None]


# -- inputs --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class RunRecords:
    """The records of a run that the summary reads (load_run_records); checkpoints stay on disk.

    metrics is sorted by step with one row per step (the last one written wins); run is None
    for records that did not come from a run directory.
    """

    run: RunDir | None
    meta: dict[str, Any]
    config: dict[str, Any]
    kind: str
    sft_steps: int
    metrics: pd.DataFrame
    problems: pd.DataFrame
    checkpoint_steps: tuple[int, ...]


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


def load_run_records(run: RunDir | str | Path) -> RunRecords:
    """Read a run's meta, config, metrics and per-problem records, checking required columns.

    Parameters
    ----------
    run : RunDir or path
        A run directory (CoNet or LLM).

    Returns
    -------
    RunRecords

    Raises
    ------
    ConceptwebError
        One line, for directories that are not runs, are incomplete (a record missing, empty or
        unreadable, a required column missing) or of an old format.
    """
    run = _open(run)
    meta = run.read_meta()
    config = run.read_config()
    metrics = run.read_metrics()
    _require(metrics, REQUIRED_METRICS, "metrics.parquet", run)
    problems = run.read_problems()
    _require(problems, REQUIRED_PROBLEMS, "problems.parquet", run)
    metrics = metrics.sort_values("step", kind="stable").drop_duplicates("step", keep="last")
    return RunRecords(
        run=run,
        meta=meta,
        config=config,
        kind=str(meta.get("kind", "conet")),
        sft_steps=sft_steps_of(run),
        metrics=metrics.reset_index(drop=True),
        problems=problems,
        checkpoint_steps=tuple(run.checkpoint_steps()),
    )


def _step(x: Any) -> Any:
    """A step as an int when it is integral, else a float rounded to 0.01 (None if not finite)."""
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x):
        return None
    return int(x) if x.is_integer() else round(x, 2)


# -- results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunInfo(Result):
    """What was analysed: the run's kind, preset, status and extent."""

    kind: str
    preset: str | None
    status: str | None
    first_step: int
    last_step: int
    n_steps: int
    n_problems: int
    n_checkpoints: int
    sft_steps: int
    phases: tuple[str, ...]


@dataclass(frozen=True)
class WebSummary(Result):
    """The web section: the final checkpoint's topology and when islands peaked."""

    final_avg_degree: float
    final_n_components: int
    final_giant_fraction: float
    n_bridges: int
    peak_islands_step: int | None
    final_step: int
    final_n_nodes: int
    final_n_edges: int
    final_n_leaves: int
    final_n_trunk_bridges: int
    final_mean_geodesic: float
    peak_n_components: int


@dataclass(frozen=True)
class Collapse(Result):
    """The collapse section: diversity of correct paths and entropy at leaves and trunk.

    None for a stable key means it cannot be measured on this run; optional keys are left out.
    """

    diversity_start: float | None
    diversity_end: float | None
    leaf_entropy_start: float | None
    leaf_entropy_end: float | None
    diversity_peak: float | None = optional()
    diversity_peak_step: int | None = optional()
    trunk_entropy_start: float | None = optional()
    trunk_entropy_end: float | None = optional()
    path_entropy_start: float | None = optional()
    path_entropy_end: float | None = optional()


@dataclass(frozen=True)
class TransitionSummary(Result):
    """Per-problem logistic fits in brief: how many are transitions and how wide they are."""

    n_fitted: int
    n_transitions: int
    median_width: float | None
    width_q25: float | None
    width_q75: float | None
    median_r2: float | None


@dataclass(frozen=True)
class AnalysisParams(Result):
    """The parameters an analysis used (summary.json's analysis section)."""

    summary_version: int
    tau: float
    solved_threshold: float
    event_window: int
    frustration_window: int | None
    length_smooth_window: float | None
    web_rollouts_per_problem: int
    seed: int


@dataclass(frozen=True, eq=False)
class Summary(Result):
    """Every result of a run's analysis; to_dict() is summary.json (plain JSON, stable keys)."""

    run: RunInfo
    two_stage: TwoStageFit | None
    v_shape: VShape | None
    web: WebSummary | None
    frustration: Frustration | None
    collapse: Collapse | None
    forgetting: SFTForgetting | None
    frustration_candidates: FrustrationCandidates
    transitions: TransitionSummary
    notes: dict[str, str]
    analysis: AnalysisParams

    def to_dict(self) -> dict[str, Any]:
        """summary.json: each section is its result's stable keys first (SECTION_KEYS)."""
        steps = ("knee_step", "min_step", "peak_step", "learning_peak_step")
        fr_keys = [*SECTION_KEYS["frustration"], "peak_value", "learning_peak_step", "reason"]
        out = {
            "run": self.run.to_dict(),
            "two_stage": _section(self.two_stage, [*SECTION_KEYS["two_stage"], "reason"], steps),
            "v_shape": _section(self.v_shape, [*SECTION_KEYS["v_shape"], "reason"], steps),
            "web": _section(self.web),
            "frustration": _section(self.frustration, fr_keys, steps),
            "collapse": _section(self.collapse),
            "forgetting": _section(self.forgetting),
            "frustration_candidates": _section(
                self.frustration_candidates, steps=("forgetting_peak_step", "v_bottom_step", *steps)
            ),
            "transitions": self.transitions.to_dict(),
            "notes": dict(sorted(self.notes.items())),
            "analysis": self.analysis.to_dict(),
        }
        return to_jsonable(out)


def _section(
    result: Result | None, keys: list[str] | None = None, steps: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """A result as a summary section: `keys` of it (all if None), steps made integral."""
    if result is None:
        return None
    d = result.to_dict()
    sec = d if keys is None else {k: d[k] for k in keys}
    return {k: _step(v) if k in steps else v for k, v in sec.items()}


# -- pure computations ---------------------------------------------------------------------------
def compute_run_info(records: RunRecords, n_problems: int, n_checkpoints: int) -> RunInfo:
    """The run section from the records (n_checkpoints: those whose web was measured)."""
    m = records.metrics
    steps = m["step"].to_numpy()
    phases = sorted(str(p) for p in m["phase"].unique()) if "phase" in m.columns else []
    return RunInfo(
        kind=records.kind,
        preset=records.config.get("preset"),
        status=records.meta.get("status"),
        first_step=int(steps[0]),
        last_step=int(steps[-1]),
        n_steps=int(steps.size),
        n_problems=int(n_problems),
        n_checkpoints=int(n_checkpoints),
        sft_steps=int(records.sft_steps),
        phases=tuple(phases),
    )


def compute_web_summary(topology: pd.DataFrame) -> WebSummary | None:
    """The web section from a topology table (TOPOLOGY_COLUMNS); None if it has no rows.

    Parameters
    ----------
    topology : DataFrame
        One row per checkpoint (topology_over_training).

    Returns
    -------
    WebSummary or None
        The final checkpoint's numbers, and the checkpoint with the most islands.

    Examples
    --------
    >>> topo = pd.DataFrame({"step": [0, 10, 20], "n_components": [2, 5, 1],
    ...     "avg_degree": 1.9, "giant_fraction": 0.8, "n_bridges": 7, "n_nodes": 10,
    ...     "n_edges": 9, "n_leaves": 4, "n_trunk_bridges": 2, "mean_geodesic": 3.5})
    >>> w = compute_web_summary(topo)
    >>> w.peak_islands_step, w.final_n_components, w.peak_n_components
    (10, 1, 5)
    """
    if not len(topology):
        return None
    last = topology.iloc[-1]
    comps = topology["n_components"].to_numpy()
    steps = topology["step"].to_numpy()
    return WebSummary(
        final_avg_degree=float(last["avg_degree"]),
        final_n_components=int(last["n_components"]),
        final_giant_fraction=float(last["giant_fraction"]),
        n_bridges=int(last["n_bridges"]),
        peak_islands_step=int(steps[int(np.argmax(comps))]) if comps.max() > 0 else None,
        final_step=int(last["step"]),
        final_n_nodes=int(last["n_nodes"]),
        final_n_edges=int(last["n_edges"]),
        final_n_leaves=int(last["n_leaves"]),
        final_n_trunk_bridges=int(last["n_trunk_bridges"]),
        final_mean_geodesic=float(last["mean_geodesic"]),
        peak_n_components=int(comps.max()),
    )


def _first_last_finite(values: np.ndarray) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return (float(v[0]), float(v[-1])) if v.size else (float("nan"), float("nan"))


def compute_collapse(metrics: pd.DataFrame, topology: pd.DataFrame) -> Collapse | None:
    """The collapse section from per-step metrics and the topology table (D15).

    Diversity (n_distinct_correct_mean) and path entropy (path_entropy_mean): means over the
    first and last 10% of the step range; leaf and trunk entropy: first and last finite values
    over checkpoints.

    Parameters
    ----------
    metrics : DataFrame
        Per-step records with "step" and optionally the two columns above.
    topology : DataFrame
        One row per checkpoint (may be empty, e.g. for LLM runs).

    Returns
    -------
    Collapse or None
        None when none of the stable keys can be measured.

    Examples
    --------
    >>> m = pd.DataFrame({"step": range(1, 11), "n_distinct_correct_mean": [1.0] * 5 + [3.0] * 5})
    >>> c = compute_collapse(m, pd.DataFrame(columns=TOPOLOGY_COLUMNS))
    >>> c.diversity_start, c.diversity_end, c.leaf_entropy_start
    (1.0, 3.0, None)
    """
    steps = metrics["step"].to_numpy()
    sec: dict[str, Any] = {"diversity_start": None, "diversity_end": None}
    sec.update(leaf_entropy_start=None, leaf_entropy_end=None)
    if "n_distinct_correct_mean" in metrics.columns:
        div = metrics["n_distinct_correct_mean"].to_numpy(dtype=float)
        sec["diversity_start"], sec["diversity_end"] = edge_means(steps, div)
        if np.isfinite(div).any():
            i = int(np.nanargmax(div))
            sec["diversity_peak"] = float(div[i])
            sec["diversity_peak_step"] = int(steps[i])
    if len(topology):
        leaf = _first_last_finite(topology["leaf_entropy"].to_numpy())
        trunk = _first_last_finite(topology["trunk_entropy"].to_numpy())
        sec["leaf_entropy_start"], sec["leaf_entropy_end"] = leaf
        sec["trunk_entropy_start"], sec["trunk_entropy_end"] = trunk
    if "path_entropy_mean" in metrics.columns:
        pe = metrics["path_entropy_mean"].to_numpy(dtype=float)
        sec["path_entropy_start"], sec["path_entropy_end"] = edge_means(steps, pe)
    if all(sec[k] is None for k in SECTION_KEYS["collapse"]):
        return None
    return Collapse(**sec)


def compute_transition_summary(fits: pd.DataFrame) -> TransitionSummary:
    """Counts and width quantiles of the transitions among per-problem logistic fits (D14).

    >>> t = np.arange(60.0)
    >>> fits = transition_fits(t, np.stack([t > 20, t > 40, np.zeros(60)], axis=1))
    >>> s = compute_transition_summary(fits)
    >>> s.n_fitted, s.n_transitions
    (2, 2)
    """
    tr = fits[fits["ok"] & fits["is_transition"]] if len(fits) else fits
    widths = tr["width"].to_numpy(dtype=float) if len(tr) else np.zeros(0)
    return TransitionSummary(
        n_fitted=int(fits["ok"].sum()) if len(fits) else 0,
        n_transitions=int(len(tr)),
        median_width=float(np.median(widths)) if widths.size else None,
        width_q25=float(np.quantile(widths, 0.25)) if widths.size else None,
        width_q75=float(np.quantile(widths, 0.75)) if widths.size else None,
        median_r2=float(np.median(tr["r2"])) if len(tr) else None,
    )


def compute_curves(
    metrics: pd.DataFrame, sft_steps: int, smooth: int | None, notes: dict[str, str]
) -> tuple[TwoStageFit | None, VShape | None]:
    """Two-stage fit of reward_mean and V of len_correct_mean (not for SFT runs, which start
    from a trained policy); why a curve is not measured goes into `notes`."""
    if sft_steps > 0:
        notes["two_stage"] = notes["v_shape"] = "not applicable: SFT run (starts trained)"
        return None, None
    steps = metrics["step"].to_numpy()
    two = fit_two_stage(steps, metrics["reward_mean"].to_numpy())
    if "len_correct_mean" not in metrics.columns:
        notes["v_shape"] = "metrics.parquet has no len_correct_mean"
        return two, None
    return two, detect_v_shape(steps, metrics["len_correct_mean"].to_numpy(), smooth=smooth)


def compute_frustration(
    acc: pd.DataFrame,
    event_window: int,
    window: int | None,
    notes: dict[str, str],
    problems: pd.DataFrame | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Frustration | None:
    """frustration_analysis of a (steps x problems) accuracy table; None under 2 steps.

    Records with `n` and `n_correct` per problem (LLM runs) use the per-observation events
    the online detector counts (observation_frustration, D11) instead of the smoothed ones.
    """
    if acc.shape[0] < 2:
        notes["frustration"] = "fewer than 2 steps of per-problem records"
        return None
    fw = window or default_frustration_window(acc.shape[0])
    if problems is not None and {"n", "n_correct"} <= set(problems.columns):
        return observation_frustration(problems, acc, fw, confidence=confidence)
    return frustration_analysis(
        acc.index.to_numpy(), acc.to_numpy(), SOLVED_THRESHOLD, event_window, fw
    )


def compute_summary(
    records: RunRecords,
    acc: pd.DataFrame,
    topology: pd.DataFrame,
    two: TwoStageFit | None,
    v: VShape | None,
    fr: Frustration | None,
    transitions: pd.DataFrame,
    forgetting: SFTForgetting | None,
    notes: dict[str, str],
    params: AnalysisParams,
) -> Summary:
    """Assemble the Summary from the results of the separate analyses (no file access).

    Parameters
    ----------
    records : RunRecords
        The run's records (load_run_records, or built from frames with run=None).
    acc : DataFrame
        (steps x problems) accuracy of the training problems.
    topology : DataFrame
        One row per checkpoint (empty without checkpoints).
    two, v, fr, forgetting
        The results of fit_two_stage, detect_v_shape, frustration_analysis and
        compute_sft_forgetting, or None where they do not apply.
    transitions : DataFrame
        transition_fits of acc.
    notes : dict
        Why a section is null.
    params : AnalysisParams
        The parameters used.

    Returns
    -------
    Summary
        Its to_dict() is summary.json.
    """
    nan = float("nan")
    cand = frustration_candidates(
        fr.peak_step if fr else nan, v.min_step if v else nan, two.knee_step if two else nan
    )
    return Summary(
        run=compute_run_info(records, acc.shape[1], len(topology)),
        two_stage=two,
        v_shape=v,
        web=compute_web_summary(topology),
        frustration=fr,
        collapse=compute_collapse(records.metrics, topology),
        forgetting=forgetting,
        frustration_candidates=cand,
        transitions=compute_transition_summary(transitions),
        notes=dict(notes),
        analysis=params,
    )


# -- a run directory -----------------------------------------------------------------------------
@dataclass
class RunAnalysis:
    """Everything analyze() measured on a run: the summary and the data behind the figures."""

    run: RunDir
    kind: str
    sft_steps: int
    metrics: pd.DataFrame = field(repr=False)
    accuracy: pd.DataFrame = field(repr=False)  # (steps x problems), training problems
    topology: pd.DataFrame = field(repr=False)
    two_stage: TwoStageFit | None = field(repr=False)
    v_shape: VShape | None = field(repr=False)
    frustration: Frustration | None = field(repr=False)
    transitions: pd.DataFrame = field(repr=False)
    forgetting: SFTForgetting | None = field(repr=False)
    summary: dict[str, Any] = field(repr=False)
    tau: float = DEFAULT_TAU
    trees: TreeSeries | None = field(default=None, repr=False)
    # LLM runs with a concept graph: (topology with reasoning-graph columns, <k> sensitivity)
    graph: tuple[pd.DataFrame, pd.DataFrame] | None = field(default=None, repr=False)
    min_count: int | None = None  # the support threshold the extracted web was measured at

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
    min_count: int | None = None,
) -> RunAnalysis:
    """Measure everything on a run directory; see analyze_run for the summary it carries.

    min_count: the support threshold of a web extracted from text (LLM runs with a graph; None:
    the graph's, from its meta.json).

    Reads the records (load_run_records), runs each pure analysis on them, measures the web
    of every checkpoint (topology_over_training) and, for SFT runs, SFT forgetting
    (sft_forgetting), then assembles the Summary (compute_summary).
    """
    rec = load_run_records(run)
    notes: dict[str, str] = {}
    two, v = compute_curves(rec.metrics, rec.sft_steps, smooth, notes)
    acc = accuracy_matrix(rec.problems, "train")
    conf = ((rec.config.get("anneal") or {}).get("detector") or {}).get("confidence")
    fr = compute_frustration(
        acc, event_window, frustration_window, notes, rec.problems, conf or DEFAULT_CONFIDENCE
    )
    if on_progress is not None:
        on_progress("dynamics", 1, 1)
    graph = None  # LLM runs: the web extracted from text (conceptweb llm graph)
    if with_topology and not rec.checkpoint_steps and has_graph(rec.run):
        graph = extracted_web(rec.run, tau, seed=seed, min_count=min_count)
        topo = graph[0][TOPOLOGY_COLUMNS]
    else:
        topo = _topology(rec, tau, G, seed, with_topology, on_progress, notes)
    if acc.shape[0] >= 2:
        trans = transition_fits(acc.index.to_numpy(), acc.to_numpy(), list(acc.columns))
    else:
        trans = transition_fits([], np.zeros((0, 0)))
    if on_progress is not None:
        on_progress("transitions", 1, 1)
    forg = None
    if rec.sft_steps > 0:
        forg = sft_forgetting(rec.run, tau, SOLVED_THRESHOLD, event_window, G=G, seed=seed)
    else:
        notes["forgetting"] = "not an SFT run"
    params = AnalysisParams(
        summary_version=SUMMARY_VERSION,
        tau=float(tau),
        solved_threshold=SOLVED_THRESHOLD,
        event_window=int(event_window),
        frustration_window=fr.window if fr else None,
        length_smooth_window=v.smooth_window if v else None,
        web_rollouts_per_problem=int(G),
        seed=int(seed),
    )
    trees = trees_over_training(rec.run, tau) if len(topo) else None
    if trees is None:
        notes["trees"] = notes["freezing"] = notes.get("web", "no checkpoints")
    summary = compute_summary(rec, acc, topo, two, v, fr, trans, forg, notes, params).to_dict()
    summary.update(v3_sections(rec, topo, trees, fr.peak_step if fr else None, tau))
    summary["reasoning_graph"] = to_jsonable(graph[2]) if graph is not None else None
    return RunAnalysis(
        rec.run,
        rec.kind,
        rec.sft_steps,
        rec.metrics,
        acc,
        topo,
        two,
        v,
        fr,
        trans,
        forg,
        summary,
        float(tau),
        trees,
        (graph[0], graph[1]) if graph is not None else None,
        graph[2]["method"]["min_count"] if graph is not None else None,
    )


def v3_sections(
    rec: RunRecords,
    topo: pd.DataFrame,
    trees: TreeSeries | None,
    forgetting_peak_step: float | None,
    tau: float,
) -> dict[str, Any]:
    """summary.json's sections after the paper's v3: trees, freezing, pass_at_k, chains and
    collapse_timing (None where they do not apply; see analysis.trees, .passk, .chains)."""
    tr, fz = trees_sections(trees, tau) if trees is not None else (None, None)
    out = {
        "trees": tr,
        "freezing": fz,
        "pass_at_k": pass_at_k_section(rec.run.read_eval()) if rec.run is not None else None,
        "chains": chains_section(rec.metrics, topo) if rec.sft_steps == 0 else None,
        "collapse_timing": collapse_timing_section(rec.metrics, forgetting_peak_step),
    }
    return to_jsonable(out)


def _topology(
    rec: RunRecords,
    tau: float,
    G: int,
    seed: int,
    with_topology: bool,
    on_progress: Progress | None,
    notes: dict[str, str],
) -> pd.DataFrame:
    """The web topology of every checkpoint, or an empty table with a note saying why."""
    if with_topology and rec.checkpoint_steps:

        def topo_progress(done: int, total: int) -> None:
            if on_progress is not None:
                on_progress("web topology", done, total)

        return topology_over_training(rec.run, tau, G=G, seed=seed, on_progress=topo_progress)
    if rec.checkpoint_steps:
        notes["web"] = "web topology not requested"
    elif rec.kind == "llm":
        notes["web"] = (
            "no checkpoints with a policy's logits and no concept graph: build one with "
            "`conceptweb llm graph RUN` (from completions recorded with record_completions)"
        )
    else:
        notes["web"] = f"no checkpoints (run kind {rec.kind!r}): the web needs a policy's logits"
    return pd.DataFrame(columns=TOPOLOGY_COLUMNS)


def analyze_run(
    run: RunDir | str | Path,
    tau: float = DEFAULT_TAU,
    *,
    on_progress: Progress | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """The summary.json dict of a run directory (not written; see write_summary).

    Stable sections: two_stage, v_shape, web, frustration, collapse, forgetting (null where not
    applicable; docs/analysis.md lists every key). Analysing twice gives identical JSON.

    Raises
    ------
    ConceptwebError
        One line, for directories that are not runs, are incomplete or of an old format.
    """
    return analyze(run, tau, on_progress=on_progress, **kwargs).summary


def write_summary(run: RunDir | str | Path, summary: dict[str, Any]) -> Path:
    """Write summary.json into the run directory (atomically) and return its path."""
    run = _open(run)
    run.write_summary(to_jsonable(summary))
    return run.summary_path
