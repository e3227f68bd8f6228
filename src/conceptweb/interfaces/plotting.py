"""Figure chores shared by every figure: new figures (matplotlib's object API, no pyplot state,
no global backend), one atomic saver at one DPI, the run figures' colours, quantities over
steps with their marked steps, and mean-over-seeds bands clipped to the range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from conceptweb.analysis.stats import mean_ci
from conceptweb.interfaces.numbers import is_finite
from conceptweb.rundir import atomic_path

DPI = 110
C_RAW = "#9aa5b1"
C_MAIN = "#1f4e79"
C_FIT = "#c0392b"
C_ALT = "#e67e22"
C_GOOD = "#27ae60"


def new_figure(width: float, height: float, constrained: bool = False) -> Figure:
    """A figure on its own Agg canvas (safe in worker processes and without a display)."""
    fig = Figure(figsize=(width, height), layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write a figure atomically (temporary file, then rename) at DPI, in the format its suffix
    names (.png, .pdf, .svg); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight", metadata=_NO_STAMPS.get(fmt, {}))
    return path


# metadata that would differ between two saves of the same figure, per format (each format
# accepts its own keys; PNG's "Software" makes SVG and PDF fail)
_NO_STAMPS: dict[str, dict[str, None]] = {
    "png": {"Software": None},
    "svg": {"Date": None},
    "pdf": {"CreationDate": None},
}


def plot_over_steps(
    ax: Any, steps: Any, values: Any, marker: str, color: str, label: str | None = None
) -> None:
    """One quantity over steps: markers (circles 2.5 points, others 2) joined by a line."""
    labelled = {"label": label} if label is not None else {}
    ms = 2.5 if marker == "o" else 2
    ax.plot(steps, np.asarray(values, dtype=float), f"{marker}-", ms=ms, color=color, **labelled)


def vlines_at_steps(
    axes: Any, steps: dict[str, Any] | None, styles: dict[str, tuple[str, str]], lw: float
) -> None:
    """On every axis, a vertical line at each finite step of `steps` that `styles` names
    ({name: (color, linestyle)})."""
    for key, (color, ls) in styles.items():
        x = (steps or {}).get(key)
        if is_finite(x):
            for a in axes:
                a.axvline(float(x), color=color, ls=ls, lw=lw)


def plot_band(
    ax: Any,
    wide: pd.DataFrame,
    label: str,
    color: str | None = None,
    smooth: int = 1,
    bounds: tuple[float, float] | None = None,
) -> None:
    """Mean over seeds (columns of `wide`, indexed by step) with its 95% t-band.

    `smooth` is a trailing rolling mean over steps; `bounds` clips the band to the quantity's
    range (accuracies to [0, 1]); with one seed there is no band.
    """
    if smooth > 1:
        wide = wide.rolling(smooth, min_periods=1).mean()
    st = np.array([mean_ci(row) for row in wide.to_numpy()]).reshape(-1, 3)
    (line,) = ax.plot(
        wide.index, st[:, 0], color=color, label=f"{label} (n={wide.shape[1]})", lw=1.4
    )
    if wide.shape[1] > 1:
        lo, hi = st[:, 1], st[:, 2]
        if bounds is not None:
            lo, hi = np.clip(lo, *bounds), np.clip(hi, *bounds)
        ax.fill_between(wide.index, lo, hi, color=line.get_color(), alpha=0.18, lw=0)
