"""Figures of the v3 analyses: inverse trees and freezing over training, and pass@k over k."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conceptweb.interfaces.numbers import is_finite
from conceptweb.interfaces.plotting import new_figure, save_figure

C_MAIN, C_FIT, C_GOOD = "#1f4e79", "#c0392b", "#27ae60"  # the run figures' colours


def plot_trees_over_training(
    table: pd.DataFrame, frozen_frac: np.ndarray, freezing: dict[str, Any] | None, out: str | Path
) -> Path:
    """In-trees, tree-like fraction and the frozen fraction of the final web per checkpoint."""
    fig = new_figure(6.4, 5.2)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    t = table["step"].to_numpy(dtype=float)
    ax1.plot(
        t, table["n_trees"].to_numpy(dtype=float), "o-", ms=2.5, color=C_MAIN, label="in-trees"
    )
    ax1.plot(
        t, table["n_cyclic"].to_numpy(dtype=float), "s-", ms=2, color=C_FIT, label="cyclic parts"
    )
    ax1.set_ylabel("components of the directed web")
    ax1.legend(fontsize=8)
    ax1.set_title("Directed web: nucleation, growth, freezing", fontsize=9)
    ax2.plot(
        t,
        table["tree_fraction"].to_numpy(dtype=float),
        "o-",
        ms=2.5,
        color=C_MAIN,
        label="tree-like fraction",
    )
    ax2.plot(t, frozen_frac, "s-", ms=2, color=C_GOOD, label="frozen fraction of final web")
    ax2.plot(
        t,
        table["merged_problems_frac"].to_numpy(dtype=float),
        "^-",
        ms=2,
        color=C_FIT,
        label="problems whose paths merge",
    )
    ax2.set_ylim(0, 1.05)
    ax2.set_xlabel("step")
    ax2.legend(fontsize=8, loc="lower right")
    for key, ls in (("nucleation_end", "--"), ("freezing_start", ":")):
        x = (freezing or {}).get(key)
        if is_finite(x):
            for a in (ax1, ax2):
                a.axvline(float(x), color="k", ls=ls, lw=0.8)
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
