"""Figures and report of an Annealed-RLVR ablation: curves with bands, heating moments, paired differences."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from conceptweb.analysis.stats import mean_ci  # noqa: E402
from conceptweb.experiments.ablation import METRICS, Ablation  # noqa: E402
from conceptweb.rundir import RunDir, atomic_path, atomic_write_text  # noqa: E402

SMOOTH = 10
METRIC_LABELS = {
    "final_acc": "final train accuracy (mean@G_eval)",
    "final_best_at_k": "final train best@k",
    "heldout_acc": "held-out accuracy",
    "n_solved": "solved problems",
    "auc_reward": "area under the learning curve",
    "final_avg_degree": "final web <k>",
    "final_n_components": "final web components",
}


def load_curves(
    abl: Ablation, columns: tuple[str, ...] = ("reward_mean", "n_distinct_correct_mean")
) -> pd.DataFrame:
    """Per-step metrics of every finished run of the ablation, with arm and seed columns."""
    frames = []
    res = abl.read_results()
    for arm, seed in zip(res.get("arm", []), res.get("seed", []), strict=True):
        m = RunDir.open(abl.run_path(arm, seed)).read_metrics()
        keep = ["step", "phase", *[c for c in columns if c in m.columns]]
        frames.append(m[keep].assign(arm=arm, seed=seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _band(
    ax: plt.Axes, curves: pd.DataFrame, column: str, label: str, color: str | None = None
) -> None:
    wide = curves.pivot(index="step", columns="seed", values=column).sort_index()
    wide = wide.rolling(SMOOTH, min_periods=1).mean()
    stats = np.array([mean_ci(row) for row in wide.to_numpy()])
    (line,) = ax.plot(wide.index, stats[:, 0], label=label, color=color, lw=1.4)
    if wide.shape[1] > 1:
        ax.fill_between(
            wide.index, stats[:, 1], stats[:, 2], color=line.get_color(), alpha=0.18, lw=0
        )


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_learning_curves(abl: Ablation, curves: pd.DataFrame, path: Path) -> Path:
    """Reward of every arm (mean over seeds, 95% band), with the median heating step marked."""
    res = abl.read_results()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, zoom in zip(axes, (False, True), strict=True):
        for arm in abl.cfg.arms:
            sub = curves[curves["arm"] == arm]
            if len(sub):
                _band(ax, sub, "reward_mean", arm)
            heat = res[(res["arm"] == arm) & (res["heat_step"] >= 0)]["heat_step"]
            if len(heat) and not zoom:
                ax.axvline(float(np.median(heat)), color=ax.lines[-1].get_color(), ls=":", lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel(f"mean reward (rolling {SMOOTH})")
        if zoom:
            top = curves["step"].max()
            ax.set_xlim(top * 0.5, top)
            late = (
                curves[curves["step"] >= top * 0.5].groupby(["arm", "step"])["reward_mean"].mean()
            )
            if len(late):
                lo, hi = float(late.min()), float(late.max())
                pad = 0.1 * (hi - lo) + 1e-3
                ax.set_ylim(lo - pad, hi + pad)
            ax.set_title("second half (zoom)")
        else:
            ax.set_title("learning curves; dotted: median heating step")
    axes[0].legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_diversity_around_heating(
    abl: Ablation, curves: pd.DataFrame, path: Path, before: int = 40, after: int = 100
) -> Path:
    """Distinct correct paths per problem around each run's heating step, minus plain's at the same steps."""
    res = abl.read_results()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plain = curves[curves["arm"] == "plain"]
    for arm in abl.cfg.arms:
        if arm == "plain":
            continue
        traces = []
        for _, r in res[(res["arm"] == arm) & (res["heat_step"] >= 0)].iterrows():
            run = curves[(curves["arm"] == arm) & (curves["seed"] == r["seed"])].set_index("step")
            ref = plain[plain["seed"] == r["seed"]].set_index("step")
            rel = np.arange(-before, after + 1)
            steps = r["heat_step"] + rel
            mine = run["n_distinct_correct_mean"].reindex(steps).to_numpy()
            base = (
                ref["n_distinct_correct_mean"].reindex(steps).to_numpy()
                if len(ref)
                else np.zeros(rel.size)
            )
            traces.append(mine - base)
        if traces:
            arr = np.array(traces)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore", RuntimeWarning
                )  # steps past the end of a run are NaN
                mean = np.nanmean(arr, axis=0)
            ax.plot(
                np.arange(-before, after + 1),
                pd.Series(mean).rolling(5, min_periods=1).mean(),
                label=arm,
            )
    ax.axvline(0, color="k", lw=0.8)
    ax.axhline(0, color="gray", lw=0.6)
    ax.set_xlabel("steps since heating started")
    ax.set_ylabel("distinct correct paths per problem\n(arm minus plain, same seed)")
    ax.set_title("diversity around the heating")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no run heated", transform=ax.transAxes, ha="center")
    return _save(fig, path)


def plot_paired_differences(
    comparisons: pd.DataFrame,
    path: Path,
    metrics: tuple[str, ...] = ("final_acc", "heldout_acc", "auc_reward"),
) -> Path:
    """Bar chart: mean paired difference to plain with 95% CI, one panel per metric."""
    fig, axes = plt.subplots(
        1,
        len(metrics),
        figsize=(4.3 * len(metrics) + 1.5, 4.2),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = comparisons[(comparisons["metric"] == metric) & comparisons["diff_mean_diff"].notna()]
        y = np.arange(len(sub))
        d = sub["diff_mean_diff"].to_numpy()
        err = np.vstack([d - sub["diff_ci_low"].to_numpy(), sub["diff_ci_high"].to_numpy() - d])
        colors = [
            "tab:green" if v == "helped" else "tab:red" if v == "hurt" else "tab:gray"
            for v in sub["verdict"]
        ]
        ax.barh(y, d, xerr=np.nan_to_num(err), color=colors, alpha=0.8, capsize=3)
        ax.set_yticks(y, sub["arm"])
        ax.tick_params(axis="x", labelsize=8)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(METRIC_LABELS.get(metric, metric), fontsize=9)
        ax.set_xlabel("arm - plain (paired, 95% CI)")
    fig.suptitle(
        "green: helped, red: hurt, gray: no significant difference (paired t-test, 5%)", fontsize=9
    )
    return _save(fig, path)


def _fmt(x: float, spec: str = ".4f") -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def ablation_markdown(abl: Ablation, comparisons: pd.DataFrame, title: str | None = None) -> str:
    """The report's text: setting, one plain sentence per arm, and full tables."""
    cfg = abl.cfg
    base = cfg.base_config()
    res = abl.read_results()
    lines = [f"# {title or 'Annealed-RLVR ablation'}", ""]
    lines += [
        f"Preset `{cfg.preset}` (N={base.model.N}, K={base.model.K}, Q={base.problems.Q}, G={base.grpo.G}, "
        f"L={base.model.L}, {base.steps} steps), {cfg.seeds} paired seeds per arm, heating for "
        f"{cfg.heat_steps} steps on problems under accuracy {cfg.threshold}. Every arm spends the same "
        "number of update steps. Differences are arm minus plain on the same seed, with 95% t-intervals; "
        "p_t is the paired t-test, p_w the Wilcoxon signed-rank test, p_holm the t-test's p-value after "
        "Holm's correction over the arms compared with plain. Verdicts use p_holm < 0.05.",
        "",
    ]
    heat = res[res["heat_step"] >= 0].groupby("arm")["heat_step"]
    lines += ["## Verdicts on final train accuracy", ""]
    fa = comparisons[(comparisons["metric"] == "final_acc") & comparisons["diff_mean_diff"].notna()]
    for _, r in fa.iterrows():
        when = ""
        if r["arm"] in heat.groups:
            hs = heat.get_group(r["arm"])
            when = (
                f", heated at step {int(np.median(hs))} (median; {len(hs)}/{cfg.seeds} runs heated)"
            )
        else:
            when = ", never heated"
        lines.append(
            f"- **{r['arm']}**{when}: {r['verdict']} — final accuracy {_fmt(r['diff_mean_diff'], '+.4f')} "
            f"[{_fmt(r['diff_ci_low'], '+.4f')}, {_fmt(r['diff_ci_high'], '+.4f')}] vs plain "
            f"(p_t={_fmt(r['diff_p_t'], '.3g')}, p_holm={_fmt(r['diff_p_holm'], '.3g')}, "
            f"p_w={_fmt(r['diff_p_wilcoxon'], '.3g')})."
        )
    lines.append("")
    for metric in METRICS:
        sub = comparisons[comparisons["metric"] == metric]
        lines += [f"## {METRIC_LABELS.get(metric, metric)} (`{metric}`)", ""]
        lines.append(
            "| arm | mean [95% CI] | diff vs plain [95% CI] | p_t | p_holm | p_w | verdict |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        for _, r in sub.iterrows():
            mean = f"{_fmt(r['mean'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
            if isinstance(r.get("verdict"), str):
                diff = (
                    f"{_fmt(r['diff_mean_diff'], '+.4f')} [{_fmt(r['diff_ci_low'], '+.4f')}, "
                    f"{_fmt(r['diff_ci_high'], '+.4f')}]"
                )
                lines.append(
                    f"| {r['arm']} | {mean} | {diff} | {_fmt(r['diff_p_t'], '.3g')} | "
                    f"{_fmt(r['diff_p_holm'], '.3g')} | {_fmt(r['diff_p_wilcoxon'], '.3g')} | {r['verdict']} |"
                )
            else:
                lines.append(f"| {r['arm']} | {mean} | (reference) | | | | |")
        lines.append("")
    return "\n".join(lines)


def write_ablation_report(abl: Ablation, title: str | None = None) -> Path:
    """comparisons.csv, figures/*.png and report.md in the ablation directory."""
    comparisons = abl.comparisons()
    fig_dir = abl.out / "figures"
    fig_dir.mkdir(exist_ok=True)
    with atomic_path(abl.out / "comparisons.csv") as tmp:
        comparisons.to_csv(tmp, index=False)
    curves = load_curves(abl)
    plot_learning_curves(abl, curves, fig_dir / "learning_curves.png")
    plot_diversity_around_heating(abl, curves, fig_dir / "diversity_around_heating.png")
    plot_paired_differences(comparisons, fig_dir / "paired_differences.png")
    text = ablation_markdown(abl, comparisons, title)
    text += (
        "\n## Figures\n\n![learning curves](figures/learning_curves.png)\n\n"
        "![paired differences](figures/paired_differences.png)\n\n"
        "![diversity around heating](figures/diversity_around_heating.png)\n"
    )
    path = abl.out / "report.md"
    atomic_write_text(path, text)
    return path
