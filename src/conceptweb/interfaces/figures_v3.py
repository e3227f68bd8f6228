"""Figures of the v3 analyses: inverse trees and freezing over training, and pass@k over k."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conceptweb.interfaces.plotting import (
    C_FIT,
    C_GOOD,
    C_MAIN,
    new_figure,
    plot_over_steps,
    save_figure,
    vlines_at_steps,
)


def plot_trees_over_training(
    table: pd.DataFrame, frozen_frac: np.ndarray, freezing: dict[str, Any] | None, out: str | Path
) -> Path:
    """In-trees, tree-like fraction and the frozen fraction of the final web per checkpoint."""
    fig = new_figure(6.4, 5.2)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    t = table["step"].to_numpy(dtype=float)
    plot_over_steps(ax1, t, table["n_trees"], "o", C_MAIN, "in-trees")
    plot_over_steps(ax1, t, table["n_cyclic"], "s", C_FIT, "cyclic parts")
    ax1.set_ylabel("components of the directed web")
    ax1.legend(fontsize=8)
    ax1.set_title("Directed web: nucleation, growth, freezing", fontsize=9)
    plot_over_steps(ax2, t, table["tree_fraction"], "o", C_MAIN, "tree-like fraction")
    plot_over_steps(ax2, t, frozen_frac, "s", C_GOOD, "frozen fraction of final web")
    merged = table["merged_problems_frac"]
    plot_over_steps(ax2, t, merged, "^", C_FIT, "problems whose paths merge")
    ax2.set_ylim(0, 1.05)
    ax2.set_xlabel("step")
    ax2.legend(fontsize=8, loc="lower right")
    styles = {"nucleation_end": ("k", "--"), "freezing_start": ("k", ":")}
    vlines_at_steps((ax1, ax2), freezing, styles, lw=0.8)
    return save_figure(fig, out)


def plot_pass_at_k(curves: dict[str, pd.DataFrame], out: str | Path, title: str = "") -> Path:
    """pass@k over k (log2 axis), one line per label; each frame has columns k, pass_at_k and
    optionally lo, hi (an interval drawn as a band)."""
    fig = new_figure(6.0, 4.0)
    ax = fig.subplots()
    colors = [C_MAIN, C_FIT, C_GOOD, "#8e44ad", "#e67e22", "#16a085", "#7f8c8d", "#d35400"]
    for i, (label, df) in enumerate(curves.items()):
        k = df["k"].to_numpy(dtype=float)
        y = df["pass_at_k"].to_numpy(dtype=float)
        color = colors[i % len(colors)]
        ax.plot(k, y, "o-", ms=3, color=color, label=label)
        if "lo" in df.columns:
            ax.fill_between(
                k, df["lo"].to_numpy(float), df["hi"].to_numpy(float), color=color, alpha=0.15
            )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("pass@k (mean over problems)")
    ax.set_title(title or "pass@k over the sampling budget", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, out)


def frozen_fraction(steps: np.ndarray, freeze_at: np.ndarray) -> np.ndarray:
    """Fraction of the nodes (NaN: never frozen) frozen by each step."""
    if freeze_at.size == 0:
        return np.zeros(len(steps))
    return np.array([(freeze_at <= s).sum() / freeze_at.size for s in steps])
