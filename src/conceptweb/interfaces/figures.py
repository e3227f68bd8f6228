"""Figures of one run (matplotlib's object API, no pyplot state): learning curve and knee, the V, web
snapshots, web topology over training, frustration, SFT forgetting, and a per-problem raster.

Every plot_* function takes plain data and an output path and returns the path it wrote.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection

from conceptweb.analysis.dynamics import (
    default_smooth_window,
    piecewise_curve,
    saturating_curve,
    smooth_series,
    solved_matrix,
)
from conceptweb.analysis.topology import undirected_projection
from conceptweb.interfaces.numbers import fmt, is_finite, pct
from conceptweb.interfaces.plotting import (
    C_ALT,
    C_FIT,
    C_GOOD,
    C_MAIN,
    C_RAW,
    new_figure,
    plot_over_steps,
    save_figure,
    vlines_at_steps,
)

MARKS = {
    "forgetting_peak_step": ("peak of forgetting", "#c0392b", "-"),
    "v_bottom_step": ("bottom of the V", "#8e44ad", "--"),
    "knee_step": ("knee of the curve", "#e67e22", ":"),
}


def _dict(result: Any) -> dict[str, Any] | None:
    """An analysis result as the plain dict the plot functions read (None stays None)."""
    return None if result is None else result.to_dict()


# -- curves --------------------------------------------------------------------------------------
def plot_learning_curve(
    steps: Sequence[float],
    reward: Sequence[float],
    fit: dict[str, Any] | None,
    out: str | Path,
    title: str = "Learning curve",
) -> Path:
    """Mean reward per step with the piecewise and saturating fits and the knee."""
    t = np.asarray(steps, dtype=float)
    y = np.asarray(reward, dtype=float)
    fig = new_figure(6.4, 4.0)
    ax = fig.add_subplot()
    ax.plot(t, y, color=C_RAW, lw=0.8, label="mean reward")
    if fit and is_finite(fit.get("knee_step")) and is_finite(fit.get("slope_early")):
        pw = piecewise_curve(
            t, fit["knee_step"], fit["value_at_knee"], fit["slope_early"], fit["slope_late"]
        )
        ax.plot(t, pw, color=C_FIT, lw=1.6, label="two-segment fit")
        ax.axvline(fit["knee_step"], color=C_FIT, ls=":", lw=1)
        ax.annotate(
            f"knee {fit['knee_step']:.0f}",
            (fit["knee_step"], fit["value_at_knee"]),
            textcoords="offset points",
            xytext=(8, -14),
            color=C_FIT,
        )
    if fit and all(is_finite(fit.get(k)) for k in ("sat_a", "sat_b", "sat_c", "t_first")):
        sat = saturating_curve(t, fit["sat_a"], fit["sat_b"], fit["sat_c"], fit["t_first"])
        ax.plot(t, sat, color=C_ALT, lw=1.2, ls="--", label="a - b exp(-t/c) fit")
    if fit:
        verdict = "two-stage" if fit.get("is_two_stage") else "not two-stage"
        ax.set_title(
            f"{title}: {verdict} (BIC {fmt(fit.get('bic_piecewise'), '.0f')} vs "
            f"{fmt(fit.get('bic_saturating'), '.0f')}, slope ratio "
            f"{fmt(fit.get('slope_ratio'), '.1f')})",
            fontsize=9,
        )
    else:
        ax.set_title(title, fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward (accuracy)")
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, out)


def plot_length_curve(
    steps: Sequence[float],
    lengths: Sequence[float],
    v: dict[str, Any] | None,
    out: str | Path,
    smooth: int | None = None,
    title: str = "Length of correct rollouts",
) -> Path:
    """Mean correct-rollout length per step, its smoothed curve, and the V's minimum."""
    t = np.asarray(steps, dtype=float)
    y = np.asarray(lengths, dtype=float)
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    w = smooth if smooth else (v or {}).get("smooth_window")
    if not is_finite(w) or w < 1:
        w = default_smooth_window(t.size)
    fig = new_figure(6.4, 4.0)
    ax = fig.add_subplot()
    ax.plot(t, y, color=C_RAW, lw=0.8, label="mean length of correct rollouts")
    if t.size:
        ax.plot(t, smooth_series(y, int(w)), color=C_MAIN, lw=1.6, label=f"smoothed ({int(w)})")
    if v and is_finite(v.get("min_step")):
        ax.plot([v["min_step"]], [v["min_len"]], "o", color=C_FIT, ms=7, label="minimum")
        verdict = "V-shaped" if v.get("is_v") else "not V-shaped"
        ax.set_title(
            f"{title}: {verdict} (fall {pct(v.get('drop_frac'))}, rise {pct(v.get('rise_frac'))})",
            fontsize=9,
        )
    else:
        ax.set_title(title, fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel("steps per correct walk")
    ax.legend(fontsize=8)
    return save_figure(fig, out)


def plot_frustration(
    steps: Sequence[float],
    F: Sequence[float],
    out: str | Path,
    learning: Sequence[float] | None = None,
    candidates: dict[str, Any] | None = None,
) -> Path:
    """F(t) (and the learning index) with the three candidate frustration steps marked."""
    t = np.asarray(steps, dtype=float)
    fig = new_figure(6.4, 3.6)
    ax = fig.add_subplot()
    ax.plot(t, np.asarray(F, float), color=C_FIT, lw=1.4, label="forgetting events / step")
    if learning is not None:
        ax.plot(t, np.asarray(learning, float), color=C_GOOD, lw=1, label="learning events / step")
    for key, (label, color, ls) in MARKS.items():
        x = (candidates or {}).get(key)
        if is_finite(x):
            ax.axvline(float(x), color=color, ls=ls, lw=1.2, label=f"{label} ({float(x):.0f})")
    ax.set_xlabel("step")
    ax.set_ylabel("events per step (smoothed)")
    ax.set_title("Frustration index F(t) and the candidate maximally frustrated steps", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, out)


# -- webs ----------------------------------------------------------------------------------------
def web_layout(web: nx.Graph, seed: int = 0) -> dict[int, np.ndarray]:
    """Positions for a web's nodes: each component laid out alone, components packed in rows
    (largest first), so islands read as islands."""
    g = undirected_projection(web)
    comps = sorted((sorted(c) for c in nx.connected_components(g)), key=lambda c: (-len(c), c[0]))
    pos: dict[int, np.ndarray] = {}
    if not comps:
        return pos
    total = sum(len(c) for c in comps)
    row_width = max(math.sqrt(total) * 1.6, 2.0)
    x = y = row_h = 0.0
    small = _small_layouts(g, [c for c in comps if 3 <= len(c) <= SMALL_COMPONENT], seed)
    for comp in comps:
        n = len(comp)
        size = max(math.sqrt(n), 1.0)
        if n == 1:
            local = {comp[0]: np.zeros(2)}
        elif n == 2:
            local = {comp[0]: np.array([-0.5, 0.0]), comp[1]: np.array([0.5, 0.0])}
        elif n <= SMALL_COMPONENT:
            local = dict(zip(comp, small[comp[0]], strict=True))
        else:
            sub = g.subgraph(comp)
            local = nx.spring_layout(sub, seed=seed, iterations=60 if n < 300 else 40)
        arr = np.array([local[v] for v in comp], dtype=float)
        arr -= arr.min(axis=0)
        ext = arr.max(axis=0)
        arr = arr / np.where(ext > 0, ext, 1.0) * size
        if x + size > row_width and x > 0:
            x, y, row_h = 0.0, y - row_h - 0.6, 0.0
        for v, p in zip(comp, arr, strict=True):
            pos[v] = p + np.array([x, y - size])
        x += size + 0.6
        row_h = max(row_h, size)
    return pos


# components up to this size are laid out together, a batch per size (a large web has
# thousands: one networkx call each took about a minute per figure at N=100k)
SMALL_COMPONENT = 30


def _small_layouts(
    g: nx.Graph, comps: list[list[int]], seed: int, iterations: int = 60
) -> dict[int, np.ndarray]:
    """Force-directed positions (Fruchterman-Reingold, as networkx's spring layout computes them)
    of many small components at once, one numpy batch per component size; keyed by each
    component's first node, rows in the component's order."""
    out: dict[int, np.ndarray] = {}
    by_size: dict[int, list[list[int]]] = {}
    for comp in comps:
        by_size.setdefault(len(comp), []).append(comp)
    for n, group in sorted(by_size.items()):
        adj = np.zeros((len(group), n, n))
        for c, comp in enumerate(group):
            index = {v: i for i, v in enumerate(comp)}
            for u, v in g.subgraph(comp).edges():
                adj[c, index[u], index[v]] = adj[c, index[v], index[u]] = 1.0
        pos = np.random.default_rng([seed, n]).random((len(group), n, 2))
        k = math.sqrt(1.0 / n)
        t = 0.1 * np.ptp(pos, axis=1).max(axis=1)  # per component, as networkx starts
        dt = t / (iterations + 1)
        for _ in range(iterations):
            delta = pos[:, :, None, :] - pos[:, None, :, :]
            dist = np.clip(np.linalg.norm(delta, axis=-1), 0.01, None)
            force = k * k / dist**2 - adj * dist / k
            disp = np.einsum("cijd,cij->cid", delta, force)
            length = np.linalg.norm(disp, axis=-1)
            length = np.where(length < 0.01, 0.1, length)
            pos += disp * (t[:, None] / length)[:, :, None]
            t -= dt
        for comp, p in zip(group, pos, strict=True):
            out[comp[0]] = p
    return out


def draw_web(
    ax: Any,
    web: nx.Graph,
    title: str = "",
    bridge_load: dict[tuple[int, int], int] | None = None,
    seed: int = 0,
) -> None:
    """Draw a web's nodes and edges only (not the whole concept graph) on a matplotlib axes.

    The largest component is dark blue, other islands grey-blue; edges crossed by the correct
    paths of 2 or more problems (trunk edges) are drawn thicker in red.
    """
    g = undirected_projection(web)
    pos = web_layout(g, seed)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    if not pos:
        ax.text(0.5, 0.5, "empty web", ha="center", va="center", transform=ax.transAxes)
        return
    comps = sorted(nx.connected_components(g), key=lambda c: (-len(c), min(c)))
    giant = comps[0]
    load = bridge_load or {}
    segs, trunk = [], []
    for a, b in g.edges():
        key = (min(a, b), max(a, b))
        (trunk if load.get(key, 0) >= 2 else segs).append([pos[a], pos[b]])
    ax.add_collection(LineCollection(segs, colors="#7f8c8d", linewidths=0.6))
    if trunk:
        ax.add_collection(LineCollection(trunk, colors=C_FIT, linewidths=1.3))
    nodes = sorted(pos)
    xy = np.array([pos[v] for v in nodes])
    colors = [C_MAIN if v in giant else "#7fa7c9" for v in nodes]
    ax.scatter(xy[:, 0], xy[:, 1], s=5, c=colors, linewidths=0, zorder=3)
    ax.autoscale()
    ax.set_aspect("equal", adjustable="datalim")
    _web_legend(ax, bool(trunk), len(comps) > 1)


def _web_legend(ax: Any, trunk: bool, islands: bool) -> None:
    """What the colours of a web drawing mean."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color=C_MAIN, ms=4, label="largest component")]
    if islands:
        handles.append(
            Line2D([], [], marker="o", ls="", color="#7fa7c9", ms=4, label="other islands")
        )
    handles.append(Line2D([], [], color="#7f8c8d", lw=0.8, label="web edge"))
    if trunk:
        handles.append(Line2D([], [], color=C_FIT, lw=1.3, label="trunk: crossed by 2+ problems"))
    ax.legend(
        handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(0, 0), ncol=2, frameon=False
    )


def _loads(topology: dict[str, Any] | None) -> dict[tuple[int, int], int]:
    if not topology:
        return {}
    return {
        tuple(b): int(n) for b, n in zip(topology["bridges"], topology["bridge_load"], strict=True)
    }


def plot_web(
    web: nx.Graph, out: str | Path, title: str = "", topology: dict[str, Any] | None = None
) -> Path:
    """One web drawn as a graph (see draw_web); topology (from web_topology) adds trunk edges."""
    fig = new_figure(7, 7)
    draw_web(fig.add_subplot(), web, title, _loads(topology))
    return save_figure(fig, out)


def plot_web_snapshots(
    snapshots: Sequence[tuple[str, nx.Graph, dict[str, Any] | None]], out: str | Path
) -> Path:
    """Side-by-side web drawings: (title, web, topology or None) per panel."""
    n = max(len(snapshots), 1)
    fig = new_figure(5.2 * n, 5.4)
    for i, (title, web, topo) in enumerate(snapshots):
        ax = fig.add_subplot(1, n, i + 1)
        if topo:
            title = (
                f"{title}\n<k> {fmt(topo['avg_degree'], '.2f')}, {topo['n_components']} islands, "
                f"giant {pct(topo['giant_fraction'])}"
            )
        draw_web(ax, web, title, _loads(topo))
    return save_figure(fig, out)


def plot_topology_over_training(
    topology: pd.DataFrame, out: str | Path, mark_steps: dict[str, Any] | None = None
) -> Path:
    """<k>, island count and giant-component fraction of the web at each checkpoint."""
    fig = new_figure(6.4, 5.6)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    t = topology["step"].to_numpy(dtype=float)
    plot_over_steps(ax1, t, topology["avg_degree"], "o", C_MAIN)
    ax1.axhline(2.0, color="k", lw=0.6, ls=":")
    ax1.set_ylabel("average degree <k>")
    ax1.set_title("Concept web over training", fontsize=9)
    plot_over_steps(ax2, t, topology["n_components"], "o", C_FIT, "islands (components)")
    ax2.set_ylabel("islands")
    ax3 = ax2.twinx()
    plot_over_steps(ax3, t, topology["giant_fraction"], "s", C_GOOD, "giant fraction")
    ax3.set_ylabel("largest-component fraction")
    ax3.set_ylim(0, 1.05)
    styles = {key: (color, ls) for key, (_label, color, ls) in MARKS.items()}
    vlines_at_steps((ax1, ax2), mark_steps, styles, lw=1)
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax3.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize=8, loc="center right")
    ax2.set_xlabel("step")
    return save_figure(fig, out)


def plot_degree_sensitivity(sens: pd.DataFrame, out: str | Path, tau: float) -> Path:
    """<k> of an extracted web against tau, one line per number of concepts, bootstrap bands."""
    fig = new_figure(6.4, 4.0)
    ax = fig.add_subplot()
    colors = [C_MAIN, C_FIT, C_ALT, C_GOOD, C_RAW]
    for i, (K, g) in enumerate(sens.groupby("n_concepts")):
        g = g.sort_values("tau")
        c = colors[i % len(colors)]
        x = g["tau"].to_numpy(dtype=float)
        ax.plot(
            x, g["avg_degree"].to_numpy(dtype=float), "o-", ms=3, color=c, label=f"{K} concepts"
        )
        ax.fill_between(
            x, g["lo"].to_numpy(dtype=float), g["hi"].to_numpy(dtype=float), color=c, alpha=0.2
        )
    ax.axhline(2.0, color="k", lw=0.6, ls=":")
    ax.axvline(tau, color="k", lw=0.6, ls="--")
    ax.set_xlabel("tau (web: edges with P(c'|c) >= tau)")
    ax.set_ylabel("average degree <k>")
    ax.set_title(
        "Sensitivity of <k> at the last checkpoint (95% bootstrap over completions)", fontsize=9
    )
    ax.legend(fontsize=8)
    return save_figure(fig, out)


def plot_reasoning_graph(topology: pd.DataFrame, out: str | Path) -> Path:
    """Cycles, diameter, small-world index and in-tree structure of an extracted web per checkpoint."""
    fig = new_figure(6.4, 5.6)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    t = topology["step"].to_numpy(dtype=float)
    for col, label, c in (
        ("n_cycles", "independent cycles", C_FIT),
        ("diameter", "diameter", C_MAIN),
        ("n_merges", "merge nodes (2+ inputs)", C_ALT),
        ("n_roots", "roots (no input)", C_GOOD),
    ):
        plot_over_steps(ax1, t, topology[col], "o", c, label)
    ax1.set_ylabel("count")
    ax1.legend(fontsize=8)
    ax1.set_title("Directed structure of the extracted web", fontsize=9)
    for col, label, c in (
        ("frac_in_trees", "islands that are in-trees", C_MAIN),
        ("frac_dominant", "concepts with a dominant successor", C_FIT),
    ):
        plot_over_steps(ax2, t, topology[col], "o", c, label)
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_ylabel("fraction")
    ax2.set_xlabel("checkpoint step")
    ax2.legend(fontsize=8)
    return save_figure(fig, out)


# -- per-problem and SFT -------------------------------------------------------------------------
def plot_accuracy_raster(
    accuracy: pd.DataFrame,
    out: str | Path,
    forget: np.ndarray | None = None,
    title: str = "Per-problem accuracy",
) -> Path:
    """Problems (rows, ordered by when they are first solved, smoothed as for events) x steps, coloured by accuracy;
    forgetting events are overlaid as black dots."""
    A = accuracy.to_numpy(dtype=float)
    steps = accuracy.index.to_numpy(dtype=float)
    fig = new_figure(7.5, 5.0)
    ax = fig.add_subplot()
    if A.size == 0:
        ax.text(0.5, 0.5, "no per-problem records", ha="center", transform=ax.transAxes)
        return save_figure(fig, out)
    solved = solved_matrix(A)
    first = np.where(solved.any(axis=0), solved.argmax(axis=0), A.shape[0])
    order = np.lexsort((np.arange(A.shape[1]), first))
    img = ax.imshow(
        A[:, order].T,
        aspect="auto",
        interpolation="nearest",
        cmap="viridis",
        vmin=0,
        vmax=1,
        extent=(steps[0] - 0.5, steps[-1] + 0.5, A.shape[1] - 0.5, -0.5),
    )
    if forget is not None and np.asarray(forget).any():
        ti, qi = np.nonzero(np.asarray(forget)[:, order])
        ax.scatter(steps[ti], qi, s=4, c="k", marker="o", linewidths=0, label="forgetting event")
        ax.legend(fontsize=7, loc="lower left")
    fig.colorbar(img, ax=ax, label="accuracy")
    ax.set_xlabel("step")
    ax.set_ylabel("problem (ordered by first solved)")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, out)


def plot_sft_forgetting(
    metrics: pd.DataFrame,
    sft_steps: int,
    forgetting: dict[str, Any] | None,
    out: str | Path,
) -> Path:
    """Old problems' accuracy and solved count through SFT and renewed RLVR (SFT shaded), and
    the new problems' accuracy if recorded."""
    t = metrics["step"].to_numpy(dtype=float)
    fig = new_figure(6.4, 4.0)
    ax = fig.add_subplot()
    ax.axvspan(0.5, sft_steps + 0.5, color="#f5cba7", alpha=0.5, label=f"SFT ({sft_steps} steps)")
    ax.plot(
        t,
        metrics["reward_mean"].to_numpy(float),
        color=C_MAIN,
        lw=1.2,
        label="old problems: accuracy",
    )
    if "new_acc_mean" in metrics.columns:
        ax.plot(
            t,
            metrics["new_acc_mean"].to_numpy(float),
            color=C_ALT,
            lw=1.2,
            label="new (SFT) problems: accuracy",
        )
    if "n_solved" in metrics.columns and forgetting and forgetting.get("n_problems"):
        ax.plot(
            t,
            metrics["n_solved"].to_numpy(float) / forgetting["n_problems"],
            color=C_GOOD,
            lw=0.8,
            ls="--",
            label="old problems: solved fraction",
        )
    title = "SFT forgetting and recovery"
    if forgetting:
        rec = forgetting.get("recovery_steps")
        if is_finite(rec):
            ax.axvline(
                sft_steps + 1 + float(rec),
                color=C_FIT,
                ls=":",
                lw=1.2,
                label=f"recovered after {float(rec):.0f} RL steps",
            )
        title += (
            f": lost {pct(forgetting.get('lost_frac'))} "
            f"of {forgetting.get('solved_before')} solved; "
            f"{pct(forgetting.get('lost_downstream_of_cut_bridges_frac'))} "
            "of them behind a cut bridge"
        )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return save_figure(fig, out)


# -- all figures of one run ----------------------------------------------------------------------
FIGURE_FILES = {
    "learning_curve": "learning_curve.png",
    "length_curve": "length_curve.png",
    "frustration": "frustration.png",
    "accuracy_raster": "accuracy_raster.png",
    "web_topology": "web_topology.png",
    "web_snapshots": "web_snapshots.png",
    "sft_forgetting": "sft_forgetting.png",
    "trees": "trees.png",
    "pass_at_k": "pass_at_k.png",
    "degree_sensitivity": "degree_sensitivity.png",
    "reasoning_graph": "reasoning_graph.png",
}


def run_figures(
    analysis: Any,
    out_dir: str | Path | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Path]:
    """Draw every figure that applies to an analysed run (a summary.RunAnalysis).

    Writes into out_dir (default: the run's figures/) and returns {figure name: path}.
    Long because it lists every figure of a run, one job each, in the report's order.
    """
    out = Path(out_dir) if out_dir is not None else analysis.run.figures_dir
    out.mkdir(parents=True, exist_ok=True)
    m = analysis.metrics
    s = analysis.summary
    jobs: list[tuple[str, Callable[[Path], Path]]] = []
    steps = m["step"].to_numpy()
    if analysis.sft_steps == 0:
        jobs.append(
            (
                "learning_curve",
                lambda p: plot_learning_curve(
                    steps, m["reward_mean"], _dict(analysis.two_stage), p
                ),
            )
        )
        if "len_correct_mean" in m.columns:
            jobs.append(
                (
                    "length_curve",
                    lambda p: plot_length_curve(
                        steps, m["len_correct_mean"], _dict(analysis.v_shape), p
                    ),
                )
            )
    else:
        jobs.append(
            (
                "sft_forgetting",
                lambda p: plot_sft_forgetting(m, analysis.sft_steps, _dict(analysis.forgetting), p),
            )
        )
    fr = analysis.frustration
    if fr is not None:
        acc_steps = analysis.accuracy.index.to_numpy()
        jobs.append(
            (
                "frustration",
                lambda p: plot_frustration(
                    acc_steps, fr.F, p, fr.L, s.get("frustration_candidates")
                ),
            )
        )
        jobs.append(
            ("accuracy_raster", lambda p: plot_accuracy_raster(analysis.accuracy, p, fr.forget))
        )
    if len(analysis.topology):
        jobs.append(
            (
                "web_topology",
                lambda p: plot_topology_over_training(
                    analysis.topology, p, s.get("frustration_candidates")
                ),
            )
        )
        snaps = analysis.snapshot_steps()
        G = int(s["analysis"]["web_rollouts_per_problem"])
        seed = int(s["analysis"]["seed"])

        def snapshots(p: Path) -> Path:
            panels = []
            for label, step in snaps.items():
                panels.append((f"{label} (step {step})", *_web_at(analysis, step, G, seed)))
            return plot_web_snapshots(panels, p)

        if snaps:
            jobs.append(("web_snapshots", snapshots))
    jobs.extend(_v3_jobs(analysis))
    jobs.extend(_graph_jobs(analysis))
    written: dict[str, Path] = {}
    for i, (name, job) in enumerate(jobs):
        written[name] = job(out / FIGURE_FILES[name])
        if on_progress is not None:
            on_progress("figures", i + 1, len(jobs))
    return written


def _v3_jobs(analysis: Any) -> list[tuple[str, Callable[[Path], Path]]]:
    """Figure jobs of the v3 analyses (inverse trees and freezing; pass@k over k)."""
    from conceptweb.analysis.passk import pass_at_k_curve
    from conceptweb.interfaces.figures_v3 import (
        frozen_fraction,
        plot_pass_at_k,
        plot_trees_over_training,
    )

    jobs: list[tuple[str, Callable[[Path], Path]]] = []
    series = getattr(analysis, "trees", None)
    if series is not None and len(series.table):
        steps = series.table["step"].to_numpy()
        frac = frozen_fraction(steps, series.final_web_freezing())
        freezing = analysis.summary.get("freezing")
        jobs.append(("trees", lambda p: plot_trees_over_training(series.table, frac, freezing, p)))
    ev = analysis.run.read_eval()
    if len(ev) and "n_correct" in ev.columns:
        last = pass_at_k_curve(ev[ev["step"] == ev["step"].max()])
        curves = {str(sp): grp for sp, grp in last.groupby("split", sort=True)}
        step = int(ev["step"].max())
        jobs.append(("pass_at_k", lambda p: plot_pass_at_k(curves, p, f"pass@k at step {step}")))
    return jobs


def _web_at(analysis: Any, step: int, G: int, seed: int) -> tuple[nx.DiGraph, dict[str, Any]]:
    """The web and topology of a checkpoint: the policy's (CoNet) or extracted from text (LLM)."""
    from conceptweb.analysis.reasoning import graph_web_at, load_graph
    from conceptweb.analysis.topology import web_at_step

    if analysis.graph is not None:
        return graph_web_at(*load_graph(analysis.run), step, analysis.tau, analysis.min_count)
    cw = web_at_step(analysis.run, step, analysis.tau, G=G, seed=seed)
    return cw.web, cw.topology.to_dict()


def _graph_jobs(analysis: Any) -> list[tuple[str, Callable[[Path], Path]]]:
    """Figures of a web extracted from text (LLM runs with a concept graph)."""
    if analysis.graph is None:
        return []
    gtopo, sens = analysis.graph
    jobs: list[tuple[str, Callable[[Path], Path]]] = [
        ("reasoning_graph", lambda p: plot_reasoning_graph(gtopo, p))
    ]
    if len(sens):
        jobs.append(
            ("degree_sensitivity", lambda p: plot_degree_sensitivity(sens, p, analysis.tau))
        )
    return jobs
